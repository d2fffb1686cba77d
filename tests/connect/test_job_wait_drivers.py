"""One table of Norce answers, the same job wait driven three ways, the same decisions.

The wait (:mod:`airflow_provider_norce.connect.job_wait`) is written once; a task drives it with the sync
hook (``requests``, here on requests-mock) and the triggerer with the async client (``httpx``, here on a
``MockTransport``). Each row of the table is a script of what Norce answers to ``Job/Get`` and
``Job/GetLog``. The flow alone (answered straight from the script), the sync driver and the async driver
run it on a fake clock, and the test asserts the same requests in the same order, the same sleeps
between them and the same outcome, and that they are what the row expects. Nothing sleeps for real:
the clock moves only when a driver sleeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from airflow_provider_norce.connect.job_wait import (
    Done,
    GetJob,
    GetLog,
    Sleep,
    TimedOut,
    deadline_after,
    wait_flow,
)
from airflow_provider_norce.connect.jobs import (
    JobLog,
    JobState,
    JobStatus,
    check_jobs,
    defer_timeout,
    sync_steps,
    unsuccessful,
    wait_for_jobs,
)
from airflow_provider_norce.exceptions import NorceAPIError, NorceJobError
from airflow_provider_norce.flows import drive
from airflow_provider_norce.tokens.cache import TokenCache
from airflow_provider_norce.triggers.norce import job_event, wait_for_jobs_async

BASE = "https://acme.api-se.norce.tech"
TOKEN_URL = f"{BASE}/identity/1.0/connect/token"
CONNECT = f"{BASE}/commerce/connect/4.0/"
POLL_INTERVAL = 30.0
TIMEOUT = 100.0
START = 1_800_000_000.0

RUNNING = {"StatusId": 6, "IsFinished": False}
VALIDATING = {"StatusId": 5, "IsFinished": False}
SUCCEEDED = {"StatusId": 2, "IsFinished": True, "Insert": 0, "Updates": 2, "Fail": 0, "RunTime": "00:00:03"}
FAILED = {"StatusId": 3, "IsFinished": True, "Insert": 0, "Updates": 0, "Fail": 2}
VALIDATION_FAILED = {"StatusId": 4, "IsFinished": True}
START_LINE = {
    "SeverityId": 1,
    "Message": "Starting import.",
    "TimeStamp": "2026-11-20T02:30:01",
    "ImportedRow": None,
}
END_LINE = {
    "SeverityId": 1,
    "Message": "Import finished.",
    "TimeStamp": "2026-11-20T02:30:04",
    "ImportedRow": None,
}
CLEAN_LOG = [START_LINE, END_LINE]


def error_line(message: str, row: str | None = None) -> dict[str, Any]:
    return {"SeverityId": 3, "Message": message, "TimeStamp": "2026-11-20T02:30:02", "ImportedRow": row}


@dataclass(frozen=True)
class Row:
    """A script of Norce's answers and the decisions both drivers must take on it.

    ``gets``: per job id, the ``Job/Get`` answers in the order asked (the last one repeats).
    ``trace``: the expected requests and sleeps, in order. ``outcome``: ``done``, ``timeout`` or ``error``.
    ``event``: the trigger's event status for that outcome.
    """

    name: str
    job_ids: list[str]
    gets: dict[str, list[Any]]
    logs: dict[str, Any]
    trace: list[tuple[str, Any]]
    outcome: str
    event: str | None = None
    statuses: dict[str, str] = field(default_factory=dict)


def get(job_id: str) -> tuple[str, str]:
    return ("Job/Get", job_id)


def get_log(job_id: str) -> tuple[str, str]:
    return ("Job/GetLog", job_id)


def sleep(seconds: float) -> tuple[str, float]:
    return ("sleep", seconds)


TABLE = [
    Row(
        "running then succeeded: the log is read once, when finished",
        ["7"],
        {"7": [RUNNING, VALIDATING, SUCCEEDED]},
        {"7": CLEAN_LOG},
        [get("7"), sleep(30.0), get("7"), sleep(30.0), get("7"), get_log("7")],
        "done",
        "success",
        {"7": "Succeeded"},
    ),
    Row(
        "failed with error lines in its log",
        ["8"],
        {"8": [FAILED]},
        {"8": [START_LINE, error_line("Row 1: boom", '{"PartNo":"FAIL-1"}'), error_line("The job failed")]},
        [get("8"), get_log("8")],
        "done",
        "failed",
        {"8": "Failed"},
    ),
    Row(
        "validation failed",
        ["9"],
        {"9": [RUNNING, VALIDATION_FAILED]},
        {"9": [error_line("All 1 item(s) failed validation")]},
        [get("9"), sleep(30.0), get("9"), get_log("9")],
        "done",
        "failed",
        {"9": "Validation failed"},
    ),
    Row(
        "succeeded with a row not imported: Norce calls it a success, the log says otherwise",
        ["10"],
        {"10": [SUCCEEDED]},
        {"10": [START_LINE, error_line("Sku 999 not found.", '{"PartNo":"999"}'), END_LINE]},
        [get("10"), get_log("10")],
        "done",
        "success",
        {"10": "Succeeded"},
    ),
    Row(
        "several jobs finishing at different rounds: finished ones are not asked again, order kept",
        ["11", "12", "13"],
        {"11": [SUCCEEDED], "12": [RUNNING, RUNNING, SUCCEEDED], "13": [RUNNING, FAILED]},
        {"11": CLEAN_LOG, "12": CLEAN_LOG, "13": [error_line("Row 2: boom")]},
        [
            get("11"),
            get_log("11"),
            get("12"),
            get("13"),
            sleep(30.0),
            get("12"),
            get("13"),
            get_log("13"),
            sleep(30.0),
            get("12"),
            get_log("12"),
        ],
        "done",
        "failed",
        {"11": "Succeeded", "12": "Succeeded", "13": "Failed"},
    ),
    Row(
        "never finishes: the last sleep is cut to the deadline, no log is read, one more look at it",
        ["14"],
        {"14": [RUNNING]},
        {},
        [
            get("14"),
            sleep(30.0),
            get("14"),
            sleep(30.0),
            get("14"),
            sleep(30.0),
            get("14"),
            sleep(10.0),
            get("14"),
        ],
        "timeout",
        "timeout",
        {"14": "Queued"},
    ),
    Row(
        "an answer that is not a job object is an error, not a job running until the timeout",
        ["15", "16"],
        {"15": [SUCCEEDED], "16": [{"Message": "OK"}]},
        {"15": CLEAN_LOG},
        [get("15"), get_log("15"), get("16")],
        "error",
    ),
]


class Clock:
    """A fake clock whose sleeps are written into the shared trace, between the requests."""

    def __init__(self, trace: list[tuple[str, Any]]) -> None:
        self.now = START
        self.trace = trace

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.trace.append(sleep(seconds))
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class ScriptedNorce:
    """Answers ``Job/Get`` and ``Job/GetLog`` from a row's script, for either transport; records each ask."""

    def __init__(self, row: Row, trace: list[tuple[str, Any]]) -> None:
        self.row = row
        self.trace = trace
        self.asked: dict[str, int] = {}

    def answer(self, method: str, job_id: str) -> Any:
        self.trace.append((method, job_id))
        if method == "Job/GetLog":
            return self.row.logs[job_id]
        answers = self.row.gets[job_id]
        n = self.asked[job_id] = self.asked.get(job_id, 0) + 1
        return answers[min(n, len(answers)) - 1]

    def requests_callback(self, method: str) -> Any:
        def callback(request: Any, context: Any) -> Any:
            return self.answer(method, request.qs["id"][0])

        return callback

    def httpx_handler(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.split("/commerce/connect/4.0/", 1)[1]
        return httpx.Response(200, json=self.answer(method, request.url.params["id"]))


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> Any:
    """A real NorceHook on requests-mock (one attempt a request: a retry would show in neither trace)."""
    from airflow_provider_norce.hooks.norce import NorceHook

    conn = {
        "conn_type": "norce",
        "host": "acme",
        "login": "client-1",
        "password": "pw",
        "extra": {"token_cache": "process", "max_attempts": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(conn))
    requests_mock.post(TOKEN_URL, json={"access_token": "tok", "expires_in": 600, "token_type": "Bearer"})
    return NorceHook("norce_default", token_cache=TokenCache())


def sync_wait(hook: Any, job_ids: list[str], clock: Clock, timeout: float) -> Any:
    """The task's driver, as :func:`wait_for_jobs` runs it (which then raises on a timeout)."""
    flow = wait_flow(job_ids, poll_interval=POLL_INTERVAL, deadline=deadline_after(timeout, clock), now=clock)
    return drive(flow, sync_steps(hook, clock.sleep))


def run_flow(row: Row) -> tuple[list[Any], Any]:
    """The flow alone, its steps answered straight from the script: no transport, no hook, no client."""
    trace: list[tuple[str, Any]] = []
    norce, clock = ScriptedNorce(row, trace), Clock(trace)

    def do(step: Any) -> Any:
        if isinstance(step, GetJob):
            return JobState.from_response(step.job_id, norce.answer("Job/Get", step.job_id))
        if isinstance(step, GetLog):
            return JobLog.from_response(norce.answer("Job/GetLog", step.job_id))
        assert isinstance(step, Sleep)
        clock.sleep(step.seconds)
        return None

    flow = wait_flow(
        row.job_ids, poll_interval=POLL_INTERVAL, deadline=deadline_after(TIMEOUT, clock), now=clock
    )
    try:
        outcome: Any = drive(flow, do)
    except NorceAPIError as err:
        outcome = err
    return trace, outcome


def run_sync(row: Row, hook: Any, requests_mock: Any) -> tuple[list[Any], Any]:
    trace: list[tuple[str, Any]] = []
    norce, clock = ScriptedNorce(row, trace), Clock(trace)
    for method in ("Job/Get", "Job/GetLog"):
        requests_mock.get(CONNECT + method, json=norce.requests_callback(method))
    try:
        outcome: Any = sync_wait(hook, row.job_ids, clock, TIMEOUT)
    except NorceAPIError as err:
        outcome = err
    return trace, outcome


def run_async(row: Row, hook: Any) -> tuple[list[Any], Any]:
    from airflow_provider_norce.hooks.async_client import NorceAsyncClient

    trace: list[tuple[str, Any]] = []
    norce, clock = ScriptedNorce(row, trace), Clock(trace)

    async def go() -> Any:
        transport = httpx.AsyncClient(transport=httpx.MockTransport(norce.httpx_handler))
        async with transport, NorceAsyncClient(hook.config, hook=hook, client=transport) as client:
            return await wait_for_jobs_async(
                client,
                row.job_ids,
                poll_interval=POLL_INTERVAL,
                end_time=clock() + TIMEOUT,  # the trigger's absolute deadline
                logger=logging.getLogger("norce-test"),
                now=clock,
                sleep=clock.async_sleep,
            )

    try:
        outcome: Any = asyncio.run(go())
    except NorceAPIError as err:
        outcome = err
    return trace, outcome


@pytest.mark.parametrize("row", TABLE, ids=[row.name for row in TABLE])
def test_both_drivers_take_the_same_decisions(row: Row, hook: Any, requests_mock: Any) -> None:
    flow_trace, flow_outcome = run_flow(row)
    sync_trace, sync_outcome = run_sync(row, hook, requests_mock)
    async_trace, async_outcome = run_async(row, hook)

    assert flow_trace == sync_trace == async_trace == row.trace
    if row.outcome == "error":
        outcomes = (flow_outcome, sync_outcome, async_outcome)
        assert all(isinstance(o, NorceAPIError) for o in outcomes)
        assert str(flow_outcome) == str(sync_outcome) == str(async_outcome)
        assert "job 16" in str(sync_outcome) and "not a job" in str(sync_outcome)
        return
    assert flow_outcome == sync_outcome == async_outcome
    assert isinstance(sync_outcome, Done if row.outcome == "done" else TimedOut)
    assert list(sync_outcome.jobs) == row.job_ids
    assert {j: s["status"] for j, s in sync_outcome.jobs.items()} == row.statuses
    for job_id, summary in sync_outcome.jobs.items():
        # the log's lines travel with every finished job, a Succeeded one's too; never with a running one
        assert ("row_errors" in summary) == summary["finished"]
    json.dumps(sync_outcome.jobs)  # XCom and trigger events carry them

    event = job_event(sync_outcome, TIMEOUT)
    assert event["status"] == row.event
    assert event["jobs"] == sync_outcome.jobs


@pytest.mark.parametrize("row", [r for r in TABLE if r.outcome == "done"], ids=lambda r: r.name)
def test_wait_for_jobs_returns_the_summaries_of_the_flow(row: Row, hook: Any, requests_mock: Any) -> None:
    _, outcome = run_sync(row, hook, requests_mock)
    trace: list[tuple[str, Any]] = []
    norce, clock = ScriptedNorce(row, trace), Clock(trace)
    for method in ("Job/Get", "Job/GetLog"):
        requests_mock.get(CONNECT + method, json=norce.requests_callback(method))
    jobs = wait_for_jobs(
        hook, row.job_ids, poll_interval=POLL_INTERVAL, timeout=TIMEOUT, sleep=clock.sleep, clock=clock
    )
    assert jobs == outcome.jobs and trace == row.trace


@pytest.mark.parametrize("row", [r for r in TABLE if r.outcome == "done"], ids=lambda r: r.name)
def test_the_trigger_fails_exactly_what_the_task_would_fail(row: Row, hook: Any, requests_mock: Any) -> None:
    """One verdict: a ``failed`` event iff the task, judging with its defaults, fails the same jobs."""
    _, outcome = run_sync(row, hook, requests_mock)
    event = job_event(outcome, TIMEOUT)
    bad = [j for j, s in outcome.jobs.items() if s["status_id"] != JobStatus.SUCCEEDED]
    assert unsuccessful(outcome.jobs) == bad
    if event["status"] == "failed":
        with pytest.raises(NorceJobError) as err:
            check_jobs(outcome.jobs)
        assert all(f"job {j} ended" in str(err.value) for j in bad)
        assert all(f"{j} ({outcome.jobs[j]['status']})" in event["message"] for j in bad)
    else:
        check_jobs(outcome.jobs)


def test_wait_for_jobs_raises_on_the_deadline_naming_the_jobs(hook: Any, requests_mock: Any) -> None:
    row = next(r for r in TABLE if r.outcome == "timeout")
    trace: list[tuple[str, Any]] = []
    norce, clock = ScriptedNorce(row, trace), Clock(trace)
    requests_mock.get(CONNECT + "Job/Get", json=norce.requests_callback("Job/Get"))
    with pytest.raises(
        NorceJobError, match=r"job\(s\) 14 still running after 100.0 s; they keep running"
    ) as err:
        wait_for_jobs(
            hook, ["14"], poll_interval=POLL_INTERVAL, timeout=TIMEOUT, sleep=clock.sleep, clock=clock
        )
    assert (err.value.job_id, err.value.status_id) == ("14", 6)
    assert trace == row.trace and clock.now == START + TIMEOUT
    event = job_event(TimedOut(["14"], {}), TIMEOUT)
    assert (
        event["message"]
        == "Norce Connect job(s) 14 still running after the 100.0 s timeout; they keep running in Norce"
    )


def test_already_finished_jobs_are_reported_however_short_the_timeout(hook: Any, requests_mock: Any) -> None:
    """The deadline is checked after a round, never before the first one."""
    row = TABLE[1]
    trace: list[tuple[str, Any]] = []
    norce, clock = ScriptedNorce(row, trace), Clock(trace)
    for method in ("Job/Get", "Job/GetLog"):
        requests_mock.get(CONNECT + method, json=norce.requests_callback(method))
    outcome = sync_wait(hook, ["8"], clock, timeout=0)
    assert isinstance(outcome, Done) and outcome.jobs["8"]["status"] == "Failed"


@pytest.mark.parametrize(
    ("timeout", "poll_interval", "expected"),
    [(None, 30.0, None), (600.0, 30.0, 660.0), (600.0, 45.0, 690.0), (0.0, 5.0, 60.0)],
)
def test_defer_timeout_backs_up_the_trigger_deadline(timeout, poll_interval, expected) -> None:
    """Airflow's deadline gives the trigger a minute, or two poll intervals, past its own."""
    result = defer_timeout(timeout, poll_interval)
    assert (None if result is None else result.total_seconds()) == expected


def test_an_id_given_twice_is_asked_once_a_round(hook: Any, requests_mock: Any) -> None:
    row = TABLE[0]
    trace, outcome = run_sync(Row(row.name, ["7", "7"], row.gets, row.logs, [], "done"), hook, requests_mock)
    assert trace == row.trace and list(outcome.jobs) == ["7"]
