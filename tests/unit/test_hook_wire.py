"""NorceHook's exact wire behaviour, against requests-mock (no network, fake clock and sleep)."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from email.utils import formatdate
from urllib.parse import parse_qs

import pytest
import requests
from norce_wire import BASE, SECRET, TOKEN_URL, token_body

from airflow_provider_norce.exceptions import NorceAPIError, NorceAuthError, NorceError, NorceRateLimitError
from airflow_provider_norce.tokens.cache import TokenCache

ORDERS = f"{BASE}/commerce/query/2.0/Orders/Orders"
#: Seconds after which a wait that should end at once is a hang: it bounds, it never decides a pass.
HANG_BOUND = 60.0


def test_token_request_follows_the_norce_page(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body("tok-a"))
    requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()

    hook.run("commerce/query/2.0/Orders/Orders")

    token_req = requests_mock.request_history[0]
    assert token_req.method == "POST"
    assert token_req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_req.text) == {
        "grant_type": ["client_credentials"],
        "client_id": ["client-1"],
        "client_secret": [SECRET],
        "scope": ["prod"],
    }
    assert "Authorization" not in token_req.headers
    assert "ApplicationId" not in token_req.headers
    api_req = requests_mock.request_history[1]
    assert api_req.headers["Authorization"] == "Bearer tok-a"
    assert api_req.headers["ApplicationId"] == "42"


def test_one_token_request_for_a_thousand_calls(requests_mock, hook_factory, clock):
    token = requests_mock.post(TOKEN_URL, json=token_body(expires_in=600))
    api = requests_mock.get(ORDERS, json={"value": []})
    hooks = [hook_factory(), hook_factory()]  # instances in one process share the cache

    for i in range(1000):
        hooks[i % 2].run("commerce/query/2.0/Orders/Orders")
        clock.advance(0.5)  # 500 s in all: still inside the 600 s lifetime

    assert token.call_count == 1
    assert api.call_count == 1000


@pytest.mark.parametrize("expires_in", [600, 2])
def test_token_renewed_after_expiry(requests_mock, hook_factory, clock, expires_in):
    token = requests_mock.post(
        TOKEN_URL, [{"json": token_body("t1", expires_in)}, {"json": token_body("t2", expires_in)}]
    )
    api = requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()

    hook.run("commerce/query/2.0/Orders/Orders")
    clock.advance(expires_in * 0.5)
    hook.run("commerce/query/2.0/Orders/Orders")
    assert token.call_count == 1
    clock.advance(expires_in * 0.5)  # at expiry: must not send the old token
    hook.run("commerce/query/2.0/Orders/Orders")

    assert token.call_count == 2
    assert api.request_history[-1].headers["Authorization"] == "Bearer t2"


def test_lifetime_falls_back_to_jwt_exp_then_default(requests_mock, hook_factory, clock):
    import base64
    import json

    claims = base64.urlsafe_b64encode(json.dumps({"exp": clock.now + 100}).encode()).decode().rstrip("=")
    jwt = f"eyAiYWxnIjogIm5vbmUiIH0.{claims}.sig"
    requests_mock.post(TOKEN_URL, [{"json": token_body(jwt, None)}, {"json": token_body("t2", None)}])
    requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()
    hook.run("commerce/query/2.0/Orders/Orders")
    clock.advance(85)
    hook.run("commerce/query/2.0/Orders/Orders")
    assert requests_mock.call_count == 3  # still the JWT's token
    clock.advance(10)  # within the last 10 % of its 100 s: renewed
    hook.run("commerce/query/2.0/Orders/Orders")
    assert requests_mock.request_history[-1].headers["Authorization"] == "Bearer t2"


def _blocked_on_the_token_key(threads: list[threading.Thread]) -> list[threading.Thread]:
    """The threads whose innermost Python frame is the token cache's per-key lock (blocked on it)."""
    waiting_code = TokenCache._key_lock.__wrapped__.__code__  # type: ignore[attr-defined]
    frames = sys._current_frames()
    return [
        t
        for t in threads
        if (frame := frames.get(t.ident or -1)) is not None and frame.f_code is waiting_code
    ]


