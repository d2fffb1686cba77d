"""The Norce Connect job model: what ``Job/Get``, ``Job/GetLog`` and an import answer say, and what it means.

Connect imports are asynchronous: the ``POST`` answers with a ``JobId`` and Norce works through the job
afterwards. Operator, sensor and trigger all read the same answers and must agree on when a job is done
and whether it went well, so that reading lives here, free of I/O (the sync hook and the async client
fetch; this module only interprets):

* ``StatusId``: 1 Initialized, 5 Validating, 6 Queued are running; 2 Succeeded, 3 Failed and
  4 Validation failed are terminal. ``IsFinished`` is trusted over the status when Norce sends it.
* Counts: ``Insert`` or ``Inserts`` (one public contract spells it each way), ``Updates``, ``Fail``. Norce
  counts database-table writes there, not items: a product import of one item can count several inserts.
* ``Job/GetLog`` is read for every finished job, a successful one too: Norce ends a job Succeeded even
  when rows were skipped in part (Warning, ``SeverityId`` 2) or not imported at all (Error, 3), and the
  log is the only place that says so. The log always holds "Starting import." and "Import finished."
  (Information, 1) and its ``TimeStamp`` values carry no zone, so neither is read.
* Summaries are small, JSON-able dicts: they travel in XCom and in trigger events.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.connect.job_wait import (
    Done,
    GetJob,
    GetLog,
    deadline_after,
    poll_round,
    wait_flow,
)
from airflow_provider_norce.exceptions import NorceAPIError, NorceJobError, excerpt
from airflow_provider_norce.flows import drive

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from airflow_provider_norce.connect.job_wait import Step
    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.progress import Progress

log = logging.getLogger(__name__)

#: The Connect import methods Norce documents (``{service}/{method}`` under ``/commerce/connect/4.0/``);
#: the same list as ``connect_contracts.import_methods()`` (a test keeps them equal), spelled out here so
#: that checking a method name at DAG parse does not load the contracts.
IMPORT_METHODS: tuple[str, ...] = (
    "Product/ImportProducts",
    "Product/ImportOnhands",
    "Product/ImportSkuPriceLists",
    "Product/ImportPriceLists",
    "Product/ImportRelations",
    "Product/ImportCompetitorSkus",
    "Customer/ImportCustomers",
    "Customer/ImportCompanies",
    "Supplier/ImportProducts",
)
#: ``Job/GetLog`` severities: 2 = part of a record skipped, 3 = record not imported (or the job failed).
SEVERITY_WARNING = 2
SEVERITY_ERROR = 3
#: At most this many error (and warning) lines per job travel in a summary (XCom and events stay small).
MAX_ERROR_LINES = 20
#: At most this many characters of a log line's ``ImportedRow`` (the row's own text) are kept.
MAX_ROW_TEXT = 200
MAX_MESSAGES = 20
JOB_GET = "Job/Get"
JOB_GET_LOG = "Job/GetLog"


class JobStatus(enum.IntEnum):
    """Connect 4.0 ``StatusId`` values."""

    INITIALIZED = 1
    SUCCEEDED = 2
    FAILED = 3
    VALIDATION_FAILED = 4
    VALIDATING = 5
    QUEUED = 6

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()


RUNNING_STATUSES = frozenset({JobStatus.INITIALIZED, JobStatus.VALIDATING, JobStatus.QUEUED})
TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.VALIDATION_FAILED})


def status_label(status_id: int | None) -> str:
    """``"Validation failed"`` for 4; an unknown id is named, not hidden."""
    try:
        return JobStatus(status_id).label  # type: ignore[arg-type]
    except ValueError:
        return f"Unknown status {status_id}"


def known_import_method(import_method: str) -> str:
    """The canonical spelling of a documented import method; a clear error listing them otherwise."""
    text = str(import_method or "").strip().strip("/")
    for method in IMPORT_METHODS:
        if method.lower() == text.lower():
            return method
    raise ValueError(
        f"import_method {import_method!r} is not a Norce Connect import method; use one of: "
        + ", ".join(IMPORT_METHODS)
    )


@dataclass(frozen=True)
class JobState:
    """One ``Job/Get`` answer, read tolerantly (``Insert``/``Inserts``; ``IsFinished`` trusted)."""

    job_id: str
    status_id: int | None
    is_finished: bool
    inserts: int = 0
    updates: int = 0
    fail: int = 0
    totals: int | None = None
    run_time: str | None = None

    @classmethod
    def from_response(cls, job_id: str, payload: Any) -> JobState:
        if not isinstance(payload, dict):
            raise NorceAPIError(
                f"Norce answered Job/Get for job {job_id} with something other than a job object: "
                f"{excerpt(repr(payload), 120)}"
            )
        status_id = _int_or_none(payload.get("StatusId"))
        finished = payload.get("IsFinished")
        if status_id is None and not isinstance(finished, bool):
            # ``{}`` or another object without a job's state: polling it again would wait until the timeout
            raise NorceAPIError(
                f"Norce answered Job/Get for job {job_id} with an object that is not a job (neither StatusId "
                f"nor IsFinished): {excerpt(repr(payload), 120)}; check that the connection's host is Norce "
                "Connect (not a proxy or portal answering in its place)"
            )
        # trust IsFinished; without a usable one, fall back on the documented terminal states
        is_finished = finished if isinstance(finished, bool) else status_id in TERMINAL_STATUSES
        inserts = payload.get("Insert", payload.get("Inserts"))
        return cls(
            job_id=str(job_id),
            status_id=status_id,
            is_finished=is_finished,
            inserts=_int_or_none(inserts) or 0,
            updates=_int_or_none(payload.get("Updates")) or 0,
            fail=_int_or_none(payload.get("Fail")) or 0,
            totals=_int_or_none(payload.get("Totals")),
            run_time=payload.get("RunTime") if isinstance(payload.get("RunTime"), str) else None,
        )

    @property
    def succeeded(self) -> bool:
        return self.is_finished and self.status_id == JobStatus.SUCCEEDED

    @property
    def status(self) -> str:
        return status_label(self.status_id)

    def summary(self, log: JobLog | list[str] | None = None) -> dict[str, Any]:
        """A small JSON-able view for XCom and trigger events.

        ``log`` is the job's :class:`JobLog` (or, for callers that only have them, its error lines):
        its counts and its first lines of each severity travel with the summary."""
        data: dict[str, Any] = {
            "job_id": self.job_id,
            "status_id": self.status_id,
            "status": self.status,
            "finished": self.is_finished,
            "inserts": self.inserts,
            "updates": self.updates,
            "fail": self.fail,
            "totals": self.totals,
            "run_time": self.run_time,
        }
        if isinstance(log, list):
            log = JobLog(errors=log, warnings=[])
        if log is not None:
            data["row_errors"] = len(log.errors)
            data["row_warnings"] = len(log.warnings)
            for key, lines in (("errors", log.errors), ("warnings", log.warnings)):
                data[key] = lines[:MAX_ERROR_LINES]
                if len(lines) > MAX_ERROR_LINES:
                    data[f"{key}_omitted"] = len(lines) - MAX_ERROR_LINES
        return data


@dataclass(frozen=True)
class JobLog:
    """The Warning and Error lines of one ``Job/GetLog`` answer, each as ``Message [row: ImportedRow]``."""

    errors: list[str]
    warnings: list[str]

    @classmethod
    def from_response(cls, payload: Any) -> JobLog:
        """Read tolerantly: a log that is not a list, or entries that are not objects, say nothing."""
        lines: dict[int, list[str]] = {SEVERITY_WARNING: [], SEVERITY_ERROR: []}
        for entry in payload if isinstance(payload, list) else []:
            if not isinstance(entry, dict):
                continue
            severity = _int_or_none(entry.get("SeverityId"))
            if severity not in lines:
                continue
            text = excerpt(str(entry.get("Message") or "(no message)"))
            row = entry.get("ImportedRow")
            if row not in (None, ""):
                text += f" [row: {excerpt(str(row), MAX_ROW_TEXT)}]"
            lines[severity].append(text)
        return cls(errors=lines[SEVERITY_ERROR], warnings=lines[SEVERITY_WARNING])


def error_lines(log: Any) -> list[str]:
    """The Error lines (``SeverityId`` 3) of a ``Job/GetLog`` answer."""
    return JobLog.from_response(log).errors


def log_row_problems(logger: logging.Logger | Any, jobs: dict[str, dict[str, Any]]) -> None:
    """Say, at WARNING, which finished jobs skipped rows in part or in whole: Norce still calls them
    Succeeded, so without this line nobody would see it."""
    for job_id, job in jobs.items():
        errors, warnings = job.get("row_errors") or 0, job.get("row_warnings") or 0
        if not (errors or warnings) or job.get("status_id") != JobStatus.SUCCEEDED:
            continue
        lines = [*job.get("errors", []), *job.get("warnings", [])]
        omitted = (job.get("errors_omitted") or 0) + (job.get("warnings_omitted") or 0)
        logger.warning(
            "Norce Connect job %s ended Succeeded, but its log has %d Error line(s) (rows not imported) and "
            "%d Warning line(s) (rows skipped in part): %s%s",
            job_id,
            errors,
            warnings,
            " | ".join(lines),
            f" (+{omitted} more in Job/GetLog?id={job_id})" if omitted else "",
        )


def unsuccessful(
    jobs: dict[str, dict[str, Any]],
    *,
    allow_validation_failures: bool = False,
    fail_on_row_errors: bool = False,
) -> list[str]:
    """The ids of the finished jobs that did not succeed, in order: THE verdict on job summaries.

    A job succeeded when it ended Succeeded (2); any other end (Failed, Validation failed, a status
    nobody documented) did not, except Validation failed with ``allow_validation_failures``; with
    ``fail_on_row_errors`` a Succeeded job with Error lines in its log did not either. The trigger asks
    with the defaults (it reports, the task judges with its own arguments through :func:`check_jobs`),
    so a trigger's ``failed`` event and a task's failure can never disagree on what "not succeeded" is.
    """
    bad = []
    for job_id, job in jobs.items():
        status_id = job.get("status_id")
        if status_id == JobStatus.SUCCEEDED and not (fail_on_row_errors and job.get("row_errors")):
            continue
        if status_id == JobStatus.VALIDATION_FAILED and allow_validation_failures:
            continue
        bad.append(job_id)
    return bad


def check_jobs(
    jobs: dict[str, dict[str, Any]],
    *,
    allow_validation_failures: bool = False,
    fail_on_row_errors: bool = False,
) -> None:
    """Raise :class:`NorceJobError` naming every job that did not succeed, with its log's error lines.

    ``allow_validation_failures`` accepts jobs that ended Validation failed (4): Norce refused their
    items and imported nothing of them, which the caller declared acceptable. ``fail_on_row_errors``
    also fails a job that ended Succeeded with Error lines in its log (rows Norce did not import).
    """
    bad = [
        (job_id, jobs[job_id])
        for job_id in unsuccessful(
            jobs, allow_validation_failures=allow_validation_failures, fail_on_row_errors=fail_on_row_errors
        )
    ]
    if not bad:
        return
    parts = []
    for job_id, job in bad:
        errors = job.get("errors") or []
        text = f"job {job_id} ended {job.get('status') or status_label(job.get('status_id'))}"
        if job.get("status_id") == JobStatus.SUCCEEDED:
            text += f" with {job.get('row_errors')} row(s) not imported (fail_on_row_errors=True)"
        text += f" (inserted {job.get('inserts', 0)}, updated {job.get('updates', 0)}, failed {job.get('fail', 0)})"
        text += ": " + " | ".join(errors) if errors else "; its log has no error lines"
        if job.get("errors_omitted"):
            text += f" (+{job['errors_omitted']} more error lines in Job/GetLog?id={job_id})"
        parts.append(text)
    first_id, first = bad[0]
    raise NorceJobError(
        f"Norce Connect: {len(bad)} of {len(jobs)} job(s) did not succeed: " + "; ".join(parts),
        job_id=str(first_id),
        status_id=first.get("status_id"),
    )


def judge_jobs(
    jobs: dict[str, dict[str, Any]],
    logger: logging.Logger | Any,
    *,
    allow_validation_failures: bool,
    fail_on_row_errors: bool,
) -> dict[str, Any]:
    """What the operator and the sensor do with finished jobs: log the rows Norce skipped, fail as asked
    (:func:`check_jobs`), else return the XCom summary (:func:`jobs_summary`)."""
    log_row_problems(logger, jobs)
    check_jobs(
        jobs, allow_validation_failures=allow_validation_failures, fail_on_row_errors=fail_on_row_errors
    )
    return jobs_summary(jobs)


def jobs_summary(jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The XCom of the sensor and the import operator: per-job summaries and the totals a DAG branches on
    (``row_errors`` and ``row_warnings`` count the Error and Warning lines of the jobs' logs)."""
    return {
        "jobs": jobs,
        "succeeded": sum(1 for j in jobs.values() if j.get("status_id") == JobStatus.SUCCEEDED),
        "validation_failed": sum(
            1 for j in jobs.values() if j.get("status_id") == JobStatus.VALIDATION_FAILED
        ),
        "row_errors": sum(j.get("row_errors") or 0 for j in jobs.values()),
        "row_warnings": sum(j.get("row_warnings") or 0 for j in jobs.values()),
    }


