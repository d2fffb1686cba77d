"""The one retry policy of the provider, written with tenacity's composable pieces.

Sync (``requests``) and async (``httpx``) code raise the same :mod:`airflow_provider_norce.exceptions`
with ``retryable`` and ``retry_after`` set where the answer was read; everything here decides from
those two attributes alone, so both transports retry exactly alike:

* retry: only what the transport marked ``retryable`` (429 always; 5xx, timeouts and dropped
  connections for idempotent requests; a POST only when it provably was not processed);
* wait: ``Retry-After`` when Norce sends it (seconds or HTTP date), else exponential backoff with
  jitter, and never sooner than ``rate_limit_floor`` after a 429 (20 s on the token endpoint, where a
  slot frees every 20 s);
* stop: after ``max_attempts``, or before a wait that would take the waits past ``max_wait`` seconds.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import tenacity
from tenacity import retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from airflow_provider_norce.exceptions import NorceAPIError, NorceAuthError, NorceRateLimitError, excerpt

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds between two token requests Norce admits once the burst is spent (3 a minute).
TOKEN_SLOT_SECONDS = 20.0
#: Methods that may be repeated after an ambiguous failure (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Answers that say "try again later" for an idempotent request.
TRANSIENT_STATUSES = frozenset({408, 500, 502, 503, 504})


def status_is_retryable(method: str, status: int) -> bool:
    """429 always (Norce refused before doing anything); transient 5xx only when repeating is harmless.

    A POST answered 5xx may have been processed (a Connect import may already have its job), so it is
    never repeated: a duplicate import is worse than a failed task the user can look at.
    """
    if status == 429:
        return True
    return status in TRANSIENT_STATUSES and method.upper() in IDEMPOTENT_METHODS


def api_error(
    method: str,
    url: str,
    status: int,
    retry_after_header: str | None,
    body: str | bytes | None,
    token: str = "",
) -> NorceAPIError:
    """The error for a non-2xx API answer, with the retry decision and Norce's wait already read.

    ``token`` is the bearer token the request carried: a server that echoes the request's headers in
    its error body must not put it into the exception (nor into the task log that prints it).
    """
    cls = NorceRateLimitError if status == 429 else NorceAPIError
    body = without_token(body, token)
    text = html_summary(body) or excerpt(body)
    return cls(
        f"Norce answered {status} to {method.upper()} {url}: {text or '(empty body)'}",
        status_code=status,
        method=method.upper(),
        url=url,
        body_excerpt=text,
        retry_after=parse_retry_after(retry_after_header) if status == 429 else None,
        retryable=status_is_retryable(method, status),
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def without_token(body: str | bytes | None, token: str) -> str | bytes | None:
    """``body`` with ``token`` (in any spelling an echo could use) replaced by ``***``."""
    if not token or not body:
        return body
    from airflow_provider_norce.tokens.cache import scrub_secret

    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return scrub_secret(text, token)


def json_body(method: str, url: str, status: int, content: bytes, idempotent: bool, token: str = "") -> Any:
    """The parsed body of a 2xx answer, judged alike for the task (requests) and the triggerer (httpx).

    Not data, and retryable for an idempotent request like a 5xx (a POST may have been processed, so it
    is not): a cut-off or garbled body, a page that is not JSON (an HTML page from a proxy or portal, a
    plain-text notice), and an OData error envelope ``{"error": {"code", "message"}}`` sent with a 2xx
    status. Why: taken as data, an envelope reads as an empty page, and an export would write a file
    missing rows; a Job/Get would read as a job that never finishes.
    """
    try:
        parsed = json.loads(content)
    except ValueError:
        content = _as_bytes(without_token(content, token))
        page = html_summary(content)
        if page:
            what = f"{page} instead of JSON (from a proxy, gateway or portal between the worker and Norce)"
        elif content.strip() and not content.lstrip().startswith((b"{", b"[")):
            what = f"a body that is not JSON ({excerpt(content, 120)!r})"
        else:
            what = f"a body that is not complete JSON ({len(content)} bytes)"
        raise NorceAPIError(
            f"Norce answered {method} {url} with {status} and {what}",
            status_code=status,
            method=method,
            url=url,
            body_excerpt=excerpt(content[-120:]),
            retryable=idempotent,
        ) from None
    error = odata_error_in(parsed)
    if error is not None:
        error = str(without_token(error, token))
        content = _as_bytes(without_token(content, token))
        raise NorceAPIError(
            f"Norce answered {method} {url} with {status} and an OData error instead of data: {error}",
            status_code=status,
            method=method,
            url=url,
            body_excerpt=excerpt(content),
            retryable=idempotent,
        )
    return parsed


def _as_bytes(body: str | bytes | None) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else body


def odata_error_in(payload: Any) -> str | None:
    """``code: message`` when ``payload`` is an OData (or Web API) error envelope, else None.

    An envelope is an object whose only member, besides ``@odata.*`` annotations, is ``error`` holding an
    object or a text; a listing or an entity never looks like that.
    """
    if not isinstance(payload, dict):
        return None
    members = [key for key in payload if not str(key).startswith("@odata.")]
    if members != ["error"]:
        return None
    error = payload["error"]
    if isinstance(error, dict):
        code = error.get("code") or error.get("Code") or "(no code)"
        message = error.get("message") or error.get("Message") or "(no message)"
        return excerpt(f"{code}: {message}", 200)
    if isinstance(error, str) and error.strip():
        return excerpt(error, 200)
    return None


def html_summary(body: str | bytes | None) -> str | None:
    """``an HTML page titled '...'`` when ``body`` is an HTML page (a proxy's or portal's), else None."""
    if not body:
        return None
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    head = text.lstrip()[:2048].lower()
    if not head.startswith(("<!doctype html", "<html", "<head", "<body")):
        return None
    import re

    match = re.search(r"<title[^>]*>(.*?)</title>", text[:8192], re.IGNORECASE | re.DOTALL)
    if match is None:
        match = re.search(r"<h1[^>]*>(.*?)</h1>", text[:8192], re.IGNORECASE | re.DOTALL)
    title = excerpt(re.sub(r"<[^>]+>", "", match.group(1)), 120) if match else ""
    return f"an HTML page titled {title!r}" if title else "an HTML page"


def what_to_do(err: NorceAPIError, conn_id: str) -> str:
    """The advice of a request that failed for good, by what went wrong; the same for task and triggerer."""
    status = err.status_code
    method = (err.method or "").upper()
    if status == 429:
        return (
            "Norce kept rate-limiting this request; let the task's retry run later, run fewer Norce tasks at "
            f"once, or raise the connection {conn_id!r}'s max_retry_wait to wait longer"
        )
    if err.retryable or method in IDEMPOTENT_METHODS:
        where = "Norce or a proxy between the worker and Norce"
        if status is not None and 200 <= status < 300:
            where = "Norce (or a proxy) answered success without usable data, so nothing was taken from it;"
            return (
                f"{where} the task's retry asks again; if it persists, check Norce's status and the "
                f"connection {conn_id!r}'s host, base_url and proxies"
            )
        return (
            f"{where} failed; the task's retry asks again. If it persists, check Norce's status and the "
            f"connection {conn_id!r}'s host, base_url, proxies and timeout"
        )
    return (
        f"a {method or 'request'} is not repeated once it may have been processed: check in Norce Admin "
        "whether it took effect before running it again"
    )


def explained(err: NorceAPIError, conn_id: str) -> NorceAPIError:
    """``err`` once its retries are spent: the same type and attributes, its message naming the
    connection and saying what to do (sync hook and async client alike)."""
    text = Exception.__str__(err)  # without the "gave up after" note, which __str__ adds back
    message = f"Norce connection {conn_id!r}: {text}; {what_to_do(err, conn_id)}."
    return reworded(err, message)


def reworded(err: NorceAPIError, message: str) -> NorceAPIError:
    """``err`` with ``message``: the same type, status, flags and retry notes (sync, async and token errors)."""
    copy = type(err)(
        message,
        status_code=err.status_code,
        method=err.method,
        url=err.url,
        body_excerpt=err.body_excerpt,
        retry_after=err.retry_after,
        retryable=err.retryable,
    )
    copy.gave_up_after = err.gave_up_after
    for name in (RETRIES_SPENT, "beyond_budget"):
        if hasattr(err, name):
            setattr(copy, name, getattr(err, name))
    return copy


def refused_fresh_token(conn_id: str, application_id: int | None, method: str, url: str) -> NorceAuthError:
    """A 401 to a token issued a moment ago is not staleness but missing access: a human must act."""
    return NorceAuthError(
        f"Norce connection {conn_id!r}: {method} {url} answered 401 to a freshly issued token; the OAuth "
        f"user may lack access to this API or to application {application_id}. Check in Norce Admin "
        "(Settings > Users > OAUTH) that the connection's OAuth user still exists and has access to this API "
        "and application, then retry the task",
        conn_id=conn_id,
        status_code=401,
    )


#: Set on an error whose own retries are spent (a token request's): no outer retry repeats them.
RETRIES_SPENT = "norce_retries_spent"


def mark_retries_spent(exc: BaseException) -> BaseException:
    """Mark ``exc`` as final: its request was already retried on its own budget.

    Why: a token request retries under its own policy; were the API attempt around it to retry the
    token error again, one failing token endpoint would cost ``max_attempts`` squared requests and
    waits. ``retryable`` itself is left as the transport set it (callers read it to know whether a
    request can have been processed).
    """
    setattr(exc, RETRIES_SPENT, True)
    return exc


def is_retryable(exc: BaseException) -> bool:
    """The transport decided, where it read the answer, whether repeating the request is safe."""
    return bool(getattr(exc, "retryable", False)) and not getattr(exc, RETRIES_SPENT, False)


class wait_retry_after(wait_base):
    """Honour the server's ``Retry-After``; otherwise ``fallback``, floored after a 429.

    The floor exists for Norce's token endpoint: without a ``Retry-After`` a retry sooner than the
    next free slot is certain to be refused again and only deepens the hole.
    """

    def __init__(self, fallback: wait_base, rate_limit_floor: float = 0.0) -> None:
        self.fallback = fallback
        self.rate_limit_floor = rate_limit_floor

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        wait = float(self.fallback(retry_state))
        if getattr(exc, "status_code", None) == 429:
            wait = max(wait, self.rate_limit_floor)
        return wait


class stop_before_wait_budget(stop_base):
    """Stop before a sleep that would take the waits of this request past ``max_wait`` seconds.

    Unlike ``stop_before_delay`` it counts the waits themselves (``idle_for``), not wall time, so a
    slow response is not charged to the retry budget and the rule holds under a fake clock in tests.
    """

    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.idle_for + (retry_state.upcoming_sleep or 0.0) > self.max_wait


@dataclass(frozen=True)
class RetryPolicy:
    """The budget and backoff of one kind of request; build tenacity controllers from it."""

    max_attempts: int = 6
    max_wait: float = 300.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    jitter: float = 1.0
    rate_limit_floor: float = 0.0

    def for_token_endpoint(self) -> RetryPolicy:
        """The same budget, but 429s without ``Retry-After`` wait for the next token slot."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            max_wait=self.max_wait,
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max,
            jitter=self.jitter,
            rate_limit_floor=TOKEN_SLOT_SECONDS,
        )

    def _kwargs(self) -> dict[str, Any]:
        return {
            "retry": retry_if_exception(is_retryable),
            "wait": wait_retry_after(
                wait_exponential_jitter(
                    initial=self.backoff_initial, max=self.backoff_max, jitter=self.jitter
                ),
                rate_limit_floor=self.rate_limit_floor,
            ),
            "stop": stop_after_attempt(self.max_attempts) | stop_before_wait_budget(self.max_wait),
            "before_sleep": _log_retry(self.max_attempts),
            "retry_error_callback": _give_up(self.max_wait),
            "reraise": True,
        }

    def retrying(self, sleep: Callable[[float], None] | None = None) -> tenacity.Retrying:
        """A sync controller; each retry logs one WARNING line: the reason, the attempt, the wait."""
        kwargs = self._kwargs()
        if sleep is not None:
            kwargs["sleep"] = sleep
        return tenacity.Retrying(**kwargs)

    def async_retrying(self, sleep: Callable[[float], Any] | None = None) -> tenacity.AsyncRetrying:
        """The async twin of :meth:`retrying`, for the triggerer."""
        kwargs = self._kwargs()
        if sleep is not None:
            kwargs["sleep"] = sleep
        return tenacity.AsyncRetrying(**kwargs)


