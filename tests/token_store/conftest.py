"""Fixtures of the token-store tests: a real ``redis-server`` per module, and a private one per test."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from redis_testlib import RedisServer


def _skip_without_redis() -> None:
    from redis_testlib import redis_server_binary

    if importlib.util.find_spec("redis") is None:
        pytest.skip("the Python package redis is not installed (pip install 'airflow-provider-norce[redis]')")
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (bash .ci/os-packages installs it)")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` shared by the tests of one module (emptied before each: see ``redis_db``)."""
    from redis_testlib import RedisServer

    _skip_without_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> RedisServer:
    """The module's Redis, running and empty."""
    if redis_server.proc is None:
        redis_server.start()
    redis_server.client().flushall()
    return redis_server


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A ``redis-server`` of this test alone, for tests that stop and restart it."""
    from redis_testlib import RedisServer

    _skip_without_redis()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_token_state() -> Iterator[None]:
    """An empty process token cache, no remembered scopes, no Redis stores or warnings of earlier tests."""
    from airflow_provider_norce.tokens import fallback, store
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE, WORKING_SCOPES

    def clear() -> None:
        PROCESS_TOKEN_CACHE.clear()
        WORKING_SCOPES.clear()
        store._redis_stores.clear()
        fallback._warned.clear()

    clear()
    yield
    clear()
