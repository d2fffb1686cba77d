"""Exports stream: peak memory does not grow with the number of rows (measured in clean child processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, os, resource, sys
from airflow_provider_norce.operators.query import NorceQueryExportOperator

def export(destination, flt):
    op = NorceQueryExportOperator(
        task_id="export", destination=destination, filter=flt, filter_application=False, progress_interval=3600
    )
    return op.execute({"params": {}})

out = sys.argv[1]
# Warm up: imports, token, connection pool, first page; then measure the growth of the peak RSS.
export(os.path.join(out, "warm.jsonl"), "Id le 100")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summary = export(os.path.join(out, "orders.jsonl"), sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": summary["rows"], "growth_kb": after - before, "peak_kb": after}))
"""

#: Exact row counts: an Id range (Updated windows hold a data-dependent number of rows: some are null).
WINDOWS = {
    20_000: "Id gt 0 and Id le 20000",
    200_000: "Id gt 0 and Id le 200000",
}


def measure(tmp_path, rows: int) -> dict:
    out = tmp_path / str(rows)
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), WINDOWS[rows]],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    with open(out / "orders.jsonl", "rb") as handle:
        assert sum(1 for _ in handle) == measured["rows"]
    return measured


@pytest.mark.norce_simulator(orders=200_000)
def test_peak_memory_does_not_grow_with_rows(norce_simulator, tmp_path):
    small = measure(tmp_path, 20_000)
    large = measure(tmp_path, 200_000)
    assert small["rows"] == 20_000
    assert large["rows"] == 200_000
    print(f"peak RSS growth: 20k rows {small['growth_kb']} KiB, 200k rows {large['growth_kb']} KiB")
    # Ten times the rows: a list-building export would grow ~10x (hundreds of MB); streaming stays flat.
    # The 8 MiB allowance absorbs allocator noise when the 20k growth is close to zero.
    assert large["growth_kb"] < 2 * small["growth_kb"] + 8 * 1024
