"""Injected failures: what a flaky network, a proxy or an overloaded Norce does to a client.

A fault names where it applies (``endpoint``), what happens (``kind``) and how often (``count`` next matching
requests, and/or a ``ratio`` of them drawn from an RNG seeded by the simulator's seed, so runs repeat).
With neither, every matching request is hit until :meth:`FaultRegistry.clear`. The first registered fault
that fires wins. Faults fire before the token rate limit and the API gate: a faulted token request takes no
limiter slot, and a faulted API call needs no valid token.

Endpoints: ``"token"``; ``"api"`` (every path but the token endpoint and ``/_sim/``); ``"query"``;
``"connect"`` (Connect import methods); ``"jobs"`` (``Connect Job/Get`` and ``Job/GetLog``); or a path prefix
starting with ``/`` (case-insensitive).

Kinds (unless a kind says otherwise the request is NOT processed: an import creates no job):

* ``"429"`` (``Retry-After`` from ``retry_after``: int seconds, an HTTP-date string, or none);
  ``"500" "502" "503" "504"`` (502-504 answer a small HTML gateway page, the others JSON).
* ``"401"``: the gate's own 401 body (``{"Message": "Authorization has been denied for this request. ..."}``)
  with ``WWW-Authenticate: Bearer error="invalid_token"``, counted in ``api_401``: a token revoked or refused
  mid-run (``count=2``: "401 twice"). ``"403"``: the gate's 403 body with
  ``WWW-Authenticate: Bearer error="insufficient_scope"``. On the token endpoint both answer an RFC 6749 body
  (``invalid_client`` / ``unauthorized_client``).
* ``"timeout"`` (hold the connection ``delay`` seconds, default 10, then close it without answering);
  ``"drop"`` (send headers announcing a body, part of it, then close); ``"reset"`` (close the connection at
  once with a TCP RST, SO_LINGER 0, without reading the request or answering); ``"truncated"`` (a complete 200
  response whose JSON is cut in half; the request is processed first).
* ``"odata_error_200"``: 200, ``Content-Type: application/json; odata.metadata=minimal``, body
  ``{"error": {"code": "InternalServerError", "message": "Simulated error envelope in a 200."}}``.
  ``"not_json"``: 200, ``text/plain``, body ``Service temporarily unavailable``. ``"html"``: a ~1 KB HTML proxy
  error page (``text/html; charset=utf-8``), status 200 (a captive proxy) unless ``status`` says e.g. 502.
* ``"redirect"``: 307 (``status`` may be 301, 302, 303, 307 or 308) with ``Location: <location>`` (required;
  any host, port or scheme) and an empty JSON body.
* ``"next_link"`` (Query only: endpoint ``"query"``, ``"api"`` or a Query path; fires on Query requests
  only): the request is processed, then the page's ``@odata.nextLink`` is set to ``location`` (required),
  added when the page had none. A non-200 answer (e.g. a 401) is sent unchanged and still uses the fault.
* Token endpoint only (endpoint ``"token"`` or the token path; ValueError elsewhere): ``"invalid_client"``
  (401), ``"invalid_scope"`` (400), ``"unauthorized_client"`` (400): RFC 6749 bodies
  ``{"error": .., "error_description": ..}``. ``"token_answer"`` with ``variant``: ``no_access_token`` (200,
  JSON without ``access_token``), ``not_json`` (200, an HTML page), and ``expires_in_missing``, ``expires_in_0``,
  ``expires_in_negative`` (-60), ``expires_in_string`` (``"soon"``), ``expires_in_ten_years`` (315360000).
  The ``expires_in_*`` variants process the request (credentials and scope checked, the rate limit not) and
  ISSUE A REAL TOKEN (counted in ``tokens_issued``, listed by ``issued_tokens()``, valid for the simulator's
  own ``expires_in``), then rewrite ``expires_in`` in the answer; a refused request gets its normal error.

``status`` overrides the HTTP status of every kind but timeout/drop/reset/truncated/next_link/token_answer;
``delay`` adds latency first (for ``timeout`` it is the hold time).

``after_processing=True`` runs the request normally (an import creates its job) and answers with the fault
instead of the real response: it proves a client does not re-post an import it cannot see succeed
(``"reset"`` then closes the connection without any answer).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

TOKEN_ONLY_KINDS = ("invalid_client", "invalid_scope", "unauthorized_client", "token_answer")
KINDS = (
    "429",
    "500",
    "502",
    "503",
    "504",
    "401",
    "403",
    "timeout",
    "drop",
    "reset",
    "truncated",
    "odata_error_200",
    "not_json",
    "html",
    "redirect",
    "next_link",
    *TOKEN_ONLY_KINDS,
)
CATEGORIES = ("token", "api", "query", "connect", "jobs")
TOKEN_ANSWER_VARIANTS = (
    "no_access_token",
    "not_json",
    "expires_in_missing",
    "expires_in_0",
    "expires_in_negative",
    "expires_in_string",
    "expires_in_ten_years",
)
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
#: kinds that run the request before answering (whatever ``after_processing`` says)
PROCESSED_KINDS = ("truncated", "next_link", "token_answer")
_DEFAULT_STATUS = {"invalid_client": 401, "invalid_scope": 400, "unauthorized_client": 400, "redirect": 307}
_TOKEN_PATH = "/identity/1.0/connect/token"
_QUERY_PREFIX = "/commerce/query/2.0/"


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
    variant: str | None = None
    location: str | None = None

    def http_status(self) -> int:
        """The status line a fault answers with (``status``, else the kind's own)."""
        if self.status is not None:
            return self.status
        return int(self.kind) if self.kind.isdigit() else _DEFAULT_STATUS.get(self.kind, 200)

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
            "variant": self.variant,
            "location": self.location,
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
    variant: str | None = None,
    location: str | None = None,
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
    lowered = endpoint.lower()
    if kind in TOKEN_ONLY_KINDS and lowered not in ("token", _TOKEN_PATH):
        raise ValueError(f"fault kind {kind!r} applies to the token endpoint only (endpoint='token')")
    if kind == "next_link" and not (endpoint in ("query", "api") or lowered.startswith(_QUERY_PREFIX)):
        raise ValueError(
            "fault kind 'next_link' applies to Query only (endpoint 'query', 'api' or a Query path)"
        )
    if kind == "token_answer":
        if variant not in TOKEN_ANSWER_VARIANTS:
            raise ValueError(f"token_answer needs variant= one of {', '.join(TOKEN_ANSWER_VARIANTS)}")
    elif variant is not None:
        raise ValueError("variant applies to the token_answer kind only")
    if kind in ("redirect", "next_link"):
        if not isinstance(location, str) or not location.strip():
            raise ValueError(f"fault kind {kind!r} needs location= (the URL to send the client to)")
        if any(char in location for char in "\r\n"):
            raise ValueError("location must be one line")
    elif location is not None:
        raise ValueError("location applies to the redirect and next_link kinds only")
    if kind == "redirect" and status is not None and status not in REDIRECT_STATUSES:
        raise ValueError(f"a redirect's status must be one of {', '.join(map(str, REDIRECT_STATUSES))}")
    return Fault(
        endpoint=endpoint if endpoint in CATEGORIES else endpoint.lower(),
        kind=kind,
        remaining=count,
        ratio=None if ratio is None else float(ratio),
        status=status,
        retry_after=retry_after,
        delay=None if delay is None else float(delay),
        after_processing=bool(after_processing),
        variant=variant,
        location=location,
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
                if not applies or (fault.kind == "next_link" and "query" not in categories):
                    continue
                if fault.ratio is not None and self._random.random() >= fault.ratio:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None
