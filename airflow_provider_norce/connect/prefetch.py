"""One batch ahead: a worker thread prepares the next batch of an import while the calling thread posts this one.

Why: reading, parsing and JSON-encoding a batch is CPU work, and a POST is mostly waiting for Norce. Done
one after the other, every batch pays both; overlapped, an import runs at the speed of the slower of the
two. Why only ONE ahead: memory stays flat (the batch being posted plus the next one, whatever the file's
size), and a second prepared batch would not make the POSTs, which stay one at a time, any faster.

What stays on the calling thread: everything but producing. The POSTs (one at a time, in order: Connect jobs
of one import must not overlap), the ledger (a batch's job id is recorded before the next POST: the
no-double-post promise) and the logs. The producer only computes.

Errors: whatever the producer raises (a bad line in the file, a file gone) is raised on the calling thread,
the same exception object, when the consumer reaches it: the batches before it are still handed over (and
posted) first, exactly as a sequential loop would. Leaving the ``with`` block in any way (the end, an
error, the ledger's "uncertain" refusal, a ``KeyboardInterrupt`` or Airflow's SIGTERM exception) stops the
producer at its next item and joins it: no thread outlives the import.

Standard library only.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

T = TypeVar("T")


_ITEM, _DONE, _ERROR = "item", "done", "error"


class _Stopped(BaseException):
    """Raised inside the producer by :meth:`OneAhead.checked` once the consumer has left (never escapes)."""


class OneAhead(Generic[T]):
    """Run ``produce`` on a worker thread, at most one value ahead of the consumer.

    ``produce`` receives a function that wraps an iterator so that the producer stops at its next value
    once the consumer has left (see :meth:`checked`); it returns the iterator of values to hand over::

        with OneAhead(lambda checked: encode(checked(iter(items))), "norce-import-reader") as batches:
            for batch in batches:
                post(batch)

    The producer computes a value only when the previous one has been taken, so at any time there is the
    value the consumer holds and at most one more (ready or being computed).
    """

    def __init__(
        self, produce: Callable[[Callable[[Iterator[Any]], Iterator[Any]]], Iterator[T]], name: str
    ) -> None:
        self._produce = produce
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._slot: list[tuple[str, Any]] = []  # at most one (kind, value), guarded by _cond
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._iterated = False

    # -- the worker thread -------------------------------------------------------------------------

    def checked(self, values: Iterator[Any]) -> Iterator[Any]:
        """``values``, stopping the producer between two of them once the consumer has left."""
        for value in values:
            if self._stop.is_set():
                raise _Stopped
            yield value

    def _run(self) -> None:
        outcome: tuple[str, Any] = (_DONE, None)
        try:
            values = self._produce(self.checked)
            while True:
                with self._cond:  # wait until the previous value was taken: one ahead, no more
                    while self._slot and not self._stop.is_set():
                        self._cond.wait()
                if self._stop.is_set():
                    return
                try:
                    value = next(values)
                except StopIteration:
                    break
                self._hand_over((_ITEM, value))
        except _Stopped:
            return
        except BaseException as err:  # every error goes to the consumer, which re-raises it
            outcome = (_ERROR, err)
        self._hand_over(outcome)

    def _hand_over(self, entry: tuple[str, Any]) -> None:
        with self._cond:
            self._slot.append(entry)
            self._cond.notify_all()

    # -- the calling thread ------------------------------------------------------------------------

    def __enter__(self) -> OneAhead[T]:
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[T]:
        if self._iterated:
            raise RuntimeError(f"{self._thread.name}: the values can be iterated once only")
        self._iterated = True
        while True:
            with self._cond:
                while not self._slot:
                    if not self._thread.is_alive():  # cannot happen: _run always hands over an end
                        raise RuntimeError(f"{self._thread.name}: the producer thread ended without a result")
                    self._cond.wait(1.0)
                kind, value = self._slot.pop(0)
                self._cond.notify_all()  # the producer may compute the next value now
            if kind == _DONE:
                return
            if kind == _ERROR:
                raise value
            yield value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the producer (at its next value) and wait for its thread to end."""
        self._stop.set()
        with self._cond:
            self._slot.clear()  # a value nobody will take
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join()
