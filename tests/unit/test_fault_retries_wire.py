"""Issue 9, cases 3 and 11: retries do not nest, and the token endpoint's Retry-After is the authority.

Wire tests against requests-mock with the fake clock: they assert the waits the hook asked for
(``clock.sleeps``), never wall time.
"""

from __future__ import annotations

import logging

import pytest
import requests
from norce_wire import BASE, SECRET, TOKEN_URL, async_get_json, token_body

from airflow_provider_norce.exceptions import NorceAPIError, NorceAuthError
from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.tokens.cache import TokenRequestLimiter

ORDERS = f"{BASE}/commerce/query/2.0/Orders/Orders"
ENDPOINT = "commerce/query/2.0/Orders/Orders"


# -- case 3: a failing token endpoint costs at most max_attempts token requests per call ------------


@pytest.mark.parametrize("status", [503, 429])
def test_failing_token_endpoint_costs_max_attempts_token_requests(
    requests_mock, hook_factory, clock, caplog, status
):
    token = requests_mock.post(TOKEN_URL, status_code=status, headers={"Retry-After": "3"})
    api = requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()
    with (
        caplog.at_level(logging.WARNING, logger="airflow_provider_norce"),
        pytest.raises(NorceAPIError) as info,
    ):
        hook.run(ENDPOINT)
    assert token.call_count == 6  # max_attempts, not 6 x 6
    assert api.call_count == 0
    assert info.value.status_code == status
    assert "gave up after 6 attempts" in str(info.value)
    assert "Norce connection 'norce_default': no access token from" in str(info.value)
    assert "the task's retry asks again" in str(info.value)
    assert SECRET not in str(info.value)
    # The waits of one retry sequence, not one per API attempt.
    assert len(clock.sleeps) <= 2 * 5
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert [f"attempt {n} of 6" in line for n, line in enumerate(retries, 1)] == [True] * 5
    assert all(TOKEN_URL in line for line in retries)  # every retry line is the token request's


def test_failing_token_endpoint_waits_are_not_multiplied(requests_mock, hook_factory, clock):
    requests_mock.post(TOKEN_URL, status_code=503)
    hook = hook_factory()
    with pytest.raises(NorceAPIError):
        hook.run(ENDPOINT)
    assert len(clock.sleeps) == 5  # one backoff sequence of the token request, then the call ends


def test_unreachable_token_endpoint_is_not_retried_per_api_attempt(requests_mock, hook_factory, clock):
    token = requests_mock.post(TOKEN_URL, exc=requests.exceptions.ConnectionError("refused"))
    with pytest.raises(NorceAPIError) as info:
        hook_factory().run(ENDPOINT)
    assert token.call_count == 6
    assert info.value.status_code is None
    assert info.value.retryable  # still says the request never reached Norce (callers read it)
    assert "norce_default" in str(info.value)


def test_token_failure_ends_a_post_at_once(requests_mock, hook_factory, clock):
    token = requests_mock.post(TOKEN_URL, status_code=503)
    imports = requests_mock.post(f"{BASE}/commerce/connect/4.0/Product/ImportProducts", json={"JobId": "7"})
    with pytest.raises(NorceAPIError):
        hook_factory().run("commerce/connect/4.0/Product/ImportProducts", method="POST", json=[])
    assert token.call_count == 6
    assert imports.call_count == 0


def test_token_failure_after_an_api_retry_is_not_retried(requests_mock, hook_factory, clock):
    # The first token lives 60 s; the API answers 429 and asks the retry to wait past its expiry.
    token = requests_mock.post(TOKEN_URL, [{"json": token_body(expires_in=60)}] + [{"status_code": 503}] * 10)
    api = requests_mock.get(
        ORDERS, [{"status_code": 429, "headers": {"Retry-After": "120"}}, {"json": {"value": []}}]
    )
    with pytest.raises(NorceAPIError) as info:
        hook_factory().run(ENDPOINT)
    assert api.call_count == 1
    assert token.call_count == 1 + 6
    assert info.value.url == TOKEN_URL


