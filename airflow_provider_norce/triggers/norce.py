"""``NorceJobTrigger``: waits for Connect import jobs in the triggerer, freeing the worker slot.

The trigger rebuilds its authentication from the connection id alone (the http provider lost auth on
deferral, apache/airflow#46863): an async connection look-up (never the sync one, which deadlocks on
the triggerer's event loop), the same :class:`~airflow_provider_norce.connection.NorceConnectionConfig`
validation as the hook, and :class:`~airflow_provider_norce.hooks.async_client.NorceAsyncClient` for HTTP.

It only reads ``Job/Get`` and ``Job/GetLog``, so running it twice (a triggerer restart, a second
triggerer picking it up) changes nothing in Norce. Its deadline is absolute (``end_time``, epoch
seconds) and serialized, so a restarted trigger does not start its timeout afresh.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_norce.connect.jobs import JobStatus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.hooks.async_client import NorceAsyncClient


class NorceJobTrigger(BaseTrigger):
    """Polls Norce Connect until every job is finished (or the deadline passes); yields ONE event.

    The event: ``{"status": "success" | "failed" | "timeout" | "error", "jobs": {job_id: summary},
    "message": str}``. ``failed`` means at least one job ended Failed (3) or Validation failed (4). Every
    finished job's summary carries the counts and first Error and Warning lines of its log, a Succeeded
    one's too (Norce skips rows and still says Succeeded). Whether a Validation failed job is acceptable
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
            config = await self._config()
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

    async def _config(self) -> NorceConnectionConfig:
        """The connection, read asynchronously; its extras too (``extra_dejson`` may block on 3.3.2+)."""
        from types import SimpleNamespace

        from airflow.providers.common.compat.connection import get_async_connection

        from airflow_provider_norce.connection import NorceConnectionConfig
        from airflow_provider_norce.hooks.norce import NorceHook

        conn = await get_async_connection(self.norce_conn_id, NorceHook)
        try:
            from airflow.providers.common.compat.connection import get_async_extra_dejson

            extra = await get_async_extra_dejson(conn)
        except ImportError:  # older compat providers: read it in a thread, where blocking is safe
            extra = await asyncio.to_thread(lambda: conn.extra_dejson)
        view = SimpleNamespace(
            conn_id=self.norce_conn_id,
            login=conn.login,
            password=conn.password,
            host=conn.host,
            extra=conn.extra,  # the raw text, so extra that is not JSON is refused, not read as {}
            extra_dejson=extra,
        )
        return NorceConnectionConfig.from_connection(view, self.norce_conn_id)

    def _client(self, config: NorceConnectionConfig) -> NorceAsyncClient:
        from airflow_provider_norce.hooks.async_client import NorceAsyncClient

        return NorceAsyncClient(config)

    async def _wait(self, client: NorceAsyncClient, jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        pending = list(self.job_ids)
        while True:
            still_running = []
            for job_id in pending:
                state = await client.job_state(job_id)
                log = await client.job_log(job_id) if state.is_finished else None
                jobs[job_id] = state.summary(log)
                if not state.is_finished:
                    still_running.append(job_id)
            pending = still_running
            if not pending:
                ordered = {job_id: jobs[job_id] for job_id in self.job_ids}
                bad = [j for j, s in ordered.items() if s["status_id"] != JobStatus.SUCCEEDED]
                if bad:
                    return {
                        "status": "failed",
                        "jobs": ordered,
                        "message": f"{len(bad)} of {len(ordered)} Norce Connect job(s) did not succeed: "
                        + ", ".join(f"{j} ({ordered[j]['status']})" for j in bad),
                    }
                return {
                    "status": "success",
                    "jobs": ordered,
                    "message": f"{len(ordered)} Norce Connect job(s) succeeded",
                }
            remaining = None if self.end_time is None else self.end_time - time.time()
            if remaining is not None and remaining <= 0:
                return {
                    "status": "timeout",
                    "jobs": {job_id: jobs[job_id] for job_id in self.job_ids},
                    "message": f"Norce Connect job(s) {', '.join(pending)} still running after the "
                    f"{self.timeout} s timeout; they keep running in Norce",
                }
            self.log.info(
                "Norce Connect job(s) %s still running; next check in %.1f s",
                ", ".join(pending),
                self.poll_interval,
            )
            await asyncio.sleep(
                self.poll_interval if remaining is None else min(self.poll_interval, remaining)
            )