def test_sixteen_threads_share_one_token_request(requests_mock, hook_factory):
    """Single flight: the first fetch is held until the 15 other threads are proven blocked on the key.

    No sleep decides it: the fake token endpoint waits (bounded only against a hang) until every other
    thread's innermost frame is the cache's per-key lock, then answers; all 16 must get that one token.
    """
    threads: list[threading.Thread] = []

    def token_when_all_wait(request, context):
        others = [t for t in threads if t.ident != threading.get_ident()]
        deadline = time.monotonic() + HANG_BOUND
        while len(_blocked_on_the_token_key(others)) < len(others):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"only {len(_blocked_on_the_token_key(others))} of {len(others)} threads queued on the "
                    f"token key within {HANG_BOUND:.0f} s"
                )
            time.sleep(0.001)
        return token_body("shared")

    token = requests_mock.post(TOKEN_URL, json=token_when_all_wait)
    hook = hook_factory()
    barrier = threading.Barrier(16)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait()
            tokens.append(hook.get_access_token())
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads.extend(threading.Thread(target=call) for _ in range(16))
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_BOUND)
    assert not errors
    assert not [t for t in threads if t.is_alive()]
    assert token.call_count == 1
    assert tokens == ["shared"] * 16


def test_401_renews_the_token_and_repeats_once(requests_mock, hook_factory):
    token = requests_mock.post(TOKEN_URL, [{"json": token_body("old")}, {"json": token_body("new")}])
    api = requests_mock.get(ORDERS, [{"status_code": 401}, {"json": {"value": [1]}}])
    hook = hook_factory()

    assert hook.run("commerce/query/2.0/Orders/Orders").json() == {"value": [1]}

    assert token.call_count == 2
    assert [r.headers["Authorization"] for r in api.request_history] == ["Bearer old", "Bearer new"]


def test_second_401_is_a_credential_error(requests_mock, hook_factory):
    token = requests_mock.post(TOKEN_URL, [{"json": token_body("a")}, {"json": token_body("b")}])
    api = requests_mock.get(ORDERS, status_code=401)
    hook = hook_factory()
    with pytest.raises(NorceAuthError, match="norce_default"):
        hook.run("commerce/query/2.0/Orders/Orders")
    assert token.call_count == 2
    assert api.call_count == 2


def test_retry_after_seconds_is_honoured(requests_mock, hook_factory, clock):
    requests_mock.post(TOKEN_URL, json=token_body())
    api = requests_mock.get(
        ORDERS, [{"status_code": 429, "headers": {"Retry-After": "2"}}, {"json": {"value": []}}]
    )
    hook = hook_factory()
    hook.run("commerce/query/2.0/Orders/Orders")
    assert api.call_count == 2
    assert clock.sleeps == [2.0]


def test_retry_after_http_date_is_honoured(requests_mock, hook_factory, clock):
    requests_mock.post(TOKEN_URL, json=token_body())
    when = formatdate(time.time() + 120, usegmt=True)  # the hook reads an HTTP date by the real clock
    api = requests_mock.get(
        ORDERS, [{"status_code": 429, "headers": {"Retry-After": when}}, {"json": {"value": []}}]
    )
    hook = hook_factory()
    hook.run("commerce/query/2.0/Orders/Orders")
    assert api.call_count == 2
    (wait,) = clock.sleeps
    assert 60.0 <= wait <= 120.0  # one-second resolution, and a minute's slack for a slow machine


def test_429_without_retry_after_backs_off_exponentially(requests_mock, hook_factory, clock):
    requests_mock.post(TOKEN_URL, json=token_body())
    api = requests_mock.get(ORDERS, [{"status_code": 429}] * 3 + [{"json": {"value": []}}])
    hook = hook_factory()
    hook.run("commerce/query/2.0/Orders/Orders")
    assert api.call_count == 4
    assert len(clock.sleeps) == 3
    assert clock.sleeps[0] < clock.sleeps[2]


def test_token_endpoint_429_waits_for_the_next_slot(requests_mock, hook_factory, clock):
    token = requests_mock.post(TOKEN_URL, [{"status_code": 429}, {"json": token_body()}])
    hook = hook_factory()
    assert hook.get_access_token() == "tok-1"
    assert token.call_count == 2
    assert sum(clock.sleeps) >= 20.0


