"""``NorceJobSensor``: wait for Norce Connect jobs someone else posted (another task, a webhook, a run).

Poke, reschedule and deferrable modes all read the same answers through the same job model
(:mod:`airflow_provider_norce.connect.jobs`), so they agree on "done" and on "failed". A failed job fails the
sensor with the Error lines of its log; the XCom value is a small summary per job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue, conf

from airflow_provider_norce.exceptions import NorceJobError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context


class NorceJobSensor(BaseSensorOperator):
    """Succeeds when every Connect job is finished and succeeded; fails when one ended badly.

    :param job_ids: one job id or a list of them (templated; an XComArg of
        :class:`~airflow_provider_norce.operators.connect.NorceConnectImportOperator` fits).
    :param allow_validation_failures: accept jobs that ended Validation failed (4).
    :param fail_on_row_errors: also fail when a job ended Succeeded with Error lines in its log (rows Norce
        did not import, e.g. an unknown SKU). Off by default, as Norce itself calls such a job a success;
        the lines are logged as a warning and counted in the XCom either way.
    :param deferrable: wait in the triggerer (:class:`~airflow_provider_norce.triggers.norce.NorceJobTrigger`).
    :param norce_conn_id: the Airflow connection (type ``norce``).

    Pushes (XCom) ``{"jobs": {job_id: summary}, "succeeded": n, "validation_failed": n, "row_errors": n,
    "row_warnings": n}``: the last two count the Error and Warning lines of the jobs' logs.
    """

    template_fields: Sequence[str] = (
        "job_ids",
        "allow_validation_failures",
        "fail_on_row_errors",
        "norce_conn_id",
    )
    ui_color = "#e8f4f0"

    def __init__(
        self,
        *,
        job_ids: str | list[str],
        allow_validation_failures: bool = False,
        fail_on_row_errors: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        norce_conn_id: str = "norce_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30)
        super().__init__(**kwargs)
        self.job_ids = job_ids
        self.allow_validation_failures = allow_validation_failures
        self.fail_on_row_errors = fail_on_row_errors
        self.deferrable = deferrable
        self.norce_conn_id = norce_conn_id

    def _ids(self) -> list[str]:
        ids = self.job_ids
        if isinstance(ids, (str, int)):
            ids = [ids]
        try:
            result = [str(j).strip() for j in ids]
        except TypeError:
            raise ValueError(
                f"Task {self.task_id!r}: job_ids must be a job id or a list of them, got {ids!r}"
            ) from None
        if not result or not all(result):
            raise ValueError(f"Task {self.task_id!r}: job_ids is empty; give the Connect job ids to wait for")
        return result

    def _check(self, jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Log rows Norce skipped, fail as the arguments say, or return the XCom summary."""
        from airflow_provider_norce.arguments import as_bool
        from airflow_provider_norce.connect.jobs import judge_jobs

        return judge_jobs(
            jobs,
            self.log,
            allow_validation_failures=as_bool(
                self.allow_validation_failures, "allow_validation_failures", self.task_id
            ),
            fail_on_row_errors=as_bool(self.fail_on_row_errors, "fail_on_row_errors", self.task_id),
        )

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)  # jobs that are already finished need no triggerer round trip
        if done.is_done:
            return done.xcom_value
        from airflow_provider_norce.connect.jobs import defer_timeout
        from airflow_provider_norce.triggers.norce import NorceJobTrigger

        timeout = float(self.timeout) if self.timeout is not None else None
        poll_interval = float(self.poke_interval)
        self.defer(
            trigger=NorceJobTrigger(
                norce_conn_id=self.norce_conn_id,
                job_ids=self._ids(),
                poll_interval=poll_interval,
                timeout=timeout,
            ),
            method_name="execute_complete",
            timeout=defer_timeout(timeout, poll_interval),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_provider_norce.connect.jobs import poll_jobs
        from airflow_provider_norce.hooks.norce import NorceHook

        jobs, running = poll_jobs(NorceHook(self.norce_conn_id), self._ids())
        if running:
            self.log.info("Norce Connect job(s) still running: %s", ", ".join(running))
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._check(jobs))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after :class:`NorceJobTrigger`: fail with the jobs' error lines, or return the summary."""
        if not isinstance(event, dict):
            raise NorceJobError(f"Task {self.task_id!r}: resumed without a trigger event ({event!r})")
        if event.get("status") == "timeout":
            # Airflow's own sensor timeout, so soft_fail and the sensor's retry rules apply as in poke mode.
            from airflow.providers.common.compat.sdk import AirflowSensorTimeout

            raise AirflowSensorTimeout(f"Task {self.task_id!r}: {event.get('message')}")
        if event.get("status") == "error":
            raise NorceJobError(f"Task {self.task_id!r}: {event.get('message')}")
        return self._check(event.get("jobs") or {})
