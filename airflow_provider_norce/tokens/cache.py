"""Access tokens: how long they live, where they are kept, and how often one may be asked for.

Norce's token endpoint admits 3 requests a minute per IP address after a burst of 20; everything
beyond is answered 429. So a token is fetched once and shared: by every hook instance of a process
through :data:`PROCESS_TOKEN_CACHE`, and (through a :class:`SharedTokenStore` such as the
machine-wide file store) by every process behind the same address. Concurrent callers that find no
valid token share one token request ("single flight"), and the token requests that do go out pass a
:class:`TokenRequestLimiter` shaped like Norce's limit.

Tokens are keyed by token URL, client id, scope and a SHA-256 of the secret: a connection with a
wrong secret never rides on another connection's token, and the key is the same in every process
(Python's own ``hash()`` of a string is salted per process).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Lifetime assumed when Norce says nothing usable: short, because a guess too long means 401s.
DEFAULT_LIFETIME = 300.0
#: The longest a token is kept, whatever its answer says: a token "for ten years" that Norce revokes
#: would otherwise sit in every cache, and an infinite one would never be renewed.
MAX_LIFETIME = 86400.0
#: A lifetime below this is not one: it would send a token request before every call.
MIN_LIFETIME = 1.0
#: Renew this long before expiry at most; short lifetimes renew at 90 % of their life instead.
MAX_REFRESH_MARGIN = 60.0
REFRESH_FRACTION = 0.1
#: Norce's token limit (3 a minute after a burst of 20).
TOKEN_BURST = 20
TOKEN_RATE_PER_MINUTE = 3.0


@dataclass(frozen=True)
class Token:
    """One bearer token and when it stops being worth using; the token itself never shows in a repr."""

    access_token: str = field(repr=False)
    expires_at: float
    obtained_at: float

    @property
    def refresh_at(self) -> float:
        lifetime = max(0.0, self.expires_at - self.obtained_at)
        return self.expires_at - min(MAX_REFRESH_MARGIN, lifetime * REFRESH_FRACTION)

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "expires_at": self.expires_at,
            "obtained_at": self.obtained_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Token:
        """A stored token; raises ``ValueError`` on anything that could not have come from Norce."""
        access_token = checked_access_token(data["access_token"])
        expires_at, obtained_at = data["expires_at"], data["obtained_at"]
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (expires_at, obtained_at)
        ):
            raise ValueError("token times are not numbers")
        return cls(access_token, float(expires_at), float(obtained_at))


def token_key(token_url: str, client_id: str, scope: str, client_secret: str) -> str:
    """A cache key that is the same in every process and says nothing about the secret."""
    secret_digest = hashlib.sha256(client_secret.encode()).hexdigest()
    material = "\n".join((token_url, client_id, scope, secret_digest))
    return hashlib.sha256(material.encode()).hexdigest()


def scope_memo_key(
    token_url: str, client_id: str, platform: str, environment: str, default_scope: str
) -> tuple[str, ...]:
    """The :class:`ScopeMemo` key of a connection: everything that makes its token a different one.

    A spelling remembered under it is only ever one of ``default_scope``'s own spellings, for this
    environment; never another environment's scope.
    """
    return (token_url, client_id, platform, environment, default_scope)


class BadTokenAnswer(ValueError):
    """A 200 token answer without a usable bearer token; the text says what was wrong, never the token."""


#: Characters a bearer token can hold (RFC 6750 ``b64token`` is narrower): anything else, whitespace and
#: control characters above all, would break or split the ``Authorization`` header.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


def checked_access_token(value: Any) -> str:
    """``value`` if it can be sent as a bearer token; else :class:`BadTokenAnswer` saying why."""
    if not isinstance(value, str):
        kind = "null" if value is None else f"a JSON {_json_kind(value)}"
        raise BadTokenAnswer(f"its access_token is {kind}, not a string")
    if not value.strip():
        raise BadTokenAnswer("its access_token is empty")
    if not _TOKEN_CHARS.fullmatch(value):
        raise BadTokenAnswer("its access_token holds whitespace or characters a bearer token cannot have")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _usable_lifetime(value: Any) -> float | None:
    """Seconds from ``expires_in`` (a number or a numeric string), or None if it says nothing usable."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        lifetime = float(value)
    except ValueError:
        return None
    return lifetime if math.isfinite(lifetime) and lifetime >= MIN_LIFETIME else None


