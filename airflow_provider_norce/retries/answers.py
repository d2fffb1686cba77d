"""Reading Norce's answers: what a non-2xx, a 2xx that is not data, or a lost connection means, and the error
that says so.

The sync hook (``requests``) and the async client (``httpx``) hand the same facts (status, headers, body)
to the same functions here, so both name an answer alike and mark it ``retryable`` (and read its
``Retry-After``) alike; :mod:`airflow_provider_norce.retries.policy` then decides from those two attributes alone.
Errors never carry the bearer token the request sent, nor a credential a server echoed into a link.
"""

from __future__ import annotations

import json
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

from airflow_provider_norce.exceptions import NorceAPIError, NorceAuthError, NorceRateLimitError, excerpt

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


def final(err: NorceAPIError, conn_id: str) -> NorceAPIError:
    """The error a request raises once its retries are spent: a token request's own error as it stands (it
    already names the connection and token URL), any other :func:`explained`."""
    return err if getattr(err, RETRIES_SPENT, False) else explained(err, conn_id)


def transport_error(
    method: str, url: str, kind: str, *, never_sent: bool, changes_nothing: bool = False
) -> NorceAPIError:
    """A request that got no answer (``kind`` names the failure, e.g. ``ReadTimeout``).

    Repeating it is safe when the method is idempotent (or the request ``changes_nothing``, like a token
    request), or when the connection provably never reached Norce (refused, or timed out while
    connecting): each transport tells ``never_sent`` from its own exception types; the rule is this one.
    """
    return NorceAPIError(
        f"{method} {url} failed before Norce answered: {kind}",
        method=method,
        url=url,
        retryable=changes_nothing or method in IDEMPOTENT_METHODS or never_sent,
    )


def refused_redirect(conn_id: str, method: str, url: str, status: int, location: str | None) -> NorceAPIError:
    """A 3xx answer is never followed (sync hook, async client, token request): the bearer token, the
    client secret or a Connect batch must not reach another address, and rows from there are not Norce's."""
    target = shown_link(urljoin(url, location.strip())) if location and location.strip() else "nowhere"
    err = NorceAPIError(
        f"Norce connection {conn_id!r}: {method} {url} answered a redirect ({status}) to {target}; not "
        "following it: the Norce token and the request are never sent to another address, and nothing was "
        "read from there. Check the connection's host and base_url (Norce may have moved the API, or a proxy "
        "or login portal answers in its place); if Norce itself redirects, report it to Norce support",
        status_code=status,
        method=method,
        url=url,
        retryable=False,
    )
    mark_retries_spent(err)  # final as it stands: not retried, not reworded
    return err


def strip_query(url: str) -> str:
    """``url`` as errors show it: without its query (which may hold filters, or a server's own tokens)."""
    return url.split("?", 1)[0]


#: Query parameters never shown in an error (a server could echo a credential into its nextLink).
_SECRET_PARAMS = frozenset(
    {"access_token", "token", "client_secret", "password", "code", "api_key", "apikey"}
)


def shown_link(url: str) -> str:
    """``url`` for an error message: at most 300 characters, credential-like parameters redacted."""
    from urllib.parse import parse_qsl, urlencode

    base, _, query = url.partition("?")
    if query:
        pairs = [
            (k, "***" if k.lower() in _SECRET_PARAMS else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        base = f"{base}?{urlencode(pairs, safe='$,() ')}"
    return base if len(base) <= 300 else base[:297] + "..."
