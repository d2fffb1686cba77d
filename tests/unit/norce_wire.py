"""Shared constants of the wire tests (a plain module, so tests can import it by name).

The fake clock is the package's :class:`~airflow_provider_norce.simulator.clock.FakeClock` (one fake
clock for the simulator and the operator side); the ``clock`` fixture in ``conftest.py`` starts it at
:data:`WIRE_EPOCH`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

BASE = "https://acme.api-se.norce.tech"
TOKEN_URL = f"{BASE}/identity/1.0/connect/token"
SECRET = "s3cr3t-client-secret-value"
#: Where the wire tests' fake clock starts: epoch-like, as it stands in for ``time.time``.
WIRE_EPOCH = 1_800_000_000.0


def token_body(token: str = "tok-1", expires_in: int | None = 600) -> dict[str, object]:
    body: dict[str, object] = {"access_token": token, "token_type": "Bearer", "scope": "production"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return body


def async_get_json(hook: Any, answer: Callable[[Any], Any], url: str) -> Any:
    """``NorceAsyncClient.get_json(url)`` for ``hook``'s connection, answered by ``answer`` (an httpx
    ``MockTransport`` handler); tokens still come through the hook (requests-mock in these tests)."""
    import httpx

    from airflow_provider_norce.hooks.async_client import NorceAsyncClient

    async def call() -> Any:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        try:
            async with NorceAsyncClient(hook.config, hook=hook, client=client) as norce:
                return await norce.get_json(url)
        finally:
            await client.aclose()

    return asyncio.run(call())
