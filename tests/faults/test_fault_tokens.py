"""Token faults as real DAG runs (``dag.test()``) against the simulator over real sockets.

Token expiry in the middle of an export and of a Connect job wait (in the worker and deferred), a token
revoked mid-run (401 twice), OAuth errors, unusable token answers, and redirects or ``@odata.nextLink`` to
another host, port or scheme (the bearer token never follows). DAGs: ``tests/faults/dags/token_faults.py``.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import threading
from typing import Any

import pytest
from norce_faults_testlib import after_answers, read_jsonl, set_connection, task_states, write_jsonl

UTC = dt.timezone.utc
DAGS = "token_faults.py"
JOB_GET = "/commerce/connect/4.0/job/get"
QUERY = "/commerce/query/2.0/"
SKUS = "/commerce/query/2.0/Products/ProductSkus"
FIRST_JOB = 1001
_RUNS = iter(range(1, 10_000))
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


#: Each test: its own machine token store and an empty process cache (conftest.py): a new simulator may reuse
#: a port, and a token cached for an earlier one would change the token counts.
pytestmark = pytest.mark.usefixtures("fresh_token_caches")


@pytest.fixture
def logs(capsys, caplog):
    """Where a run's logs land. Airflow 3.0 prints a task's exception as a rich traceback, in colour and
    wrapped at the terminal width: run_dag strips the colour codes and joins the lines."""
    caplog.set_level("INFO")
    return capsys, caplog


def finish_jobs_soon(sim: Any, seconds: float = 0.6) -> None:
    """Let the running job end ``seconds`` from now: job-wait tests start with a long ``job_duration`` so the
    job is still running when the wait (in a task that may start seconds later) first polls it."""
    created = min(job.created for job in sim.connect._jobs.values())
    sim.connect.job_duration = sim.time.now() - created + seconds


def run_dag(fault_dag: Any, logs: Any, dag_id: str, conf: dict[str, Any]) -> tuple[Any, str]:
    """One ``dag.test()`` run; returns it and everything it logged (structlog writes task logs to stdout;
    Airflow 3.0's stdlib records reach caplog)."""
    capsys, caplog = logs
    dag = fault_dag(DAGS, dag_id)
    capsys.readouterr()
    caplog.clear()
    start = dt.datetime(2026, 11, 20, tzinfo=UTC) + dt.timedelta(minutes=next(_RUNS))
    run = dag.test(logical_date=start, run_conf=conf)
    captured = capsys.readouterr()
    text = _ANSI.sub("", f"{captured.out}\n{captured.err}\n{caplog.text}")
    return run, " ".join(text.split())  # one space for every run of blanks: a wrapped message reads whole


def skus(sim: Any) -> list[str]:
    return sorted(sim.catalog.skus)


def onhand_items(sim: Any, tmp_path: Any, count: int = 5) -> str:
    path = tmp_path / "onhands.jsonl"
    items = [
        {"PartNo": p, "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 10 + n}
        for n, p in enumerate(skus(sim)[:count])
    ]
    write_jsonl(path, items)
    return str(path)


def posts(sim: Any) -> int:
    return sum(n for k, n in sim.counters()["requests"].items() if k.startswith("POST /commerce/connect/"))


def api_requests(sim: Any) -> int:
    return sum(n for k, n in sim.counters()["requests"].items() if "/identity/" not in k)


def assert_deferred_if_asked(dag_id: str, out: str) -> None:
    """A ``*_deferred`` DAG really waited in the (in-process) triggerer."""
    if dag_id.endswith("_deferred"):
        assert "Pausing task as DEFERRED" in out


def assert_no_token_in(text: str, sim: Any) -> None:
    """Neither the client secret nor any token the simulator issued. Airflow 3.0's supervisor logs each
    ``MaskSecret`` message at DEBUG (apache/airflow#63921): the connection password's line is Airflow's own,
    so only those lines may hold the secret; a token must not show even there."""
    ours = re.sub(r"MaskSecret\(value='[^']*'", "MaskSecret(", text)
    assert sim.client_secret not in ours
    for token in sim.issued_tokens():
        assert token not in text


# -- token expiry mid-run -----------------------------------------------------------------------------------


@pytest.mark.norce_simulator(products=40, page_size=8)
@pytest.mark.parametrize("expire_after_pages", [(2,), (2, 4)], ids=["once", "twice"])
def test_token_expiry_mid_export_renews_once_per_expiry(sim, fault_dag, logs, tmp_path, expire_after_pages):
    destination = tmp_path / "skus.jsonl"
    after_answers(sim, QUERY, {n: sim.expire_tokens for n in expire_after_pages})

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "success"}, out
    assert [row["PartNo"] for row in read_jsonl(destination)] == skus(sim)  # none doubled, none missing
    counters = sim.counters()
    assert counters["api_401"] == len(expire_after_pages)
    assert counters["tokens_issued"] == 1 + len(expire_after_pages)  # one new token per expiry
    assert_no_token_in(out, sim)


WAITS = ["token_fault_import_sync", "token_fault_import_deferred", "token_fault_sensor_sync",
         "token_fault_sensor_deferred"]  # fmt: skip


@pytest.mark.norce_simulator(products=20, job_duration=600)  # ended by finish_jobs_soon
@pytest.mark.parametrize("dag_id", WAITS)
def test_token_expiry_mid_job_wait_renews_once(sim, fault_dag, logs, tmp_path, dag_id):
    """The job wait polls Job/Get; every token expires right after a poll that saw the job running: one
    401, one new token, the wait goes on (in the worker or in the in-process triggerer), the result is read."""
    after_answers(
        sim, JOB_GET, {1: lambda: (sim.expire_tokens(), finish_jobs_soon(sim))}, running_jobs_only=True
    )

    run, out = run_dag(fault_dag, logs, dag_id, {"items_path": onhand_items(sim, tmp_path)})

    assert set(task_states(run).values()) == {"success"}, out
    counters = sim.counters()
    assert counters["jobs_created"] == 1 and posts(sim) == 1
    assert sim.connect.job_status(FIRST_JOB)["StatusId"] == 2
    assert counters["api_401"] == 1
    assert counters["tokens_issued"] == 2
    assert_deferred_if_asked(dag_id, out)
    assert_no_token_in(out, sim)


# -- a token revoked mid-run (401 twice) ---------------------------------------------------------------------


@pytest.mark.norce_simulator(products=40, page_size=8)
def test_token_refused_twice_mid_export_fails_naming_the_call_and_keeps_the_previous_file(
    sim, fault_dag, logs, tmp_path
):
    destination = tmp_path / "skus.jsonl"
    destination.write_text('{"PartNo": "previous"}\n')
    after_answers(sim, QUERY, {2: lambda: sim.add_fault("api", "401", count=2)})

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "failed"}
    assert "Norce connection 'norce_default'" in out
    assert f"GET {sim.base_url}{SKUS} answered 401 to a freshly issued token" in out
    assert "OAuth user" in out and "Norce Admin" in out  # what to do
    assert destination.read_text() == '{"PartNo": "previous"}\n'
    assert [p.name for p in tmp_path.iterdir() if p.name != "tokens"] == ["skus.jsonl"]  # no temp file left
    assert sim.counters()["tokens_issued"] == 2  # the first, and one renewal: no storm
    assert_no_token_in(out, sim)

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})
    assert task_states(run) == {"export": "success"}, out  # the next run needs no hand clean-up
    assert [row["PartNo"] for row in read_jsonl(destination)] == skus(sim)


