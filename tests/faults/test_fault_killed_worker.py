"""A worker killed with SIGKILL, then the task's retry: real DAG runs against the simulator.

The worker is a child process running ``dag.test()`` of a DAG in ``tests/faults/dags/kill_faults.py`` with
the test's Airflow home, connection and token store. A simulator fault with a ``delay`` holds one request
open (page 3 of an export, the second batch of a Connect import, the token request) while the test watches
``sim.counters()`` for it; then the worker's whole process group is SIGKILLed: no ``finally``, no
``except``, no atexit runs. The retry is what the scheduler does next: the dead try fails and the task's
retry runs in the same DAG run (``fault_worker.retry_killed_run``), in this process.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fault_worker import fork_worker, retry_killed_run
from norce_faults_testlib import after_answers, assert_no_secret_in, read_jsonl, task_states, write_jsonl

UTC = dt.timezone.utc
DAGS = "kill_faults.py"
SKUS_PATH = "/commerce/query/2.0/Products/ProductSkus"
IMPORT_PATH = "/commerce/connect/4.0/Product/ImportOnhands"
HOLD = 60.0  # seconds a faulted request is held open: far longer than the test waits for the kill
_RUNS = iter(range(1, 10_000))


#: Each test: its own machine token store and an empty process cache (conftest.py).
pytestmark = pytest.mark.usefixtures("fresh_token_caches")


@pytest.fixture
def fault_connection_extras():
    """timeout 30: the worker must still be waiting for the held request when it is killed."""
    return {"max_attempts": 2, "max_retry_wait": 2, "timeout": 30}


class Worker:
    """``dag.test()`` in a forked child process that leads its own process group (``fault_worker``)."""

    warm = False

    def __init__(self, fault_dag: Any, dag_id: str, conf: dict[str, Any], log: Path) -> None:
        self.dag = fault_dag(DAGS, dag_id)
        if not Worker.warm:
            # One throwaway run first (it fails at once: no destination, no request), so that this process
            # and every worker forked from it are warm: a first dag.test() in a process costs seconds.
            fault_dag(DAGS, "kill_fault_export").test(
                logical_date=dt.datetime(2026, 1, 1, tzinfo=UTC), run_conf={"destination": ""}
            )
            Worker.warm = True
        self.logical_date = dt.datetime(2026, 11, 20, tzinfo=UTC) + dt.timedelta(minutes=next(_RUNS))
        self.log = log
        self.returncode: int | None = None
        self.pid = fork_worker(self.dag, self.logical_date, conf, str(log))

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait_for(self, what: str, ready: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.poll() is not None:
                pytest.fail(f"the worker ended (rc {self.returncode}) before {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the worker never reached {what}:\n{self.output()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the worker and everything it started (it leads its own process group)."""
        if self.poll() is None:
            os.killpg(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        assert self.returncode == -signal.SIGKILL, f"the worker was not killed: rc {self.returncode}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


@pytest.fixture
def workers():
    started: list[Worker] = []
    yield started
    for worker in started:  # a failed test must not leave a worker behind
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            os.waitpid(worker.pid, 0)


def requests_to(sim: Any, method: str, path: str) -> int:
    return sim.counters()["requests"].get(f"{method} {path}", 0)


def retry(worker: Worker, capsys: Any) -> tuple[Any, str]:
    """The scheduler's retry of the dead worker's task, in this process; returns the run and its log."""
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

    PROCESS_TOKEN_CACHE.clear()  # a new task process
    capsys.readouterr()
    run = retry_killed_run(worker.dag, worker.logical_date)
    captured = capsys.readouterr()
    return run, captured.out + captured.err


def try_numbers(run: Any) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in run.get_task_instances()}


def temp_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".norce-tmp"))


# -- (a) in the middle of an export ----------------------------------------------------------------------------


