"""The one retry policy of the provider, written with tenacity's composable pieces.

Sync (``requests``) and async (``httpx``) code read answers with :mod:`airflow_provider_norce.retries.answers`,
which raises :mod:`airflow_provider_norce.exceptions` with ``retryable`` and ``retry_after`` set; everything
here decides from those two attributes alone, so both transports retry exactly alike:

* retry: only what the transport marked ``retryable`` (429 always; 5xx, timeouts and dropped
  connections for idempotent requests; a POST only when it provably was not processed);
* wait: ``Retry-After`` when Norce sends it (seconds or HTTP date), else exponential backoff with
  jitter, and never sooner than ``rate_limit_floor`` after a 429 (20 s on the token endpoint, where a
  slot frees every 20 s);
* stop: after ``max_attempts``, or before a wait that would take the waits past ``max_wait`` seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tenacity
from tenacity import retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from airflow_provider_norce.exceptions import NorceAPIError
from airflow_provider_norce.retries.answers import RETRIES_SPENT, reworded

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds between two token requests Norce admits once the burst is spent (3 a minute).
TOKEN_SLOT_SECONDS = 20.0


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

    def _kwargs(self, listener: Callable[[BaseException, float], None] | None = None) -> dict[str, Any]:
        return {
            "retry": retry_if_exception(is_retryable),
            "wait": wait_retry_after(
                wait_exponential_jitter(
                    initial=self.backoff_initial, max=self.backoff_max, jitter=self.jitter
                ),
                rate_limit_floor=self.rate_limit_floor,
            ),
            "stop": stop_after_attempt(self.max_attempts) | stop_before_wait_budget(self.max_wait),
            "before_sleep": _log_retry(self.max_attempts, listener),
            "retry_error_callback": _give_up(self.max_wait),
            "reraise": True,
        }

    def retrying(
        self,
        sleep: Callable[[float], None] | None = None,
        listener: Callable[[BaseException, float], None] | None = None,
    ) -> tenacity.Retrying:
        """A sync controller; each retry logs one WARNING line: the reason, the attempt, the wait.

        ``listener(error, wait)`` hears of each retry before its wait: a concurrent export narrows its
        requests in flight on a 429 (:class:`~airflow_provider_norce.query.aimd.AimdLimit`).
        """
        kwargs = self._kwargs(listener)
        if sleep is not None:
            kwargs["sleep"] = sleep
        return tenacity.Retrying(**kwargs)

    def async_retrying(self, sleep: Callable[[float], Any] | None = None) -> tenacity.AsyncRetrying:
        """The async twin of :meth:`retrying`, for the triggerer."""
        kwargs = self._kwargs()
        if sleep is not None:
            kwargs["sleep"] = sleep
        return tenacity.AsyncRetrying(**kwargs)


def _log_retry(
    max_attempts: int, listener: Callable[[BaseException, float], None] | None = None
) -> Callable[[tenacity.RetryCallState], None]:
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
        if listener is not None and exc is not None:
            listener(exc, wait)

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