@dataclass(frozen=True)
class ImportAnswer:
    """What a Connect import ``POST`` answered: the job id and the items Norce refused at once."""

    job_id: str
    total: int | None
    validation_failures: int
    messages: list[str]
    description: str = ""

    @classmethod
    def from_response(cls, payload: Any, where: str) -> ImportAnswer:
        """``where`` names the batch, for an error that says which POST answered what."""
        job_id = payload.get("JobId") if isinstance(payload, dict) else None
        if job_id in (None, ""):
            raise NorceJobError(
                f"Norce accepted {where} but answered without a JobId ({excerpt(repr(payload), 200)}); "
                "the import may have been received: check the Connect jobs in Norce Admin before re-running"
            )
        summary = payload.get("ValidationSummary") or {}
        if not isinstance(summary, dict):
            summary = {}
        messages = summary.get("Messages") or []
        return cls(
            job_id=str(job_id),
            total=_int_or_none(summary.get("NrOfItemsInTotal")),
            validation_failures=_int_or_none(summary.get("NrOfValidationFailures")) or 0,
            messages=[excerpt(str(m)) for m in messages[:MAX_MESSAGES]] if isinstance(messages, list) else [],
            description=str(payload.get("Description") or ""),
        )


# -- the sync driver of the wait (the hook does the I/O; job_wait decides) ---------------------------


