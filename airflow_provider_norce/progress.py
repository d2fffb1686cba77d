"""Progress lines a person can read in a task's log: one reporter for every long loop of the provider.

Why one reporter: an export's pages, its concurrent slices, an import's items being checked, its batches being
posted and the wait for its Connect jobs are different loops, but a person reading the task log in the UI asks
each of them the same questions: how far, how fast, how long still, and is it stuck. Written once, every loop
answers them in the same words, at the same cadence.

The rules:

* **Cadence.** A line when at least ``interval`` seconds passed since the previous one, checked each time the
  work advances (a page, a batch, every :data:`CHECK_EVERY` items read) and by a heartbeat thread, so a line
  still comes while nothing advances: a page that takes long, a request waiting out a 429 (the line says what
  it waits for and how long already). ``interval=0`` logs every advance and starts no thread.
* **Numbers.** The count (rows, items, batches), the rate, the elapsed time, and an ETA only when the total is
  known. A total that is an estimate (a concurrent export guesses its rows from its first page) says "about";
  no total is invented where none is known (a sequential export: Norce publishes no ``$count``).
* **Nothing secret, no content.** Lines hold counts, durations and the words the caller gives (a method name,
  a file name); a retry is named by its HTTP status only, never by an error's text or a row.
* **Testable.** The clock and the sink are injected: tests drive a fake clock and read the lines a list
  collected, without a thread or a sleep (:meth:`Progress.tick` is what the heartbeat calls).

Standard library only: operator modules import it at DAG parse time.
"""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

#: Items between two cadence checks of a counted loop (:meth:`Progress.counted`): a clock read per item
#: would cost more than the line is worth on a million-item file.
CHECK_EVERY = 1000


def number(value: float) -> str:
    """``12,345``: a count with thousands separators."""
    return f"{value:,.0f}"


def duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``2 h 04 min``: seconds as a person reads them."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {(whole % 3600) // 60:02d} min"


def retry_reason(error: BaseException) -> str:
    """What a retry waits out, named by the HTTP status only (an error's text may hold a URL or a body)."""
    status = getattr(error, "status_code", None)
    if status == 429:
        return "HTTP 429 (rate limit)"
    if isinstance(status, int):
        return f"HTTP {status}"
    return "a connection error or timeout"