@pytest.mark.norce_simulator(products=40, page_size=8)
@pytest.mark.parametrize("how", ["401_once", "revoked"])
def test_token_revoked_mid_export_recovers_with_the_second_token(sim, fault_dag, logs, tmp_path, how):
    destination = tmp_path / "skus.jsonl"
    fault = (lambda: sim.add_fault("api", "401", count=1)) if how == "401_once" else sim.revoke_tokens
    after_answers(sim, QUERY, {3: fault})

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "success"}, out
    assert [row["PartNo"] for row in read_jsonl(destination)] == skus(sim)
    assert sim.counters()["api_401"] == 1 and sim.counters()["tokens_issued"] == 2


@pytest.mark.norce_simulator(products=20, job_duration=0.5)
@pytest.mark.parametrize("refusals", [1, 2])
def test_token_refused_on_the_connect_post_never_posts_a_batch_twice(
    sim, fault_dag, logs, tmp_path, refusals
):
    """The gate refuses the POST before Norce reads it: with a second token the batch goes once; refused
    twice the task fails naming the call, no job exists, and the next run posts it once."""
    sim.add_fault("connect", "401", count=refusals)
    conf = {"items_path": onhand_items(sim, tmp_path)}

    run, out = run_dag(fault_dag, logs, "token_fault_import_sync", conf)

    if refusals == 1:
        assert task_states(run) == {"import": "success"}, out
        assert sim.counters()["jobs_created"] == 1
        return
    assert task_states(run) == {"import": "failed"}
    assert "Norce connection 'norce_default'" in out and "answered 401 to a freshly issued token" in out
    assert "/commerce/connect/4.0/Product/ImportOnhands" in out
    assert sim.counters()["jobs_created"] == 0
    assert_no_token_in(out, sim)
    run, out = run_dag(fault_dag, logs, "token_fault_import_sync", conf)
    assert task_states(run) == {"import": "success"}, out
    assert sim.counters()["jobs_created"] == 1