def token_from_response(payload: Any, now: float) -> Token:
    """Build a :class:`Token`, trusting ``expires_in``, then the JWT ``exp``, then a short default.

    Norce's page says a token lives 3600 s while its own example says 600 and that the value may
    change: the answer is the only authority, within reason: a lifetime that is not a finite number of
    at least :data:`MIN_LIFETIME` seconds is ignored, and none is kept longer than :data:`MAX_LIFETIME`. Raises
    :class:`BadTokenAnswer` when the answer holds no token that could be sent.
    """
    if not isinstance(payload, dict):
        raise BadTokenAnswer(f"the answer is a JSON {_json_kind(payload)}, not an object")
    if "access_token" not in payload:
        raise BadTokenAnswer("the answer has no access_token")
    access_token = checked_access_token(payload["access_token"])
    lifetime = _usable_lifetime(payload.get("expires_in"))
    if lifetime is None:
        exp = jwt_expiry(access_token)
        if exp is not None and math.isfinite(exp) and exp - now >= MIN_LIFETIME:
            lifetime = exp - now
        else:
            lifetime = DEFAULT_LIFETIME
    lifetime = min(lifetime, MAX_LIFETIME)
    return Token(access_token=access_token, expires_at=now + lifetime, obtained_at=now)


def jwt_expiry(access_token: str) -> float | None:
    """The unverified ``exp`` claim of a JWT (we only need a hint of its lifetime, not trust)."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
        exp = claims["exp"]
        if isinstance(exp, bool):
            return None
        return float(exp)
    except (ValueError, KeyError, TypeError, OverflowError):
        return None


class TokenRequestLimiter:
    """Norce's token limit as a GCRA (one ``tat`` float), so the client never earns a 429 itself.

    ``burst`` requests may go at once; after that one every ``60 / rate_per_minute`` seconds. The
    state is a single number so a shared store can keep it beside its tokens under the same lock.
    """

    def __init__(
        self,
        burst: int = TOKEN_BURST,
        rate_per_minute: float = TOKEN_RATE_PER_MINUTE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval = 60.0 / rate_per_minute
        self.tolerance = (burst - 1) * self.interval
        self.clock = clock
        self.tat = 0.0
        self._lock = threading.Lock()

    def reserve(self, max_wait: float) -> float | None:
        """Claim the next slot: seconds to wait before using it, or None if that exceeds ``max_wait``."""
        with self._lock:
            now = self.clock()
            tat = max(self.tat, now)
            wait = max(0.0, tat - self.tolerance - now)
            if wait > max_wait:
                return None
            self.tat = tat + self.interval
            return wait

    def note_rate_limited(self, retry_after: float | None) -> None:
        """Norce said 429: others behind our address spent the burst; no slot before it says so.

        With a ``Retry-After`` Norce's answer is the authority: the refused request's own slot is
        given back (Norce did not serve it), so the next slot is the one Norce named, sooner or later
        than the limiter's guess, and never the guess on top of it. Slots other callers already
        hold stay theirs. Without one the refused slot stands and the next comes an interval later.
        """
        with self._lock:
            now = self.clock()
            if retry_after is None:
                self.tat = max(self.tat, now + self.tolerance + self.interval)
            else:
                self.tat = max(self.tat - self.interval, now + self.tolerance + retry_after)


#: A stored token fresh for at least this long more is read without waiting for another process's fetch.
SETTLED_MARGIN = 5.0
#: A shared limiter state further ahead than this is a clock jump or tampering, not a queue: clamp it.
MAX_TAT_AHEAD = 3600.0
#: The version of a shared store's token record (:func:`token_record`).
RECORD_VERSION = 1


def token_record(key: str, token: Token) -> dict[str, Any]:
    """What a shared store keeps for ``key``: the token and the key it belongs to, so a record copied or
    renamed under another key is never served to that key's client."""
    return {"v": RECORD_VERSION, "key": key, **token.to_json()}


