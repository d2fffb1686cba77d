"""Transport faults of Norce Query and Connect, as real DAG runs (``dag.test()``) against the simulator.

Each test injects one fault (429 storms, 5xx, timeouts, resets, drops, truncated or garbled bodies, error
envelopes in a 200, proxy pages) into a Query export, a Connect import or one ``NorceOperator`` call, and
checks how the run ends: complete with exactly the right rows, or failed with an error that names the
connection, the endpoint, the status and what to do; the destination keeps the previous complete file (or
nothing); no Connect batch is posted twice; the next run, faults cleared, succeeds without a hand clean-up.

The DAGs are in ``dags/transport_faults.py``. Retry budgets are small (connection extras) so every test is
quick; waits asked for by ``Retry-After`` are 0-2 s.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
import time
from typing import Any

import pluggy
import pytest
from norce_faults_testlib import read_jsonl, set_connection, task_states, write_jsonl

from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

pytestmark = pytest.mark.norce_simulator(products=20, page_size=10, orders=20, job_duration=0.2)

DAGS = "transport_faults.py"
CONN = "norce_default"
QUERY_PATH = "/commerce/query/2.0/Products/ProductSkus"
IMPORT_PATH = "/commerce/connect/4.0/Product/ImportOnhands"
APP_PATH = "/commerce/metadata/1.1/GetApplication"
#: Each run gets its own logical date: runs of one DAG must not share one.
_DATES = itertools.count()
UTC = dt.timezone.utc
#: Extras of every test: a small retry budget, short timeouts, this process's token cache only.
EXTRAS: dict[str, Any] = {"token_cache": "process", "max_attempts": 4, "max_retry_wait": 8, "timeout": 2}
#: Seconds a ``timeout`` fault holds a request open: far beyond every client timeout here, so the client
#: always gives up first however loaded the machine (the simulator ends the hold when it stops).
HELD = 60.0


@pytest.fixture
def sim(norce_simulator, monkeypatch):
    set_connection(monkeypatch, norce_simulator.sim, CONN, **EXTRAS)
    PROCESS_TOKEN_CACHE.clear()
    PROCESS_TOKEN_CACHE.limiter.tat = 0.0
    return norce_simulator.sim


@pytest.fixture
def items_file(tmp_path):
    """Six on-hand items: three batches of two."""
    path = tmp_path / "onhands.jsonl"
    write_jsonl(
        path,
        [
            {
                "PartNo": str(100001 + n),
                "WarehouseCode": "MAIN",
                "LocationCode": "MAIN",
                "OnhandValue": 50 + n,
            }
            for n in range(6)
        ],
    )
    return path


class _TaskErrors:
    """An Airflow listener keeping each failed task's exception text: Airflow 3.0's in-process
    ``dag.test()`` prints the task runner's "Task failed with exception" line nowhere a test can read."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    @pluggy.HookimplMarker("airflow")
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self.errors.append(f"TASK FAILED: {error}")


@pytest.fixture
def logs(capsys, caplog):
    """The task logs so far (structlog writes them to stdout, stdlib records reach caplog), and the error
    of every task that failed (one line each, from a listener)."""
    try:
        from airflow.sdk.listener import get_listener_manager  # Airflow 3.1+
    except ImportError:  # Airflow 3.0
        from airflow.listeners.listener import get_listener_manager
    manager = get_listener_manager()
    listener = _TaskErrors()
    manager.add_listener(listener)

    def read() -> str:
        return "\n".join([capsys.readouterr().out, caplog.text, *listener.errors])

    yield read
    manager.pm.unregister(listener)


def next_date() -> dt.datetime:
    return dt.datetime(2026, 11, 2, tzinfo=UTC) + dt.timedelta(minutes=next(_DATES))


#: The parsed DAGs, by id: parsed once per session, not once per run.
_PARSED: dict[str, Any] = {}