def test_rate_limit_error_when_budget_is_spent(requests_mock, hook_factory, clock):
    requests_mock.post(TOKEN_URL, json=token_body())
    api = requests_mock.get(ORDERS, status_code=429, headers={"Retry-After": "50"})
    hook = hook_factory(max_retry_wait=120)
    with pytest.raises(NorceRateLimitError) as info:
        hook.run("commerce/query/2.0/Orders/Orders")
    assert api.call_count == 3  # waits 50 + 50; a third wait would overrun 120 s and is not started
    assert clock.sleeps == [50.0, 50.0]
    assert info.value.status_code == 429
    assert "gave up after 3 attempts" in str(info.value)


def test_invalid_client_is_sent_once_and_never_retried(requests_mock, hook_factory, clock):
    token = requests_mock.post(
        TOKEN_URL, status_code=401, json={"error": "invalid_client", "error_description": "bad secret"}
    )
    hook = hook_factory()
    with pytest.raises(NorceAuthError) as info:
        hook.get_access_token()
    assert token.call_count == 1
    assert clock.sleeps == []
    message = str(info.value)
    assert "invalid_client" in message and "norce_default" in message and "client-1" in message
    assert SECRET not in message and SECRET not in repr(info.value)


def test_invalid_scope_names_the_other_spellings(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, status_code=400, json={"error": "invalid_scope"})
    with pytest.raises(NorceAuthError, match="'prod'"):
        hook_factory().get_access_token()


def test_post_is_not_repeated_after_a_500(requests_mock, hook_factory, clock):
    requests_mock.post(TOKEN_URL, json=token_body())
    imp = requests_mock.post(
        f"{BASE}/commerce/connect/4.0/Product/ImportOnhands", status_code=500, text="boom"
    )
    hook = hook_factory()
    with pytest.raises(NorceAPIError) as info:
        hook.run("commerce/connect/4.0/Product/ImportOnhands", method="POST", json=[{"PartNo": "1"}])
    assert imp.call_count == 1
    assert info.value.status_code == 500 and "boom" in str(info.value)


def test_post_is_repeated_after_429(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body())
    imp = requests_mock.post(
        f"{BASE}/commerce/connect/4.0/Product/ImportOnhands",
        [{"status_code": 429, "headers": {"Retry-After": "1"}}, {"json": {"JobId": "7"}}],
    )
    hook = hook_factory()
    assert hook.run("commerce/connect/4.0/Product/ImportOnhands", method="POST", json=[]).json() == {
        "JobId": "7"
    }
    assert imp.call_count == 2


def test_get_is_retried_after_5xx_and_timeouts(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body())
    api = requests_mock.get(
        ORDERS,
        [
            {"status_code": 503},
            {"exc": requests.exceptions.ReadTimeout},
            {"exc": requests.exceptions.ConnectionError},
            {"json": {"value": [1]}},
        ],
    )
    assert hook_factory().run_json("commerce/query/2.0/Orders/Orders") == {"value": [1]}
    assert api.call_count == 4


def test_post_is_not_repeated_after_a_read_timeout(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body())
    imp = requests_mock.post(
        f"{BASE}/commerce/connect/4.0/Product/ImportOnhands", exc=requests.exceptions.ReadTimeout
    )
    with pytest.raises(NorceAPIError, match="before Norce answered"):
        hook_factory().run("commerce/connect/4.0/Product/ImportOnhands", method="POST", json=[])
    assert imp.call_count == 1


def test_post_is_repeated_when_it_never_left(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body())
    imp = requests_mock.post(
        f"{BASE}/commerce/connect/4.0/Product/ImportOnhands",
        [{"exc": requests.exceptions.ConnectTimeout}, {"json": {"JobId": "1"}}],
    )
    hook_factory().run("commerce/connect/4.0/Product/ImportOnhands", method="POST", json=[])
    assert imp.call_count == 2


