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
* **Nothing unverified.** Every answer the plan and the slices rely on is checked
  (:mod:`.slices`); when one does not hold, the slices stop, their staging is dropped, and the export reads
  one page at a time following Norce's own nextLink (one warning naming the behaviour), with every key
  checked for a row twice. Staged parts are bound to their plan and checked against their content
  (:mod:`.staging`). The result is a completeness record (:mod:`.completeness`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_norce.exceptions import NorceUntrustedAnswerError
from airflow_provider_norce.query.aimd import AimdLimit
from airflow_provider_norce.query.completeness import CONCURRENT, KEYSET, NEXT_LINK, ExportRecord, KeysSeen
from airflow_provider_norce.query.files import JsonLinesWriter, atomic_output, make_writer
from airflow_provider_norce.query.slices import (
    KeyRange,
    SlicePlan,
    checked_keys,
    checked_last_key,
    keyset_pages,
    plan_slices,
)
from airflow_provider_norce.query.staging import Part, Staging

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.progress import Progress

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """Another slice failed: this one stops at its next page, and its part is not committed."""


class SlicedExport:
    """Export ``endpoint`` with ``params`` to ``destination`` by key-range slices, ``concurrency`` at once.

    :param key: an integer key of the entity set (``Id``); the rows are cut and ordered by it.
    :param select: the user's ``$select`` (``None``: every field); the key is asked for as well when it is
        not selected, and left out of the rows written.
    :param concurrency: requests in flight; 1 reads the window by keyset one page at a time (no last-key
        read), resumable like the rest.
    :param digest: the export's fingerprint (:func:`~airflow_provider_norce.query.staging.fingerprint`),
        naming its staging folder and checked against a stored plan.
    :param where: who is exporting, for errors (``Task 'export_orders'``).
    :param logger: where the plan, the resumption, a fallback and the rate-limit steps are logged.
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

    def run(self, keep_staging_on_failure: bool = True) -> ExportRecord:
        """Plan (or find the plan of an earlier try), read the missing slices, join the parts.

        The destination is opened first, as a sequential export does, so a destination that cannot be
        written fails before any request. An answer the slices cannot trust switches to Norce's nextLink
        pages (:meth:`_read_pages`) into the same, still empty, file. ``keep_staging_on_failure=False``
        (no retry will come) removes the staging folder when the export fails.
        """
        previous = self.hook.retry_listener
        self.hook.retry_listener = _both(previous, self.limit.on_retry)
        try:
            with atomic_output(self.destination) as stream:
                try:
                    record = self._run(stream)
                except NorceUntrustedAnswerError as err:
                    self.staging.remove()
                    self.log.warning(
                        "%s. Reading one page at a time instead, following Norce's @odata.nextLink (slower; "
                        "every key is checked for a row twice)",
                        err,
                    )
                    record = self._read_pages(stream, err.behaviour)
        except BaseException:
            if not keep_staging_on_failure:
                self.staging.remove()
            raise
        finally:
            self.hook.retry_listener = previous
        self.staging.remove()
        return record

    def _run(self, stream: IO[bytes]) -> ExportRecord:
        plan, discarded = self.staging.load_plan()
        if discarded:
            self.log.warning("%s: staging folder not resumed: %s", self.where, discarded)
        resumed = plan is not None
        if plan is None:
            plan_or_rows = self._plan()
            if isinstance(plan_or_rows, tuple):  # one page: that is the whole export
                rows, keys = plan_or_rows
                writer = make_writer(self.file_format, stream, self.columns)
                self._write_page(writer, rows)
                writer.close()
                return self._record(writer.rows, keys[0] if keys else None, keys[-1] if keys else None, 1, 0)
            plan = plan_or_rows
        done = self.staging.parts(plan, verify=resumed)
        for rejected in self.staging.rejected:
            self.log.warning(
                "%s: a staged part did not match its content and is read again: %s", self.where, rejected
            )
        if resumed:
            self.log.info(
                "%s: resuming from %s: %d of %d slices were finished by an earlier try",
                self.where,
                self.staging,
                len(done),
                plan.count,
            )
        todo = [key_range for key_range in plan.ranges() if key_range.index not in done]
        if self.progress is not None and self.concurrency > 1:
            self.progress.counter("slices", len(done), plan.count)
        self._read(plan, todo)
        parts = self.staging.parts(plan, verify=False)
        missing = sorted(set(range(plan.count)) - set(parts))
        if missing:
            raise RuntimeError(
                f"{self.where}: slices {missing[:10]} of the export have no part in {self.staging}; "
                "the task's retry reads them again"
            )
        ordered = [parts[index] for index in range(plan.count)]
        written = self._join(ordered, stream)
        firsts = [part.first for part in ordered if part.first is not None]
        lasts = [part.last for part in ordered if part.last is not None]
        return self._record(
            written,
            min(firsts, default=None),
            max(lasts, default=None),
            plan.count,
            len(done) if resumed else 0,
        )

    def _record(self, rows: int, first: Any, last: Any, slices: int, resumed: int) -> ExportRecord:
        mode = CONCURRENT if self.concurrency > 1 and slices > 1 else KEYSET
        return ExportRecord(
            rows, self.pages, mode, self.key, first, last, slices if slices > 1 else 0, resumed
        )

    # -- planning ---------------------------------------------------------------------------------

    def _plan(self) -> SlicePlan | tuple[list[dict[str, Any]], list[int]]:
        """Read the first page in key order; if more follow, ask for the last key and cut the rest."""
        params = {**self.params, "$orderby": self.key}
        with self.limit.permit():
            rows, next_link = self.hook.odata_page(self.endpoint, params=params)
        self._count(rows)
        keys = checked_keys(rows, self.key, self.where)
        if next_link in (None, ""):
            return rows, keys
        if not keys:
            raise NorceUntrustedAnswerError(
                f"{self.where}: Norce answered an empty first page that says more rows follow (an "
                "@odata.nextLink): a server that filters after paging cannot be read by key ranges",
                behaviour="an empty page with an @odata.nextLink",
            )
        last = keys[-1]
        if self.concurrency > 1:
            probe = {"$orderby": f"{self.key} desc", "$top": "1", "$select": self.key}
            if "$filter" in self.params:
                probe["$filter"] = self.params["$filter"]
            with self.limit.permit():
                last_rows, _ = self.hook.odata_page(self.endpoint, params=probe)
            last = checked_last_key(last_rows, keys, self.key, self.where)
            if self.progress is not None:
                self.progress.expect(estimated_rows(keys, last), about=True)
        plan = plan_slices(self.digest, self.key, keys, last, self.concurrency, self.slice_rows)
        self.staging.start(plan)
        with self.staging.open_part(plan, 0) as part:
            self._write_page(JsonLinesWriter(part), rows)  # type: ignore[arg-type]
            part.rows = len(rows)
            part.keys(keys)
        if self.concurrency > 1:
            self.log.info(
                "%s: %d slices of about %d %s values each (%s %d and above), %d at a time; staging in %s",
                self.where,
                plan.count,
                plan.width,
                self.key,
                self.key,
                plan.low,
                self.concurrency,
                self.staging,
            )
        else:
            self.log.info(
                "%s: reading %s %d and above by keyset, one page at a time; staging in %s",
                self.where,
                self.key,
                plan.low,
                self.staging,
            )
        return plan

    # -- reading ----------------------------------------------------------------------------------

    def _read(self, plan: SlicePlan, todo: list[KeyRange]) -> None:
        if not todo:
            return
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(todo)), thread_name_prefix="norce-slice"
        ) as pool:
            futures = {pool.submit(self._read_slice, plan, key_range): key_range for key_range in todo}
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

    def _read_slice(self, plan: SlicePlan, key_range: KeyRange) -> None:
        where = f"{self.where}, slice {key_range.index} ({key_range.describe(self.key)})"

        def fetch(params: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
            if self._stop.is_set():
                raise _Stopped
            with self.limit.permit():
                rows, next_link = self.hook.odata_page(self.endpoint, params=params)
            self._count(rows)
            return rows, next_link not in (None, "")

        try:
            with self.staging.open_part(plan, key_range.index) as part:
                writer = JsonLinesWriter(part)  # type: ignore[arg-type]
                for rows, keys in keyset_pages(fetch, self.params, key_range, self.key, where):
                    self._write_page(writer, rows)
                    part.keys(keys)
                    del rows  # not kept alive while the next page is fetched
                part.rows = writer.rows
        except _Stopped:
            return
        if self.progress is not None and self.concurrency > 1:
            self.progress.add(slices=1)

    def _read_pages(self, stream: IO[bytes], behaviour: str) -> ExportRecord:
        """The fallback: every page Norce links, one at a time, each key checked for a row twice."""
        writer = make_writer(self.file_format, stream, self.columns)
        seen = read_pages(
            self.hook,
            self.endpoint,
            self.params,
            self.key,
            self.where,
            self._count,
            writer,
            strip_key=self.strip_key,
        )
        return ExportRecord(
            writer.rows, self.pages, NEXT_LINK, self.key, seen.first, seen.last, fallback=behaviour
        )

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

    def _join(self, parts: list[Part], stream: IO[bytes]) -> int:
        """Write the parts in key order into the destination, each checked against its name as it goes;
        JSON lines are copied, CSV re-encoded."""
        if self.file_format == "jsonl":
            return sum(self.staging.copy_part(part, stream) for part in parts)
        writer = make_writer(self.file_format, stream, self.columns)
        for part in parts:
            for row in self.staging.rows(part):
                writer.write_rows((row,))
        writer.close()
        return writer.rows


def read_pages(
    hook: NorceHook,
    endpoint: str,
    params: dict[str, str],
    key: str | None,
    where: str,
    on_page: Callable[[list[dict[str, Any]]], None],
    writer: Any,
    strip_key: bool = False,
) -> KeysSeen:
    """Write every page Norce links (``@odata.nextLink``), one at a time, and close ``writer``.

    With a ``key``, every key is kept (8 bytes a row) and checked for a row twice before the writer is
    closed (:class:`~airflow_provider_norce.query.completeness.KeysSeen`); the hook bounds chains of
    empty pages and refuses links that loop. Returns the keys seen (first, last).
    """
    seen = KeysSeen(key or "", where)
    for rows in hook.paginate_pages(endpoint, params=params):
        on_page(rows)
        if key:
            seen.add(rows)
            if strip_key:
                for row in rows:
                    row.pop(key, None)
        writer.write_rows(rows)
    seen.check()
    writer.close()
    return seen


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