def run_dag(fault_dag, dag_id: str, conf: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Run ``dag_id`` once; its single task's state."""
    dag = _PARSED.get(dag_id)
    if dag is None:
        dag = _PARSED[dag_id] = fault_dag(DAGS, dag_id)
    run = dag.test(run_conf=conf or {}, logical_date=next_date())
    (state,) = task_states(run).values()
    return run, state


def expected_part_nos(sim) -> list[str]:
    """Every SKU of the simulator, in the export's order (``$orderby=PartNo``)."""
    return sorted(row["PartNo"] for row in sim.catalog.sku_rows())


def exported_part_nos(path) -> list[str]:
    return [row["PartNo"] for row in read_jsonl(path)]


def requests_to(sim, method: str, path: str) -> int:
    return int(sim.counters()["requests"].get(f"{method} {path}", 0))


def after_calls(monkeypatch, target: Any, name: str, calls: int, action) -> None:
    """Run ``action`` (add a simulator fault) while the simulator serves call number ``calls`` of
    ``target.name``: the fault then hits the next request, e.g. page 3 of an export."""
    original = getattr(target, name)
    seen = itertools.count(1)

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        if next(seen) == calls:
            action()
        return result

    monkeypatch.setattr(target, name, wrapper)


def http_date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


def export(fault_dag, destination) -> str:
    _, state = run_dag(fault_dag, "fault_transport_export", {"destination": str(destination)})
    return state


def export_ok(fault_dag, sim, destination) -> None:
    """A clean export: every SKU once, in order."""
    assert export(fault_dag, destination) == "success"
    assert exported_part_nos(destination) == expected_part_nos(sim)


def import_stock(fault_dag, items_file, deferred: bool = False) -> str:
    dag_id = "fault_transport_import_deferred" if deferred else "fault_transport_import"
    _, state = run_dag(fault_dag, dag_id, {"items_path": str(items_file)})
    return state


def failure_line(text: str, *needles: str) -> str:
    """The first log line holding every one of ``needles`` (the task's error), or a clear assertion."""
    for line in text.splitlines():
        if all(needle in line for needle in needles):
            return line
    raise AssertionError(f"no log line holds all of {needles!r}")


def assert_no_secret(sim, text: str) -> None:
    """Neither the client secret nor any token the simulator issued is in the logs or errors.

    Lines of Airflow's own masking protocol are left out: Airflow 3.0's supervisor logs each ``MaskSecret``
    message at DEBUG (apache/airflow#63921); the secrets audit of issue 9 deals with those.
    """
    text = "\n".join(line for line in text.splitlines() if "MaskSecret" not in line)
    assert sim.client_secret not in text
    for token in sim.issued_tokens():
        assert token not in text


def no_leftovers(folder) -> list[str]:
    """Files in ``folder`` other than the export itself (a temp file left behind would show here)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "skus.jsonl")


#: A previous complete export, written before a failing run: it must survive untouched.
PREVIOUS = [{"PartNo": "previous-1"}, {"PartNo": "previous-2"}]


def small_budget(monkeypatch, sim, **extra: Any) -> None:
    """Two attempts per request: a persistent fault fails after one retry."""
    set_connection(monkeypatch, sim, CONN, **{**EXTRAS, "max_attempts": 2, **extra})


# -- Query export --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "count"),
    [(0, 3), ("http-date", 1), (None, 1)],
    ids=["seconds", "http-date", "no-header"],
)
def test_query_429_storm_at_start_is_waited_out(sim, fault_dag, tmp_path, logs, retry_after, count):
    header = http_date_in(2) if retry_after == "http-date" else retry_after
    sim.add_fault("query", "429", count=count, retry_after=header)
    destination = tmp_path / "skus.jsonl"
    _, state = run_dag(fault_dag, "fault_transport_export", {"destination": str(destination)})
    assert state == "success"
    assert exported_part_nos(destination) == expected_part_nos(sim)
    assert sim.counters()["api_429"] == count
    assert logs().count("retrying in") >= count


@pytest.mark.parametrize("retry_after", [0, None], ids=["seconds", "no-header"])
def test_query_429_storm_after_page_2_is_waited_out(sim, fault_dag, tmp_path, monkeypatch, retry_after):
    header = http_date_in(1) if retry_after == "http-date" else retry_after
    count = 1 if retry_after is None else 3
    after_calls(
        monkeypatch,
        sim.query,
        "handle",
        2,
        lambda: sim.add_fault("query", "429", count=count, retry_after=header),
    )
    export_ok(fault_dag, sim, tmp_path / "skus.jsonl")
    assert requests_to(sim, "GET", QUERY_PATH) == 4 + count  # 4 pages, each read once, plus the refused ones
    assert sim.counters()["api_429"] == count


def test_query_retry_after_longer_than_the_backoff_is_honoured(sim, fault_dag, tmp_path, logs):
    sim.add_fault("query", "429", count=1, retry_after=3)
    export_ok(fault_dag, sim, tmp_path / "skus.jsonl")
    assert "retrying in 3.0 s" in logs()


@pytest.mark.parametrize(
    ("where", "retry_after"), [("start", 120), ("after-page-2", "http-date")], ids=["start", "after-page-2"]
)
def test_query_retry_after_beyond_the_budget_fails_at_once(
    sim, fault_dag, tmp_path, monkeypatch, logs, where, retry_after
):
    header = http_date_in(600) if retry_after == "http-date" else retry_after
    destination = tmp_path / "skus.jsonl"
    write_jsonl(destination, PREVIOUS)
    if where == "start":
        sim.add_fault("query", "429", retry_after=header)
    else:
        after_calls(
            monkeypatch, sim.query, "handle", 2, lambda: sim.add_fault("query", "429", retry_after=header)
        )

    assert export(fault_dag, destination) == "failed"
    assert requests_to(sim, "GET", QUERY_PATH) == (1 if where == "start" else 3)  # not repeated
    text = logs()
    line = failure_line(text, "Norce connection 'norce_default'", QUERY_PATH, "429", "asked to wait")
    assert "max_retry_wait" in line and "retry" in line
    assert_no_secret(sim, text)
    assert read_jsonl(destination) == PREVIOUS  # the previous complete file, untouched
    assert no_leftovers(tmp_path) == []

    sim.clear_faults()
    export_ok(fault_dag, sim, destination)  # the next run needs no clean-up


#: Faults a GET survives with one retry: (kind, add_fault keyword arguments).
TRANSIENT_GET_FAULTS = {
    "500": ("500", {}),
    "502": ("502", {}),
    "503": ("503", {}),
    "504": ("504", {}),
    "read-timeout": ("timeout", {"delay": HELD}),
    "reset-before-processing": ("reset", {}),
    "reset-after-processing": ("reset", {"after_processing": True}),
    "drop": ("drop", {}),
    "drop-after-processing": ("drop", {"after_processing": True}),
    "truncated-json": ("truncated", {}),
    "odata-error-in-200": ("odata_error_200", {}),
    "not-json-200": ("not_json", {}),
    "html-proxy-page-200": ("html", {}),
    "html-proxy-page-502": ("html", {"status": 502}),
}


@pytest.mark.parametrize(
    "fault", [f for f in TRANSIENT_GET_FAULTS if f not in ("reset-after-processing", "drop-after-processing")]
)
def test_query_transient_fault_after_page_2_is_retried_exactly(sim, fault_dag, tmp_path, monkeypatch, fault):
    kind, kwargs = TRANSIENT_GET_FAULTS[fault]
    after_calls(monkeypatch, sim.query, "handle", 2, lambda: sim.add_fault("query", kind, count=1, **kwargs))
    destination = tmp_path / "skus.jsonl"
    write_jsonl(destination, PREVIOUS)
    export_ok(fault_dag, sim, destination)  # every row once: none missing, none twice
    assert requests_to(sim, "GET", QUERY_PATH) == 5  # 4 pages and the repeat of page 3
    assert no_leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("fault", "status", "says", "previous"),
    [
        ("503", "503", "Service Unavailable", True),
        ("odata-error-in-200", "200", "OData error instead of data", False),
        ("html-proxy-page-200", "200", "an HTML page titled", True),
        ("truncated-json", "200", "not complete JSON", False),
        ("read-timeout", "ReadTimeout", "failed before Norce answered", True),
    ],
    ids=[
        "503-previous-file",
        "odata-error-in-200-no-file",
        "html-200-previous-file",
        "truncated-json-no-file",
        "read-timeout-previous-file",
    ],
)
def test_query_persistent_fault_fails_clearly_and_writes_no_partial_file(
    sim, fault_dag, tmp_path, monkeypatch, logs, fault, status, says, previous
):
    small_budget(monkeypatch, sim, timeout=1 if fault == "read-timeout" else 2)
    kind, kwargs = TRANSIENT_GET_FAULTS[fault]
    after_calls(monkeypatch, sim.query, "handle", 2, lambda: sim.add_fault("query", kind, **kwargs))
    destination = tmp_path / "skus.jsonl"
    if previous:
        write_jsonl(destination, PREVIOUS)

    assert export(fault_dag, destination) == "failed"
    text = logs()
    line = failure_line(text, "Norce connection 'norce_default'", QUERY_PATH, status, says)
    assert "the task's retry asks again" in line  # what to do
    assert_no_secret(sim, text)
    if previous:
        assert read_jsonl(destination) == PREVIOUS
    else:
        assert not destination.exists()  # never a file missing rows
    assert no_leftovers(tmp_path) == []

    sim.clear_faults()
    export_ok(fault_dag, sim, destination)


# -- Connect import ----------------------------------------------------------------------------------


def imports_posted(sim) -> int:
    return requests_to(sim, "POST", IMPORT_PATH)


@pytest.mark.parametrize(
    ("where", "retry_after", "count"),
    [("start", None, 1), ("after-batch-1", "http-date", 2)],
    ids=["start-no-header", "mid-http-date"],
)
def test_connect_429_storm_is_waited_out_without_double_posts(
    sim, fault_dag, items_file, monkeypatch, where, retry_after, count
):
    header = http_date_in(1) if retry_after == "http-date" else retry_after
    add = lambda: sim.add_fault("connect", "429", count=count, retry_after=header)  # noqa: E731
    if where == "start":
        add()
    else:
        after_calls(monkeypatch, sim.connect, "post_import", 1, add)
    assert import_stock(fault_dag, items_file) == "success"
    assert sim.counters()["jobs_created"] == 3  # one job per batch: none twice
    assert imports_posted(sim) == 3 + count  # a 429 was refused before processing: posted again


def test_connect_retry_after_beyond_the_budget_fails_before_posting_again(
    sim, fault_dag, items_file, monkeypatch, logs
):
    after_calls(
        monkeypatch, sim.connect, "post_import", 1, lambda: sim.add_fault("connect", "429", retry_after=120)
    )
    assert import_stock(fault_dag, items_file) == "failed"
    assert sim.counters()["jobs_created"] == 1
    assert imports_posted(sim) == 2
    text = logs()
    line = failure_line(text, "Norce connection 'norce_default'", IMPORT_PATH, "429", "asked to wait 120 s")
    assert "batch 2 of 3" in line and "a retry posts it again" in line
    assert_no_secret(sim, text)

    sim.clear_faults()
    assert import_stock(fault_dag, items_file) == "success"
    assert sim.counters()["jobs_created"] == 4


#: Faults of a POST that leave it unknown whether Norce processed it: (kind, kwargs, processed).
UNCERTAIN_POST_FAULTS = {
    "500": ("500", {}, False),
    "502": ("502", {}, False),
    "503": ("503", {}, False),
    "504-after-processing": ("504", {"after_processing": True}, True),
    "read-timeout": ("timeout", {"delay": HELD}, False),
    "reset-before-processing": ("reset", {}, False),
    "reset-after-processing": ("reset", {"after_processing": True}, True),
    "drop-after-processing": ("drop", {"after_processing": True}, True),
    "truncated-json": ("truncated", {}, True),
    "odata-error-in-200": ("odata_error_200", {}, False),
    "html-proxy-page-200": ("html", {}, False),
}


@pytest.mark.parametrize("fault", list(UNCERTAIN_POST_FAULTS))
def test_connect_post_without_a_usable_answer_is_never_posted_twice(
    sim, fault_dag, items_file, monkeypatch, logs, fault
):
    kind, kwargs, processed = UNCERTAIN_POST_FAULTS[fault]
    after_calls(
        monkeypatch, sim.connect, "post_import", 1, lambda: sim.add_fault("connect", kind, count=1, **kwargs)
    )
    assert import_stock(fault_dag, items_file) == "failed"
    assert imports_posted(sim) == 2  # batch 1, then batch 2 once: never re-posted
    assert sim.counters()["jobs_created"] == 1 + processed
    text = logs()
    line = failure_line(text, "batch 2 of 3", "may have been received", "check the Connect jobs")
    assert "Product/ImportOnhands" in line
    assert_no_secret(sim, text)

    assert import_stock(fault_dag, items_file) == "success"  # the next run: no hand clean-up
    assert sim.counters()["jobs_created"] == 4 + processed


@pytest.mark.parametrize(
    ("fault", "deferred"),
    [
        ("503", False),
        ("odata-error-in-200", True),
        ("reset-before-processing", True),
    ],
    ids=[
        "503-worker",
        "odata-error-in-200-deferred",
        "reset-deferred",
    ],
)
def test_job_status_transient_fault_is_retried(sim, fault_dag, items_file, fault, deferred):
    kind, kwargs = TRANSIENT_GET_FAULTS[fault]
    sim.add_fault("jobs", kind, count=1, **kwargs)
    assert import_stock(fault_dag, items_file, deferred) == "success"
    assert sim.counters()["jobs_created"] == 3
    assert imports_posted(sim) == 3


@pytest.mark.parametrize(
    ("fault", "says", "deferred"),
    [
        ("odata-error-in-200", "OData error instead of data", False),
        ("odata-error-in-200", "OData error instead of data", True),
        ("html-proxy-page-200", "an HTML page titled", True),
    ],
    ids=["odata-error-in-200-worker", "odata-error-in-200-deferred", "html-200-deferred"],
)
def test_job_status_persistent_garbage_fails_clearly_not_waiting_forever(
    sim, fault_dag, items_file, monkeypatch, logs, fault, says, deferred
):
    small_budget(monkeypatch, sim)
    kind, kwargs = TRANSIENT_GET_FAULTS[fault]
    sim.add_fault("jobs", kind, **kwargs)
    assert import_stock(fault_dag, items_file, deferred) == "failed"
    assert sim.counters()["jobs_created"] == 3
    assert imports_posted(sim) == 3
    text = logs()
    failure_line(text, "Norce connection 'norce_default'", "Job/Get", "200", says)
    assert_no_secret(sim, text)

    sim.clear_faults()
    assert import_stock(fault_dag, items_file, deferred) == "success"
    assert sim.counters()["jobs_created"] == 6


# -- NorceOperator -----------------------------------------------------------------------------------


def call(fault_dag) -> str:
    _, state = run_dag(fault_dag, "fault_transport_call")
    return state


@pytest.mark.parametrize("fault", ["odata-error-in-200", "not-json-200", "html-proxy-page-200"])
def test_call_transient_answer_is_retried_not_taken_as_data(sim, fault_dag, fault):
    kind, kwargs = TRANSIENT_GET_FAULTS[fault]
    sim.add_fault(APP_PATH, kind, count=1, **kwargs)
    assert call(fault_dag) == "success"
    assert requests_to(sim, "GET", APP_PATH) == 2  # the bad answer was not the result: asked again


def test_call_persistent_error_envelope_fails_clearly(sim, fault_dag, monkeypatch, logs):
    small_budget(monkeypatch, sim)
    sim.add_fault(APP_PATH, "odata_error_200")
    assert call(fault_dag) == "failed"
    assert requests_to(sim, "GET", APP_PATH) == 2
    text = logs()
    line = failure_line(text, "Norce connection 'norce_default'", APP_PATH, "200", "InternalServerError")
    assert "the task's retry asks again" in line
    sim.clear_faults()
    assert call(fault_dag) == "success"


def test_call_retry_after_beyond_the_budget_fails_at_once(sim, fault_dag, logs):
    sim.add_fault(APP_PATH, "429", retry_after=3600)
    assert call(fault_dag) == "failed"
    assert requests_to(sim, "GET", APP_PATH) == 1
    line = failure_line(logs(), "Norce connection 'norce_default'", APP_PATH, "429", "asked to wait 3600 s")
    assert "max_retry_wait" in line