@pytest.mark.norce_simulator(products=20, job_duration=600)  # the run ends at the second poll
@pytest.mark.parametrize("dag_id", WAITS)
def test_token_refused_twice_mid_job_wait_fails_alike_in_worker_and_triggerer(
    sim, fault_dag, logs, tmp_path, dag_id
):
    after_answers(sim, JOB_GET, {1: lambda: sim.add_fault("jobs", "401", count=2)}, running_jobs_only=True)

    run, out = run_dag(fault_dag, logs, dag_id, {"items_path": onhand_items(sim, tmp_path)})

    expected = {"post": "success", "wait": "failed"} if "sensor" in dag_id else {"import": "failed"}
    assert task_states(run) == expected, out
    assert "Norce connection 'norce_default'" in out
    assert "Job/Get answered 401 to a freshly issued token" in out
    assert "OAuth user" in out and "Norce Admin" in out
    assert sim.counters()["jobs_created"] == 1 and posts(sim) == 1  # the wait never re-posts
    assert sim.counters()["tokens_issued"] == 2
    assert_deferred_if_asked(dag_id, out)
    assert_no_token_in(out, sim)


# -- OAuth errors ----------------------------------------------------------------------------------------------

OAUTH_FIXES = {
    "invalid_client": "Client Secret",
    "invalid_scope": "extra 'scope'",
    "unauthorized_client": "allow it for this OAuth user in Norce Admin",
}


@pytest.mark.norce_simulator(products=20)
@pytest.mark.parametrize("kind", sorted(OAUTH_FIXES))
def test_oauth_error_fails_at_once_saying_what_to_fix(sim, fault_dag, logs, tmp_path, kind):
    sim.add_fault("token", kind)
    destination = tmp_path / "skus.jsonl"

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "failed"}
    counters = sim.counters()
    # no retry storm: one request (invalid_scope: the other production spelling once, see the README)
    assert counters["token_requests"] == (2 if kind == "invalid_scope" else 1)
    assert api_requests(sim) == 0 and not destination.exists()
    assert "Norce connection 'norce_default'" in out and kind in out
    assert OAUTH_FIXES[kind] in out
    assert_no_token_in(out, sim)


# -- token answers ----------------------------------------------------------------------------------------------


@pytest.mark.norce_simulator(products=20)
@pytest.mark.parametrize("variant", ["no_access_token", "not_json"])
def test_token_answer_without_a_token_fails_clearly_and_sends_nothing(
    sim, fault_dag, logs, tmp_path, variant
):
    sim.add_fault("token", "token_answer", variant=variant)
    destination = tmp_path / "skus.jsonl"

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "failed"}
    assert "Norce connection 'norce_default'" in out and "without a usable access_token" in out
    assert sim.counters()["token_requests"] == 1
    assert api_requests(sim) == 0 and not destination.exists()  # no token sent anywhere


