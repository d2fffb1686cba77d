"""Injected failures: what a flaky network or an overloaded Norce does to a client.

A fault names where it applies (``endpoint``), what happens (``kind``) and how often (``count`` next matching
requests, and/or a ``ratio`` of them drawn from an RNG seeded by the simulator's seed, so runs repeat).
With neither, every matching request is hit until :meth:`FaultRegistry.clear`. The first registered fault
that fires wins.

Endpoints: ``"token"``; ``"api"`` (every path but the token endpoint and ``/_sim/``); ``"query"``;
``"connect"`` (Connect import methods); ``"jobs"`` (``Connect Job/Get`` and ``Job/GetLog``); or a path prefix
starting with ``/`` (case-insensitive).

Kinds: ``"429"`` (``Retry-After`` from ``retry_after``: int seconds, an HTTP-date string, or none);
``"500" "502" "503" "504"``; ``"timeout"`` (hold the connection ``delay`` seconds, default 10, then close it
without answering); ``"drop"`` (send headers announcing a body, part of it, then close); ``"truncated"``
(a complete 200 response whose JSON is cut in half; the request is processed first). ``status`` overrides
the HTTP status of 429/5xx kinds; ``delay`` on other kinds adds latency first.

``after_processing=True`` runs the request normally (an import creates its job) and answers with the fault
instead of the real response: it proves a client does not re-post an import it cannot see succeed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

KINDS = ("429", "500", "502", "503", "504", "timeout", "drop", "truncated")
CATEGORIES = ("token", "api", "query", "connect", "jobs")


@dataclass
class Fault:
    """One registered fault (``remaining`` counts down when ``count`` was given)."""

    endpoint: str
    kind: str
    remaining: int | None = None
    ratio: float | None = None
    status: int | None = None
    retry_after: int | str | None = None
    delay: float | None = None
    after_processing: bool = False

    def http_status(self) -> int:
        """The status line a 429/5xx fault answers with."""
        if self.status is not None:
            return self.status
        return int(self.kind) if self.kind.isdigit() else 200

    def as_dict(self) -> dict[str, Any]:
        """JSON-able view (for ``GET /_sim/faults``)."""
        return {
            "endpoint": self.endpoint,
            "kind": self.kind,
            "count": self.remaining,
            "ratio": self.ratio,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "after_processing": self.after_processing,
        }


def make_fault(
    endpoint: str,
    kind: str,
    count: int | None = None,
    ratio: float | None = None,
    status: int | None = None,
    retry_after: int | str | None = None,
    delay: float | None = None,
    after_processing: bool = False,
) -> Fault:
    """Validate the arguments of ``add_fault`` (also used for ``POST /_sim/faults``) into a :class:`Fault`."""
    kind = str(kind)
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
    if not isinstance(endpoint, str) or not (endpoint in CATEGORIES or endpoint.startswith("/")):
        raise ValueError(f"endpoint must be one of {', '.join(CATEGORIES)} or a path starting with '/'")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise ValueError("count must be a positive integer")
    if ratio is not None and (isinstance(ratio, bool) or not 0 < float(ratio) <= 1):
        raise ValueError("ratio must be in (0, 1]")
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise ValueError("status must be an HTTP status code")
    if retry_after is not None and not isinstance(retry_after, (int, str)):
        raise ValueError("retry_after must be seconds (int) or an HTTP-date (str)")
    if delay is not None and float(delay) < 0:
        raise ValueError("delay must not be negative")
    return Fault(
        endpoint=endpoint if endpoint in CATEGORIES else endpoint.lower(),
        kind=kind,
        remaining=count,
        ratio=None if ratio is None else float(ratio),
        status=status,
        retry_after=retry_after,
        delay=None if delay is None else float(delay),
        after_processing=bool(after_processing),
    )


class FaultRegistry:
    """Registered faults and the deterministic RNG that decides ratio faults."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> None:
        """Register ``fault`` after the existing ones."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        """The registered faults as dicts."""
        with self._lock:
            return [fault.as_dict() for fault in self._faults]

    def match(self, categories: frozenset[str], path: str) -> Fault | None:
        """The fault that fires for this request, if any; consumes one of its ``count``."""
        if not self._faults:  # the fast path for the common case, read without the lock
            return None
        lowered = path.lower()
        with self._lock:
            for fault in self._faults:
                if fault.endpoint.startswith("/"):
                    applies = lowered.startswith(fault.endpoint)
                else:
                    applies = fault.endpoint in categories
                if not applies:
                    continue
                if fault.ratio is not None and self._random.random() >= fault.ratio:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None
