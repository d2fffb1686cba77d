"""Waiting for Connect jobs, written once and free of I/O: the poll round, the deadline and the sleeps.

The task (:func:`~airflow_provider_norce.connect.jobs.wait_for_jobs`, through the sync hook), the sensor's
poke (:func:`~airflow_provider_norce.connect.jobs.poll_jobs`) and the trigger (through the async client, in
the triggerer) must agree on every rule of the wait: which job is asked next, that ``Job/GetLog`` is read
for a finished job only (a Succeeded one too), that a finished job is not asked again, when the deadline
has passed, how long to sleep before the next round. Written twice, those rules drift; so they are written
here once, as flows in the style of httpx's auth flows: a flow yields what it needs done
(:class:`GetJob`, :class:`GetLog`, :class:`Sleep`), receives the answer (a
:class:`~airflow_provider_norce.connect.jobs.JobState`, a :class:`~airflow_provider_norce.connect.jobs.JobLog`,
nothing after a sleep) and returns its outcome (:class:`Polled`, :class:`Done`, :class:`TimedOut`).

:func:`~airflow_provider_norce.flows.drive` and :func:`~airflow_provider_norce.flows.drive_async` run a
flow with a driver's ``do(step)``, which holds nothing but the
I/O: ``requests`` and ``time.sleep`` in a task, ``httpx`` and ``asyncio.sleep`` in the triggerer. The clock
is given to the flow (``now``): a task uses ``time.monotonic`` and a deadline relative to its start; the
trigger uses wall time, as its deadline is absolute epoch seconds (serialized, so a restarted trigger does
not start its timeout afresh). Tests give a fake clock, and nothing sleeps for real.

This module reads the job model only through the attributes it documents (``job_id``, ``is_finished``,
``summary(log)``), so it imports nothing at run time and the job module can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    from airflow_provider_norce.connect.jobs import JobLog, JobState


@dataclass(frozen=True)
class GetJob:
    """Step: ask ``Job/Get`` for ``job_id``; hand back its :class:`~airflow_provider_norce.connect.jobs.JobState`."""

    job_id: str


@dataclass(frozen=True)
class GetLog:
    """Step: ask ``Job/GetLog`` for the finished job ``job_id``; hand back its
    :class:`~airflow_provider_norce.connect.jobs.JobLog`."""

    job_id: str


@dataclass(frozen=True)
class Sleep:
    """Step: wait ``seconds`` before the next round (``pending`` are the jobs still running); hand back None."""

    seconds: float
    pending: tuple[str, ...]

    @property
    def message(self) -> str:
        """The INFO line both drivers log before sleeping (one wording, one place)."""
        return f"Norce Connect job(s) {', '.join(self.pending)} still running; next check in {self.seconds:.1f} s"


Step = GetJob | GetLog | Sleep
#: What a driver hands back for a step: a job state, a job log, or None after a sleep.
Reply = Any


@dataclass(frozen=True)
class Polled:
    """Outcome of one round: the summary of every job asked (in the order asked) and those still running."""

    jobs: dict[str, dict[str, Any]]
    running: list[str]


@dataclass(frozen=True)
class Done:
    """Outcome of a wait: every job finished; their summaries in the order the ids were given."""

    jobs: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class TimedOut:
    """Outcome of a wait: the deadline passed with ``pending`` still running (they keep running in Norce);
    ``jobs`` holds the last summary of every job, in the order the ids were given."""

    pending: list[str]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)


def poll_round(
    job_ids: Iterable[str], seen: dict[str, dict[str, Any]] | None = None
) -> Generator[GetJob | GetLog, Reply, Polled]:
    """One round of ``Job/Get``: ask each job once, in order; read ``Job/GetLog`` of each finished one.

    ``Job/GetLog`` is read for a Succeeded job too: Norce ends a job Succeeded with rows skipped, and its
    log is the only place that says so. It is never read for a running job (its lines are not final).
    ``seen``, when given, receives each summary as soon as it is known, so a driver that fails half-way
    can still report what it learnt.
    """
    jobs: dict[str, dict[str, Any]] = {}
    running: list[str] = []
    for job_id in job_ids:
        state: JobState = yield GetJob(str(job_id))
        log: JobLog | None = (yield GetLog(state.job_id)) if state.is_finished else None
        jobs[state.job_id] = state.summary(log)
        if seen is not None:
            seen[state.job_id] = jobs[state.job_id]
        if not state.is_finished:
            running.append(state.job_id)
    return Polled(jobs, running)


def wait_flow(
    job_ids: Iterable[str],
    *,
    poll_interval: float,
    deadline: float | None,
    now: Callable[[], float],
    seen: dict[str, dict[str, Any]] | None = None,
) -> Generator[Step, Reply, Done | TimedOut]:
    """Rounds of :func:`poll_round` until every job is finished or ``deadline`` (read on ``now``) passes.

    Finished jobs are not asked again. Between two rounds: ``Sleep(min(poll_interval, time left))``, so
    the last round falls on the deadline, not up to a poll interval after it. The deadline is checked
    after a round, never before the first: jobs that are already finished are reported as such however
    short the timeout. ``deadline=None`` waits for as long as the caller lets it. An id given twice is
    asked once a round.
    """
    ids = list(dict.fromkeys(str(job_id) for job_id in job_ids))
    jobs: dict[str, dict[str, Any]] = {}
    pending = list(ids)
    while True:
        polled = yield from poll_round(pending, seen)
        jobs.update(polled.jobs)
        pending = polled.running
        if not pending:
            return Done({job_id: jobs[job_id] for job_id in ids})
        remaining = None if deadline is None else deadline - now()
        if remaining is not None and remaining <= 0:
            return TimedOut(pending, {job_id: jobs[job_id] for job_id in ids})
        yield Sleep(poll_interval if remaining is None else min(poll_interval, remaining), tuple(pending))


def deadline_after(timeout: float | None, now: Callable[[], float]) -> float | None:
    """The deadline ``timeout`` seconds from now on clock ``now``; None without a timeout."""
    return None if timeout is None else now() + timeout