def token_from_record(doc: Any, key: str) -> Token:
    """The token of a shared store's record for ``key``; ``ValueError`` (or ``KeyError``/``TypeError``) for a
    record of another key or version, or with times no token from Norce could have."""
    if not isinstance(doc, dict) or doc.get("v") != RECORD_VERSION or doc.get("key") != key:
        raise ValueError("not a token of this key")
    token = Token.from_json(doc)
    if not (
        math.isfinite(token.expires_at)
        and math.isfinite(token.obtained_at)
        and token.expires_at > token.obtained_at
    ):
        raise ValueError("implausible token times")
    return token


def shared_tat(raw: str | bytes, now: float) -> float | None:
    """The limiter's ``tat`` as a shared store keeps it (text), clamped to :data:`MAX_TAT_AHEAD` past
    ``now``; None when it is not a finite, non-negative number (then it counts as no history)."""
    try:
        tat = float(raw)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(tat) or tat < 0:
        return None
    return min(tat, now + MAX_TAT_AHEAD)


class SharedTokenStore(Protocol):
    """A token store shared beyond one process (the machine-wide file store, or a cluster store).

    Implementations keep tokens by :func:`token_key`, make :meth:`locked` exclusive across every
    process that shares the store, and keep one :class:`TokenRequestLimiter`-shaped budget for the
    whole store, because Norce counts token requests per IP address, not per client.
    """

    def load(self, key: str) -> Token | None: ...

    def save(self, key: str, token: Token) -> None: ...

    def discard(self, key: str, access_token: str) -> None: ...

    def locked(self, key: str) -> Any:
        """A context manager held while one process fetches the token for ``key``."""

    def reserve_token_request(self, max_wait: float) -> float | None: ...

    def note_rate_limited(self, retry_after: float | None) -> None: ...


#: Claims a token-request slot: seconds to wait before sending, or None when over the given budget.
Reserve = Callable[[float], "float | None"]
#: Tells the limiter Norce answered 429 (with its ``Retry-After`` seconds, if any).
NoteRateLimited = Callable[["float | None"], None]
#: Asks Norce for a token, calling ``reserve`` before each request and ``note`` on each 429.
FetchToken = Callable[[Reserve, NoteRateLimited], Token]


class TokenCache:
    """The process-wide front of the token stores: a dict, a lock per key, and the process limiter.

    A warm process answers from memory without touching any lock but the dict's.
    """

    def __init__(
        self, clock: Callable[[], float] = time.time, limiter: TokenRequestLimiter | None = None
    ) -> None:
        self.clock = clock
        self.limiter = limiter or TokenRequestLimiter(clock=clock)
        self._tokens: dict[str, Token] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def peek(self, key: str) -> Token | None:
        token = self._tokens.get(key)
        return token if token is not None and token.fresh(self.clock()) else None

    def get(
        self,
        key: str,
        fetch: FetchToken,
        store: SharedTokenStore | None = None,
        *,
        force: bool = False,
    ) -> Token:
        """A fresh token for ``key``: from memory, else from ``store``, else from ``fetch``.

        ``fetch`` receives the limiter's ``reserve`` and ``note_rate_limited`` of the domain that
        counts (the store's when there is one). ``force`` skips both caches, for a connection test.
        """
        if not force and (token := self.peek(key)) is not None:
            return token
        with self._key_lock(key):
            if not force and (token := self.peek(key)) is not None:
                return token  # another thread fetched it while we waited
            if store is None:
                token = fetch(self.limiter.reserve, self.limiter.note_rate_limited)
            else:
                with store.locked(key):
                    shared = None if force else store.load(key)
                    if shared is not None and shared.fresh(self.clock()):
                        token = shared
                    else:
                        token = fetch(store.reserve_token_request, store.note_rate_limited)
                        store.save(key, token)
            self._tokens[key] = token
            return token

    def find(self, key: str, store: SharedTokenStore | None = None) -> Token | None:
        """A fresh token for ``key`` already held here or in ``store``, without asking Norce for one.

        Why: a token under a key proves that key's scope works; finding one costs no token request.
        """
        token = self.peek(key)
        if token is None and store is not None:
            shared = store.load(key)
            if shared is not None and shared.fresh(self.clock()):
                with self._lock:
                    self._tokens[key] = shared
                token = shared
        return token

    def invalidate(self, key: str, access_token: str, store: SharedTokenStore | None = None) -> None:
        """Drop a token Norce refused (401), here and in ``store``, unless it was already replaced."""
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and current.access_token == access_token:
                del self._tokens[key]
        if store is not None:
            store.discard(key, access_token)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def _reset_after_fork(self) -> None:
        # A lock held by another thread at fork time would never be released in the child.
        self._lock = threading.Lock()
        self._key_locks = {}
        self.limiter._lock = threading.Lock()


