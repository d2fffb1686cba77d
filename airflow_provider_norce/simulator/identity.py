"""Norce Identity: the OAuth2 client-credentials token endpoint, its per-IP rate limit, and token checks.

Behaviour follows the Norce page (shared/reference/norce-oauth2-accounts.txt) and RFC 6749:

* ``POST /identity/1.0/connect/token`` with ``application/x-www-form-urlencoded`` and the credentials in the
  body (``grant_type=client_credentials&client_id=..&client_secret=..&scope=..``), as the page's Postman setup
  says ("Send client credentials in the body"). HTTP Basic client authentication is not accepted.
* Errors are RFC 6749 §5.2 bodies ``{"error": .., "error_description": ..}``: 401 ``invalid_client`` (unknown
  client or wrong secret), 400 ``unsupported_grant_type``, 400 ``invalid_scope`` (naming the allowed scopes),
  400 ``invalid_request`` (wrong content type, missing or repeated field, missing scope).
* Rate limit per client IP: a bucket of ``burst`` slots (default 20) refilled at ``rate_per_minute`` (default 3,
  one slot every 20 s). Every request that reaches the endpoint takes a slot, bad credentials included, as a
  gateway limit would; a request answered 429 does not. The 429 body is ``{"error": "rate_limited", ..}``
  and carries ``Retry-After`` (whole seconds until the next slot, rounded up) unless disabled: Norce documents
  no such header, so clients must also cope without it.
* Tokens are HS256 JWTs with ``iss, aud, client_id, scope (list), iat, nbf, exp, jti``. By default the
  header and payload JSON start with ``"{ "`` so the token starts ``eyAi`` rather than ``eyJ``: Airflow's log
  masking rewrites ``eyJ...`` strings, which would hide a leaked token from leak tests. ``standard_jwt=True``
  gives the compact ``eyJ`` form.
* Every token issued is also kept, in issue order and never pruned, for :meth:`IdentityService.issued_tokens`
  (a secrets audit compares logs against it); :meth:`IdentityService.expire_all` expires every token issued
  so far without moving the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import threading
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from airflow_provider_norce.simulator.replies import Reply, json_reply

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from airflow_provider_norce.simulator.clock import SimTime

TOKEN_PATH = "/identity/1.0/connect/token"
DEFAULT_SCOPES = frozenset({"playground", "stage", "production", "prod", "lab"})
_EPSILON = 1e-9


class TokenBucket:
    """A leaky bucket per key: ``capacity`` slots, refilled continuously at ``rate`` slots per second."""

    def __init__(self, capacity: float, rate: float, clock: Callable[[], float]) -> None:
        if capacity < 1:
            raise ValueError("a rate limit needs a capacity of at least 1")
        self.capacity = float(capacity)
        self.rate = float(rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float | None:
        """Take a slot for ``key``: None when granted, else the seconds until one frees (nothing is taken)."""
        with self._lock:
            now = self._clock()
            level, last = self._state.get(key, (self.capacity, now))
            level = min(self.capacity, level + max(0.0, now - last) * self.rate)
            if level >= 1 - _EPSILON:
                self._state[key] = (level - 1, now)
                return None
            self._state[key] = (level, now)
            return (1 - level) / self.rate if self.rate > 0 else math.inf

    def reset(self) -> None:
        """Refill every bucket."""
        with self._lock:
            self._state.clear()


def retry_after_seconds(wait: float) -> int:
    """Whole seconds for ``Retry-After``: rounded up, at least 1, capped at a day for a zero refill rate."""
    if math.isinf(wait):
        return 86_400
    return max(1, math.ceil(wait - _EPSILON))


@dataclass(frozen=True)
class IssuedToken:
    """What the server remembers about an access token."""

    client_id: str
    scope: str
    expires_at: float  # simulator clock
    jti: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class IdentityService:
    """Issues and validates tokens for the configured clients."""

    def __init__(
        self,
        time: SimTime,
        clients: Mapping[str, str],
        allowed_scopes: Iterable[str] = DEFAULT_SCOPES,
        expires_in: int = 600,
        burst: int = 20,
        rate_per_minute: float = 3,
        retry_after: bool = True,
        standard_jwt: bool = False,
        require_scope: bool = True,
        issuer: str = "http://127.0.0.1/identity/1.0",
    ) -> None:
        self.time = time
        self.clients = dict(clients)
        self.allowed_scopes = frozenset(allowed_scopes)
        self.expires_in = int(expires_in)
        self.retry_after = retry_after
        self.standard_jwt = standard_jwt
        self.require_scope = require_scope
        self.issuer = issuer
        self.limiter = TokenBucket(burst, rate_per_minute / 60.0, time.now)
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._issued: list[str] = []  # every token ever issued, in order, never pruned (secrets audits)

    # -- the endpoint ---------------------------------------------------------------------------------
    def handle(self, content_type: str | None, body: bytes, client_ip: str) -> Reply:
        """Answer one token request; the caller counts it (``reply.status`` tells what happened)."""
        wait = self.limiter.take(client_ip)
        if wait is not None:
            headers = {"Retry-After": str(retry_after_seconds(wait))} if self.retry_after else {}
            return json_reply(
                429,
                {
                    "error": "rate_limited",
                    "error_description": "Too many token requests from this IP address: "
                    "max 3 per minute with a burst of 20. Cache the token until it expires.",
                },
                headers,
            )
        return self.grant(content_type, body)

    def grant(self, content_type: str | None, body: bytes) -> Reply:
        """The token request past the rate limit: validate the form, issue a token (the normal answer).

        Also used by the ``token_answer`` fault, which issues a real token without taking a limiter slot."""
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        if media_type != "application/x-www-form-urlencoded":
            return oauth_error(
                400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded."
            )
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return oauth_error(400, "invalid_request", "The request body is not valid form data.")
        repeated = sorted(name for name, values in fields.items() if len(values) > 1)
        if repeated:
            return oauth_error(
                400, "invalid_request", f"Parameters sent more than once: {', '.join(repeated)}."
            )
        form = {name: values[0] for name, values in fields.items()}
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return oauth_error(400, "invalid_request", "grant_type is missing.")
        if grant_type != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported.")
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            missing = [name for name in ("client_id", "client_secret") if not form.get(name)]
            return oauth_error(
                400, "invalid_request", f"Missing {' and '.join(missing)} in the request body."
            )
        known = self.clients.get(client_id)
        if known is None or not hmac.compare_digest(known.encode(), secret.encode()):
            return oauth_error(401, "invalid_client", "Unknown client or wrong client secret.")
        requested = form.get("scope", "").split()
        if not requested and self.require_scope:
            return oauth_error(400, "invalid_request", "scope is missing; " + self._scope_hint())
        wrong = [scope for scope in requested if scope not in self.allowed_scopes]
        if wrong:
            return oauth_error(
                400, "invalid_scope", f"Scope {' '.join(wrong)!r} is not allowed; " + self._scope_hint()
            )
        scope = " ".join(requested) if requested else " ".join(sorted(self.allowed_scopes))
        token = self.issue(client_id, scope)
        return json_reply(
            200,
            {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer", "scope": scope},
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _scope_hint(self) -> str:
        return "allowed scopes for this client: " + ", ".join(sorted(self.allowed_scopes)) + "."

    # -- tokens ---------------------------------------------------------------------------------------
    def issue(self, client_id: str, scope: str) -> str:
        """Mint a JWT for ``client_id`` and remember it until it expires or is revoked."""
        now = self.time.now()
        wall = int(self.time.wall(now))
        jti = uuid.uuid4().hex
        claims = {
            "iss": self.issuer,
            "aud": "norce-commerce",
            "client_id": client_id,
            "scope": scope.split(),
            "iat": wall,
            "nbf": wall,
            "exp": wall + self.expires_in,
            "jti": jti,
        }
        header = {"alg": "HS256", "typ": "JWT"}
        if self.standard_jwt:
            parts = [json.dumps(header, separators=(",", ":")), json.dumps(claims, separators=(",", ":"))]
        else:  # '{ "' encodes to 'eyAi', which Airflow's secret masker does not rewrite
            parts = ["{ " + json.dumps(header)[1:], "{ " + json.dumps(claims)[1:]]
        signing_input = ".".join(_b64(part.encode()) for part in parts)
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64(signature)}"
        with self._lock:
            self._tokens[token] = IssuedToken(client_id, scope, now + self.expires_in, jti)
            self._issued.append(token)
            if (
                len(self._tokens) > 10_000
            ):  # forget expired tokens now and then; a token store must not grow forever
                self._tokens = {t: i for t, i in self._tokens.items() if i.expires_at > now}
        return token

    def check(self, token: str) -> str | None:
        """None when ``token`` is valid now, else why not (``unknown``, ``expired``)."""
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None:
            return "The access token is unknown or was revoked."
        if self.time.now() >= issued.expires_at:
            return "The access token expired."
        return None

    def issued_tokens(self) -> list[str]:
        """Every access token ever issued, in issue order: revoked, expired and pruned ones included."""
        with self._lock:
            return list(self._issued)

    def expire_all(self) -> None:
        """Make every token issued so far expired now (``check`` answers "expired"); the clock does not move,
        and tokens issued later live their full ``expires_in``."""
        now = self.time.now()
        with self._lock:
            self._tokens = {
                token: replace(issued, expires_at=min(issued.expires_at, now))
                for token, issued in self._tokens.items()
            }

    def revoke_all(self) -> None:
        """Forget every issued token: the next API call with any of them gets 401."""
        with self._lock:
            self._tokens.clear()

    def verify_signature(self, token: str) -> bool:
        """Whether ``token`` was signed by this simulator (for tests of the JWT format)."""
        try:
            signing_input, signature = token.rsplit(".", 1)
        except ValueError:
            return False
        expected = _b64(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())
        return hmac.compare_digest(expected, signature)


def oauth_error(status: int, error: str, description: str) -> Reply:
    """An RFC 6749 §5.2 error answer, with the no-store headers of a token endpoint."""
    return json_reply(
        status,
        {"error": error, "error_description": description},
        {"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
