"""A Query export read by several key-range slices at once, resumable, and written as one atomic file.

Why: over a real network each page costs a round trip, so one page at a time leaves the link idle most of
the time (500 rows per 100 ms is 5,000 rows/s however fast both ends are). Reading ``max_concurrency`` key
ranges at once fills it. The rules:

* **Same file.** Slices are key ranges read in key order (:mod:`.slices`); each goes into its own part
  (:mod:`.staging`), and the parts are joined in key order into the destination, atomically
  (:func:`~airflow_provider_norce.query.files.atomic_output`): the bytes a sequential export writes.
* **Memory of the pages in flight.** A slice holds one page at a time and writes it to its part; the file
  is joined by streaming the parts.
* **One token, one retry policy.** Every slice uses the same hook: its token cache hands out one token, and
  its retry policy retries each request. A 429 narrows the requests in flight and pauses every slice
  (:class:`~airflow_provider_norce.query.aimd.AimdLimit`).
* **Resumable.** A killed or failed try leaves its plan and finished parts in the staging folder; the retry
  reads only the slices that have no part. At most the slices that were in flight are read again.
* **Small exports stay one request.** The first page is read before anything is planned; when it is the
  only page, it is the file.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_norce.query.aimd import AimdLimit
from airflow_provider_norce.query.files import JsonLinesWriter, atomic_output, make_writer
from airflow_provider_norce.query.slices import KeyRange, SlicePlan, checked_keys, keyset_pages, plan_slices
from airflow_provider_norce.query.staging import Staging

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlicedResult:
    """What the export did: rows in the file, pages read by this try, slices planned and found done."""

    rows: int
    pages: int
    slices: int
    resumed: int


class _Stopped(Exception):
    """Another slice failed: this one stops at its next page, and its part is not committed."""


class SlicedExport:
    """Export ``endpoint`` with ``params`` to ``destination`` by concurrent key-range slices.

    :param key: an integer key of the entity set (``Id``); the rows are cut and ordered by it.
    :param select: the user's ``$select`` (``None``: every field); the key is asked for as well when it is
        not selected, and left out of the rows written.
    :param digest: the export's fingerprint (:func:`~airflow_provider_norce.query.staging.fingerprint`),
        naming its staging folder and checked against a stored plan.
    :param where: who is exporting, for errors (``Task 'export_orders'``).
    :param logger: where the plan, the resumption and the rate-limit steps are logged (the task's log).
    :param progress: the task's progress reporter (:class:`~airflow_provider_norce.progress.Progress`),
        counting rows: told every page read, the slices finished of the plan, and the plan's estimate of
        the rows (an estimate from the first page's density, as Norce publishes no ``$count``). It keeps
        its own cadence; ``None`` reports nothing.
    """

    def __init__(
        self,
        hook: NorceHook,
        endpoint: str,
        params: dict[str, str],
        *,
        key: str,
        select: Sequence[str] | None,
        destination: Any,
        file_format: str,
        columns: Sequence[str] | None,
        concurrency: int,
        slice_rows: int,
        digest: str,
        where: str,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
    ) -> None:
        self.log = logger or log
        self.hook = hook
        self.endpoint = endpoint
        self.params = dict(params)
        self.key = key
        self.strip_key = bool(select) and key not in (select or ())
        if self.strip_key:
            self.params["$select"] = ",".join([*(select or ()), key])
        self.destination = destination
        self.file_format = file_format
        self.columns = columns
        self.concurrency = concurrency
        self.slice_rows = slice_rows
        self.digest = digest
        self.where = where
        self.progress = progress
        self.clock = clock
        self.limit = AimdLimit(concurrency, clock=clock, logger=self.log)
        self.staging = Staging(destination, digest)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.rows_read = 0
        self.pages = 0

    def run(self, keep_staging_on_failure: bool = True) -> SlicedResult:
        """Plan (or find the plan of an earlier try), read the missing slices, join the parts.

        The destination is opened first, as a sequential export does, so a destination that cannot be
        written fails before any request. ``keep_staging_on_failure=False`` (no retry will come) removes
        the staging folder when the export fails, so a final failure leaves nothing behind.
        """
        previous = self.hook.retry_listener
        self.hook.retry_listener = _both(previous, self.limit.on_retry)
        try:
            with atomic_output(self.destination) as stream:
                result = self._run(stream)
        except BaseException:
            if not keep_staging_on_failure:
                self.staging.remove()
            raise
        finally:
            self.hook.retry_listener = previous
        self.staging.remove()
        return result

    def _run(self, stream: IO[bytes]) -> SlicedResult:
        plan = SlicePlan.from_json(self.staging.read_plan(), self.digest)
        resumed = plan is not None
        if plan is None:
            plan_or_rows = self._plan()
            if isinstance(plan_or_rows, list):  # one page: that is the whole export
                writer = make_writer(self.file_format, stream, self.columns)
                self._write_page(writer, plan_or_rows)
                writer.close()
                return SlicedResult(writer.rows, self.pages, 1, 0)
            plan = plan_or_rows
        done = self.staging.finished() & set(range(plan.count))
        if resumed:
            self.log.info(
                "%s: resuming from %s: %d of %d slices were finished by an earlier try",
                self.where,
                self.staging,
                len(done),
                plan.count,
            )
        todo = [key_range for key_range in plan.ranges() if key_range.index not in done]
        if self.progress is not None:
            self.progress.counter("slices", len(done), plan.count)
        self._read(todo)
        rows = self._join(plan.count, stream)
        return SlicedResult(rows, self.pages, plan.count, len(done) if resumed else 0)

    # -- planning ---------------------------------------------------------------------------------

    def _plan(self) -> SlicePlan | list[dict[str, Any]]:
        """Read the first page in key order; if more follow, ask for the last key and cut the rest."""
        params = {**self.params, "$orderby": self.key}
        with self.limit.permit():
            rows, next_link = self.hook.odata_page(self.endpoint, params=params)
        self._count(rows)
        keys = checked_keys(rows, self.key, self.where)
        if next_link in (None, "") or not rows:
            return rows
        probe = {
            "$orderby": f"{self.key} desc",
            "$top": "1",
            "$select": self.key,
        }
        if "$filter" in self.params:
            probe["$filter"] = self.params["$filter"]
        with self.limit.permit():
            last_rows, _ = self.hook.odata_page(self.endpoint, params=probe)
        last = checked_keys(last_rows, self.key, self.where)
        if self.progress is not None and keys:
            self.progress.expect(estimated_rows(keys, last[0] if last else keys[-1]), about=True)
        plan = plan_slices(
            self.digest, self.key, keys, last[0] if last else keys[-1], self.concurrency, self.slice_rows
        )
        self.staging.write_plan(plan.to_json())
        with self.staging.open_part(0) as handle:
            self._write_page(JsonLinesWriter(handle), rows)
        self.log.info(
            "%s: %d slices of about %d %s values each (%s %d to %d), %d at a time; staging in %s",
            self.where,
            plan.count,
            plan.width,
            self.key,
            self.key,
            plan.low,
            plan.high - 1,
            self.concurrency,
            self.staging,
        )
        return plan

    # -- reading ----------------------------------------------------------------------------------

    def _read(self, todo: list[KeyRange]) -> None:
        if not todo:
            return
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(todo)), thread_name_prefix="norce-slice"
        ) as pool:
            futures = {pool.submit(self._read_slice, key_range): key_range for key_range in todo}
            pending = set(futures)
            try:
                while pending:
                    # woken each second too: a SIGTERM's handler runs in this thread between waits
                    complete, pending = concurrent.futures.wait(
                        pending, timeout=1.0, return_when=concurrent.futures.FIRST_EXCEPTION
                    )
                    for future in complete:
                        future.result()  # the first failure stops every slice (below)
            except BaseException:
                self._stop.set()
                for future in pending:
                    future.cancel()
                raise

    def _read_slice(self, key_range: KeyRange) -> None:
        where = f"{self.where}, slice {key_range.index} ({self.key} {key_range.low} to {key_range.high - 1})"

        def fetch(params: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
            if self._stop.is_set():
                raise _Stopped
            with self.limit.permit():
                rows, next_link = self.hook.odata_page(self.endpoint, params=params)
            self._count(rows)
            return rows, next_link not in (None, "")

        try:
            with self.staging.open_part(key_range.index) as handle:
                writer = JsonLinesWriter(handle)
                for rows in keyset_pages(fetch, self.params, key_range, self.key, where):
                    self._write_page(writer, rows)
                    del rows  # not kept alive while the next page is fetched
        except _Stopped:
            return
        if self.progress is not None:
            self.progress.add(slices=1)

    def _count(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self.pages += 1
            self.rows_read += len(rows)
        if self.progress is not None:
            self.progress.add(len(rows), pages=1)

    def _write_page(self, writer: Any, rows: list[dict[str, Any]]) -> None:
        if self.strip_key:
            for row in rows:
                row.pop(self.key, None)
        writer.write_rows(rows)

    # -- joining ----------------------------------------------------------------------------------

    def _join(self, count: int, stream: IO[bytes]) -> int:
        """Write the parts in key order into the destination; JSON lines are copied, CSV re-encoded."""
        missing = sorted(set(range(count)) - self.staging.finished())
        if missing:
            raise RuntimeError(
                f"{self.where}: slices {missing[:10]} of the export have no part in {self.staging}; "
                "the task's retry reads them again"
            )
        if self.file_format == "jsonl":
            return sum(self.staging.copy_part(index, stream) for index in range(count))
        writer = make_writer(self.file_format, stream, self.columns)
        for index in range(count):
            with self.staging.read_part(index) as part:
                for line in part:
                    writer.write_rows((json.loads(line),))
        writer.close()
        return writer.rows


def estimated_rows(head_keys: list[int], last_key: int) -> int:
    """About how many rows the export holds: the first page's rows per key over the keys up to the last.

    The same density :func:`~airflow_provider_norce.query.slices.plan_slices` cuts by; only an estimate
    (rows are not spread evenly over the keys), so progress says "about" and the file says exactly.
    """
    first, head_last = head_keys[0], head_keys[-1]
    density = min(1.0, len(head_keys) / (head_last - first + 1))
    return len(head_keys) + max(0, round((last_key - head_last) * density))


def _both(
    first: Callable[[BaseException, float], None] | None, second: Callable[[BaseException, float], None]
) -> Callable[[BaseException, float], None]:
    """One retry listener calling ``first`` (the caller's, e.g. its progress) and then ``second``."""
    if first is None:
        return second

    def listener(error: BaseException, wait: float) -> None:
        first(error, wait)
        second(error, wait)

    return listener