def cached_lifetimes(sim: Any) -> list[float]:
    """Lifetimes of this simulator's tokens in the process cache and the machine store of the test."""
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

    issued = set(sim.issued_tokens())
    found = [t for t in PROCESS_TOKEN_CACHE._tokens.values() if t.access_token in issued]
    folder = os.environ["NORCE_TOKEN_CACHE_DIR"]
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("access_token") in issued:
                found.append(data)
    lifetimes = []
    for token in found:
        if isinstance(token, dict):
            lifetimes.append(token["expires_at"] - token["obtained_at"])
        else:
            lifetimes.append(token.expires_at - token.obtained_at)
    return lifetimes


@pytest.mark.norce_simulator(products=40, page_size=8)
@pytest.mark.parametrize(
    "variant",
    [
        "expires_in_missing",
        "expires_in_0",
        "expires_in_negative",
        "expires_in_string",
        "expires_in_ten_years",
    ],
)
def test_token_answer_with_an_odd_lifetime_runs_with_a_sane_one(sim, fault_dag, logs, tmp_path, variant):
    sim.add_fault("token", "token_answer", variant=variant, count=1)
    destination = tmp_path / "skus.jsonl"

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "success"}, out
    assert [row["PartNo"] for row in read_jsonl(destination)] == skus(sim)
    assert sim.counters()["tokens_issued"] == 1  # not one per page
    lifetimes = cached_lifetimes(sim)
    assert lifetimes, "the token was cached"
    if variant == "expires_in_ten_years":
        assert max(lifetimes) == 86400.0  # capped at 24 h
    else:
        assert all(1.0 <= life <= 600.0 for life in lifetimes), lifetimes  # the JWT's exp, else 300 s

    sim.expire_tokens()  # Norce ends the token long before the answer said: one 401, one new token
    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})
    assert task_states(run) == {"export": "success"}, out
    assert sim.counters()["api_401"] == 1 and sim.counters()["tokens_issued"] == 2


# -- redirects and nextLinks to another origin ------------------------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Another server: records every request and answers a plausible Norce page, so that following a link
    here would turn into foreign rows in the export, not into a failure."""

    seen: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(  # type: ignore[attr-defined]
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        payload = json.dumps(
            {"value": [{"PartNo": "FOREIGN"}], "JobId": 1, "StatusId": 2, "IsFinished": True}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def elsewhere():
    """A plain HTTP server on another port; ``elsewhere.seen`` lists what reached it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def other_origin(server: Any, target: str, path: str) -> str:
    port = server.server_address[1]
    host = {"port": "127.0.0.1", "host": "localhost", "scheme": "127.0.0.1"}[target]
    scheme = "https" if target == "scheme" else "http"
    return f"{scheme}://{host}:{port}{path}"


def assert_token_never_left(server: Any, sim: Any) -> None:
    tokens = set(sim.issued_tokens())
    for request in server.seen:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert "authorization" not in headers, request
        assert not any(token in json.dumps(request, default=str) for token in tokens)


REDIRECTS = [(301, "port"), (302, "port"), (307, "port"), (308, "port"), (307, "host"), (307, "scheme")]


@pytest.mark.norce_simulator(products=40, page_size=8)
@pytest.mark.parametrize(("status", "target"), REDIRECTS, ids=[f"{s}-{t}" for s, t in REDIRECTS])
def test_redirect_to_another_origin_mid_export_is_refused_and_gets_no_token(
    sim, fault_dag, logs, tmp_path, elsewhere, status, target
):
    destination = tmp_path / "skus.jsonl"
    destination.write_text('{"PartNo": "previous"}\n')
    location = other_origin(elsewhere, target, SKUS + "?$skip=16")
    after_answers(
        sim, QUERY, {2: lambda: sim.add_fault("query", "redirect", status=status, location=location, count=1)}
    )

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "failed"}, out
    assert_token_never_left(elsewhere, sim)
    assert elsewhere.seen == []  # not followed at all
    assert "Norce connection 'norce_default'" in out and f"redirect ({status})" in out
    assert location.split("?")[0] in out
    assert destination.read_text() == '{"PartNo": "previous"}\n'
    assert_no_token_in(out, sim)


