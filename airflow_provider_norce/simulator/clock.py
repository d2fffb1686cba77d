"""Time for the simulator and the tests: an injectable clock, and wall-clock instants derived from it.

Why: token expiry, the token rate limit and Connect job progress all depend on time. Tests pass a
:class:`FakeClock` and call :meth:`FakeClock.advance` instead of sleeping, so a 20-second rate-limit slot
or a 10-minute token lifetime is checked in microseconds. Wall-clock values (JWT ``exp``/``iat``, job
``Start``/``Stop``) move with the same clock so that they stay consistent with what the server enforces.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class FakeClock:
    """A manually advanced clock; thread-safe, callable like ``time.monotonic`` or ``time.time``.

    It is the one fake clock of the project: the simulator reads it, and the operator-side tests hand
    it to the token cache, the limiter and the hook (``sleep=clock.sleep``). ``start`` defaults to a
    small monotonic-like reading; pass an epoch-like one (``FakeClock(start=1_800_000_000.0)``) where
    the clock stands in for ``time.time`` (token ``expires_at``, JWT ``exp``).

    :meth:`advance` moves time; :meth:`sleep` does the same and also records the wait in
    :attr:`sleeps`, so a test asserts the waits the code asked for instead of measuring wall time.
    """

    def __init__(self, start: float = 1_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        #: Every wait passed to :meth:`sleep`, in order.
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    @property
    def now(self) -> float:
        """The current reading (the same as calling the clock)."""
        return self()

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` and return the new reading."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        with self._lock:
            self._now += seconds
            return self._now

    def sleep(self, seconds: float) -> None:
        """A ``time.sleep`` that returns at once: record the wait, then advance by it."""
        if seconds < 0:
            raise ValueError(f"sleep length must be non-negative, got {seconds!r}")
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds


class SimTime:
    """The simulator's view of time: ``now()`` from the injected clock, ``wall()`` as epoch seconds."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.now: Callable[[], float] = clock or time.monotonic
        self._clock0 = self.now()
        self._wall0 = time.time()

    def wall(self, at: float | None = None) -> float:
        """Epoch seconds at simulator instant ``at`` (default: now)."""
        return self._wall0 + ((self.now() if at is None else at) - self._clock0)


def iso_z(epoch: float, millis: bool = False) -> str:
    """``2026-11-27T08:30:00Z`` (or with ``.123`` milliseconds) for an epoch instant, in UTC."""
    whole = int(epoch // 1)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if millis:
        return f"{text}.{round((epoch - whole) * 1000) % 1000:03d}Z"
    return text + "Z"
