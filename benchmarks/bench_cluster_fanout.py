"""Fan-out on a real cluster: 40 Airflow tasks over two Celery workers, per ``token_cache``, side by side.

One local cluster (``tests/cluster/local_cluster.py``: PostgreSQL, Redis, the CeleryExecutor, two workers standing
for two machines) runs the DAG ``norce_cluster_fanout`` (``tests/cluster/dags/``): 40 mapped tasks,
each a task process making ``--calls`` GetApplication calls, on the connection ``norce_redis``, ``norce_machine``
and ``norce_process`` (the same tenant; ``token_cache`` = ``redis``, ``machine``, ``process``). The simulator
applies Norce's token limit (a burst of 20, then 3 a minute) WITHOUT ``Retry-After`` (Norce documents none; as
``bench_fanout.py``). Before each run the simulator's counters and rate-limit buckets are reset, the token
store's Redis is restarted empty and the workers' token folders are emptied, so each run measures itself; an
unmeasured run of one call per task first warms the cluster up (the first run after the start is slower whatever its mode).

Per run: token requests, 429s on the token endpoint, failed and unfinished tasks, the hosts the tasks ran on,
and the wall time from the trigger (REST call) to the run's end (its ``end_date``). The fan-out DAG has no
retries, so a task that cannot get a token fails and is counted.

``process`` asks for a token in every task process: tasks 21..40 are refused and wait for 20-second slots, and
a task whose wait outgrows the token endpoint's retry budget fails. It runs once, last, and is cut at
``--deadline`` seconds (the run is then marked failed; its tasks still queued or running are reported as
unfinished). Cluster start (under a minute) + warm-up + 2 x ``redis`` + 2 x ``machine`` + ``process`` (cut at
360 s at worst) keeps the whole benchmark under about 12 minutes on 2 cores; it measured about 5.

``redis`` and ``machine`` run ``--repeat`` times each, interleaved in alternating order after an unmeasured
warm-up; the table shows the fastest run of each (best-of-n: noise only ever adds time) and the JSON line every
run's wall time.

Prints one JSON line (``bench_common.emit``) and a markdown table; exits 1 when ``redis`` made more than one
token request, got a 429 or lost a task.

    python benchmarks/bench_cluster_fanout.py [--tasks 40] [--calls 5] [--deadline 360] [--repeat 2] [--only redis,machine]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import emit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

from local_cluster import LocalCluster  # noqa: E402

DAG_ID = "norce_cluster_fanout"
MODES = ("redis", "machine", "process")  # process last: it is the one cut at the deadline
UNFINISHED = ("queued", "scheduled", "running", "up_for_retry", "up_for_reschedule", "deferred", "none", None)


def reset(cluster: LocalCluster) -> None:
    """Counters, rate-limit buckets, Redis tokens and machine tokens back to nothing."""
    cluster.sim("POST", "/_sim/reset?rate_limits=true")
    cluster.stop_token_redis()
    cluster.start_token_redis()
    for folder in cluster.worker_token_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        for entry in folder.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        folder.chmod(0o700)  # private, as the machine store keeps it (it empties a folder open to others)


def _time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def run(cluster: LocalCluster, mode: str, tasks: int, calls: int, deadline: float) -> dict[str, Any]:
    """One fan-out on ``norce_<mode>``; its figures."""
    reset(cluster)
    conf = {"conn_id": f"norce_{mode}", "tasks": tasks, "calls": calls}
    triggered = dt.datetime.now(dt.timezone.utc)
    run_id = cluster.trigger(DAG_ID, conf)
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
    cut = False
    stop_at = time.monotonic() + deadline
    while True:
        state = cluster.rest("GET", path)["state"]
        if state in ("success", "failed"):
            break
        if time.monotonic() > stop_at:
            counts = _task_states(cluster, run_id)  # before the run is stopped: what had not finished
            cluster.rest("PATCH", path, {"state": "failed"})
            cut = True
            break
        time.sleep(1)
    record = cluster.rest("GET", path)
    figures = cluster.sim_counters()
    if not cut:
        counts = _task_states(cluster, run_id)
    end = _time(record.get("end_date"))
    wall = (end - triggered).total_seconds() if end and not cut else deadline
    return {
        "state": "cut" if cut else record["state"],
        "tasks_ok": counts["success"],
        "tasks_failed": counts["failed"],
        "tasks_unfinished": counts["unfinished"],
        "hosts": counts["hosts"],
        "task_s_median": counts["task_s_median"],
        "task_s_max": counts["task_s_max"],
        "token_requests": figures["token_requests"],
        "token_429": figures["token_429"],
        "api_calls": sum(n for key, n in figures["requests"].items() if key.endswith("/GetApplication")),
        "wall_s": round(wall, 1),
        "cut_at_s": deadline if cut else None,
    }


def _task_states(cluster: LocalCluster, run_id: str) -> dict[str, Any]:
    tis = [ti for ti in cluster.task_instances(DAG_ID, run_id) if ti["task_id"] == "call_norce"]
    seconds = sorted(
        (end - start).total_seconds()
        for ti in tis
        if (start := _time(ti.get("start_date"))) and (end := _time(ti.get("end_date")))
    )
    return {
        "task_s_median": round(statistics.median(seconds), 1) if seconds else None,
        "task_s_max": round(seconds[-1], 1) if seconds else None,
        "success": sum(1 for ti in tis if ti["state"] == "success"),
        "failed": sum(1 for ti in tis if ti["state"] in ("failed", "upstream_failed")),
        "unfinished": sum(1 for ti in tis if ti["state"] in UNFINISHED),
        "hosts": sorted({ti["hostname"] for ti in tis if ti.get("hostname")}),
    }


def _best(done: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (noise from other work on the machine only adds time), with every run's wall time and
    the most token requests and 429s any run had (a count that varies between runs must not hide)."""
    best = min(done, key=lambda r: r["wall_s"])
    return {
        **best,
        "wall_s_all": [r["wall_s"] for r in done],
        "token_requests_max": max(r["token_requests"] for r in done),
        "token_429_max": max(r["token_429"] for r in done),
    }