@pytest.mark.norce_simulator(products=12, page_size=5)
def test_worker_killed_mid_export_leaves_the_previous_file_and_the_retry_writes_it_whole(
    sim, fault_dag, capsys, tmp_path, workers
):
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    destination = out_dir / "skus.jsonl"
    previous = [{"PartNo": "FROM-THE-RUN-BEFORE", "n": n} for n in range(3)]
    write_jsonl(destination, previous)
    # page 2 answered: hold page 3 open, the worker has written two pages into its temporary file
    after_answers(sim, SKUS_PATH, {2: lambda: sim.add_fault("query", "timeout", delay=HOLD, count=1)})
    worker = Worker(fault_dag, "kill_fault_export", {"destination": str(destination)}, tmp_path / "w.log")
    workers.append(worker)

    worker.wait_for("page 3", lambda: requests_to(sim, "GET", SKUS_PATH) >= 3)
    worker.kill()

    assert read_jsonl(destination) == previous, "the previous complete file is untouched"
    leftovers = temp_files(out_dir)
    assert len(leftovers) == 1, leftovers  # the dead worker's half-written file
    sim.clear_faults()

    run, out = retry(worker, capsys)

    assert task_states(run) == {"export": "success"}, out
    assert try_numbers(run) == {"export": 2}
    rows = [row["PartNo"] for row in read_jsonl(destination)]
    assert rows == sorted(sim.catalog.skus), "exactly the rows: none doubled, none missing"
    assert len(rows) > 10
    assert temp_files(out_dir) == [], "the dead worker's temporary file is cleaned up by the retry"
    assert sorted(os.listdir(out_dir)) == ["skus.jsonl"]
    assert_no_secret_in(out + worker.output(), sim)


@pytest.mark.norce_simulator(products=12, page_size=5)
def test_worker_killed_mid_first_export_leaves_nothing(sim, fault_dag, capsys, tmp_path, workers):
    out_dir = tmp_path / "exports"
    destination = out_dir / "skus.jsonl"  # no file yet, nor its directory
    after_answers(sim, SKUS_PATH, {2: lambda: sim.add_fault("query", "timeout", delay=HOLD, count=1)})
    worker = Worker(fault_dag, "kill_fault_export", {"destination": str(destination)}, tmp_path / "w.log")
    workers.append(worker)

    worker.wait_for("page 3", lambda: requests_to(sim, "GET", SKUS_PATH) >= 3)
    worker.kill()

    assert not destination.exists(), "no half-written file where a reader would take it as complete"
    sim.clear_faults()
    run, out = retry(worker, capsys)
    assert task_states(run) == {"export": "success"}, out
    assert [row["PartNo"] for row in read_jsonl(destination)] == sorted(sim.catalog.skus)
    assert sorted(os.listdir(out_dir)) == ["skus.jsonl"]


ORDERS_PATH = "/commerce/query/2.0/Orders/Orders"


def staged(directory: Path) -> tuple[list[str], int]:
    """The finished slice parts in a concurrent export's staging folder, and the rows they hold."""
    folders = [directory / name for name in os.listdir(directory) if ".norce-slices-" in name]
    if not folders:
        return [], 0
    parts = sorted(name for name in os.listdir(folders[0]) if name.startswith("slice-"))
    return parts, sum(len(read_jsonl(folders[0] / part)) for part in parts)


@pytest.mark.norce_simulator(orders=6000, page_size=50)
def test_worker_killed_mid_concurrent_export_the_retry_reads_only_unfinished_slices(
    sim, fault_dag, capsys, tmp_path, workers
):
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    destination = out_dir / "orders.jsonl"
    # after 40 pages, every further Query request is held open: the four slices in flight hang
    after_answers(sim, ORDERS_PATH, {40: lambda: sim.add_fault("query", "timeout", delay=HOLD, count=4)})
    worker = Worker(
        fault_dag, "kill_fault_order_export", {"destination": str(destination)}, tmp_path / "w.log"
    )
    workers.append(worker)

    worker.wait_for("four held slices", lambda: requests_to(sim, "GET", ORDERS_PATH) >= 44)
    worker.kill()

    assert not destination.exists(), "no half-written file where a reader would take it as complete"
    parts, kept_rows = staged(out_dir)
    assert parts, "slices finished before the kill are kept beside the destination"
    read_by_first_try = sim.counters()["query_rows"]
    sim.clear_faults()
    sim.reset_counters()
    run, out = retry(worker, capsys)

    assert task_states(run) == {"export": "success"}, out
    # every order of the simulator lies in November 2026; the filter takes those with an Updated
    orders = [sim.orders.row(index) for index in range(sim.orders.count)]
    expected = [order["Id"] for order in orders if order["Updated"] is not None]
    rows = [row["Id"] for row in read_jsonl(destination)]
    assert rows == expected, "exactly the rows, in key order: none doubled, none missing"
    assert sim.counters()["query_rows"] == len(rows) - kept_rows, "the retry read only unfinished slices"
    lost = read_by_first_try - kept_rows - 1  # the probe for the last key reads one row
    assert 0 <= lost <= 4 * 300, "at most one slice per worker in flight is read twice"
    assert f"{len(parts)} of" in out and "finished by an earlier try" in out
    assert sorted(os.listdir(out_dir)) == ["orders.jsonl"], "the staging folder is gone"
    assert_no_secret_in(out + worker.output(), sim)


