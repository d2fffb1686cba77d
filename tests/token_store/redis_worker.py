"""A task process for the Redis token-store tests: run as a script, one per simulated Airflow task.

Protocol (as ``token_store_worker.py``): prints ``ready`` once set up, waits for a line on stdin, does
its job, prints one JSON line. Its Norce connection is ``AIRFLOW_CONN_NORCE_DEFAULT`` and its machine
store ``NORCE_TOKEN_CACHE_DIR`` (so two workers with two directories are two machines). Every JSON
result counts the fallback warnings this process logged.

Modes:

* ``hook``: ``NorceHook("norce_default")`` makes one API call (what a task does).
* ``twice``: a token need, ``first`` printed, a line awaited (the test stops Redis meanwhile), then
  the process cache is emptied and a token is needed again, twice (new task, same process).
* ``hold``: takes the key's lock through the hook's shared store, prints ``locked`` and sleeps (SIGKILLed).
* ``slow-fetch``: fetches through the hook's shared store but prints ``fetching`` inside the lock and
  waits for a line before sending the token request (the test stops Redis meanwhile).
* ``reserve T N``: ``N`` token-request reservations with ``max_wait=0`` against the cluster limiter, on
  a clock frozen at ``T``; prints how many were granted at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time

FALLBACK_WORDS = ("Norce token store", "Redis", "falling back")


class Warnings(logging.Handler):
    """Every warning this process logs, so the test can count the fallback ones."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def fallback_count(self) -> int:
        return sum(all(word in m for word in FALLBACK_WORDS) for m in self.messages)


WARNINGS = Warnings()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _report(**fields: object) -> dict[str, object]:
    return {**fields, "fallback_warnings": WARNINGS.fallback_count(), "warnings": WARNINGS.messages}


def hook() -> dict[str, object]:
    from airflow_provider_norce.hooks.norce import NorceHook

    norce = NorceHook("norce_default")
    print("ready", flush=True)
    sys.stdin.readline()
    app = norce.run_json("commerce/metadata/1.1/GetApplication")
    return _report(ok=True, app=app.get("Id"), token=_digest(norce.get_access_token()),
                   store=type(norce.shared_store).__name__)  # fmt: skip


def twice() -> dict[str, object]:
    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

    print("ready", flush=True)
    sys.stdin.readline()
    first = NorceHook("norce_default").get_access_token()
    print("first", flush=True)
    sys.stdin.readline()
    later = []
    for _ in range(2):
        PROCESS_TOKEN_CACHE.clear()  # a new task in this worker process
        norce = NorceHook("norce_default")
        norce.run_json("commerce/metadata/1.1/GetApplication")
        later.append(_digest(norce.get_access_token()))
    return _report(ok=True, first=_digest(first), later=later)


def hold() -> dict[str, object]:
    from airflow_provider_norce.hooks.norce import NorceHook

    norce = NorceHook("norce_default")
    print("ready", flush=True)
    sys.stdin.readline()
    with norce.shared_store.locked(norce._token_key):
        print("locked", flush=True)
        time.sleep(3600)
    return _report(ok=False)


def slow_fetch() -> dict[str, object]:
    from airflow_provider_norce.hooks.norce import NorceHook

    norce = NorceHook("norce_default")
    real_fetch = norce._fetch_token

    def fetch(reserve, note_rate_limited, scope):
        print("fetching", flush=True)
        sys.stdin.readline()
        return real_fetch(reserve, note_rate_limited, scope)

    norce._fetch_token = fetch  # the hook's own fetch, only held back until the test says go
    print("ready", flush=True)
    sys.stdin.readline()
    app = norce.run_json("commerce/metadata/1.1/GetApplication")
    return _report(ok=True, app=app.get("Id"), token=_digest(norce.get_access_token()))


def reserve(frozen_at: str, count: str) -> dict[str, object]:
    import redis

    from airflow_provider_norce.tokens.redis_store import RedisTokenStore

    url, burst = sys.argv[4], int(sys.argv[5])
    store = RedisTokenStore(redis.Redis.from_url(url), "secret", burst=burst, rate_per_minute=3,
                            clock=lambda: float(frozen_at))  # fmt: skip
    print("ready", flush=True)
    sys.stdin.readline()
    granted = [store.reserve_token_request(0.0) for _ in range(int(count))]
    return _report(ok=True, immediate=sum(w == 0.0 for w in granted), refused=granted.count(None))


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode != "reserve":
        import airflow_provider_norce.hooks.norce  # noqa: F401 - Airflow configures logging on import
    ours = logging.getLogger("airflow_provider_norce")
    ours.addHandler(WARNINGS)
    ours.setLevel(logging.INFO)
    modes = {"hook": hook, "twice": twice, "hold": hold, "slow-fetch": slow_fetch, "reserve": reserve}
    if mode not in modes:
        raise SystemExit(f"unknown mode {mode!r}")
    result = modes[mode](*args[:2]) if mode == "reserve" else modes[mode]()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
