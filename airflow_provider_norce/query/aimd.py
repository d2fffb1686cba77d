"""How many Query requests a concurrent export keeps in flight: additive increase, multiplicative decrease.

Norce says Query has a rate limit and answers 429 over it, but publishes neither the numbers nor a
``Retry-After`` (``query.json rate_limit``). So the export finds the rate itself, as TCP finds a link's
capacity: a 429 halves the requests allowed in flight (at most once per pause, so eight slices refused
together halve it once, not eight times) and pauses every slice until the wait the retry policy chose
(``Retry-After`` when Norce sends one); each run of ``limit`` answered pages lets one more request in, up
to ``max_concurrency``. The retry of the refused request itself stays with the one retry policy
(:mod:`airflow_provider_norce.retries.policy`); this only decides when the *next* requests may start.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


class AimdLimit:
    """A gate for concurrent requests whose width follows the 429s (see the module docs).

    :param ceiling: the most requests in flight (``max_concurrency``).
    :param clock: monotonic seconds (tests pass a fake clock).
    :param sleep: how a paused request waits; it is given the seconds left and re-checks afterwards.
    :param logger: where narrowing and widening are logged (the task's log).
    """

    def __init__(
        self,
        ceiling: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        logger: Any = None,
    ) -> None:
        if ceiling < 1:
            raise ValueError("the concurrency ceiling must be at least 1")
        self.log = logger or log
        self.ceiling = ceiling
        self.limit = ceiling
        self.in_flight = 0
        self.throttles = 0
        self._clock = clock
        self._sleep = sleep
        self._paused_until = 0.0
        self._successes = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def permit(self) -> Iterator[None]:
        """Hold one of the ``limit`` places while a request (with its own retries) runs."""
        with self._cond:
            while True:
                wait = self._paused_until - self._clock()
                if wait <= 0 and self.in_flight < self.limit:
                    break
                if wait > 0 and self._sleep is not None:
                    self._cond.release()
                    try:
                        self._sleep(wait)
                    finally:
                        self._cond.acquire()
                else:
                    self._cond.wait(timeout=wait if wait > 0 else None)
            self.in_flight += 1
        ok = False
        try:
            yield
            ok = True
        finally:
            with self._cond:
                self.in_flight -= 1
                if ok:
                    self._answered()
                self._cond.notify_all()

    def _answered(self) -> None:
        self._successes += 1
        if self._successes >= self.limit and self.limit < self.ceiling:
            self._successes = 0
            self.limit += 1
            self.log.info("Norce Query: %d requests in flight allowed again", self.limit)

    def throttled(self, wait: float) -> None:
        """A request was refused with 429 and retries in ``wait`` seconds: halve, and pause the others."""
        with self._cond:
            now = self._clock()
            self.throttles += 1
            if now >= self._paused_until:  # once per pause: refusals of the same burst halve once
                before = self.limit
                self.limit = max(1, self.limit // 2)
                self._successes = 0
                self.log.warning(
                    "Norce Query answered 429 (rate limit): %d -> %d requests in flight, every slice "
                    "paused %.1f s",
                    before,
                    self.limit,
                    wait,
                )
            self._paused_until = max(self._paused_until, now + max(0.0, wait))
            self._cond.notify_all()

    def on_retry(self, error: BaseException, wait: float) -> None:
        """The hook's retry listener: only 429s narrow the gate; 5xx and timeouts are retried as usual."""
        if getattr(error, "status_code", None) == 429:
            self.throttled(wait)
