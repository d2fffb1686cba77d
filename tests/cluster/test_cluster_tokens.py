"""Token sharing on a real cluster: 40 task processes over two Celery workers, against Norce's token limit.

What is proved, per ``token_cache`` of the connection the fan-out DAG uses (``tests/cluster/dags/
norce_cluster_fanout.py``):

* ``redis``: the whole cluster makes exactly ONE token request and gets no 429, with tasks on both workers;
* ``machine``: one token request per worker host (each has its own token directory, as two machines would);
* ``redis`` with the token store's Redis stopped after some tasks finished: every task still succeeds, and each
  task process that needed a token after the stop logs the "falling back" warning exactly once.

Every run starts from nothing, so it measures only itself: the simulator's counters and rate-limit buckets are
reset, the token store's Redis is restarted empty, and the workers' machine token folders are emptied.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

pytestmark = pytest.mark.cluster

FANOUT = "norce_cluster_fanout"
PACED = "norce_cluster_fanout_paced"
TASKS = 40
CALLS = 5
#: What the Redis store's fallback warning contains (its contract with these tests; see tokens/redis_store).
FALLBACK_WORDS = ("Norce token store", "Redis", "falling back")


@dataclass
class FanoutRun:
    """One finished fan-out run: its state, its mapped task instances and the simulator's counters."""

    state: str
    tasks: list[dict[str, Any]]
    counters: dict[str, Any]
    run_id: str

    @property
    def hosts(self) -> set[str]:
        return {ti["hostname"] for ti in self.tasks if ti.get("hostname")}

    @property
    def succeeded(self) -> int:
        return sum(1 for ti in self.tasks if ti["state"] == "success")


def reset(cluster: Any) -> None:
    """Nothing of an earlier run is left to share: counters, rate limits, Redis tokens, machine tokens."""
    cluster.sim("POST", "/_sim/reset?rate_limits=true")
    cluster.stop_token_redis()
    cluster.start_token_redis()  # same port, empty
    for folder in map(Path, cluster.worker_token_dirs):
        folder.mkdir(parents=True, exist_ok=True)
        for entry in folder.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        # Private, as the machine store keeps it: a folder open to others is tightened AND emptied by the first
        # task process that sees it, which can delete a token (and its lock) another process just wrote.
        folder.chmod(0o700)


def mapped(cluster: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return [ti for ti in cluster.task_instances(dag_id, run_id) if ti["task_id"] == "call_norce"]


def finish(cluster: Any, dag_id: str, run_id: str) -> FanoutRun:
    state = cluster.wait(dag_id, run_id, timeout=900)
    return FanoutRun(state, mapped(cluster, dag_id, run_id), cluster.sim_counters(), run_id)


def fanout(cluster: Any, conn_id: str, dag_id: str = FANOUT) -> str:
    """Reset, then trigger the fan-out on ``conn_id``; returns the run id."""
    reset(cluster)
    return cluster.trigger(dag_id, {"conn_id": conn_id, "tasks": TASKS, "calls": CALLS})


def describe(run: FanoutRun) -> str:
    """What a failure message needs: the run, the task states and hosts, the counters that matter."""
    states: dict[str, int] = {}
    for ti in run.tasks:
        states[ti["state"]] = states.get(ti["state"], 0) + 1
    figures = {k: run.counters.get(k) for k in ("token_requests", "tokens_issued", "token_429", "api_429")}
    return (
        f"run {run.run_id}: {run.state}, task states {states}, hosts {sorted(run.hosts)}, simulator {figures}"
    )


def test_redis_store_one_token_request_for_the_whole_cluster(cluster: Any) -> None:
    run = finish(cluster, FANOUT, fanout(cluster, "norce_redis"))
    assert run.state == "success", describe(run)
    assert len(run.tasks) == TASKS and run.succeeded == TASKS, describe(run)
    assert run.hosts == set(cluster.worker_hostnames), describe(run)
    assert run.counters["token_requests"] == 1, describe(run)
    assert run.counters["token_429"] == 0, describe(run)
    calls = sum(n for key, n in run.counters["requests"].items() if key.endswith("/GetApplication"))
    assert calls == TASKS * CALLS, describe(run)


def test_machine_store_one_token_request_per_worker(cluster: Any) -> None:
    run = finish(cluster, FANOUT, fanout(cluster, "norce_machine"))
    assert run.state == "success", describe(run)
    assert run.succeeded == TASKS, describe(run)
    assert run.hosts == set(cluster.worker_hostnames), describe(run)
    # Each worker host has its own token folder: one token per host, as two machines behind one NAT spend.
    assert run.counters["token_requests"] == len(run.hosts), describe(run)
    assert run.counters["token_429"] == 0, describe(run)


def _started(ti: dict[str, Any]) -> datetime | None:
    text = ti.get("start_date")
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def test_redis_stopped_mid_run_costs_a_warning_not_a_failure(cluster: Any) -> None:
    run_id = fanout(cluster, "norce_redis", PACED)
    try:
        # The paced DAG runs 4 mapped tasks at a time: stop the store once some finished, most not started.
        deadline = time.monotonic() + 600
        while sum(1 for ti in mapped(cluster, PACED, run_id) if ti["state"] == "success") < 8:
            assert time.monotonic() < deadline, f"{PACED} {run_id}: 8 tasks did not succeed within 600 s"
            time.sleep(0.5)
        cluster.stop_token_redis()
        stopped_at = datetime.now(timezone.utc)
        run = finish(cluster, PACED, run_id)
    finally:
        cluster.start_token_redis()
    assert run.state == "success", describe(run)
    assert run.succeeded == TASKS, describe(run)
    assert run.counters["token_429"] == 0, describe(run)

    warned_after_stop = 0
    for ti in run.tasks:
        log = cluster.task_log(PACED, run_id, "call_norce", ti["try_number"], ti["map_index"])
        warnings = [line for line in log.splitlines() if "falling back" in line]
        where = f"{PACED} {run_id} call_norce[{ti['map_index']}] on {ti.get('hostname')}"
        assert len(warnings) <= 1, f"{where}: the fallback warning is logged once per process: {warnings}"
        for line in warnings:
            assert all(word in line for word in FALLBACK_WORDS), f"{where}: {line}"
        started = _started(ti)
        if started is not None and started > stopped_at:
            # This process started after Redis was gone: it had to fall back, and say so once.
            assert len(warnings) == 1, f"{where} started after the token store stopped but logged no fallback"
            warned_after_stop += 1
    assert warned_after_stop >= 1, f"no task started after the token store stopped: {describe(run)}"
    # Falling back shares tokens per machine: at most one more token request per worker host.
    assert run.counters["token_requests"] <= 1 + len(cluster.worker_hostnames), describe(run)
