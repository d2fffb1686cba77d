"""Celery workers killed mid-run: the export's retry finishes exactly, the import's retry refuses the batch
that was in flight, and the operator's documented way out (delete the key, clear the task) finishes exactly.

The DAG ``norce_cluster_kill`` (``tests/cluster/dags/norce_cluster_kill.py``) runs a Connect import of 20
batches and a Query export of 8,000 orders side by side. The story, step by step:

1. Once each task has made progress (a batch posted and recorded, a key range of the export staged), the test
   holds the next request of each in the simulator (a ``timeout`` fault: the request reached Norce but is NOT
   processed, so the held batch gets no job) and SIGKILLs the process tree of every worker running one of
   them. The import's ledger (``task_state_store``) then holds a job id for each batch before the held one and
   an *in-flight* marker for the held one: a worker that dies during a POST cannot know whether Norce got it.
2. Airflow fails the killed tries by their heartbeat timeout and retries them (``retries=1``) on the worker
   that is alive. The export's try 2 reads only the missing key ranges: the file holds the orders 1..8000
   once each, in key order, and no staging folder or temporary file is left.
3. The import's try 2 re-uses the recorded jobs, finds the in-flight marker and FAILS without posting: its
   error says the batch was "in flight" and names the task-state key to delete. The simulator saw no POST
   after the kill and exactly one job per batch recorded before it.
4. The operator does what the message says, through Airflow's REST API: checks Norce (here: the simulator
   created no job for the held batch), DELETEs that key from the task instance's state store and clears the
   failed import (``clearTaskInstances``). Try 3 posts the held batch and the rest once each: 20 jobs for 20
   batches, each job holding its batch's 19 items, and Query shows the file's stock for every SKU.

Why this module starts a cluster of its own, with three workers: the two tasks may run on two different workers,
and both must be killed mid-run while a third is left to retry them; killing workers of the shared session
cluster would also break the tests that need two live workers. The held requests make the moment of the kill
deterministic; the connection ``norce_kill`` (created here through the REST API) has a 600 s read timeout so a
held request never times out before the kill (a timed-out POST is recorded as *uncertain*, another test).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

sys.path.insert(0, str(Path(__file__).parent))

pytestmark = pytest.mark.cluster

DAG_ID = "norce_cluster_kill"
IMPORT_TASK = "import_stock"
EXPORT_TASK = "export_orders"
CONN_ID = "norce_kill"
#: The connection this test process reads Norce with (its own process token cache).
CHECK_CONN = "norce_kill_check"
#: 20 batches of 19 items: the simulator's catalog (seed 42, 200 products) has 389 SKUs, so every item names a
#: SKU that exists and every job imports all of its items (read back through Query at the end).
BATCH_SIZE = 19
BATCHES = 20
ITEMS = BATCH_SIZE * BATCHES
MAX_ID = 8000
IMPORT_POST = "POST /commerce/connect/4.0/Product/ImportOnhands"
ONHANDS = "commerce/query/2.0/Products/ProductSkuOnHands"
#: Held requests wait this long before the simulator closes them; the connection's timeout is longer.
HOLD_SECONDS = 500
#: How the import's refusal names the key to delete (``connect/ledger.py`` ``TaskStateLedger.describe``); the
#: quote may be escaped where the log renders the exception inside a repr.
KEY_IN_MESSAGE = re.compile(r"task state key \\?'([^'\\]+)\\?'")


@pytest.fixture(scope="module")
def kill_cluster(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A cluster of three workers, for this module alone (see the module docstring for why). Its work folder
    is removed afterwards unless a test failed (then its logs are kept, and the path is printed)."""
    if _airflow_below_3_3():
        pytest.skip("the local cluster runs Airflow 3.3 or later (CeleryExecutor, task_state_store)")
    from local_cluster import LocalCluster

    failed_before = request.session.testsfailed
    cluster = LocalCluster(workers=3)
    try:
        with cluster:
            yield cluster
    finally:
        if request.session.testsfailed == failed_before:
            cluster.remove_workdir()
        else:
            print(f"killed-worker cluster logs kept in {cluster.workdir}")


