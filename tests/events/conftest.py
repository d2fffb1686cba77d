"""Fixtures of the order-watch tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def hook(norce_simulator: Any) -> Any:
    """A NorceHook on the test's simulator (a fresh process token cache for this test)."""
    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

    PROCESS_TOKEN_CACHE.clear()
    return NorceHook(norce_simulator.conn_id)


@pytest.fixture
def orders_url(hook: Any) -> str:
    return hook.service_url("query") + "Orders/Orders"


@pytest.fixture
def fresh_store() -> Iterator[Any]:
    """A new in-memory Variable store for :class:`events_support.StoredTrigger` in this test."""
    from events_support import MemoryVariables, StoredTrigger

    StoredTrigger.store = MemoryVariables()
    yield StoredTrigger.store
