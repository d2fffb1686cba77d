"""Fixtures for wire-level tests of the hook against requests-mock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest
from norce_wire import SECRET, WIRE_EPOCH

from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.tokens.cache import TokenCache


@pytest.fixture
def clock() -> FakeClock:
    """The token cache's wall clock and the hook's sleep: every wait is recorded in ``clock.sleeps``."""
    return FakeClock(start=WIRE_EPOCH)


@pytest.fixture
def async_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """``asyncio.sleep`` returns at once and records its wait here (the async client's retry waits)."""
    waits: list[float] = []

    async def recorded_sleep(seconds: float, *args: object, **kwargs: object) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    return waits


@pytest.fixture
def token_cache(clock: FakeClock) -> TokenCache:
    return TokenCache(clock=clock)


@pytest.fixture
def set_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Define a connection through Airflow's environment-variable JSON form."""

    def _set(conn_id: str = "norce_default", **fields: object) -> None:
        conn = {
            "conn_type": "norce",
            "host": "acme",
            "login": "client-1",
            "password": SECRET,
            "extra": {"application_id": "42", "token_cache": "process"},
        }
        extra = fields.pop("extra", None)
        conn.update(fields)
        if extra is not None:
            conn["extra"] = {**conn["extra"], **extra}  # type: ignore[dict-item]
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    _set()
    return _set


@pytest.fixture
def hook_factory(
    token_cache: TokenCache, clock: FakeClock, set_conn: Callable[..., None]
) -> Iterator[Callable[..., object]]:
    from airflow_provider_norce.hooks.norce import NorceHook

    def make(**kwargs: object) -> NorceHook:
        kwargs.setdefault("token_cache", token_cache)
        kwargs.setdefault("sleep", clock.sleep)
        return NorceHook(**kwargs)  # type: ignore[arg-type]

    yield make


@pytest.fixture(autouse=True)
def _forget_working_scopes() -> Iterator[None]:
    """Each test starts without a remembered production-scope spelling (it is process-wide state)."""
    from airflow_provider_norce.tokens.cache import WORKING_SCOPES

    WORKING_SCOPES.clear()
    yield
    WORKING_SCOPES.clear()