def fetch_job_state(hook: NorceHook, job_id: str) -> JobState:
    """``Job/Get`` for one job, through the hook's retries and token handling."""
    payload = hook.run_json(hook.service_url("connect") + JOB_GET, params={"id": str(job_id)})
    return JobState.from_response(str(job_id), payload)


def fetch_job_log(hook: NorceHook, job_id: str) -> JobLog:
    """The Warning and Error lines of ``Job/GetLog`` for one job."""
    return JobLog.from_response(
        hook.run_json(hook.service_url("connect") + JOB_GET_LOG, params={"id": str(job_id)})
    )


def sync_steps(
    hook: NorceHook, sleep: Callable[[float], None] = time.sleep, progress: Progress | None = None
) -> Callable[[Step], Any]:
    """The sync driver's ``do(step)`` for :mod:`~airflow_provider_norce.connect.job_wait` flows: the hook
    reads, ``sleep`` waits. Nothing but I/O: every decision is the flow's.

    Before each sleep it logs the flow's line, or, given a ``progress`` reporter whose total is the number
    of jobs, tells it how many jobs finished: then the reporter's cadence decides when a line comes (not
    every poll), and its lines say which jobs are still waited for."""

    def do(step: Step) -> Any:
        if isinstance(step, GetJob):
            return fetch_job_state(hook, step.job_id)
        if isinstance(step, GetLog):
            return fetch_job_log(hook, step.job_id)
        if progress is None:
            log.info(step.message)
        else:
            running = _jobs_named(step.pending)
            progress.status = f"{running} still running in Norce, checked every {step.seconds:.1f} s"
            progress.add(max(0, (progress.total or 0) - len(step.pending) - progress.count))
        sleep(step.seconds)
        return None

    return do


