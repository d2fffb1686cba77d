"""NorceHook against the running simulator: real sockets, real HTTP, no mocks.

Time is shared: the simulator's clock, the hook's token cache and the hook's sleep all use one fake
clock, so 20-second token slots and token expiry are exercised without waiting for them.
"""

from __future__ import annotations

import json

import pytest

from airflow_provider_norce.exceptions import NorceAuthError, NorceRateLimitError
from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.tokens.cache import TokenCache, TokenRequestLimiter

ORDERS = "commerce/query/2.0/Orders/Orders"
CLOCK = FakeClock(start=1_800_000_000.0)


@pytest.fixture
def clock() -> FakeClock:
    return CLOCK


@pytest.fixture(autouse=True)
def _process_cache_only(norce_simulator, monkeypatch):
    """These tests measure the process cache; the machine-wide store has a suite of its own."""
    conn = dict(norce_simulator.connection)
    conn["extra"] = {**conn["extra"], "token_cache": "process"}
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(conn))


@pytest.fixture
def hook(norce_simulator, clock):
    """A hook with its own process cache (so counts start at zero) and the simulator's time."""
    cache = TokenCache(clock=clock, limiter=TokenRequestLimiter(clock=clock))
    return NorceHook(norce_simulator.conn_id, token_cache=cache, sleep=clock.advance)


@pytest.mark.norce_simulator(clock=CLOCK, expires_in=600)
def test_one_token_for_many_calls(norce_simulator, hook, clock):
    for _ in range(200):
        hook.run(ORDERS, params={"$top": "1"})
        clock.advance(2)  # 400 s: within the 600 s lifetime
    counters = norce_simulator.counters()
    assert counters["token_requests"] == 1
    assert counters["requests"]["GET /commerce/query/2.0/Orders/Orders"] == 200


@pytest.mark.norce_simulator(clock=CLOCK, expires_in=2)
def test_short_lived_tokens_are_renewed_before_the_server_refuses_them(norce_simulator, hook, clock):
    for _ in range(10):
        hook.run(ORDERS, params={"$top": "1"})
        clock.advance(1)
    counters = norce_simulator.counters()
    assert counters["api_401"] == 0
    assert counters["token_requests"] >= 5


@pytest.mark.norce_simulator(clock=CLOCK)
def test_401_after_revocation_renews_once(norce_simulator, hook):
    hook.run(ORDERS, params={"$top": "1"})
    norce_simulator.sim.revoke_tokens()
    assert hook.run_json(ORDERS, params={"$top": "1"})["value"]
    counters = norce_simulator.counters()
    assert counters["api_401"] == 1
    assert counters["token_requests"] == 2


@pytest.mark.norce_simulator(clock=CLOCK, token_burst=1, retry_after=False)
def test_token_429_without_retry_after_waits_for_the_next_slot(norce_simulator, hook, clock):
    hook.get_access_token()
    norce_simulator.sim.revoke_tokens()
    before = clock()
    hook.token_cache.limiter.tat = 0  # our limiter thinks a slot is free: Norce has the last word
    hook.run(ORDERS, params={"$top": "1"})  # 401 -> new token -> 429 (no Retry-After) -> wait 20 s -> token
    counters = norce_simulator.counters()
    assert counters["token_429"] == 1
    assert counters["tokens_issued"] == 2
    assert clock() - before >= 20


@pytest.mark.norce_simulator(clock=CLOCK, token_burst=1, retry_after=True)
def test_token_429_with_retry_after_waits_as_told(norce_simulator, hook, clock):
    hook.get_access_token()
    norce_simulator.sim.revoke_tokens()
    hook.token_cache.limiter.tat = 0
    before = clock()
    hook.run(ORDERS, params={"$top": "1"})
    assert norce_simulator.counters()["token_429"] == 1
    assert 19 <= clock() - before <= 25


@pytest.mark.norce_simulator(clock=CLOCK)
@pytest.mark.parametrize("retry_after", [3, None])
def test_api_429_with_and_without_retry_after(norce_simulator, hook, clock, retry_after):
    norce_simulator.sim.add_fault("query", "429", count=2, retry_after=retry_after)
    before = clock()
    assert "value" in hook.run_json(ORDERS, params={"$top": "1"})
    assert norce_simulator.counters()["api_429"] == 2
    waited = clock() - before
    assert waited == 6 if retry_after else waited > 0


@pytest.mark.norce_simulator(clock=CLOCK)
def test_rate_limit_error_when_429_persists(norce_simulator, clock):
    cache = TokenCache(clock=clock, limiter=TokenRequestLimiter(clock=clock))
    hook = NorceHook(norce_simulator.conn_id, token_cache=cache, sleep=clock.advance, max_retry_wait=10)
    norce_simulator.sim.add_fault("query", "429", retry_after=4)
    with pytest.raises(NorceRateLimitError, match="gave up after 3 attempts"):
        hook.run(ORDERS)


@pytest.mark.norce_simulator(clock=CLOCK)
@pytest.mark.parametrize("kind", ["500", "503", "drop", "truncated"])
def test_transient_faults_on_pages_are_retried(norce_simulator, hook, kind):
    norce_simulator.sim.add_fault("query", kind, count=1)
    items = list(hook.paginate(ORDERS, params={"$top": "600"}))
    assert len(items) == 600


@pytest.mark.norce_simulator(clock=CLOCK)
def test_import_post_is_not_repeated_after_a_500_that_was_processed(norce_simulator, hook):
    from airflow_provider_norce.exceptions import NorceAPIError

    norce_simulator.sim.add_fault("connect", "500", count=1, after_processing=True)
    with pytest.raises(NorceAPIError):
        hook.run(
            "commerce/connect/4.0/Product/ImportOnhands",
            method="POST",
            json=[{"PartNo": "X", "WarehouseCode": "W", "OnhandValue": 1}],
            headers={"X-StormConnect-Header": '{"AccountId": 1, "FullFile": false}'},
        )
    assert norce_simulator.counters()["jobs_created"] == 1


@pytest.mark.norce_simulator(orders=100_000)
def test_paging_100000_orders(norce_simulator):
    hook = NorceHook(norce_simulator.conn_id, token_cache=TokenCache())
    pages = 0
    seen: set[int] = set()
    for page in hook.paginate_pages(ORDERS, params={"$select": "Id,Updated"}):
        pages += 1
        seen.update(order["Id"] for order in page)
    assert len(seen) == 100_000
    assert pages == 200
    assert norce_simulator.counters()["token_requests"] == 1


@pytest.mark.norce_simulator(client_secret="the-real-secret")
def test_wrong_secret_is_refused_once(norce_simulator, monkeypatch):
    conn = dict(norce_simulator.connection, password="a-wrong-secret")
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_WRONG", json.dumps(conn))
    with pytest.raises(NorceAuthError, match="invalid_client") as info:
        NorceHook("norce_wrong", token_cache=TokenCache()).get_access_token()
    assert "a-wrong-secret" not in str(info.value)
    assert norce_simulator.counters()["token_requests"] == 1


@pytest.mark.norce_simulator()
def test_test_connection_against_simulator(norce_simulator):
    ok, message = NorceHook(norce_simulator.conn_id, token_cache=TokenCache()).test_connection()
    assert ok, message
    assert "1234" in message
