"""Traffic counters, so tests can assert on what a client really sent (token reuse, retries, no re-posts)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

#: ``query_rows`` sums the rows of every Query answer served (pages and single entities, faulted ones too):
#: benchmarks and tests count the rows a client re-read after a retry with it. ``query_empty_pages`` counts the
#: empty pages the misbehaving-Query switches served (:mod:`.query_behaviour`).
_NAMES = (
    "token_requests",
    "tokens_issued",
    "token_429",
    "api_429",
    "api_401",
    "jobs_created",
    "query_rows",
    "query_empty_pages",
)


class Counters:
    """Thread-safe counters; :meth:`snapshot` returns plain JSON-able data."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()

    def incr(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (one of the documented names)."""
        with self._lock:
            self._values[name] += amount

    def record_request(self, method: str, path: str) -> None:
        """Count one request as ``"METHOD /path"`` (query string already removed)."""
        with self._lock:
            self._requests[f"{method} {path}"] += 1

    def snapshot(self) -> dict[str, Any]:
        """``token_requests, tokens_issued, token_429, api_429, api_401, jobs_created, query_rows,
        query_empty_pages`` and ``requests``."""
        with self._lock:
            data: dict[str, Any] = {name: self._values[name] for name in _NAMES}
            data["requests"] = dict(self._requests)
            return data

    def reset(self) -> None:
        """Zero everything."""
        with self._lock:
            self._values.clear()
            self._requests.clear()
