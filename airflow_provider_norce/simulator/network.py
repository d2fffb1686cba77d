"""A simulated network link in front of the simulator: latency (fixed and jittered) and a bandwidth cap.

Why: on loopback every request is free, so a client that pages one request at a time looks as fast as one
that keeps several in flight. Over a real link each Query page costs a round trip and the bytes share one
pipe; the provider's concurrent export and its benchmarks need that cost to be there, and repeatable.

The rules (the numbers are the caller's: Norce publishes none for its network):

* **Latency**: every answer (identity, API, Query, Connect; not ``/_sim/``) waits ``latency`` seconds, drawn
  uniformly from ``[latency - latency_jitter, latency + latency_jitter]`` by a seeded RNG, so a run with the
  same seed draws the same delays in the same order. The wait is slept by the request's own thread with no
  lock held: the simulator serves a thread per connection, so 8 concurrent requests over a 100 ms link take
  about 100 ms, not 800, as on a real link.
* **Bandwidth**: one token bucket of ``bandwidth`` bytes per second for the whole link (not per connection):
  concurrent answers share the cap. An answer is written in chunks; each chunk takes its bytes from the
  bucket and sleeps what the bucket owes (the bucket holds no burst, so the link never runs faster than the
  cap, and N bytes take N / bandwidth seconds of link time however they are interleaved). Request bodies are
  not paced (a link is full duplex; this models the download side, where export pages flow).

``clock`` and ``sleep`` are injectable so tests check the waits the link asks for instead of measuring wall
time (``FakeClock`` from :mod:`.clock` fits both).
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

#: the keys of :meth:`Network.settings`, ``GET /_sim/network`` and ``POST /_sim/network``
SETTING_NAMES = ("latency", "latency_jitter", "bandwidth")
#: smallest and largest write while pacing (bytes); in between, about 10 ms of link time per chunk
_MIN_CHUNK = 1024
_MAX_CHUNK = 65_536
_CHUNK_SECONDS = 0.01


class _Unchanged:
    """The marker for "keep the current value" in :meth:`Network.configure` (``None`` means "no cap")."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"network setting {name} must be a finite number of seconds or bytes, got {value!r}")
    return float(value)


def validate(latency: Any, latency_jitter: Any, bandwidth: Any) -> tuple[float, float, float | None]:
    """The three settings checked together; a ValueError that names the setting and the fix otherwise."""
    lat = _number("latency", latency)
    jitter = _number("latency_jitter", latency_jitter)
    if lat < 0:
        raise ValueError(f"network setting latency must be >= 0 seconds, got {latency!r}")
    if jitter < 0:
        raise ValueError(f"network setting latency_jitter must be >= 0 seconds, got {latency_jitter!r}")
    if jitter > lat:
        raise ValueError(
            f"network setting latency_jitter ({latency_jitter!r}) must not exceed latency ({latency!r}): "
            "a delay below zero does not exist; raise latency or lower the jitter"
        )
    if bandwidth is None:
        return lat, jitter, None
    cap = _number("bandwidth", bandwidth)
    if cap <= 0:
        raise ValueError(
            f"network setting bandwidth must be > 0 bytes per second (or null for no cap), got {bandwidth!r}"
        )
    return lat, jitter, cap