@pytest.mark.norce_simulator(products=40, page_size=8)
@pytest.mark.parametrize("target", ["port", "host", "scheme"])
def test_next_link_to_another_origin_is_refused_and_gets_no_token(
    sim, fault_dag, logs, tmp_path, elsewhere, target
):
    destination = tmp_path / "skus.jsonl"
    location = other_origin(elsewhere, target, SKUS + "?$skip=16")
    sim.add_fault("query", "next_link", location=location, count=1)

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "failed"}, out
    assert elsewhere.seen == []
    assert (
        "Norce connection 'norce_default'" in out and "@odata.nextLink to another host, port or scheme" in out
    )
    assert location.split("?")[0] in out
    assert not destination.exists() and [p.name for p in tmp_path.iterdir()] == ["tokens"]
    assert_no_token_in(out, sim)


@pytest.mark.norce_simulator(products=20, job_duration=600)  # the run ends at the second poll
@pytest.mark.parametrize("dag_id", WAITS)
def test_redirect_of_a_job_poll_is_refused_alike_in_worker_and_triggerer(
    sim, fault_dag, logs, tmp_path, elsewhere, dag_id
):
    location = other_origin(elsewhere, "port", JOB_GET + "?id=1001")
    after_answers(
        sim,
        JOB_GET,
        {1: lambda: sim.add_fault("jobs", "redirect", location=location, count=1)},
        running_jobs_only=True,
    )

    run, out = run_dag(fault_dag, logs, dag_id, {"items_path": onhand_items(sim, tmp_path)})

    expected = {"post": "success", "wait": "failed"} if "sensor" in dag_id else {"import": "failed"}
    assert task_states(run) == expected, out
    assert elsewhere.seen == []
    assert "Norce connection 'norce_default'" in out and "redirect (307)" in out and location in out
    assert sim.counters()["jobs_created"] == 1 and posts(sim) == 1
    assert_deferred_if_asked(dag_id, out)


@pytest.mark.norce_simulator(products=20, job_duration=0.5)
@pytest.mark.parametrize("status", [307, 308])
def test_redirect_of_a_connect_post_never_sends_the_batch_elsewhere(
    sim, fault_dag, logs, tmp_path, elsewhere, status
):
    location = other_origin(elsewhere, "port", "/commerce/connect/4.0/Product/ImportOnhands")
    sim.add_fault("connect", "redirect", status=status, location=location, count=1)

    run, out = run_dag(
        fault_dag, logs, "token_fault_import_sync", {"items_path": onhand_items(sim, tmp_path)}
    )

    assert task_states(run) == {"import": "failed"}, out
    assert elsewhere.seen == []  # neither the token nor the items
    assert "Norce connection 'norce_default'" in out and f"redirect ({status})" in out
    assert sim.counters()["jobs_created"] == 0
    run, out = run_dag(
        fault_dag, logs, "token_fault_import_sync", {"items_path": onhand_items(sim, tmp_path)}
    )
    assert task_states(run) == {"import": "success"}, out  # Norce never read it: the next run posts it once
    assert sim.counters()["jobs_created"] == 1


@pytest.mark.norce_simulator(products=20)
def test_redirect_of_the_token_request_never_sends_the_secret_elsewhere(
    sim, fault_dag, logs, tmp_path, elsewhere
):
    location = other_origin(elsewhere, "port", "/identity/1.0/connect/token")
    sim.add_fault("token", "redirect", location=location)

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(tmp_path / "skus.jsonl")})

    assert task_states(run) == {"export": "failed"}, out
    assert elsewhere.seen == []  # neither the client secret nor anything else
    assert sim.counters()["token_requests"] == 1 and api_requests(sim) == 0
    assert "Norce connection 'norce_default'" in out and "redirect (307)" in out and location in out
    assert_no_token_in(out, sim)


# -- 429 storms on the token endpoint ------------------------------------------------------------------------


def _in_seconds(seconds: int) -> str:
    """An HTTP date ``seconds`` from now, as a ``Retry-After`` may give it."""
    import email.utils

    return email.utils.format_datetime(
        dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds), usegmt=True
    )