def table(results: dict[str, dict[str, Any]], tasks: int) -> str:
    rows = [
        f"| auth_cache | token requests | 429s | tasks ok / failed / unfinished (of {tasks}) | hosts | wall (s) "
        "| task s (median / max) |",
        "|---|---:|---:|---|---|---:|---|",
    ]
    for mode, r in results.items():
        wall = f"> {r['cut_at_s']:.0f} (cut)" if r["cut_at_s"] else f"{r['wall_s']:.1f}"
        requests = f"{r['token_requests']}" + (
            f" (max {r['token_requests_max']})" if r["token_requests_max"] != r["token_requests"] else ""
        )
        refused = f"{r['token_429']}" + (
            f" (max {r['token_429_max']})" if r["token_429_max"] != r["token_429"] else ""
        )
        rows.append(
            f"| {mode} | {requests} | {refused} | {r['tasks_ok']} / {r['tasks_failed']} / "
            f"{r['tasks_unfinished']} | {len(r['hosts'])} | {wall} | {r['task_s_median']} / {r['task_s_max']} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--calls", type=int, default=5, help="GetApplication calls per task")
    parser.add_argument("--deadline", type=float, default=360.0, help="cut-off of each run (seconds)")
    parser.add_argument("--only", default="", help="comma-separated subset of redis,machine,process")
    parser.add_argument("--repeat", type=int, default=2, help="runs of redis and machine (best of)")
    args = parser.parse_args()
    only = [m for m in MODES if m in args.only.split(",")] or list(MODES)

    started = time.monotonic()
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in only}
    with LocalCluster(sim_args=("--no-retry-after",)) as cluster:
        start_s = time.monotonic() - started
        print(
            f"cluster up in {start_s:.0f} s: {cluster.api_url}, workers {cluster.worker_hostnames}",
            file=sys.stderr,
        )
        # Unmeasured warm-up, as wide as the runs: the first run after the start pays for cold caches (each
        # Celery pool process's first task, the DAG's first load on the workers), whatever its token_cache.
        run(cluster, "machine", args.tasks, 1, args.deadline)
        for n in range(args.repeat):  # interleaved, alternating the order, so drift hits both alike
            for mode in ("redis", "machine") if n % 2 == 0 else ("machine", "redis"):
                if mode in only:
                    runs[mode].append(run(cluster, mode, args.tasks, args.calls, args.deadline))
                    print(f"{mode}: {runs[mode][-1]}", file=sys.stderr)
        if "process" in only:  # once, last: minutes under Norce's limit, cut at the deadline
            runs["process"].append(run(cluster, "process", args.tasks, args.calls, args.deadline))
            print(f"process: {runs['process'][-1]}", file=sys.stderr)
    ok = all(
        r["token_requests"] == 1 and r["token_429"] == 0 and r["tasks_ok"] == args.tasks
        for r in runs.get("redis", [])
    )
    if ok:
        cluster.remove_workdir()
    else:
        print(f"cluster logs kept in {cluster.workdir}", file=sys.stderr)
    results = {mode: _best(done) for mode, done in runs.items() if done}
    emit(
        "cluster_fanout",
        {
            "tasks": args.tasks,
            "calls_per_task": args.calls,
            "workers": 2,
            "token_limit": "burst 20, 3/min, no Retry-After",
            "runs": results,  # by token_cache (not top-level keys: ``emit`` adds its own "machine")
            "cluster_start_s": round(start_s, 1),
            "total_s": round(time.monotonic() - started, 1),
            "target": "redis: 1 token request, no 429 and every task ok for the whole cluster, in every run",
            "meets_target": ok,
        },
    )
    print()
    print(f"{args.tasks} tasks x {args.calls} calls over 2 Celery workers; Norce's token limit (burst 20, "
          f"3/min), no Retry-After; runs cut at {args.deadline:.0f} s")  # fmt: skip
    print()
    print(table(results, args.tasks))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