def test_refused_credentials_are_asked_once_per_call(requests_mock, hook_factory):
    token = requests_mock.post(TOKEN_URL, status_code=400, json={"error": "invalid_client"})
    with pytest.raises(NorceAuthError, match="norce_default"):
        hook_factory().run(ENDPOINT)
    assert token.call_count == 1


def test_async_client_does_not_retry_a_token_failure(requests_mock, hook_factory, async_sleeps):
    import httpx

    token = requests_mock.post(TOKEN_URL, status_code=503)
    api_calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        api_calls.append(request)
        return httpx.Response(200, json={"value": []})

    with pytest.raises(NorceAPIError) as info:
        async_get_json(hook_factory(), answer, ORDERS)
    assert token.call_count == 6
    assert api_calls == []
    assert async_sleeps == []  # the async retry loop did not wait to repeat the token failure
    assert "gave up after 6 attempts" in str(info.value)


# -- case 11: Retry-After on the token endpoint is Norce's word, in both directions ----------------


def test_token_retry_after_shorter_than_the_slot_is_honoured(requests_mock, hook_factory, clock):
    token = requests_mock.post(
        TOKEN_URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "4"}},
            {"status_code": 429, "headers": {"Retry-After": "1"}},
            {"json": token_body()},
        ],
    )
    assert hook_factory().get_access_token() == "tok-1"
    assert token.call_count == 3
    assert clock.sleeps == [4.0, 1.0]  # not 4 + 20: the limiter adds no slot of its own on top


def test_token_retry_after_longer_than_the_slot_is_honoured(requests_mock, hook_factory, clock):
    token = requests_mock.post(
        TOKEN_URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "45"}},
            {"status_code": 429, "headers": {"Retry-After": "30"}},
            {"json": token_body()},
        ],
    )
    assert hook_factory().get_access_token() == "tok-1"
    assert token.call_count == 3
    assert clock.sleeps == [45.0, 30.0]


def test_token_429_without_retry_after_keeps_the_limiter_slot(requests_mock, hook_factory, clock):
    token = requests_mock.post(
        TOKEN_URL, [{"status_code": 429}, {"status_code": 429}, {"json": token_body()}]
    )
    assert hook_factory().get_access_token() == "tok-1"
    assert token.call_count == 3
    assert len(clock.sleeps) == 2
    assert all(wait >= 20.0 for wait in clock.sleeps)


def test_machine_store_honours_a_shorter_token_retry_after(requests_mock, set_conn, tmp_path, clock):
    from airflow_provider_norce.tokens.machine_store import FileTokenStore

    store = FileTokenStore(tmp_path / "store", clock=clock)
    store.reserve_token_request(0.0)
    store.note_rate_limited(4.0)
    clock.sleep(4.0)
    assert store.reserve_token_request(300.0) == 0.0
    store.note_rate_limited(1.0)
    clock.sleep(1.0)
    assert store.reserve_token_request(300.0) == 0.0


def test_limiter_gives_the_refused_slot_back_but_not_others_slots():
    clock = FakeClock()
    limiter = TokenRequestLimiter(burst=20, rate_per_minute=3, clock=clock)
    waits = [limiter.reserve(10_000.0) for _ in range(22)]  # 20 at once, then two queued slots
    assert waits[:20] == [0.0] * 20
    assert waits[20:] == [20.0, 40.0]
    limiter.note_rate_limited(1.0)  # the last of them was refused; Norce says 1 s
    # The queued slot that other callers hold stays theirs; the refused one is given back.
    assert limiter.reserve(10_000.0) == 40.0


def test_limiter_fan_out_still_keeps_to_the_slots():
    clock = FakeClock()
    limiter = TokenRequestLimiter(burst=20, rate_per_minute=3, clock=clock)
    waits = [limiter.reserve(10_000.0) for _ in range(40)]
    assert waits == [0.0] * 20 + [20.0 * n for n in range(1, 21)]
