"""Export: orders from Norce Query to a JSON-lines file, this provider against the stock HttpOperator.

For 50,000 and 200,000 orders, each route runs in a fresh process (so peak RSS is its own) against the
simulator in another process: ``NorceQueryExportOperator`` streams page by page into the file;
``HttpOperator`` with a ``pagination_function`` (what users build today) collects every page, then the
rows are written. Rows per second count the export itself, imports excluded.

    python benchmarks/bench_export.py [--sizes 50000,200000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_common import child_env, connection, emit, simulator

TASK = str(Path(__file__).with_name("export_task.py"))


def export(route: str, base: str, out: Path) -> dict:
    host, port = base.removeprefix("http://").split(":")
    env = child_env(
        AIRFLOW_CONN_NORCE_DEFAULT=connection(base),
        AIRFLOW_CONN_NORCE_HTTP=json.dumps(
            {"conn_type": "http", "host": host, "port": int(port), "schema": "http"}
        ),
        NORCE_TOKEN_CACHE_DIR=tempfile.mkdtemp(prefix="norce-bench-tokens-"),
    )
    done = subprocess.run(
        [sys.executable, TASK, route, str(out)], capture_output=True, text=True, env=env, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"{route} export failed:\n{done.stderr[-3000:]}")
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    with open(out, "rb") as handle:
        lines = sum(1 for _ in handle)
    if lines != result["rows"]:
        raise RuntimeError(f"{route}: {lines} lines in the file but {result['rows']} rows reported")
    return {
        "rows": result["rows"],
        "rows_per_s": round(result["rows"] / result["seconds"]),
        "peak_rss_mib": round(result["peak_rss_kb"] / 1024, 1),
        "rss_growth_mib": round((result["peak_rss_kb"] - result["rss_after_imports_kb"]) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="50000,200000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="norce-bench-export-") as tmp:
        for size in sizes:
            with simulator(orders=size) as base:
                figures[str(size)] = {
                    route: export(route, base, Path(tmp) / f"{route}-{size}.jsonl")
                    for route in ("norce", "http")
                }
    big, small = figures[str(max(sizes))], figures[str(min(sizes))]
    memory_ratio = big["http"]["peak_rss_mib"] / big["norce"]["peak_rss_mib"]
    speed_ratio = big["norce"]["rows_per_s"] / big["http"]["rows_per_s"]
    flat = big["norce"]["peak_rss_mib"] <= small["norce"]["peak_rss_mib"] * 1.10 + 5
    emit(
        "export",
        {
            **{f"orders_{size}": figures[str(size)] for size in sizes},
            "http_vs_norce_peak_rss": round(memory_ratio, 2),
            "norce_vs_http_rows_per_s": round(speed_ratio, 2),
            "norce_peak_flat": flat,
            "target": "ours flat in rows; >= 3x lower peak RSS than HttpOperator at the largest size; rows/s >= HttpOperator",
            "meets_target": flat and memory_ratio >= 3 and speed_ratio >= 1.0,
        },
    )


if __name__ == "__main__":
    main()
