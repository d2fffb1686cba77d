"""``NorceConnectImportOperator``: post items to a Norce Connect import method, in batches, and wait.

Three promises shape the import:

* **Memory stays bounded.** Items are read by :mod:`airflow_provider_norce.connect.items`, which streams
  files: at most two batches are in memory, the one being posted and the next one, which a worker thread
  reads and encodes meanwhile (:mod:`airflow_provider_norce.connect.prefetch`); the POSTs stay on the
  calling thread, one at a time and in order.
* **Nothing is posted twice.** Every batch's job id is recorded in the durable ledger of
  :mod:`airflow_provider_norce.connect.ledger` before the next batch is posted, so a retried try re-uses
  the recorded job ids; a POST whose answer was lost (timeout, 5xx) is recorded as *uncertain* and never
  re-posted by a retry: Norce may have it. So is a POST whose worker died before its answer was recorded:
  an *in-flight* marker is written (strictly: no marker, no POST) before every POST. A retry that finds
  such a batch fails before it posts anything, saying what to check and which entry to delete.
* **A full-file import is one job.** ``FullFile: true`` deactivates everything the import does not name,
  so two jobs would deactivate each other's items: the whole input is counted (and validated) before
  anything is posted, and a full file larger than ``batch_size`` is refused.

The hook does all HTTP, ``connect_items`` reads items and ``import_ledger`` remembers batches; this
module decides.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

# Both are standard library only: cheap at DAG parse time.
from airflow_provider_norce.arguments import (
    as_bool,
    conn_id,
    finite_seconds,
    non_negative_float,
    positive_int,
)
from airflow_provider_norce.connect.items import CountedItems, FileItems, ListItems, encoded_batches
from airflow_provider_norce.connect.ledger import (
    IN_FLIGHT,
    NOT_POSTED,
    UNCERTAIN,
    LedgerWriteError,
    ledger_for,
    recorded_entry,
)
from airflow_provider_norce.connect.prefetch import OneAhead
from airflow_provider_norce.exceptions import NorceAPIError, NorceJobError
from airflow_provider_norce.progress import Progress, number

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_norce.connect.items import ItemSource
    from airflow_provider_norce.connect.jobs import ImportAnswer
    from airflow_provider_norce.connect.ledger import Ledger
    from airflow_provider_norce.hooks.norce import NorceHook

HEADER_NAME = "X-StormConnect-Header"
#: Job ids the summary line names at most (an import of 1,000 batches has 1,000 jobs).
SHOWN_JOB_IDS = 10


class NorceConnectImportOperator(BaseOperator):
    """Import items into Norce Connect, batch by batch, and (by default) wait for the jobs.

    :param import_method: a Connect import method such as ``Product/ImportOnhands`` (see
        :data:`~airflow_provider_norce.connect.jobs.IMPORT_METHODS`).
    :param items: the items, a list of JSON objects (or an XComArg resolving to one).
    :param items_path: instead of ``items``: a local path or an ``ObjectStoragePath`` URI of a JSON-array or
        JSON-lines file; streamed, never loaded whole.
    :param connect_header: the ``X-StormConnect-Header`` object (or its JSON text), checked against Norce's
        header for the method (:mod:`~airflow_provider_norce.connect.header`): ``AccountId`` is required,
        unknown keys are refused, ``FullFile`` defaults to ``false`` where the header has it, enum lists may
        be codes or names. A ``...FieldsThatAreSet`` mask left out is derived from the keys the items carry
        (Norce writes only the fields a mask lists); a given one is kept, with a warning per item field it
        leaves out.
    :param batch_size: items per POST (one Connect job each). A full-file import is never split.
    :param wait_for_completion: wait until every job is finished and fail if one did not succeed.
    :param allow_validation_failures: accept items Norce refused in validation (the import answer's
        ``ValidationSummary``) and jobs that ended Validation failed; they are logged, not fatal.
    :param skip_invalid_items: items are checked against Norce's item schema before anything is posted
        (:mod:`~airflow_provider_norce.connect.item_validation`); by default one invalid item fails the task
        and nothing is posted. ``True`` leaves invalid items out (listed in a warning) and imports the rest;
        invalid items never reach Norce either way. Refused with ``FullFile: true``, where a left-out item
        would be deactivated.
    :param fail_on_row_errors: also fail when a job ended Succeeded with Error lines in its log (rows Norce
        did not import, e.g. an unknown SKU). Off by default, as Norce calls such a job a success; the
        lines are logged as a warning and counted in the ``summary`` XCom either way.
    :param poll_interval: seconds between two job status checks.
    :param timeout: seconds to wait for the jobs (``None``: no limit beyond the task's own).
    :param deferrable: wait in the triggerer (:class:`~airflow_provider_norce.triggers.norce.NorceJobTrigger`)
        instead of a worker slot.
    :param norce_conn_id: the Airflow connection (type ``norce``).
    :param progress_interval: seconds between two progress lines in the task log at least, in each phase:
        items read and checked, items and batches posted (with an ETA: the total is known once the items
        were checked), Connect jobs finished while waiting. A line comes while a POST or a 429 is waited
        for too. ``0`` logs every batch (and every 1,000 items checked). The run ends with one
        ``Imported ...`` summary line (:mod:`airflow_provider_norce.progress`).

    Returns (XCom) the list of job ids, one per batch, as strings. When it waited for the jobs it also
    pushes the XCom key ``summary``: ``{"jobs": {job_id: summary}, "succeeded": n, "validation_failed": n,
    "row_errors": n, "row_warnings": n}``, the last two counting the Error and Warning lines of the logs.
    """

    template_fields: Sequence[str] = (
        "import_method",
        "items",
        "items_path",
        "connect_header",
        "batch_size",
        "wait_for_completion",
        "allow_validation_failures",
        "skip_invalid_items",
        "fail_on_row_errors",
        "poll_interval",
        "timeout",
        "norce_conn_id",
    )
    template_fields_renderers = {"connect_header": "json", "items": "json"}
    ui_color = "#e8f4f0"

    def __init__(
        self,
        *,
        import_method: str,
        items: Any = None,
        items_path: Any = None,
        connect_header: dict[str, Any] | str,
        batch_size: int = 1000,
        wait_for_completion: bool = True,
        allow_validation_failures: bool = False,
        skip_invalid_items: bool = False,
        fail_on_row_errors: bool = False,
        poll_interval: float = 10,
        timeout: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        norce_conn_id: str = "norce_default",
        progress_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (items is None) == (items_path is None):
            raise ValueError(
                f"Task {self.task_id!r}: give exactly one of items (a list of JSON objects) or items_path "
                "(a JSON-array or JSON-lines file)"
            )
        if isinstance(import_method, str) and "{{" not in import_method:
            from airflow_provider_norce.connect.jobs import known_import_method

            import_method = known_import_method(import_method)
        if isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size < 1:
            raise ValueError(f"Task {self.task_id!r}: batch_size must be at least 1, got {batch_size}")
        self.import_method = import_method
        self.items = items
        self.items_path = items_path
        self.connect_header = connect_header
        self.batch_size = batch_size
        self.wait_for_completion = wait_for_completion
        self.allow_validation_failures = allow_validation_failures
        self.skip_invalid_items = skip_invalid_items
        self.fail_on_row_errors = fail_on_row_errors
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferrable
        self.norce_conn_id = norce_conn_id
        self.progress_interval = progress_interval

    # -- execution ---------------------------------------------------------------------------------

    def execute(self, context: Context) -> list[str]:
        from airflow_provider_norce.connect.jobs import defer_timeout, known_import_method, wait_for_jobs
        from airflow_provider_norce.hooks.norce import NorceHook

        method = known_import_method(self.import_method)
        # Every argument is checked before anything is read or posted: a bad one found after the POST
        # would leave an import in Norce that the task reports as failed.
        batch_size = positive_int(self.batch_size, "batch_size", self.task_id)
        wait = as_bool(self.wait_for_completion, "wait_for_completion", self.task_id)
        as_bool(self.allow_validation_failures, "allow_validation_failures", self.task_id)
        as_bool(self.fail_on_row_errors, "fail_on_row_errors", self.task_id)
        as_bool(self.skip_invalid_items, "skip_invalid_items", self.task_id)
        poll_interval = finite_seconds(self.poll_interval, "poll_interval", self.task_id)
        timeout = None if self.timeout is None else finite_seconds(self.timeout, "timeout", self.task_id)
        interval = non_negative_float(self.progress_interval, "progress_interval", self.task_id)
        self.norce_conn_id = conn_id(self.norce_conn_id, self.task_id)
        started, started_at = time.monotonic(), time.time()
        # reads (and validates) the whole input once, before anything is posted
        header, full_file, source, total = self._prepare(method, interval)
        if full_file and total == 0:
            raise NorceJobError(
                f"Task {self.task_id!r}: a FullFile import of no items would deactivate every "
                f"{method} item in Norce; refusing. Check {source.name}."
            )
        if full_file and total > batch_size:
            raise NorceJobError(
                f"Task {self.task_id!r}: FullFile is true and {source.name} holds {total} items, more than "
                f"batch_size={batch_size}. A full-file import must be ONE job (each job would deactivate the "
                "items of the others), so nothing was posted. Raise batch_size to at least "
                f"{total}, or set FullFile to false in connect_header."
            )
        hook = NorceHook(self.norce_conn_id)
        ledger = ledger_for(context)
        answers = self._post_batches(hook, method, header, source, batch_size, total, ledger, interval)
        job_ids = [a.job_id for a in answers]
        self._check_validation(answers)
        if not job_ids or not wait:
            ledger.clear(len(job_ids))
            self._posted_job_ids = job_ids  # for OpenLineage's on-complete call (lineage.py)
            self._log_summary(method, total, job_ids, time.monotonic() - started, waited=False)
            return job_ids
        if self.deferrable:
            from airflow_provider_norce.triggers.norce import NorceJobTrigger

            self.defer(
                trigger=NorceJobTrigger(
                    norce_conn_id=self.norce_conn_id,
                    job_ids=job_ids,
                    poll_interval=poll_interval,
                    timeout=timeout,
                ),
                method_name="execute_complete",
                # the summary line is logged on resumption, by another process: wall-clock start
                kwargs={"job_ids": job_ids, "items": total, "started_at": started_at},
                # Airflow's own deadline only backs up the trigger's, whose event says more.
                timeout=defer_timeout(timeout, poll_interval),
            )
        with Progress(
            "Import progress, waiting for jobs",
            "jobs finished",
            interval=interval,
            sink=self.log.info,
            total=len(job_ids),
            show_rate=False,
        ) as progress:
            hook.retry_listener = progress.on_retry
            jobs = wait_for_jobs(
                hook, job_ids, poll_interval=poll_interval, timeout=timeout, progress=progress
            )
        finished = self._finish(context, jobs, job_ids, ledger)
        self._log_summary(method, total, job_ids, time.monotonic() - started, waited=True)
        return finished

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        job_ids: list[str] | None = None,
        items: int | None = None,
        started_at: float | None = None,
    ) -> list[str]:
        """Resume after :class:`NorceJobTrigger`: fail with the jobs' error lines, or return the job ids."""
        if not isinstance(event, dict):
            raise NorceJobError(f"Task {self.task_id!r}: resumed without a trigger event ({event!r})")
        jobs = event.get("jobs") or {}
        job_ids = [str(j) for j in (job_ids or list(jobs))]
        status = event.get("status")
        if status in ("timeout", "error"):
            raise NorceJobError(
                f"Task {self.task_id!r}: {event.get('message')}. A retry of this task waits for the same "
                "job ids; nothing is posted again."
            )
        self.log.info("Norce Connect: %s", event.get("message"))
        finished = self._finish(context, jobs, job_ids, ledger_for(context))
        # no summary when resumed from a deferral made by an older release (no items or start in its kwargs)
        if items is not None and started_at is not None:
            from airflow_provider_norce.connect.jobs import known_import_method

            method = known_import_method(self.import_method)
            self._log_summary(method, items, job_ids, time.time() - started_at, waited=True)
        return finished

    def _log_summary(
        self, method: str, items: int, job_ids: list[str], seconds: float, *, waited: bool
    ) -> None:
        """The run's one summary line, its prefix ``Imported <items> items in <batches> batches`` stable to
        grep (digits without separators); at most :data:`SHOWN_JOB_IDS` job ids, then how many more."""
        shown = ", ".join(job_ids[:SHOWN_JOB_IDS])
        if len(job_ids) > SHOWN_JOB_IDS:
            shown += f" and {number(len(job_ids) - SHOWN_JOB_IDS)} more"
        self.log.info(
            "Imported %d items in %d batches to %s in %.1f s (%.0f items/s); job ids: %s; %s",
            items,
            len(job_ids),
            method,
            seconds,
            items / seconds if seconds > 0 else 0.0,
            shown or "none",
            "every job finished" if waited else "the jobs were not waited for",
        )

    def _finish(
        self, context: Context, jobs: dict[str, dict[str, Any]], job_ids: list[str], ledger: Ledger
    ) -> list[str]:
        from airflow_provider_norce.connect.jobs import judge_jobs

        for job in jobs.values():
            self.log.info(
                "Norce Connect job %s: %s (inserted %s, updated %s, failed %s; log: %s error, %s warning "
                "line(s))",
                job.get("job_id"),
                job.get("status"),
                job.get("inserts"),
                job.get("updates"),
                job.get("fail"),
                job.get("row_errors", 0),
                job.get("row_warnings", 0),
            )
        summary = judge_jobs(
            jobs,
            self.log,
            allow_validation_failures=as_bool(
                self.allow_validation_failures, "allow_validation_failures", self.task_id
            ),
            fail_on_row_errors=as_bool(self.fail_on_row_errors, "fail_on_row_errors", self.task_id),
        )
        ti = context.get("ti")  # always there in a task run; absent when execute() is called by hand
        if ti is not None:
            ti.xcom_push(key="summary", value=summary)
        # for OpenLineage's on-complete call, made in this process or a fork of it (lineage.py)
        self._posted_job_ids, self._jobs_summary = job_ids, summary
        ledger.clear(len(job_ids))
        return job_ids

    # -- posting -----------------------------------------------------------------------------------

    def _prepare(self, method: str, interval: float) -> tuple[str, bool, ItemSource, int]:
        """Check the header, read every item once (validate, count what the masks govern), then complete
        the header's masks: the header to send, FullFile, the items to post and how many there are."""
        # Imported here, not at module level: operator modules are imported on every DAG parse.
        import heapq

        from airflow_provider_norce.connect.contracts import contracts
        from airflow_provider_norce.connect.header import finish_header, parse_connect_header
        from airflow_provider_norce.connect.item_validation import (
            MAX_SHOWN,
            ItemChecker,
            RuleContext,
            SkippingItems,
        )

        contract = contracts().method(method)
        parsed = parse_connect_header(self.connect_header, contract, self.task_id)
        skip_invalid = as_bool(self.skip_invalid_items, "skip_invalid_items", self.task_id)
        source = self._source()
        given = {
            m.header_field: parsed.values[m.header_field]
            for m in contract.masks
            if m.header_field in parsed.values
        }
        with Progress(
            "Import progress, checking items",
            "items",
            interval=interval,
            sink=self.log.info,
            total=source.count() if isinstance(source, ListItems) else None,  # a file is not read twice
            waiting_for=f"{source.name} to be read",
        ) as progress:
            scan = ItemChecker(contract, RuleContext(parsed.full_file, given)).scan(
                CountedItems(source, progress)
            )
        for warning in scan.warnings():
            self.log.warning("Norce Connect %s: %s", method, warning)
        if scan.invalid:
            if not skip_invalid:
                raise ValueError(scan.error_text(self.task_id))
            if parsed.full_file:
                raise ValueError(
                    scan.error_text(
                        self.task_id,
                        fix="skip_invalid_items cannot apply with FullFile: true: Norce would deactivate "
                        "the items left out. Fix the items, or set FullFile to false.",
                    )
                )
            first = heapq.nsmallest(MAX_SHOWN, scan.invalid)  # no sorted copy of every invalid number
            self.log.warning(
                "Norce Connect %s: skip_invalid_items=True: leaving out %d invalid item(s) of %s (items %s%s); "
                "they are not sent to Norce:\n  %s",
                method,
                len(scan.invalid),
                source.name,
                ", ".join(map(str, first)),
                ", ..." if len(scan.invalid) > MAX_SHOWN else "",
                "\n  ".join(scan.errors),
            )
            source = SkippingItems(source, scan.invalid)
        plan = finish_header(parsed, scan.usage)
        for line in plan.info:
            self.log.info("Norce Connect %s header: %s", method, line)
        for line in plan.warnings:
            self.log.warning("Norce Connect %s: %s", method, line)
        return plan.header, plan.full_file, source, scan.valid

    def _source(self) -> ItemSource:
        if self.items_path is not None:
            return FileItems(self.items_path, self.task_id)
        return ListItems(self.items, self.task_id)

    def _post_batches(
        self,
        hook: NorceHook,
        method: str,
        header: str,
        source: ItemSource,
        batch_size: int,
        total: int,
        ledger: Ledger,
        interval: float,
    ) -> list[ImportAnswer]:
        url = hook.service_url("connect") + method
        batches = -(-total // batch_size)
        # What earlier tries left, read before anything is posted: a retry that must refuse a batch
        # (Norce may hold it) fails before it posts anything new, not after the batches before it.
        recorded = [recorded_entry(ledger.get(index)) for index in range(batches)]
        if any(entry is not None and entry.get(UNCERTAIN) for entry in recorded):
            self._refuse_unsettled(source, batch_size, batches, method, recorded, ledger)
        answers: list[ImportAnswer] = []
        progress = Progress(
            "Import progress, posting",
            "items",
            interval=interval,
            sink=self.log.info,
            total=total,
            waiting_for=f"Norce Connect to answer the POST of a batch of {method}",
        )
        progress.counter("batches", 0, batches)
        hook.retry_listener = progress.on_retry
        # The next batch is read and encoded on a worker thread while this one is posted; the POSTs, the
        # ledger and the logs stay here, in order (see connect/prefetch.py).
        with (
            progress,
            OneAhead(
                lambda checked: encoded_batches(checked(iter(source)), batch_size),
                name=f"norce-import-reader-{self.task_id}",
            ) as encoded,
        ):
            for index, (count, body, digest) in enumerate(encoded):
                where = _where(index, count, batch_size, batches, method)
                entry = recorded[index] if index < batches else recorded_entry(ledger.get(index))
                answer = self._post_once(hook, url, header, body, where, index, digest, entry, ledger)
                answers.append(answer)
                progress.add(count, batches=1)
        return answers

    def _refuse_unsettled(
        self,
        source: ItemSource,
        batch_size: int,
        batches: int,
        method: str,
        recorded: list[dict[str, Any] | None],
        ledger: Ledger,
    ) -> None:
        """Fail, before any POST, if an earlier try left a batch of this very content that Norce may hold.

        Only a retry after such a try gets here; it reads the items once more for their digests (an entry
        of other content is posted as new content by the loop, as before)."""
        last = max(i for i, entry in enumerate(recorded) if entry is not None and entry.get(UNCERTAIN))
        for index, (count, _body, digest) in enumerate(encoded_batches(iter(source), batch_size)):
            entry = recorded[index] if index < batches else None
            if entry is not None and entry.get(UNCERTAIN) and entry.get("sha256") == digest:
                where = _where(index, count, batch_size, batches, method)
                raise self._unsettled_error(where, index, entry, ledger, nothing_posted=True)
            if index >= last:
                return

    def _post_once(
        self,
        hook: NorceHook,
        url: str,
        header: str,
        body: bytes,
        where: str,
        index: int,
        digest: str,
        recorded: dict[str, Any] | None,
        ledger: Ledger,
    ) -> ImportAnswer:
        """Post batch ``index`` unless an earlier try already did (``recorded``, its ledger entry, says so);
        mark it in flight before the POST and record its job after it."""
        from airflow_provider_norce.connect.jobs import fetch_job_state

        if recorded is not None and recorded.get("sha256") == digest:
            if recorded.get(UNCERTAIN):  # normally refused before any POST, by _refuse_unsettled
                raise self._unsettled_error(where, index, recorded, ledger, nothing_posted=False)
            state = fetch_job_state(hook, recorded["job_id"])
            if not (state.is_finished and not state.succeeded):
                self.log.info(
                    "Norce Connect: %s already has job %s (%s) from an earlier try; not posting it again",
                    where,
                    state.job_id,
                    state.status,
                )
                return _answer_from_record(recorded)
            self.log.warning(
                "Norce Connect: job %s of %s ended %s on an earlier try and applied nothing; posting "
                "the batch again",
                state.job_id,
                where,
                state.status,
            )
        elif recorded is not None:
            self.log.warning(
                "Norce Connect: %s differs from what an earlier try posted as job %s; posting the new "
                "content",
                where,
                recorded.get("job_id") or "(unknown: that POST's answer was never recorded)",
            )
        self._mark_in_flight(where, index, digest, ledger)
        answer = self._post(hook, url, header, body, where, index, digest, ledger)
        ledger.set(
            index,
            {
                "job_id": answer.job_id,
                "sha256": digest,
                "validation_failures": answer.validation_failures,
                "messages": answer.messages,
            },
        )
        self.log.info("Norce Connect: %s posted as job %s", where, answer.job_id)
        return answer

    def _mark_in_flight(self, where: str, index: int, digest: str, ledger: Ledger) -> None:
        """Record, strictly, that the POST of batch ``index`` starts: should the worker die before the answer
        is recorded, a retry finds this marker and refuses the batch instead of posting it twice."""
        try:
            ledger.set(index, {UNCERTAIN: True, IN_FLIGHT: True, "sha256": digest}, strict=True)
        except LedgerWriteError as err:
            raise NorceJobError(
                f"Task {self.task_id!r}: {where} was not posted: its in-flight marker could not be "
                f"recorded ({err}), and without it a worker killed during the POST would make a retry post "
                "the batch twice. Nothing of this batch was posted; a retry posts it (the batches before "
                "it keep their jobs). Check that the worker reaches the Airflow API server (task state) "
                "or the metadata database (Variables)."
            ) from None

    def _unsettled_error(
        self, where: str, index: int, entry: dict[str, Any], ledger: Ledger, *, nothing_posted: bool
    ) -> NorceJobError:
        """The refusal of a batch that an earlier try may have imported, and what the user does next."""
        if entry.get(IN_FLIGHT):
            what = (
                f"{where} was in flight on an earlier try: the worker running that try ended (killed, "
                "lost) while this batch's POST was in flight, so Norce may have received it."
            )
        else:
            what = (
                f"{where} was posted on an earlier try, but its answer was lost, so Norce may have "
                "received it."
            )
        posted = " This try posted nothing." if nothing_posted else ""
        return NorceJobError(
            f"Task {self.task_id!r}: {what} It is not posted again automatically.{posted} Check the Connect "
            f"jobs in Norce Admin; if it never arrived, delete {ledger.describe(index)} and clear this task. "
            f'If it did arrive, set that entry to {{"job_id": "<its job id>", "sha256": "{entry.get("sha256")}"}} '
            "instead and clear this task: the retry waits for that job and posts only what has no job yet."
        )

    def _post(
        self,
        hook: NorceHook,
        url: str,
        header: str,
        body: bytes,
        where: str,
        index: int,
        digest: str,
        ledger: Ledger,
    ) -> ImportAnswer:
        from airflow_provider_norce.connect.jobs import ImportAnswer

        try:
            response = hook.run(
                url,
                method="POST",
                data=body,
                headers={HEADER_NAME: header, "Content-Type": "application/json; charset=utf-8"},
            )
            payload = response.json()
        except NorceAPIError as err:
            refused = err.status_code is not None and err.status_code < 500
            never_sent = err.status_code is None and err.retryable  # refused connection, connect timeout
            # No token, no POST: a failing token endpoint (even a 5xx) means the batch never left.
            no_token = err.url is not None and err.url == hook.config.token_url
            if refused or never_sent or no_token:
                # Replaces the in-flight marker: a retry posts it. Should this write fail, the marker stays
                # and a retry refuses the batch: the safe side.
                ledger.set(index, {NOT_POSTED: True, "sha256": digest})
                raise NorceJobError(
                    f"Task {self.task_id!r}: Norce did not accept {where}: {err}. Nothing of this batch was "
                    "imported; a retry posts it again."
                ) from None
            ledger.set(index, {"uncertain": True, "sha256": digest})
            raise NorceJobError(
                f"Task {self.task_id!r}: the POST of {where} got no usable answer ({err}). The import may "
                "have been received by Norce: check the Connect jobs in Norce Admin before re-running. A "
                "retry of this task will not post this batch again."
            ) from None
        except ValueError:
            ledger.set(index, {"uncertain": True, "sha256": digest})
            raise NorceJobError(
                f"Task {self.task_id!r}: Norce answered the POST of {where} with a body that is not JSON. The "
                "import may have been received: check the Connect jobs in Norce Admin before re-running."
            ) from None
        try:
            return ImportAnswer.from_response(payload, where)
        except NorceJobError:
            ledger.set(index, {"uncertain": True, "sha256": digest})
            raise

    def _check_validation(self, answers: list[ImportAnswer]) -> None:
        failing = [a for a in answers if a.validation_failures > 0]
        if not failing:
            return
        count = sum(a.validation_failures for a in failing)
        details = "; ".join(
            f"job {a.job_id}: {a.validation_failures} item(s): " + " | ".join(a.messages) for a in failing
        )
        if as_bool(self.allow_validation_failures, "allow_validation_failures", self.task_id):
            self.log.warning("Norce Connect refused %d item(s) in validation (allowed): %s", count, details)
            return
        raise NorceJobError(
            f"Task {self.task_id!r}: Norce Connect refused {count} item(s) in validation ({details}). The "
            "valid items of these jobs are still imported by Norce. Fix the items, or pass "
            "allow_validation_failures=True to accept this.",
            job_id=failing[0].job_id,
        )

    def get_openlineage_facets_on_start(self) -> Any:
        """OpenLineage (when its provider is installed): the item file read, if any, and the Norce import
        method written (:mod:`airflow_provider_norce.lineage`)."""
        from airflow_provider_norce.lineage import import_lineage

        return import_lineage(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """As on start, with the Connect job ids and the rows Norce wrote, as the finished import kept them."""
        from airflow_provider_norce.lineage import import_lineage

        return import_lineage(self, task_instance)


def _where(index: int, count: int, batch_size: int, batches: int, method: str) -> str:
    """``batch 2 of 3 (items 5-8) of Product/ImportOnhands``: how logs and errors name a batch."""
    first = index * batch_size + 1
    return f"batch {index + 1} of {batches} (items {first}-{first + count - 1}) of {method}"


def _answer_from_record(recorded: dict[str, Any]) -> ImportAnswer:
    from airflow_provider_norce.connect.jobs import ImportAnswer

    return ImportAnswer(
        job_id=str(recorded["job_id"]),
        total=None,
        validation_failures=int(recorded.get("validation_failures") or 0),
        messages=list(recorded.get("messages") or []),
    )
