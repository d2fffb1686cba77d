"""A token store of your own, registered as an ``auth_cache`` kind.

A store shared by every worker of a cluster (Redis, the Airflow metadata database) implements the six methods
of ``SharedTokenStore``. This one keeps tokens in a dict of this process: it shows the protocol and runs in
a test; a real store keeps the same data in a service every worker reaches, with a lock that is exclusive
across workers. ``tests/docs/test_examples_b.py`` runs :func:`main`; docs/tokens.md shows the marked parts.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.simulator import NorceSimulator
from airflow_provider_norce.tokens.cache import Token, TokenCache, TokenRequestLimiter

if TYPE_CHECKING:
    from collections.abc import Iterator


# [START tok_custom_store]
class DictTokenStore:
    """Tokens by key, one lock per key, and one limiter shaped like Norce's token limit for the store."""

    def __init__(self) -> None:
        self.tokens: dict[str, Token] = {}
        self.limiter = TokenRequestLimiter(burst=20, rate_per_minute=3)  # Norce: 20 at once, then 3 a minute
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def load(self, key: str) -> Token | None:
        return self.tokens.get(key)  # a Redis store: GET key, Token.from_json(...)

    def save(self, key: str, token: Token) -> None:
        self.tokens[key] = token  # a Redis store: SET key token.to_json() PX <the token's lifetime>

    def discard(self, key: str, access_token: str) -> None:
        """Norce refused this token (401): forget it, unless another process already replaced it."""
        if (held := self.tokens.get(key)) is not None and held.access_token == access_token:
            del self.tokens[key]

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Held while one caller fetches the token for ``key``; the others wait, then read its result."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # a Redis store: SET lock:key NX PX, released in a finally
            yield

    def reserve_token_request(self, max_wait: float) -> float | None:
        """Seconds to wait before the next token request may go, or None when that is beyond ``max_wait``."""
        return self.limiter.reserve(max_wait)

    def note_rate_limited(self, retry_after: float | None) -> None:
        """Norce answered 429: no token request before it said (or a slot later, without Retry-After)."""
        self.limiter.note_rate_limited(retry_after)


# [END tok_custom_store]


def main() -> dict[str, Any]:
    """Register the store, then read a token through two hooks that share nothing but the store."""
    # [START tok_register_store]
    from airflow_provider_norce.tokens.store import register_token_store

    shared = DictTokenStore()
    register_token_store("dict", lambda: shared)  # in a module every worker imports, before any task runs
    # [END tok_register_store]
    with NorceSimulator() as sim:
        connection = sim.connection_dict()
        connection["extra"]["auth_cache"] = "dict"  # the kind registered above
        os.environ["AIRFLOW_CONN_NORCE_DEFAULT"] = json.dumps(connection)
        # Two hooks with process caches of their own: as two task processes, they meet only in the store.
        first = NorceHook("norce_default", token_cache=TokenCache()).get_access_token()
        second = NorceHook("norce_default", token_cache=TokenCache()).get_access_token()
        sim.revoke_tokens()  # the next call is answered 401: the store discards the token, a new one is saved
        NorceHook("norce_default", token_cache=TokenCache()).run_json("commerce/metadata/1.1/GetApplication")
        (renewed,) = shared.tokens.values()
        return {
            "same_token": first == second,
            "renewed": renewed.access_token != first,
            "token_requests": sim.counters()["token_requests"],
        }


if __name__ == "__main__":
    print(json.dumps(main()))