@pytest.fixture
def norce_check(kill_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A hook of this test process on the cluster's simulator, to read stock and jobs as Norce serves them."""
    from airflow_provider_norce.hooks.norce import NorceHook

    connection = kill_cluster.norce_connection("process")
    monkeypatch.setenv(f"AIRFLOW_CONN_{CHECK_CONN.upper()}", json.dumps(connection))
    return NorceHook(CHECK_CONN)


def _airflow_below_3_3() -> bool:
    from airflow import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    return (major, minor) < (3, 3)


def _create_connection(cluster: Any) -> None:
    """``norce_kill``: the cluster's Norce tenant with a read timeout longer than the held requests."""
    conn = cluster.norce_connection("machine")
    cluster.rest(
        "POST",
        "/api/v2/connections",
        {
            "connection_id": CONN_ID,
            "conn_type": conn["conn_type"],
            "host": conn["host"],
            "login": conn["login"],
            "password": conn["password"],
            "extra": json.dumps({**conn["extra"], "timeout": 600}),
        },
    )


def _stock(hook: Any) -> dict[str, Any]:
    """PartNo -> OnHandValue at warehouse MAIN, location MAIN, as Norce's Query serves it now."""
    (main,) = hook.run_json(
        "commerce/query/2.0/Application/ClientWarehouses",
        params={"$filter": "Code eq 'MAIN' and LocationCode eq 'MAIN'"},
    )["value"]
    where = f"WarehouseId eq {main['WarehouseId']} and LocationId eq {main['LocationId']}"
    return {row["PartNo"]: row["OnHandValue"] for row in hook.paginate(ONHANDS, {"$filter": where})}


def _write_items(path: Path, part_nos: list[str]) -> dict[str, int]:
    """ImportOnhands items for the first :data:`ITEMS` SKUs the simulator has, with on-hand values no SKU has
    yet (so Query shows whether each one was imported); PartNo -> the value written."""
    assert len(part_nos) >= ITEMS, (
        f"the simulator has {len(part_nos)} SKUs at MAIN/MAIN, the test needs {ITEMS}"
    )
    values = {part_no: 100_000 + n for n, part_no in enumerate(sorted(part_nos)[:ITEMS])}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for part_no, value in values.items():
            item = {"PartNo": part_no, "WarehouseCode": "MAIN", "LocationCode": "MAIN",
                    "OnhandValue": value, "IncomingValue": 0, "IsActive": True}  # fmt: skip
            handle.write(json.dumps(item) + "\n")
    return values


def _staged_ranges(export_path: Path) -> list[Path]:
    """The key ranges of the export finished so far (``query/staging.py``: parts beside the destination)."""
    return sorted(export_path.parent.glob(f".{export_path.name}.norce-slices-*/slice-*.jsonl"))


def _state_store_path(run_id: str) -> str:
    """The import task instance's state store in Airflow 3.3's REST API (``routes/public/task_state_store.py``)."""
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{IMPORT_TASK}/state-store"


def _ledger(cluster: Any, run_id: str) -> dict[str, Any]:
    """The import's task-state keys and values, as an operator sees them through the REST API."""
    answer = cluster.rest("GET", _state_store_path(run_id) + "?limit=1000")
    return {entry["key"]: entry["value"] for entry in answer["task_state_store"]}


def _hold_both(cluster: Any, export_path: Path, run_id: str) -> dict[str, Any]:
    """Wait until the import has a recorded batch and the export a staged range, hold the next request of each
    in the simulator, and return the counters once both are held.

    A request is held once its fault has fired: the simulator drops a ``count: 1`` fault from its list when a
    request takes it. Only import POSTs are in the ``connect`` category (``Job/Get`` is ``jobs``), so with the
    ``connect`` fault gone an import POST is held; the import posts one batch at a time, so its counters stay
    put from then on."""
    armed: set[str] = set()
    deadline = time.monotonic() + 600
    while True:
        counters = cluster.sim_counters()
        if "connect" not in armed and counters["jobs_created"] >= 1:
            cluster.sim("POST", "/_sim/faults", {"endpoint": "connect", "kind": "timeout", "count": 1,
                                                 "delay": HOLD_SECONDS})  # fmt: skip
            armed.add("connect")
        if "query" not in armed and _staged_ranges(export_path):
            cluster.sim("POST", "/_sim/faults", {"endpoint": "query", "kind": "timeout", "count": 1,
                                                 "delay": HOLD_SECONDS})  # fmt: skip
            armed.add("query")
        waiting = {fault["endpoint"] for fault in cluster.sim("GET", "/_sim/faults")}
        if armed == {"connect", "query"} and not waiting:
            return cluster.sim_counters()
        states = {ti["task_id"]: ti["state"] for ti in cluster.task_instances(DAG_ID, run_id)}
        assert "success" not in states.values(), (
            f"{DAG_ID} {run_id}: a task finished before it could be held mid-run ({states}, simulator "
            f"jobs_created={counters['jobs_created']}); make the import or export longer"
        )
        assert time.monotonic() < deadline, f"{DAG_ID} {run_id}: both tasks were not mid-run within 600 s"
        time.sleep(0.1)


def _refusal_line(log: str) -> str:
    """The line of the import's log that carries its in-flight refusal (the task's exception)."""
    lines = [line for line in log.splitlines() if "in flight" in line]
    assert lines, f"{IMPORT_TASK} try 2 failed without the in-flight refusal; its log ends:\n{log[-4000:]}"
    return lines[-1]


def _job(hook: Any, job_id: str) -> dict[str, Any]:
    """``Job/Get`` of one Connect job, as Norce answers it."""
    return dict(hook.run_json(hook.service_url("connect") + "Job/Get", params={"id": job_id}))


def test_killed_workers_export_retried_exactly_import_refuses_in_flight_batch_until_cleared(
    kill_cluster: Any, norce_check: Any
) -> None:
    cluster = kill_cluster
    work = Path(cluster.output_dir) / "kill"
    items_path, export_path = work / "onhands.jsonl", work / "orders.jsonl"
    cluster.sim("POST", "/_sim/reset?rate_limits=true")
    stock_before = _stock(norce_check)
    values = _write_items(items_path, list(stock_before))
    assert all(stock_before[p] != v for p, v in values.items()), "the file must change every SKU's stock"
    _create_connection(cluster)
    cluster.sim("POST", "/_sim/reset")
    # 0.3 s a request: each task is slow enough to be caught between two of its requests.
    cluster.sim("POST", "/_sim/network", {"latency": 0.3})
    run_id = cluster.trigger(
        DAG_ID,
        {
            "conn_id": CONN_ID,
            "items_path": str(items_path),
            "batch_size": BATCH_SIZE,
            "export_path": str(export_path),
            "max_id": MAX_ID,
        },
    )

    # 1. Both tasks held mid-run; the ledger as the killed import left it.
    at_kill = _hold_both(cluster, export_path, run_id)
    ledger_at_kill = _ledger(cluster, run_id)
    first_try = {ti["task_id"]: ti for ti in cluster.task_instances(DAG_ID, run_id)}
    killed_hosts = {first_try[task]["hostname"] for task in (IMPORT_TASK, EXPORT_TASK)}
    assert not export_path.exists(), "the export file exists while the export is held mid-run"
    assert _staged_ranges(export_path), "no staged key range while the export is held mid-run"
    for host in sorted(killed_hosts):
        cluster.kill_worker(cluster.worker_hostnames.index(host))
    cluster.sim("POST", "/_sim/network", {"latency": 0})
    staged = len(_staged_ranges(export_path))

    from airflow_provider_norce.connect.ledger import STATE_KEY

    held = at_kill["jobs_created"]  # batches 0..held-1 have a job; batch `held` (0-based) is the held POST
    assert 1 <= held < BATCHES, f"the kill was not mid-import: {held} jobs"
    assert at_kill["requests"].get(IMPORT_POST, 0) == held + 1, at_kill["requests"]
    recorded = {STATE_KEY.format(index=i) for i in range(held)}
    held_key = STATE_KEY.format(index=held)
    assert set(ledger_at_kill) == recorded | {held_key}, ledger_at_kill
    assert all(ledger_at_kill[key].get("job_id") for key in recorded), ledger_at_kill
    assert ledger_at_kill[held_key].get("in_flight") is True, ledger_at_kill[held_key]
    assert not ledger_at_kill[held_key].get("job_id"), ledger_at_kill[held_key]

    # 2. and 3. The retries on the surviving worker: the export finishes, the import refuses the held batch.
    state = cluster.wait(DAG_ID, run_id, timeout=900)
    tis = {ti["task_id"]: ti for ti in cluster.task_instances(DAG_ID, run_id)}
    summary = {t: (ti["state"], ti["try_number"], ti.get("hostname")) for t, ti in tis.items()}
    print(  # the CI log's record of what this run killed and where the retries went
        f"killed {sorted(killed_hosts)} with {held}/{BATCHES} batches imported and {staged} key ranges "
        f"staged; retries ran on {sorted({ti['hostname'] for ti in tis.values()})}"
    )
    assert state == "failed", f"{DAG_ID} {run_id}: {state}; tasks {summary}; killed {sorted(killed_hosts)}"
    assert (tis[EXPORT_TASK]["state"], tis[IMPORT_TASK]["state"]) == ("success", "failed"), summary
    for task in (IMPORT_TASK, EXPORT_TASK):
        assert tis[task]["try_number"] == 2, f"{task} was not retried once: {summary}"
        assert tis[task]["hostname"] not in killed_hosts, f"{task} retried on a killed host: {summary}"

    ids = [json.loads(line)["Id"] for line in export_path.read_text(encoding="utf-8").splitlines()]
    assert ids == list(range(1, MAX_ID + 1)), (
        f"the export holds {len(ids)} rows, {len(set(ids))} distinct, first {ids[:3]}, last {ids[-3:]}; "
        f"expected the orders 1..{MAX_ID} once each in key order"
    )
    leftovers = sorted(p.name for p in work.iterdir() if p.name not in (items_path.name, export_path.name))
    assert leftovers == [], f"staging or temporary files left beside the export: {leftovers}"

    refusal = _refusal_line(cluster.task_log(DAG_ID, run_id, IMPORT_TASK, 2))
    assert f"batch {held + 1} of {BATCHES}" in refusal, refusal
    assert "not posted again" in refusal and "clear" in refusal, refusal
    named = KEY_IN_MESSAGE.findall(refusal)
    assert named == [held_key], f"the refusal names {named}, the held batch's key is {held_key!r}: {refusal}"
    after_refusal = cluster.sim_counters()
    assert after_refusal["jobs_created"] == held, f"try 2 created jobs: {after_refusal['jobs_created']}"
    assert after_refusal["requests"].get(IMPORT_POST, 0) == held + 1, "try 2 posted a batch"
    assert _ledger(cluster, run_id) == ledger_at_kill, "the refused try changed the ledger"

    # 4. As the message says: Norce has no job for the held batch (no job beyond the recorded ones), so delete
    # its key and clear the failed import.
    cluster.rest("DELETE", f"{_state_store_path(run_id)}/{quote(held_key, safe='')}")
    assert held_key not in _ledger(cluster, run_id)
    cleared = cluster.rest(
        "POST",
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        {"dry_run": False, "task_ids": [IMPORT_TASK], "dag_run_id": run_id, "only_failed": True},
    )
    assert [ti["task_id"] for ti in cleared["task_instances"]] == [IMPORT_TASK], cleared
    state = cluster.wait(DAG_ID, run_id, timeout=900)
    tis = {ti["task_id"]: ti for ti in cluster.task_instances(DAG_ID, run_id)}
    summary = {t: (ti["state"], ti["try_number"], ti.get("hostname")) for t, ti in tis.items()}
    assert state == "success", f"{DAG_ID} {run_id} after the clear: {state}; tasks {summary}"
    assert tis[IMPORT_TASK]["try_number"] == 3, summary
    assert tis[IMPORT_TASK]["hostname"] not in killed_hosts, summary

    counters = cluster.sim_counters()
    assert counters["jobs_created"] == BATCHES, (
        f"{counters['jobs_created']} Connect jobs for {BATCHES} batches: a batch was imported twice or never"
    )
    # The held POST reached the simulator and was never processed; every other POST made exactly one job.
    assert counters["requests"].get(IMPORT_POST, 0) == BATCHES + 1, counters["requests"]
    xcom = cluster.rest(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{IMPORT_TASK}"
        "/xcomEntries/return_value",
    )["value"]  # fmt: skip
    job_ids = [str(j) for j in (json.loads(xcom) if isinstance(xcom, str) else xcom)]
    assert len(job_ids) == len(set(job_ids)) == BATCHES, job_ids
    reused = [str(ledger_at_kill[STATE_KEY.format(index=i)]["job_id"]) for i in range(held)]
    assert job_ids[:held] == reused, f"try 3 did not re-use the jobs recorded before the kill: {job_ids}"
    # Batch i is items i*19+1..i*19+19 of the file; each has its own job that took all 19 of them, and there
    # are no other jobs: every PartNo of the file was imported exactly once.
    for index, job_id in enumerate(job_ids):
        job = _job(norce_check, job_id)
        taken = (job["Totals"], job.get("Insert", job.get("Inserts", 0)) + job["Updates"], job["Fail"])
        assert taken == (BATCH_SIZE, BATCH_SIZE, 0), f"batch {index + 1}: job {job_id} {job}"
    stock = _stock(norce_check)
    wrong = {p: (stock.get(p), v) for p, v in values.items() if stock.get(p) != v}
    assert not wrong, f"{len(wrong)} SKUs' stock (Query, file) differ, e.g. {list(wrong.items())[:5]}"