def _log_retry(max_attempts: int) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning(
            "%s; attempt %d of %d, retrying in %.1f s",
            exc,
            retry_state.attempt_number,
            max_attempts,
            wait,
        )

    return before_sleep


def _give_up(max_wait: float) -> Callable[[tenacity.RetryCallState], Any]:
    def give_up(retry_state: tenacity.RetryCallState) -> Any:
        """Re-raise the last error, saying how much of the budget was spent on it.

        When Norce asked (``Retry-After``) for a wait longer than what is left of the budget, nothing is
        waited: the error says how long Norce asked for, how much was left, and what to do.
        """
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if exc is None:  # pragma: no cover - tenacity only gives up on a failed attempt
            raise tenacity.RetryError(retry_state.outcome)  # type: ignore[arg-type]
        if is_retryable(exc) and hasattr(exc, "gave_up_after"):
            exc.gave_up_after = (retry_state.attempt_number, retry_state.seconds_since_start or 0.0)
            asked = getattr(exc, "retry_after", None)
            left = max(0.0, max_wait - retry_state.idle_for)
            if isinstance(exc, NorceAPIError) and asked is not None and asked > left:
                exc = reworded(
                    exc,
                    f"{Exception.__str__(exc)}; Norce asked to wait {asked:.0f} s (Retry-After), more "
                    f"than the {left:.0f} s left of the retry budget (max_retry_wait {max_wait:.0f} s), so "
                    "the request was not repeated. Let the task's retry run after that time (retry_delay), "
                    "or raise the connection's max_retry_wait above it to wait within the task",
                )
                exc.beyond_budget = True  # type: ignore[attr-defined]
        raise exc

    return give_up