class Progress:
    """Progress of one loop, logged at a steady cadence (see the module's rules).

    :param title: how each line starts (``Export progress``, ``Import progress, posting``).
    :param unit: what is counted (``rows``, ``items``, ``jobs finished``).
    :param interval: seconds between two lines at least (``progress_interval``); ``0`` logs every advance.
    :param sink: where a line goes (the task's ``self.log.info``); called outside the lock.
    :param clock: monotonic seconds (tests pass a fake one).
    :param total: the count at the end, when known; ``about=True`` when it is an estimate.
    :param show_rate: ``False`` where a rate means nothing to a reader (jobs finished per second).
    :param waiting_for: what the loop waits for when nothing advances (shown after ``interval`` idle
        seconds), e.g. ``the next page from Norce Query``.

    ``status``, when set, ends every line (the job wait: which jobs still run, when the next check is).
    """

    def __init__(
        self,
        title: str,
        unit: str,
        *,
        interval: float,
        sink: Callable[[str], Any],
        clock: Callable[[], float] = time.monotonic,
        total: int | None = None,
        about: bool = False,
        show_rate: bool = True,
        waiting_for: str | None = None,
    ) -> None:
        self.title = title
        self.unit = unit
        self.interval = max(0.0, float(interval))
        self.sink = sink
        self.clock = clock
        self.total = total
        self.about = about
        self.show_rate = show_rate
        self.waiting_for = waiting_for
        self.status: str | None = None
        self.count = 0
        self.counters: dict[str, list[int | None]] = {}  # name -> [value, total or None], in display order
        self.started = self.last_line = self.last_advance = clock()
        self._retry: tuple[str, float] | None = None  # (reason, retry at, on the clock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the loop tells it ---------------------------------------------------------------------

    def counter(self, name: str, value: int = 0, total: int | None = None) -> None:
        """Show ``name`` in each line (``pages``; ``slices`` with a total: ``3 of 10 slices``), in the
        order declared. No line is logged."""
        with self._lock:
            self.counters[name] = [value, total]

    def expect(self, total: int | None, about: bool = False) -> None:
        """The count at the end, once known (``about``: an estimate). No line is logged."""
        with self._lock:
            self.total, self.about = total, about

    def add(self, count: int = 0, **counters: int) -> None:
        """The work advanced by ``count`` (and each named counter by its value); log a line if one is due.

        ``add()`` of nothing is a cadence check only: it does not count as an advance."""
        with self._lock:
            self.count += count
            for name, step in counters.items():
                entry = self.counters.setdefault(name, [0, None])
                entry[0] = (entry[0] or 0) + step
            if count or any(counters.values()):
                self.last_advance = now = self.clock()
                if self._retry is not None and self._retry[1] <= now:  # the retry was sent: said enough
                    self._retry = None
            line = self._due_line()
        if line is not None:
            self.sink(line)

    def on_retry(self, error: BaseException, wait: float) -> None:
        """The hook's ``retry_listener``: the next lines say the loop waits ``wait`` s to retry, and why."""
        with self._lock:
            self._retry = (retry_reason(error), self.clock() + max(0.0, wait))

    def counted(self, values: Iterable[Any], every: int = CHECK_EVERY) -> Iterator[Any]:
        """``values``, adding one to the count for each (a cadence check every ``every`` values)."""
        pending = 0
        try:
            for value in values:
                pending += 1  # counted when handed over: a reader that stops early read it
                yield value
                if pending >= every:
                    self.add(pending)
                    pending = 0
        finally:
            if pending:
                self.add(pending)

    # -- lines --------------------------------------------------------------------------------------

    def tick(self) -> None:
        """Log a line if one is due although nothing advanced (what the heartbeat calls)."""
        with self._lock:
            line = self._due_line()
        if line is not None:
            self.sink(line)

    def line(self) -> str:
        """The progress line as of now."""
        with self._lock:
            return self._render(self.clock())

    def _due_line(self) -> str | None:
        now = self.clock()
        if now - self.last_line < self.interval:
            return None
        self.last_line = now
        return self._render(now)

    def _render(self, now: float) -> str:
        seconds = now - self.started
        if self.total is not None:
            about = "about " if self.about else ""
            head = f"{number(self.count)} of {about}{number(self.total)} {self.unit}"
            if self.total > 0:
                head += f" ({min(100.0, 100.0 * self.count / self.total):.0f} %)"
        else:
            head = f"{number(self.count)} {self.unit}"
        parts = [head]
        for name, (value, total) in self.counters.items():
            parts.append(
                f"{number(value or 0)} {name}"
                if total is None
                else f"{number(value or 0)} of {number(total)} {name}"
            )
        rate = self.count / seconds if seconds > 0 else 0.0
        if self.show_rate:
            timing = f"{number(rate)} {self.unit.split()[0]}/s over {duration(seconds)}"
        else:
            timing = f"{duration(seconds)} so far"
        left = self._eta(seconds)
        if left is not None:
            timing += f", about {duration(left)} left"
        text = f"{self.title}: {', '.join(parts)}; {timing}"
        if self._retry is not None and self._retry[1] > now:
            reason, retry_at = self._retry
            text += f"; waiting {duration(retry_at - now)} more to retry after {reason}"
        elif self._retry is not None:
            text += f"; retrying after {self._retry[0]}"
        elif self.waiting_for and self.interval > 0 and now - self.last_advance >= self.interval:
            text += f"; waiting {duration(now - self.last_advance)} for {self.waiting_for}"
        if self.status:
            text += f"; {self.status}"
        return text

    def _eta(self, seconds: float) -> float | None:
        if self.total is None or self.count <= 0 or seconds <= 0:
            return None
        remaining = self.total - self.count
        return remaining * seconds / self.count if remaining > 0 else None

    # -- the heartbeat ------------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the heartbeat thread (not with ``interval=0``, which logs every advance anyway, nor with
        an infinite one). Pair it with :meth:`stop` in a ``finally``, or use the reporter as a context."""
        if self._thread is not None or not (0 < self.interval < math.inf):
            return
        self._thread = threading.Thread(target=self._beat, name=f"norce-progress-{self.title}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and wait for its thread: none outlives the loop it reports on."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _beat(self) -> None:
        """Wake when the next line is due (real time: the heartbeat only exists with the real clock)."""
        while True:
            with self._lock:
                wait = self.last_line + self.interval - self.clock()
            if self._stop.wait(max(0.05, wait)):
                return
            self.tick()
