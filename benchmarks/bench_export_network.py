"""Export over a simulated network link: sequential paging against concurrent slices, same run.

The simulator runs in its own process with ``--orders`` orders (default 1,000,000) and ``--latency`` seconds
(default 0.1) added to every request, as a Norce tenant reached over the internet is. Every order of November
2026 is exported to a JSON-lines file twice, each in a fresh child process (so each peak RSS is its own):

* **baseline**: ``max_concurrency=1``, the sequential export (one keyset page at a time since 0.2);
* **result**: the operator's default ``max_concurrency`` (key-range slices fetched concurrently).

``--unchecked-tree DIR`` also runs the default export with the package imported from ``DIR``, a checkout of an
earlier version (e.g. ``git worktree add /tmp/norce-0.2-unchecked 750addc``, before the export checked every
answer and staged part), and reports ``checks_cost``: this version's time over that one's, minus 1 (target
at most 3 %). The two runs alternate (``--repeat`` pairs, default 2) so a drifting machine hits both alike.

Both files must be byte-identical (sha256). The target: the default at least 4x as fast, its peak RSS within
10 % of the sequential export's. ``--concurrency-sweep 2,4,8,16`` also measures those values, which is how the
default was chosen.

    python benchmarks/bench_export_network.py [--orders 1000000] [--latency 0.1] [--concurrency-sweep 2,4,8,16]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_common import child_env, connection, emit

TASK = str(Path(__file__).with_name("export_network_task.py"))
#: Rows of a Query page in the simulator (Norce's page size is not published; the simulator's default).
PAGE_SIZE = 500


def task_command(out: Path, max_concurrency: int | None = None, slice_rows: int | None = None) -> list[str]:
    """The child process that runs one export (see export_network_task.py)."""
    command = [sys.executable, TASK, str(out)]
    if max_concurrency is not None:
        command += ["--max-concurrency", str(max_concurrency)]
    if slice_rows is not None:
        command += ["--slice-rows", str(slice_rows)]
    return command


def task_env(base: str) -> dict[str, str]:
    """A task process's environment: the simulator's connection, a token store and Airflow home of its own."""
    return child_env(
        AIRFLOW_CONN_NORCE_DEFAULT=connection(base),
        NORCE_TOKEN_CACHE_DIR=tempfile.mkdtemp(prefix="norce-bench-tokens-"),
        AIRFLOW_HOME=tempfile.mkdtemp(prefix="norce-bench-home-"),
    )


def file_digest(path: Path) -> tuple[str, int]:
    """``(sha256, lines)`` of a file, read in blocks."""
    digest, lines = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            lines += block.count(b"\n")
    return digest.hexdigest(), lines


def last_json_line(stdout: str) -> dict[str, Any]:
    """The child's figures: the last stdout line that is a JSON object (Airflow may log before it)."""
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def export(
    base: str,
    out: Path,
    max_concurrency: int | None = None,
    slice_rows: int | None = None,
    package_tree: str | None = None,
) -> dict:
    """One export in a fresh process; its rows/s, seconds, peak RSS and the file's sha256. With
    ``package_tree``, the provider is imported from that checkout instead of this one."""
    env = task_env(base)
    if package_tree:
        env["PYTHONPATH"] = package_tree
    done = subprocess.run(
        task_command(out, max_concurrency, slice_rows),
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"export (max_concurrency={max_concurrency}) failed:\n{done.stderr[-3000:]}")
    result = last_json_line(done.stdout)
    sha256, lines = file_digest(out)
    if lines != result["rows"]:
        raise RuntimeError(f"{out.name}: {lines} lines in the file but {result['rows']} rows reported")
    figures = {
        "max_concurrency": result["max_concurrency"],
        "slice_rows": result["slice_rows"],
        "rows": result["rows"],
        "seconds": round(result["seconds"], 1),
        "rows_per_s": round(result["rows"] / result["seconds"]),
        "peak_rss_mib": round(result["peak_rss_kb"] / 1024, 1),
        "sha256": sha256,
    }
    print(f"{out.name}: {json.dumps(figures)}", file=sys.stderr, flush=True)  # kept if a later run fails
    return figures


def simulator_options(orders: int, latency: float) -> dict[str, Any]:
    """The simulated Norce both benchmarks use: ``orders`` orders behind a link of ``latency`` seconds."""
    return {"orders": orders, "latency": latency, "page_size": PAGE_SIZE}


def main() -> None:
    from bench_common import simulator

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every request")
    parser.add_argument(
        "--concurrency-sweep", default="", help="also export with these max_concurrency values, e.g. 2,4,8,16"
    )
    parser.add_argument("--unchecked-tree", default="", help="a checkout of the version before the checks")
    parser.add_argument("--repeat", type=int, default=2, help="pairs of default runs with --unchecked-tree")
    args = parser.parse_args()
    sweep = [int(value) for value in args.concurrency_sweep.split(",") if value.strip()]
    with (
        tempfile.TemporaryDirectory(prefix="norce-bench-network-") as tmp,
        simulator(**simulator_options(args.orders, args.latency)) as base,
    ):
        sequential = export(base, Path(tmp) / "sequential.jsonl", max_concurrency=1)
        default = export(base, Path(tmp) / "default.jsonl")
        pairs = []
        for number in range(args.repeat if args.unchecked_tree else 0):
            unchecked = export(
                base, Path(tmp) / f"unchecked-{number}.jsonl", package_tree=args.unchecked_tree
            )
            checked = export(base, Path(tmp) / f"checked-{number}.jsonl")
            pairs.append((unchecked, checked))
        swept = {}
        for value in sweep:
            swept[str(value)] = export(base, Path(tmp) / f"concurrency-{value}.jsonl", max_concurrency=value)
    speedup = default["rows_per_s"] / sequential["rows_per_s"]
    rss_ratio = default["peak_rss_mib"] / sequential["peak_rss_mib"]
    identical = default["sha256"] == sequential["sha256"] and default["rows"] == args.orders
    figures: dict[str, Any] = {
        "orders": args.orders,
        "latency_s": args.latency,
        "page_size": PAGE_SIZE,
        "sequential": sequential,
        "default": default,
        "speedup": round(speedup, 2),
        "rss_ratio": round(rss_ratio, 3),
        "identical": identical,
    }
    if pairs:
        unchecked_s = sum(pair[0]["seconds"] for pair in pairs)
        checked_s = sum(pair[1]["seconds"] for pair in pairs)
        figures["unchecked_default_s"] = [pair[0]["seconds"] for pair in pairs]
        figures["checked_default_s"] = [pair[1]["seconds"] for pair in pairs]
        figures["checks_cost"] = round(checked_s / unchecked_s - 1, 4)
        figures["checks_identical"] = all(
            pair[0]["sha256"] == sequential["sha256"] == pair[1]["sha256"] for pair in pairs
        )
    if swept:
        figures["sweep"] = {
            value: {**run, "speedup": round(run["rows_per_s"] / sequential["rows_per_s"], 2)}
            for value, run in swept.items()
        }
        figures["sweep_identical"] = all(run["sha256"] == sequential["sha256"] for run in swept.values())
    figures["target"] = "default >= 4x sequential rows/s; peak RSS within 10%; files byte-identical"
    figures["meets_target"] = identical and speedup >= 4 and rss_ratio <= 1.10
    emit("export_network", figures)


if __name__ == "__main__":
    main()