def test_other_4xx_fails_at_once_with_status_and_excerpt(requests_mock, hook_factory, clock):
    requests_mock.post(TOKEN_URL, json=token_body())
    api = requests_mock.get(
        ORDERS, status_code=400, json={"error": {"code": "BadFilter", "message": "bad $filter"}}
    )
    with pytest.raises(NorceAPIError) as info:
        hook_factory().run("commerce/query/2.0/Orders/Orders", params={"$filter": "x"})
    assert api.call_count == 1 and clock.sleeps == []
    assert info.value.status_code == 400 and "bad $filter" in info.value.body_excerpt


def test_truncated_json_page_is_retried(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body())
    requests_mock.get(ORDERS, [{"text": '{"value": [{"Id": 1}, {"I'}, {"json": {"value": [{"Id": 1}]}}])
    assert list(hook_factory().paginate("commerce/query/2.0/Orders/Orders")) == [{"Id": 1}]


def test_paginate_follows_next_link(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body())
    requests_mock.get(
        ORDERS,
        [
            {"json": {"value": [{"Id": 1}, {"Id": 2}], "@odata.nextLink": f"{ORDERS}?$skip=2"}},
            {"json": {"value": [{"Id": 3}]}},
        ],
    )
    items = list(hook_factory().paginate("commerce/query/2.0/Orders/Orders", params={"$top": "3"}))
    assert items == [{"Id": 1}, {"Id": 2}, {"Id": 3}]
    assert "skip=2" in requests_mock.request_history[-1].url


def test_token_never_goes_to_another_host(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body())
    requests_mock.get(ORDERS, json={"value": [], "@odata.nextLink": "https://evil.example.com/steal"})
    hook = hook_factory()
    with pytest.raises(
        NorceError, match=re.escape("refusing to send the Norce token to https://evil.example.com")
    ):
        list(hook.paginate("commerce/query/2.0/Orders/Orders"))
    with pytest.raises(NorceError, match="refusing"):
        hook.run("https://evil.example.com/x")
    # a raw session from get_conn() strips the token towards other hosts as well
    other = requests_mock.get("https://other.example.com/x", json={})
    hook.get_conn().get("https://other.example.com/x")
    assert "Authorization" not in other.last_request.headers
    assert all("evil" not in r.url for r in requests_mock.request_history)


def test_get_conn_session_authenticates_itself(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body("sess"))
    api = requests_mock.get(ORDERS, json={})
    session = hook_factory().get_conn()
    assert isinstance(session, requests.Session)
    session.get(ORDERS)
    assert api.last_request.headers["Authorization"] == "Bearer sess"


def test_each_retry_logs_one_warning(requests_mock, hook_factory, caplog):
    requests_mock.post(TOKEN_URL, json=token_body())
    requests_mock.get(ORDERS, [{"status_code": 503}, {"status_code": 503}, {"json": {}}])
    with caplog.at_level(logging.WARNING, logger="airflow_provider_norce"):
        hook_factory().run("commerce/query/2.0/Orders/Orders")
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2
    assert "503" in retries[0] and "attempt 1 of 6" in retries[0]


def test_no_secret_or_token_in_debug_logs(requests_mock, hook_factory, caplog):
    token = "tok-NEVER-LOG-ME-123456"
    requests_mock.post(TOKEN_URL, [{"status_code": 503}, {"json": token_body(token)}])
    requests_mock.get(ORDERS, [{"status_code": 401}, {"json": {}}])
    with caplog.at_level(logging.DEBUG):
        hook = hook_factory()
        hook.run("commerce/query/2.0/Orders/Orders")
    text = caplog.text + repr(hook) + repr(hook.config) + repr(hook.token_cache.peek(hook._token_key))
    assert caplog.records  # urllib3 and the retry warning did log
    assert SECRET not in text
    assert token not in text


def test_nothing_happens_in_init(requests_mock, monkeypatch):
    from airflow_provider_norce.hooks.norce import NorceHook

    monkeypatch.delenv("AIRFLOW_CONN_NORCE_DEFAULT", raising=False)
    hook = NorceHook(norce_conn_id="does_not_exist")  # no look-up, no request
    assert requests_mock.call_count == 0
    assert hook.norce_conn_id == "does_not_exist"
