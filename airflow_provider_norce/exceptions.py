"""Errors raised by the Norce provider.

One base class so a DAG author can catch everything Norce-related; credential problems apart from API
answers because they need a human (a new secret, another scope), not a retry. No message built here
ever includes a client secret or an access token: callers pass only ids, URLs without credentials and
short, already-public excerpts of response bodies.
"""

from __future__ import annotations

BODY_EXCERPT_CHARS = 300


def excerpt(body: str | bytes | None, limit: int = BODY_EXCERPT_CHARS) -> str:
    """A short, single-line excerpt of a response body for an error message."""
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = " ".join(body.split())
    return text if len(text) <= limit else text[:limit] + "..."


class NorceError(Exception):
    """Base class of every error this provider raises.

    ``retryable`` is decided where the answer was read (the transport knows the method, the status and
    whether the request can have been processed); the retry policy only reads it. ``gave_up_after``
    is set when the retry budget ran out, so the message says how much was spent.
    """

    retryable: bool = False
    gave_up_after: tuple[int, float] | None = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.gave_up_after is not None:
            attempts, seconds = self.gave_up_after
            text += f" (gave up after {attempts} attempts in {seconds:.1f} s)"
        return text


class NorceConnectionConfigError(NorceError, ValueError):
    """The Airflow connection cannot describe a Norce tenant; raised before any request is sent."""

    def __init__(self, conn_id: str, field: str, problem: str) -> None:
        self.conn_id = conn_id
        self.field = field
        super().__init__(f"Norce connection {conn_id!r}, field {field!r}: {problem}")


class NorceAuthError(NorceError):
    """The token endpoint refused the credentials or the scope (never retried: it needs a human)."""

    def __init__(
        self,
        message: str,
        *,
        conn_id: str | None = None,
        error: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.error = error
        self.status_code = status_code
        super().__init__(message)


class NorceAPIError(NorceError):
    """A Norce API call answered with a non-2xx status once retries were spent (or were not allowed)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        url: str | None = None,
        body_excerpt: str = "",
        retry_after: float | None = None,
        retryable: bool = False,
    ) -> None:
        self.retryable = retryable
        self.status_code = status_code
        self.method = method
        self.url = url
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after
        super().__init__(message)


class NorceUntrustedAnswerError(NorceAPIError):
    """Norce answered in a way a fast path cannot trust (``$orderby ... desc`` or ``$top`` ignored, key bounds
    ignored, an empty page that carries a nextLink, a key that is not an integer, a row twice).

    ``behaviour`` names it in a few words, for the fallback's one warning and the export's completeness record.
    The concurrent export answers it by reading one page at a time instead; nothing it read is kept.
    """

    def __init__(self, message: str, *, behaviour: str) -> None:
        self.behaviour = behaviour
        super().__init__(message, status_code=200, method="GET")


class NorceRateLimitError(NorceAPIError):
    """Norce kept answering 429 until the retry budget (attempts or total wait) was spent."""


class NorceJobError(NorceError):
    """A Connect import job ended Failed or Validation failed, or its import was refused."""

    def __init__(self, message: str, *, job_id: str | None = None, status_id: int | None = None) -> None:
        self.job_id = job_id
        self.status_id = status_id
        super().__init__(message)
