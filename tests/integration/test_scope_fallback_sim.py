"""The production-scope rule against the simulator's identity endpoint (``allowed_scopes``), for the sync hook
and for the triggerer's async client, which must drive the same rule."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_norce.exceptions import NorceAuthError
from airflow_provider_norce.hooks.async_client import NorceAsyncClient
from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.tokens.cache import WORKING_SCOPES, TokenCache

APPLICATION = "commerce/metadata/1.1/GetApplication"


@pytest.fixture(autouse=True)
def _fresh_process_state(norce_simulator, monkeypatch):
    """No remembered spelling from another test, and no machine-wide store: each test counts its requests."""
    WORKING_SCOPES.clear()
    conn = dict(norce_simulator.connection)
    conn["extra"] = {**conn["extra"], "token_cache": "process"}
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(conn))
    yield
    WORKING_SCOPES.clear()


def set_scope(norce_simulator, monkeypatch, scope: str) -> None:
    conn = dict(norce_simulator.connection)
    conn["extra"] = {**conn["extra"], "token_cache": "process", "scope": scope}
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(conn))


@pytest.mark.parametrize(
    "accepted",
    [
        pytest.param("prod", marks=pytest.mark.norce_simulator(allowed_scopes={"prod"})),
        pytest.param("production", marks=pytest.mark.norce_simulator(allowed_scopes={"production"})),
    ],
)
def test_default_connection_gets_a_token_from_either_spelling(norce_simulator, accepted):
    hook = NorceHook(norce_simulator.conn_id, token_cache=TokenCache())
    application = hook.run_json(APPLICATION)
    assert application["Id"] == norce_simulator.sim.application_id
    assert hook.scope == accepted
    assert norce_simulator.counters()["token_requests"] <= 2
    assert norce_simulator.counters()["tokens_issued"] == 1
    again = NorceHook(norce_simulator.conn_id, token_cache=TokenCache())  # empty cache, same process
    again.get_access_token()
    assert norce_simulator.counters()["token_requests"] <= 3, "the working spelling is asked for directly"


@pytest.mark.norce_simulator(allowed_scopes={"production"})
def test_async_client_drives_the_same_rule(norce_simulator):
    hook = NorceHook(norce_simulator.conn_id, token_cache=TokenCache())

    async def read() -> object:
        async with NorceAsyncClient(hook.config, hook=hook) as client:
            return await client.get_json(hook.service_url("metadata") + "GetApplication")

    assert asyncio.run(read())["Id"] == norce_simulator.sim.application_id
    assert norce_simulator.counters()["token_requests"] == 2
    assert hook.scope == "production"


@pytest.mark.norce_simulator(allowed_scopes={"production"})
def test_explicit_scope_is_not_retried(norce_simulator, monkeypatch):
    set_scope(norce_simulator, monkeypatch, "prod")
    with pytest.raises(NorceAuthError, match=r"invalid_scope.*'production'"):
        NorceHook(norce_simulator.conn_id, token_cache=TokenCache()).get_access_token()
    assert norce_simulator.counters()["token_requests"] == 1


@pytest.mark.norce_simulator(allowed_scopes={"stage"})
def test_neither_spelling_accepted_fails_after_two_requests(norce_simulator):
    ok, message = NorceHook(norce_simulator.conn_id, token_cache=TokenCache()).test_connection()
    assert not ok
    assert "'prod' and 'production'" in message and "extra 'scope'" in message
    assert norce_simulator.counters()["token_requests"] == 2


@pytest.mark.norce_simulator(allowed_scopes={"production"})
def test_the_working_spelling_is_shared_through_the_machine_store(norce_simulator, tmp_path):
    from airflow_provider_norce.tokens.machine_store import FileTokenStore

    store_dir = tmp_path / "tokens"
    store_dir.mkdir(mode=0o700)
    first = NorceHook(
        norce_simulator.conn_id, token_cache=TokenCache(), shared_store=FileTokenStore(store_dir)
    )
    token = first.get_access_token()
    assert norce_simulator.counters()["token_requests"] == 2
    WORKING_SCOPES.clear()  # another task process: no memo, an empty process cache, the same machine store
    second = NorceHook(
        norce_simulator.conn_id, token_cache=TokenCache(), shared_store=FileTokenStore(store_dir)
    )
    assert second.get_access_token() == token
    assert second.scope == "production"
    assert norce_simulator.counters()["token_requests"] == 2, "no request spent on the refused spelling"


@pytest.mark.norce_simulator(allowed_scopes={"production"}, application_name="Webshop SE")
def test_test_connection_reports_the_spelling_that_worked(norce_simulator):
    ok, message = NorceHook(norce_simulator.conn_id, token_cache=TokenCache()).test_connection()
    assert ok, message
    assert "(scope 'production')" in message and "(Webshop SE)" in message
    assert norce_simulator.counters()["token_requests"] == 2
