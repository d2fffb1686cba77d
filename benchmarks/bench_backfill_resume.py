"""A backfill killed at about 70 % and retried: how many rows does the retry read again?

The same simulated Norce and link as bench_export_network.py (``--orders`` orders, ``--latency`` seconds a
request). Three exports of every order of November 2026, each in a fresh child process:

1. **straight**: the default export, uninterrupted: the file the retry must reproduce byte for byte;
2. **killed**: the same export to another destination; while it runs, its staging folder beside the destination
   (``.<name>.norce-slices-<hex>/``) is watched, and when it holds about 70 % of the slices ``plan.json`` lists
   (committed ``slice-*.jsonl`` files), the child gets SIGKILL, as a worker lost to the OOM killer does;
3. **retry**: the same command again, as Airflow's retry of the task runs it: it finds the plan and the
   committed slices and fetches only the rest.

Rows read come from the simulator's ``query_rows`` counter (rows Query served, every page), before the killed run
and after the retry. Rows re-read = rows read by the killed run and the retry - rows in the final file. The
target: at most one slice per worker in flight read again (re-read <= max_concurrency x slice_rows) and the
file identical to the straight export's.

    python benchmarks/bench_backfill_resume.py [--orders 1000000] [--latency 0.1] [--kill-at 0.7]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import counters, emit, simulator
from bench_export_network import (
    export,
    file_digest,
    simulator_options,
    task_command,
    task_env,
)

#: How often the staging folder is looked at while the killed run runs (a slice takes seconds to fetch).
POLL_SECONDS = 0.05


def staging_folder(destination: Path) -> Path | None:
    """The export's staging folder beside ``destination`` (``.<name>.norce-slices-<16 hex>``), if it exists."""
    prefix = f".{destination.name}.norce-slices-"
    for entry in destination.parent.iterdir():
        if entry.name.startswith(prefix) and entry.is_dir():
            return entry
    return None


def plan_slices(plan: Any) -> int | None:
    """The number of slices a ``plan.json`` describes: the head (the first page, slice 0) and the key ranges
    of ``width`` keys cutting ``[head_end, high)``; None for a plan this script cannot read."""
    try:
        head_end, high, width = int(plan["head_end"]), int(plan["high"]), int(plan["width"])
    except (KeyError, TypeError, ValueError):
        return None
    if width <= 0:
        return None
    return 1 if high <= head_end else 1 + math.ceil((high - head_end) / width)


def progress(folder: Path) -> tuple[int | None, int]:
    """``(slices planned, slices committed)`` of a staging folder; planned is None until plan.json is there."""
    try:
        planned = plan_slices(json.loads((folder / "plan.json").read_text()))
    except (OSError, ValueError):
        planned = None
    try:
        committed = sum(
            1 for name in os.listdir(folder) if name.startswith("slice-") and name.endswith(".jsonl")
        )
    except OSError:
        committed = 0
    return planned, committed


def lines_in(paths: list[Path]) -> int:
    return sum(file_digest(path)[1] for path in paths)


def kill_at(base: str, out: Path, fraction: float) -> dict[str, Any]:
    """Run the default export of ``out`` and SIGKILL it once ``fraction`` of its slices are committed."""
    log = out.with_name(out.name + ".killed.log")  # a file, not a pipe: a full pipe would stall the child
    with open(log, "wb") as sink:
        child = subprocess.Popen(task_command(out), stdout=sink, stderr=subprocess.STDOUT, env=task_env(base))
    planned = committed = 0
    try:
        while child.poll() is None:
            folder = staging_folder(out)
            if folder is not None:
                found, committed = progress(folder)
                planned = found or planned
                if planned and committed >= math.ceil(planned * fraction):
                    child.send_signal(signal.SIGKILL)
                    break
            time.sleep(POLL_SECONDS)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode != -signal.SIGKILL:
        raise RuntimeError(
            f"the export was to be killed at {fraction:.0%} of its slices but ended first "
            f"(exit {child.returncode}, {committed}/{planned} slices seen); its output:\n"
            f"{log.read_text(errors='replace')[-3000:]}"
        )
    folder = staging_folder(out)
    if folder is None:
        raise RuntimeError(f"the killed export left no staging folder beside {out}")
    slice_files = sorted(folder.glob("slice-*.jsonl"))
    return {
        "slices_planned": planned,
        "slices_committed_at_kill": len(slice_files),
        "rows_committed_at_kill": lines_in(slice_files),
        # A slice being read is written to a temporary part (``.slice-NNNNN.jsonl.<random>.norce-tmp``) that
        # becomes its ``slice-NNNNN.jsonl`` only when complete: those left at the kill are the slices in flight.
        "slices_in_flight_at_kill": sum(1 for p in folder.iterdir() if p.name.endswith(".norce-tmp")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every request")
    parser.add_argument("--kill-at", type=float, default=0.7, help="fraction of the plan's slices committed")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="norce-bench-backfill-") as tmp,
        simulator(**simulator_options(args.orders, args.latency)) as base,
    ):
        straight = export(base, Path(tmp) / "straight.jsonl")
        out = Path(tmp) / "backfill.jsonl"
        before = counters(base)["query_rows"]
        killed = kill_at(base, out, args.kill_at)
        after_kill = counters(base)["query_rows"]
        retry = export(base, out)
        after = counters(base)["query_rows"]
        leftover = staging_folder(out)
    limit = straight["max_concurrency"] * straight["slice_rows"]
    read_total = after - before
    reread = read_total - retry["rows"]
    read_by_killed = after_kill - before
    exact = retry["sha256"] == straight["sha256"] and retry["rows"] == straight["rows"]
    emit(
        "backfill_resume",
        {
            "orders": args.orders,
            "latency_s": args.latency,
            "max_concurrency": straight["max_concurrency"],
            "slice_rows": straight["slice_rows"],
            "straight_seconds": straight["seconds"],
            **killed,
            "rows_read_by_killed_run": read_by_killed,
            "rows_lost_at_kill": read_by_killed - killed["rows_committed_at_kill"],
            "rows_read_by_retry": after - after_kill,
            "retry_seconds": retry["seconds"],
            "rows_read_total": read_total,
            "rows_in_file": retry["rows"],
            "rows_reread": reread,
            # The baseline: a retry that starts from zero reads again every row the killed run had read.
            "rows_reread_restarting_from_zero": read_by_killed,
            "slices_reread": killed["slices_in_flight_at_kill"],
            "reread_in_slices": round(reread / straight["slice_rows"], 2),
            "limit_rows": limit,
            "file_exact": exact,
            "staging_folder_removed": leftover is None,
            "target": "rows re-read <= max_concurrency x slice_rows; the file identical to a straight export",
            "meets_target": exact and 0 <= reread <= limit and leftover is None,
        },
    )


if __name__ == "__main__":
    main()