class ScopeMemo:
    """The scope spelling that worked, for connections that leave ``scope`` unset.

    Why: Norce's production scope is spelled ``prod`` on its newest page and ``production`` on older ones
    (``identity.json scope_spellings``). The first token request of a process finds out which one this
    tenant takes; every later request of the process asks with that one directly.

    Kept by :func:`scope_memo_key`: token URL, client id, platform, environment and the connection's default
    scope. Why all of them: Storm has one token URL for every environment (the scope picks it), and Commerce
    connections may share an ``auth_url``; a memo keyed by token URL and client id alone handed a production
    connection's ``production`` to the stage connection of the same client, which then asked for, and sent,
    a production token.
    """

    def __init__(self) -> None:
        self._scopes: dict[tuple[str, ...], str] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> str | None:
        return self._scopes.get(key)

    def remember(self, key: tuple[str, ...], scope: str) -> None:
        with self._lock:
            self._scopes[key] = scope

    def clear(self) -> None:
        with self._lock:
            self._scopes.clear()

    def _reset_after_fork(self) -> None:
        """A forked child may inherit the lock held by another thread of the parent: never acquirable."""
        self._lock = threading.Lock()


class MaskedTokens:
    """Which tokens this process has registered with Airflow's secrets masker (by digest, bounded).

    Why: a token must be masked in every process that holds it, however it got there (fetched, read
    from the machine store, found in a cache), but registering it again on every request would send
    the supervisor a message per call.
    """

    def __init__(self, limit: int = 1024) -> None:
        self._seen: dict[str, None] = {}
        self._last: str | None = None
        self._limit = limit
        self._lock = threading.Lock()

    def first_time(self, access_token: str) -> bool:
        """True exactly once per process for ``access_token`` (then it is to be registered)."""
        if access_token is self._last:
            return False  # the hot path: the same cached token, request after request
        digest = hashlib.sha256(access_token.encode()).hexdigest()
        with self._lock:
            self._last = access_token
            if digest in self._seen:
                return False
            self._seen[digest] = None
            if len(self._seen) > self._limit:
                del self._seen[next(iter(self._seen))]  # the oldest: long expired
            return True

    def _reset_after_fork(self) -> None:
        # A forked child is a process of its own: it registers what it uses itself.
        self._lock = threading.Lock()
        self._seen = {}
        self._last = None


def scrub_secret(text: str, secret: str) -> str:
    """``text`` without ``secret`` in any spelling a server echoing the token request could use.

    Why: some token endpoints echo the form they were sent (``client_secret=...``) in their error
    body, and that body ends up in exception texts and in ``airflow connections test`` output.
    """
    from urllib.parse import quote, quote_plus

    if secret:
        escaped = json.dumps(secret)[1:-1]
        for spelling in sorted({secret, quote_plus(secret), quote(secret, safe=""), escaped}, key=len)[::-1]:
            text = text.replace(spelling, "***")
    return _FORM_SECRET.sub(r"\1***", text)  # also a secret the server changed on the way


#: ``client_secret=...``, ``"client_secret": "..."`` and ``client_secret: ...`` up to the value's end.
_FORM_SECRET = re.compile(r"""(client_secret["']?\s*[=:]\s*["']?)(?:\\.|[^"'&\s,;}<])*""", re.IGNORECASE)

#: Shared by every NorceHook (and the trigger's async client) in this process.
PROCESS_TOKEN_CACHE = TokenCache()
#: The tokens already registered with Airflow's secrets masker in this process.
MASKED_TOKENS = MaskedTokens()
#: The working scope spelling of each default-scope connection in this process (see :class:`ScopeMemo`).
WORKING_SCOPES = ScopeMemo()


def _reset_after_fork() -> None:
    """Fresh locks in a forked child (Airflow forks task runners): see the ``_reset_after_fork`` methods."""
    PROCESS_TOKEN_CACHE._reset_after_fork()
    WORKING_SCOPES._reset_after_fork()
    MASKED_TOKENS._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