@pytest.mark.norce_simulator(products=24, page_size=8)
@pytest.mark.parametrize("retry_after", ["seconds", "http-date"])
def test_token_429_storm_at_the_start_is_waited_out(
    norce_simulator, fault_dag, logs, tmp_path, monkeypatch, retry_after
):
    sim = norce_simulator.sim
    set_connection(monkeypatch, sim, max_attempts=5, max_retry_wait=20, timeout=5)
    wait = "1" if retry_after == "seconds" else _in_seconds(2)
    sim.add_fault("token", "429", count=3, retry_after=wait)
    destination = tmp_path / "skus.jsonl"

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "success"}, out
    assert [row["PartNo"] for row in read_jsonl(destination)] == skus(sim)
    counters = sim.counters()
    assert (counters["token_429"], counters["tokens_issued"], counters["token_requests"]) == (3, 1, 4)
    assert_no_token_in(out, sim)


@pytest.mark.norce_simulator(products=40, page_size=8)
def test_token_429_storm_in_the_middle_of_an_export_is_waited_out(
    norce_simulator, fault_dag, logs, tmp_path, monkeypatch
):
    """The token expires after page 2 and its renewal meets two 429s: the page is asked again once the new
    token is in; every row exactly once."""
    sim = norce_simulator.sim
    set_connection(monkeypatch, sim, max_attempts=5, max_retry_wait=20, timeout=5)

    def expire_into_a_storm() -> None:
        sim.add_fault("token", "429", count=2, retry_after=1)
        sim.expire_tokens()

    after_answers(sim, QUERY, {2: expire_into_a_storm})
    destination = tmp_path / "skus.jsonl"

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "success"}, out
    assert [row["PartNo"] for row in read_jsonl(destination)] == skus(sim)
    counters = sim.counters()
    assert (counters["api_401"], counters["token_429"], counters["tokens_issued"]) == (1, 2, 2)
    assert_no_token_in(out, sim)


@pytest.mark.norce_simulator(products=24, page_size=8)
def test_token_429_without_retry_after_beyond_the_budget_fails_at_once(
    norce_simulator, fault_dag, logs, tmp_path, monkeypatch
):
    """Without ``Retry-After`` the next token slot is 20 s away, beyond a 5 s budget: one token request, then
    an error naming the connection, the token URL and 429, and no file; the next run succeeds."""
    sim = norce_simulator.sim
    set_connection(monkeypatch, sim, max_attempts=5, max_retry_wait=5, timeout=5)
    sim.add_fault("token", "429")
    destination = tmp_path / "skus.jsonl"

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})

    assert task_states(run) == {"export": "failed"}
    assert (sim.counters()["token_requests"], api_requests(sim)) == (1, 0)
    assert "norce_default" in out and "/identity/1.0/connect/token" in out and "429" in out
    assert not destination.exists()
    assert_no_token_in(out, sim)
    sim.clear_faults()
    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})
    assert task_states(run) == {"export": "success"}, out
    assert [row["PartNo"] for row in read_jsonl(destination)] == skus(sim)


@pytest.mark.norce_simulator(products=24, page_size=8)
def test_token_retry_after_beyond_the_budget_is_honoured_by_the_next_run_too(
    norce_simulator, fault_dag, logs, tmp_path, monkeypatch
):
    """Norce asks for 120 s, the budget is 5 s: the task fails at once, naming the connection and 429. A run
    started before Norce's wait is over sends no token request either (the machine store keeps Norce's
    answer) and says why and what to do; once the wait is over a run gets its token (no hand clean-up:
    the store's note simply expires; the no-header test above shows the next run succeeding)."""
    sim = norce_simulator.sim
    set_connection(monkeypatch, sim, max_attempts=5, max_retry_wait=5, timeout=5)
    sim.add_fault("token", "429", count=1, retry_after=120)
    destination = tmp_path / "skus.jsonl"

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})
    assert task_states(run) == {"export": "failed"}
    assert sim.counters()["token_requests"] == 1
    assert "norce_default" in out and "429" in out and "120 s" in out and not destination.exists()

    run, out = run_dag(fault_dag, logs, "token_fault_export", {"destination": str(destination)})
    assert task_states(run) == {"export": "failed"}
    assert sim.counters()["token_requests"] == 1  # Norce's wait is not over: not asked again
    assert "no token request slot within the retry budget" in out and "max_retry_wait" in out
    assert not destination.exists()
    assert_no_token_in(out, sim)
