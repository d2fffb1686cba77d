"""The event-driven example DAG under a real triggerer: every new order exported exactly once.

A local Airflow 3.3 cluster of its own (``LocalCluster``: PostgreSQL, scheduler, DAG processor, triggerer,
API server, one Celery worker) runs ``dags_examples/norce_order_events.py`` with a 2 s poll. Its FIRST event
is lost on purpose, before the DAG is unpaused: the test saves the Variable exactly as the watch saves it
after it started at the newest order (the origin), reported a first burst and then lost that event (the
triggerer holds an event about a second before writing it; a crash then loses it). Orders are then added in
bursts while the watch runs; the triggerer is SIGKILLed once between two bursts and started again. At the
end every order of the application added after the watch's origin, the lost first burst included, is in
exactly one exported file, none before the origin, none twice, and the export's summary line is in the
task log the REST API serves (what the UI shows).

Waits poll Airflow's REST API and the Variable with generous bounds; they never decide a pass. Runs apart
from ``tests/cluster`` (a cluster of its own, with the job schedule on, which asset-triggered runs need):
run it in its own pytest invocation so the two clusters are not up at once.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))

from local_cluster import ClusterError, LocalCluster

pytestmark = pytest.mark.cluster

DAG_ID = "norce_order_events"
WATCH_VARIABLE = "norce_order_watch__norce_new_orders_watch"
EXPORT_TASK = "export_new_orders"
CHECK_CONN = "norce_events_check"
#: bounds of the waits below: a hang fails the test, a pass never depends on them
BOUND = 150.0


def airflow_version() -> tuple[int, ...]:
    from airflow import __version__

    return tuple(int(part) for part in __version__.split(".")[:2] if part.isdigit())


@pytest.fixture(scope="module")
def events_cluster() -> Iterator[LocalCluster]:
    if airflow_version() < (3, 3):
        pytest.skip("the local cluster needs Airflow 3.3 or newer")
    local = LocalCluster(
        workers=1,
        worker_concurrency=4,
        env={
            # asset-triggered runs are created by the scheduler's job schedule (off in tests/cluster)
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            # a killed triggerer's triggers move to the new one after this many seconds without heartbeat
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            # the watcher is registered on the parse after unpausing
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "NORCE_ORDER_POLL_SECONDS": "2",
        },
    )
    local.start()
    failed = True
    try:
        yield local
        failed = False
    finally:
        local.stop()
        if failed:
            print(f"\nevents cluster: logs kept in {local.logs_dir}")
        else:
            local.remove_workdir()


def wait_until(what: str, check: Any, cluster: LocalCluster, bound: float = BOUND) -> Any:
    deadline = time.monotonic() + bound
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {bound:.0f} s; logs in {cluster.logs_dir}")
        time.sleep(1)


@pytest.fixture
def check_hook(events_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A hook of this process on the cluster's simulator, to read which orders exist."""
    from airflow_provider_norce.hooks.norce import NorceHook

    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CHECK_CONN.upper()}", json.dumps(events_cluster.norce_connection("process"))
    )
    return NorceHook(CHECK_CONN)


def app_order_ids(hook: Any, after: int) -> list[int]:
    """Ids of the application's orders above ``after``, read over Query."""
    app = hook.config.application_id
    params = {"$filter": f"ApplicationId eq {app} and Id gt {after}", "$select": "Id", "$orderby": "Id"}
    return [row["Id"] for row in hook.paginate(hook.service_url("query") + "Orders/Orders", params=params)]


def position(cluster: LocalCluster) -> int | None:
    value = cluster.variable(WATCH_VARIABLE)
    return None if value is None else int(json.loads(value)["position"])


def runs(cluster: LocalCluster) -> list[dict]:
    return list(cluster.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=1000")["dag_runs"])


def exported(folder: Path) -> dict[str, list[int]]:
    """File name -> order Ids in it, for every finished export file."""
    files = {}
    for path in sorted(folder.glob("orders_*.jsonl")):
        files[path.name] = [json.loads(line)["Id"] for line in path.read_text().splitlines() if line.strip()]
    return files


def test_every_new_order_is_exported_exactly_once_across_a_lost_first_event_and_a_triggerer_crash(
    events_cluster, check_hook
):
    from airflow_provider_norce.query.order_watch import SavedPosition, watch_identity

    cluster = events_cluster
    folder = cluster.output_dir / "exports" / "order_events"
    assert position(cluster) is None  # the DAG is paused: its watch has not started
    start = app_order_ids(check_hook, 0)[-1]  # a new watch's origin: the newest order

    def burst(count: int) -> int:
        cluster.sim("POST", "/_sim/orders/add", {"count": count})
        return app_order_ids(check_hook, start)[-1]

    # The watch started at ``start``, reported the first burst and saved its position; the event was lost in
    # the triggerer. What it saved (the cluster's connection: the same Norce, application and environment):
    lost_through = burst(7)
    identity = watch_identity(check_hook.config, check_hook.config.application_id)
    lost_value = SavedPosition(lost_through, start, identity).to_json()
    cluster.rest("POST", "/api/v2/variables", {"key": WATCH_VARIABLE, "value": lost_value})
    cluster.rest("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})

    newest = burst(5)  # the first event that reaches the database: (lost_through, newest], origin = start
    wait_until(f"the watch to report through {newest}", lambda: position(cluster) == newest, cluster)
    newest = burst(5)
    cluster.restart_triggerer()  # killed with the burst possibly unreported: nothing may be lost or doubled
    newest = burst(9)
    wait_until(
        f"the restarted watch to report through {newest}", lambda: position(cluster) == newest, cluster
    )
    newest = burst(4)

    def all_exported() -> bool:
        files = exported(folder)
        done = {i for ids in files.values() for i in ids}
        active = [r for r in runs(cluster) if r["state"] in ("queued", "running")]
        return newest in done and not active

    wait_until(f"every order through {newest} exported and no run active", all_exported, cluster, bound=240)

    files = exported(folder)
    every = [i for ids in files.values() for i in ids]
    expected = app_order_ids(check_hook, start)
    assert sorted(every) == expected, files  # each new order once, none before the start, none twice
    assert len(every) == len(set(every))
    assert min(every) > start
    lost = [i for i in expected if i <= lost_through]
    assert lost and set(lost) <= set(every)  # the lost first event's orders too
    assert min(files).startswith(f"orders_{start:012d}_"), files  # the first file starts at the origin
    for name, ids in files.items():  # each file holds exactly its named range
        after, through = (int(part) for part in name[len("orders_") : -len(".jsonl")].split("_"))
        assert all(after < i <= through for i in ids), name

    finished = [r for r in runs(cluster) if r["state"] == "success"]
    assert finished and all(r["state"] == "success" for r in runs(cluster)), runs(cluster)
    logs = []
    for run in finished:
        for ti in cluster.task_instances(DAG_ID, run["dag_run_id"]):
            if ti["task_id"] == EXPORT_TASK and ti["state"] == "success":
                logs.append(cluster.task_log(DAG_ID, run["dag_run_id"], EXPORT_TASK, ti["try_number"]))
    assert len(logs) == len(files)  # one successful export per file; the rest of the runs skipped
    assert all("Exported " in log and " rows in " in log for log in logs), logs[0][-2000:]
    try:
        triggerer_log = cluster.log_of("triggerer").read_text(errors="replace")
    except OSError as err:  # pragma: no cover - the log is ours
        raise ClusterError(str(err)) from None
    assert "Norce order watch" in triggerer_log or "Trigger fired event" in triggerer_log
    assert "starts afresh" not in triggerer_log  # the saved identity was the watch's own