# -- (b) a Connect import killed during a POST -----------------------------------------------------------------------


def onhand_items(sim: Any, path: Path, count: int) -> list[dict[str, Any]]:
    items = [
        {"PartNo": p, "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 100 + n}
        for n, p in enumerate(sorted(sim.catalog.skus)[:count])
    ]
    write_jsonl(path, items)
    return items


def posted_part_nos(sim: Any) -> list[list[str]]:
    """The PartNos of every job the simulator created, in job order (one job per posted batch)."""
    with sim.connect._lock:
        jobs = sorted(sim.connect._jobs.values(), key=lambda job: job.id)
        return [[item["PartNo"] for _, item in job.valid] for job in jobs]


def task_error(out: str) -> str:
    """The task's last ``NorceJobError`` message in its log, as one line: Airflow 3.0 renders it with rich
    (colours, wrapped at the console width), 3.3 as plain text."""
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    start = plain.rfind("NorceJobError: ")
    assert start >= 0, out
    block = plain[start + len("NorceJobError: ") :].split("\n\n", 1)[0]
    return " ".join(block.split())


def forget_as_the_message_says(out: str, run: Any) -> str:
    """Do what the in-flight refusal tells the user when the batch never arrived: delete the entry it names
    (the task state key on Airflow 3.3+, that entry of the ledger Variable below); returns what it deleted."""
    import json
    import re

    state_key = re.search(r"delete the task state key '([^']+)' of this task instance", out)
    if state_key:  # what the REST route DELETE .../taskInstances/import/state-store/{key} does
        from airflow._shared.state import TaskScope
        from airflow.state.metastore import _get_db_backend

        scope = TaskScope(dag_id=run.dag_id, run_id=run.run_id, task_id="import")
        _get_db_backend().delete(scope, state_key.group(1))
        return state_key.group(1)
    entry = re.search(r'delete the entry "(\d+)" of the Airflow Variable \'([^\']+)\'', out)
    assert entry, out
    from airflow.models import Variable

    entries = json.loads(Variable.get(entry.group(2)))
    del entries[entry.group(1)]  # only that entry: the Variable also holds batch 1's job
    Variable.set(entry.group(2), json.dumps(entries))
    return f"{entry.group(2)}[{entry.group(1)}]"


def ledger_variable(run: Any) -> str:
    """The ledger Variable of the import task below Airflow 3.3 (``connect.ledger.variable_key``)."""
    from airflow_provider_norce.connect.ledger import variable_key

    (ti,) = run.get_task_instances()
    return variable_key(ti)


def clear_task(run: Any, task_id: str) -> None:
    """What "clear this task" does (UI / clearTaskInstances): the failed task runs again in this run."""
    from airflow import settings
    from airflow.models.taskinstance import clear_task_instances
    from airflow.utils.state import DagRunState

    session = settings.Session()
    tis = [ti for ti in run.get_task_instances(session=session) if ti.task_id == task_id]
    clear_task_instances(tis, session, dag_run_state=DagRunState.RUNNING)
    session.commit()


@pytest.mark.norce_simulator(products=12, job_duration=0.2)
def test_worker_killed_during_an_import_post_the_retry_refuses_then_posts_only_the_rest(
    sim, fault_dag, capsys, tmp_path, workers
):
    """Killed while batch 2's POST is in flight: Norce may have it, so the retry posts nothing and says
    what to check. Once the user has checked (it never arrived) and deleted the entry the message names,
    the cleared task posts batches 2 and 3, once each: never a batch twice."""
    items = onhand_items(sim, tmp_path / "onhands.jsonl", 10)  # batch_size 4: batches of 4, 4 and 2
    # batch 1 answered (and recorded in the ledger before the next POST): hold the POST of batch 2
    after_answers(sim, IMPORT_PATH, {1: lambda: sim.add_fault("connect", "503", delay=HOLD, count=1)})
    worker = Worker(
        fault_dag, "kill_fault_import", {"items_path": str(tmp_path / "onhands.jsonl")}, tmp_path / "w.log"
    )
    workers.append(worker)

    worker.wait_for("the POST of batch 2", lambda: requests_to(sim, "POST", IMPORT_PATH) >= 2)
    worker.kill()

    assert sim.counters()["jobs_created"] == 1
    sim.clear_faults()
    run, out = retry(worker, capsys)

    assert task_states(run) == {"import": "failed"}, out
    assert try_numbers(run) == {"import": 2}
    error = task_error(out)
    assert "batch 2 of 3 (items 5-8) of Product/ImportOnhands was in flight on an earlier try" in error
    assert "the worker running that try ended (killed, lost)" in error
    assert "It is not posted again automatically. This try posted nothing." in error
    assert "Check the Connect jobs in Norce Admin; if it never arrived, delete" in error
    assert requests_to(sim, "POST", IMPORT_PATH) == 2, "the retry posted nothing"
    assert sim.counters()["jobs_created"] == 1

    # The held POST never reached Norce (Norce Admin shows no job for batch 2): do what the message says.
    assert forget_as_the_message_says(error, run) in ("norce_connect_batch_1", f"{ledger_variable(run)}[1]")
    clear_task(run, "import")
    run, out = retry(worker, capsys)

    assert task_states(run) == {"import": "success"}, out
    batches = posted_part_nos(sim)
    expected = [item["PartNo"] for item in items]
    assert batches == [expected[0:4], expected[4:8], expected[8:10]], "each batch posted once, in order"
    assert sim.counters()["jobs_created"] == 3
    assert requests_to(sim, "POST", IMPORT_PATH) == 4  # 1 + the held one + the 2 the last retry posted
    assert Counter(p for batch in batches for p in batch) == Counter(expected)  # no item twice
    assert "already has job 1001" in out and "not posting it again" in out
    stock = {row["PartNo"]: row["OnHandValue"] for row in sim.catalog.onhand_rows()}
    assert {item["PartNo"]: stock.get(item["PartNo"]) for item in items} == {
        item["PartNo"]: item["OnhandValue"] for item in items
    }, "Norce holds the stock of every item"
    assert_no_secret_in(out + worker.output(), sim)


# -- (c) while it holds the machine token lock -------------------------------------------------------------------


def lock_is_held(store: Path) -> bool:
    """Some process holds the flock of the token key's lock file (not the limiter's)."""
    for path in store.glob("*.lock"):
        if path.name == "limiter.lock":
            continue
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    return False


@pytest.mark.norce_simulator(products=12, page_size=10)
def test_worker_killed_holding_the_token_lock_the_retry_takes_it_over(
    sim, fault_dag, capsys, tmp_path, workers, fresh_token_caches
):
    store = fresh_token_caches
    destination = tmp_path / "skus.jsonl"
    sim.add_fault("token", "503", delay=HOLD, count=1)  # the worker's token request is held open
    worker = Worker(fault_dag, "kill_fault_export", {"destination": str(destination)}, tmp_path / "w.log")
    workers.append(worker)

    worker.wait_for("the token request", lambda: sim.counters()["token_requests"] >= 1)
    worker.wait_for("the token lock", lambda: lock_is_held(store), timeout=10)
    worker.kill()

    assert not lock_is_held(store), "the kernel released the dead holder's lock"
    run, out = retry(worker, capsys)

    assert task_states(run) == {"export": "success"}, out
    assert [row["PartNo"] for row in read_jsonl(destination)] == sorted(sim.catalog.skus)
    counters = sim.counters()
    assert counters["token_requests"] == 2 and counters["tokens_issued"] == 1  # the held one + the retry's
    assert "held" not in out.lower() or "lock" not in out.lower()  # no lock timeout, no lock error
    assert len(list(store.glob("*.token"))) == 1, "the retry's token is shared through the store"
    assert not [n for n in os.listdir(store) if n.startswith(".tmp-")]
    assert_no_secret_in(out + worker.output(), sim)