def poll_jobs(hook: NorceHook, job_ids: Iterable[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """One round of ``Job/Get`` (:func:`~airflow_provider_norce.connect.job_wait.poll_round`): summaries
    of every job (with the log lines of those that finished) and the ids still running."""
    polled = drive(poll_round(job_ids), sync_steps(hook))
    return polled.jobs, polled.running


def wait_for_jobs(
    hook: NorceHook,
    job_ids: list[str],
    *,
    poll_interval: float,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Poll until every job is finished; their summaries, in the order given.

    ``progress`` (total: the number of jobs) counts the jobs finished and keeps the log's cadence (see
    :func:`sync_steps`); without it, each round logs which jobs still run.

    The wait is :func:`~airflow_provider_norce.connect.job_wait.wait_flow` (the trigger's too), driven by
    the hook, ``sleep`` and a deadline ``timeout`` seconds from now on ``clock``. Finished jobs are not
    asked again. Raises :class:`NorceJobError` when ``timeout`` seconds pass first: the jobs keep running
    in Norce, and a retried task waits for the same ids instead of re-posting.
    """
    flow = wait_flow(job_ids, poll_interval=poll_interval, deadline=deadline_after(timeout, clock), now=clock)
    if progress is not None:
        progress.status = f"asking Norce Connect for the state of {_jobs_named(job_ids)}"
    outcome = drive(flow, sync_steps(hook, sleep, progress))
    if isinstance(outcome, Done):
        return outcome.jobs
    pending = outcome.pending
    raise NorceJobError(
        f"Norce Connect job(s) {', '.join(pending)} still running after {timeout} s; they keep "
        "running in Norce. A retry of this task waits for the same job ids (nothing is posted again).",
        job_id=pending[0],
        status_id=outcome.jobs[pending[0]].get("status_id"),
    )


def _jobs_named(job_ids: Sequence[str]) -> str:
    """``job(s) 11, 12, 13, 14, 15 and 3 more``: at most five ids in a progress line."""
    more = f" and {len(job_ids) - 5} more" if len(job_ids) > 5 else ""
    return f"job(s) {', '.join(job_ids[:5])}{more}"


def defer_timeout(timeout: float | None, poll_interval: float) -> timedelta | None:
    """Airflow's deadline for a task deferred to :class:`~airflow_provider_norce.triggers.norce.NorceJobTrigger`.

    It only backs up the trigger's own deadline, whose ``timeout`` event says more than Airflow's: past
    ``timeout`` the trigger still gets the larger of a minute and two poll intervals (its last round, a
    triggerer restart) before Airflow times the task out. The operator and the sensor both defer with it.
    """
    if timeout is None:
        return None
    return timedelta(seconds=timeout + max(60.0, 2 * poll_interval))


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
