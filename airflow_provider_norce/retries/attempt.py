"""One attempt of an authenticated Norce request, written once and free of I/O.

The rules that matter most live here and nowhere else: send with the current token; on a 401 drop that
token and send once more with a new one (a second 401 means missing access, not staleness); never follow
a redirect; read the answer (:mod:`airflow_provider_norce.retries.answers`). The attempt is a generator
in the style of httpx's auth flows: it yields what it needs done (:class:`GetToken`, :class:`Renew`,
:class:`Send`) and receives the result, so the sync hook (``requests``) and the async client (``httpx``,
in the triggerer) drive the very same decisions, each with its own I/O. The retry policy
(:mod:`airflow_provider_norce.retries.policy`) repeats whole attempts.

:func:`~airflow_provider_norce.flows.drive` and :func:`~airflow_provider_norce.flows.drive_async` run an
attempt with a transport's ``do(step)``; only ``do`` differs between the two, and it holds nothing but I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.retries.answers import (
    IDEMPOTENT_METHODS,
    api_error,
    json_body,
    refused_fresh_token,
    refused_redirect,
    strip_query,
)

if TYPE_CHECKING:
    from collections.abc import Generator


@dataclass(frozen=True)
class Call:
    """What is asked: enough to send it, and to name it in an error."""

    conn_id: str
    application_id: int | None
    method: str
    url: str
    parse: bool = False

    @property
    def shown(self) -> str:
        return strip_query(self.url)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS


@dataclass(frozen=True)
class Answer:
    """What Norce answered, as both transports can give it; ``raw`` is the transport's own response."""

    status: int
    content: bytes
    retry_after: str | None = None
    location: str | None = None
    raw: Any = None

    @classmethod
    def of(cls, response: Any) -> Answer:
        """From a ``requests.Response`` or an ``httpx.Response`` (they agree on these attributes)."""
        headers = response.headers
        return cls(
            response.status_code,
            response.content,
            headers.get("Retry-After"),
            headers.get("Location"),
            response,
        )


@dataclass(frozen=True)
class GetToken:
    """Step: hand back the current access token (from the cache, or a new one)."""


@dataclass(frozen=True)
class Renew:
    """Step: drop ``refused`` (Norce answered 401 to it) here and in the shared store; hand back a new token."""

    refused: str


@dataclass(frozen=True)
class Send:
    """Step: send the call with ``access_token``; hand back the :class:`Answer` (or raise a transport error
    made by :func:`~airflow_provider_norce.retries.answers.transport_error`)."""

    access_token: str


Step = GetToken | Renew | Send
#: What an attempt returns: the transport's response, and the parsed body when the call asked for it.
Result = tuple[Any, Any]


def attempt(call: Call) -> Generator[Step, Any, Result]:
    """The attempt as a flow of steps; raises the error the answer means (retryable or not)."""
    token: str = yield GetToken()
    answer: Answer = yield Send(token)
    if answer.status == 401:
        # Norce no longer takes this token (revoked, rotated secret, clock skew): renew once.
        token = yield Renew(token)
        answer = yield Send(token)
        if answer.status == 401:
            raise refused_fresh_token(call.conn_id, call.application_id, call.method, call.shown)
    return answer.raw, judged(call, answer, token)


def judged(call: Call, answer: Answer, access_token: str) -> Any:
    """The parsed body (``None`` when not asked for), or the error the answer means."""
    if 300 <= answer.status < 400:
        raise refused_redirect(call.conn_id, call.method, call.shown, answer.status, answer.location)
    if not 200 <= answer.status < 300:
        raise api_error(
            call.method, call.shown, answer.status, answer.retry_after, answer.content, access_token
        )
    if not call.parse:
        return None
    return json_body(call.method, call.shown, answer.status, answer.content, call.idempotent, access_token)