class Network:
    """One simulated link: per-request latency with jitter, and a link-wide bandwidth cap (see module docs).

    ``sleeps`` records every wait the link asked for when ``record=True`` (tests; off by default so a
    long-running simulator does not grow a list).
    """

    def __init__(
        self,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        bandwidth: float | None = None,
        *,
        seed: int = 42,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        chunk_size: int | None = None,
        record: bool = False,
    ) -> None:
        self.latency, self.latency_jitter, self.bandwidth = validate(latency, latency_jitter, bandwidth)
        self._clock = clock
        self._sleep = sleep
        self._chunk_size = chunk_size
        self._rng = random.Random(seed ^ 0x4E_4554)  # "NET": its own stream, apart from the data and faults
        self._lock = (
            threading.Lock()
        )  # guards the settings, the RNG and the bucket; never held while sleeping
        self._tokens = 0.0
        self._refilled = clock()
        self.record = record
        self.sleeps: list[float] = []

    # -- settings -------------------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """``{"latency": s, "latency_jitter": s, "bandwidth": bytes per second or None}``."""
        with self._lock:
            return {
                "latency": self.latency,
                "latency_jitter": self.latency_jitter,
                "bandwidth": self.bandwidth,
            }

    def configure(
        self, latency: Any = UNCHANGED, latency_jitter: Any = UNCHANGED, bandwidth: Any = UNCHANGED
    ) -> dict[str, Any]:
        """Change any of the settings at run time (validated together); returns the new :meth:`settings`.

        ``bandwidth=None`` removes the cap. A changed cap starts from an empty bucket.
        """
        with self._lock:
            new = validate(
                self.latency if latency is UNCHANGED else latency,
                self.latency_jitter if latency_jitter is UNCHANGED else latency_jitter,
                self.bandwidth if bandwidth is UNCHANGED else bandwidth,
            )
            if new[2] != self.bandwidth:
                self._tokens, self._refilled = 0.0, self._clock()
            self.latency, self.latency_jitter, self.bandwidth = new
        return self.settings()

    def configure_from(self, changes: Any) -> dict[str, Any]:
        """:meth:`configure` from a JSON object (``POST /_sim/network``); unknown keys are a ValueError."""
        if not isinstance(changes, dict):
            raise ValueError(f"send a JSON object with any of {', '.join(SETTING_NAMES)}")
        unknown = sorted(set(changes) - set(SETTING_NAMES))
        if unknown:
            raise ValueError(f"unknown network setting(s) {unknown}; use {', '.join(SETTING_NAMES)}")
        return self.configure(**changes)

    # -- latency --------------------------------------------------------------------------------------------
    def draw_latency(self) -> float:
        """The next request's latency from the seeded RNG (no sleeping): same seed, same sequence."""
        with self._lock:
            if self.latency_jitter == 0:
                return self.latency
            return self.latency + self._rng.uniform(-self.latency_jitter, self.latency_jitter)

    def wait_latency(self) -> float:
        """Sleep one request's latency in the calling thread, no lock held; returns the delay."""
        delay = self.draw_latency()
        if delay > 0:
            self._wait(delay)
        return delay

    # -- bandwidth ------------------------------------------------------------------------------------------
    def reserve(self, nbytes: int) -> float:
        """Take ``nbytes`` from the link's bucket; the seconds the caller must wait before sending them.

        The bucket refills at ``bandwidth`` bytes per second and holds no burst; its level may go below zero
        (bytes promised to other senders), so concurrent senders queue behind each other's bytes.
        """
        with self._lock:
            rate = self.bandwidth
            if rate is None:
                return 0.0
            now = self._clock()
            self._tokens = min(0.0, self._tokens + (now - self._refilled) * rate) - nbytes
            self._refilled = now
            return -self._tokens / rate

    def chunk_size(self) -> int:
        """Bytes per paced write: about 10 ms of link time, within 1 KiB to 64 KiB (or the injected size)."""
        if self._chunk_size is not None:
            return self._chunk_size
        rate = self.bandwidth or _MAX_CHUNK / _CHUNK_SECONDS
        return int(min(_MAX_CHUNK, max(_MIN_CHUNK, rate * _CHUNK_SECONDS)))

    def send(self, write: Callable[[bytes | memoryview], object], data: bytes) -> None:
        """Write ``data`` through the link: at once without a cap, else in chunks paced by the bucket."""
        if self.bandwidth is None:
            write(data)
            return
        size = self.chunk_size()
        view = memoryview(data)
        for offset in range(0, len(data), size):
            chunk = view[offset : offset + size]
            wait = self.reserve(len(chunk))
            if wait > 0:
                self._wait(wait)
            write(chunk)

    def _wait(self, seconds: float) -> None:
        if self.record:
            with self._lock:
                self.sleeps.append(seconds)
        self._sleep(seconds)
