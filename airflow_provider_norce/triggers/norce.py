"""``NorceJobTrigger``: waits for Connect import jobs in the triggerer, freeing the worker slot.

The trigger rebuilds its authentication from the connection id alone (the http provider lost auth on
deferral, apache/airflow#46863): an async connection look-up (never the sync one, which deadlocks on
the triggerer's event loop), the same :class:`~airflow_provider_norce.connection.NorceConnectionConfig`
validation as the hook, and :class:`~airflow_provider_norce.hooks.async_client.NorceAsyncClient` for HTTP.

Its rounds, deadline and sleeps are :func:`~airflow_provider_norce.connect.job_wait.wait_flow`, the very
flow a task's :func:`~airflow_provider_norce.connect.jobs.wait_for_jobs` drives; only the I/O differs.

It only reads ``Job/Get`` and ``Job/GetLog``, so running it twice (a triggerer restart, a second
triggerer picking it up) changes nothing in Norce. Its deadline is absolute (``end_time``, epoch
seconds) and serialized, so a restarted trigger does not start its timeout afresh.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_norce.connect.job_wait import Done, GetJob, GetLog, TimedOut, wait_flow
from airflow_provider_norce.connect.jobs import unsuccessful
from airflow_provider_norce.flows import drive_async

if TYPE_CHECKING:
    import logging
    from collections.abc import AsyncIterator, Awaitable, Callable

    from airflow_provider_norce.connect.job_wait import Step
    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.hooks.async_client import NorceAsyncClient


class NorceJobTrigger(BaseTrigger):
    """Polls Norce Connect until every job is finished (or the deadline passes); yields ONE event.

    The event: ``{"status": "success" | "failed" | "timeout" | "error", "jobs": {job_id: summary},
    "message": str}``. ``failed`` means at least one job did not end Succeeded (2): Failed (3),
    Validation failed (4) or a status nobody documented, by
    :func:`~airflow_provider_norce.connect.jobs.unsuccessful`, the rule tasks judge by. Every finished
    job's summary carries the counts and first Error and Warning lines of its log, a Succeeded one's too
    (Norce skips rows and still says Succeeded). Whether a Validation failed job is acceptable
    is the caller's decision (``allow_validation_failures``), so the trigger reports and never judges.

    :param norce_conn_id: the Airflow connection (type ``norce``).
    :param job_ids: the Connect job ids to wait for.
    :param poll_interval: seconds between two rounds of ``Job/Get``.
    :param timeout: seconds to wait in all; ``None`` waits as long as Airflow lets the task defer.
    :param end_time: the absolute deadline (epoch seconds); computed from ``timeout`` when not given,
        and serialized so a re-run trigger keeps the original deadline.
    """

    def __init__(
        self,
        norce_conn_id: str,
        job_ids: list[str] | str,
        poll_interval: float,
        timeout: float | None = None,
        end_time: float | None = None,
    ) -> None:
        super().__init__()
        self.norce_conn_id = norce_conn_id
        self.job_ids = [str(job_ids)] if isinstance(job_ids, (str, int)) else [str(j) for j in job_ids]
        self.poll_interval = float(poll_interval)
        self.timeout = None if timeout is None else float(timeout)
        if end_time is None and self.timeout is not None:
            end_time = time.time() + self.timeout
        self.end_time = end_time

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "norce_conn_id": self.norce_conn_id,
                "job_ids": list(self.job_ids),
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        jobs: dict[str, dict[str, Any]] = {}
        try:
            config = await read_config(self.norce_conn_id)
            async with self._client(config) as client:
                event = await self._wait(client, jobs)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # one clear event instead of a trigger crash the task cannot read
            event = {
                "status": "error",
                "jobs": jobs,
                "message": f"Norce connection {self.norce_conn_id!r}: waiting for Connect job(s) "
                f"{', '.join(self.job_ids)} failed: {type(err).__name__}: {err}",
            }
        yield TriggerEvent(event)

    def _client(self, config: NorceConnectionConfig) -> NorceAsyncClient:
        from airflow_provider_norce.hooks.async_client import NorceAsyncClient

        return NorceAsyncClient(config)

    async def _wait(self, client: NorceAsyncClient, jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Wait on wall time (``end_time`` is epoch seconds) and build the one event."""
        outcome = await wait_for_jobs_async(
            client,
            self.job_ids,
            poll_interval=self.poll_interval,
            end_time=self.end_time,
            logger=self.log,
            seen=jobs,
        )
        return job_event(outcome, self.timeout)


async def wait_for_jobs_async(
    client: NorceAsyncClient,
    job_ids: list[str],
    *,
    poll_interval: float,
    end_time: float | None,
    logger: logging.Logger | Any,
    seen: dict[str, dict[str, Any]] | None = None,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Done | TimedOut:
    """The async driver of :func:`~airflow_provider_norce.connect.job_wait.wait_flow`: the same rounds,
    deadline and sleeps as a task's :func:`~airflow_provider_norce.connect.jobs.wait_for_jobs`, with
    ``client`` reading and ``sleep`` waiting. ``end_time`` is read on ``now`` (wall time by default)."""

    async def do(step: Step) -> Any:
        if isinstance(step, GetJob):
            return await client.job_state(step.job_id)
        if isinstance(step, GetLog):
            return await client.job_log(step.job_id)
        logger.info(step.message)
        await sleep(step.seconds)
        return None

    flow = wait_flow(job_ids, poll_interval=poll_interval, deadline=end_time, now=now, seen=seen)
    return await drive_async(flow, do)


def job_event(outcome: Done | TimedOut, timeout: float | None) -> dict[str, Any]:
    """The trigger's event for an outcome: ``timeout``, or ``failed`` when a job did not succeed by
    :func:`~airflow_provider_norce.connect.jobs.unsuccessful` (the rule tasks judge by), else ``success``."""
    if isinstance(outcome, TimedOut):
        return {
            "status": "timeout",
            "jobs": outcome.jobs,
            "message": f"Norce Connect job(s) {', '.join(outcome.pending)} still running after the "
            f"{timeout} s timeout; they keep running in Norce",
        }
    jobs = outcome.jobs
    bad = unsuccessful(jobs)
    if bad:
        return {
            "status": "failed",
            "jobs": jobs,
            "message": f"{len(bad)} of {len(jobs)} Norce Connect job(s) did not succeed: "
            + ", ".join(f"{j} ({jobs[j]['status']})" for j in bad),
        }
    return {"status": "success", "jobs": jobs, "message": f"{len(jobs)} Norce Connect job(s) succeeded"}


async def read_config(norce_conn_id: str) -> NorceConnectionConfig:
    """A trigger's connection, read asynchronously; its extras too (``extra_dejson`` may block on 3.3.2+).

    Every Norce trigger starts here: the triggerer has only the conn id to rebuild auth from."""
    from types import SimpleNamespace

    from airflow.providers.common.compat.connection import get_async_connection

    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.hooks.norce import NorceHook

    conn = await get_async_connection(norce_conn_id, NorceHook)
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson

        extra = await get_async_extra_dejson(conn)
    except ImportError:  # older compat providers: read it in a thread, where blocking is safe
        from airflow_provider_norce.hooks.async_client import in_thread

        extra = await in_thread(lambda: conn.extra_dejson)
    view = SimpleNamespace(
        conn_id=norce_conn_id,
        login=conn.login,
        password=conn.password,
        host=conn.host,
        extra=conn.extra,  # the raw text, so extra that is not JSON is refused, not read as {}
        extra_dejson=extra,
    )
    return NorceConnectionConfig.from_connection(view, norce_conn_id)
