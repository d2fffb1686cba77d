"""``NorceTaskRetryPolicy``: Airflow 3.3 task retries that know Norce's errors.

The hook already retries single requests within their budget. What reaches the task is what that could
not fix, and a task retry helps only with some of it:

* a wrong secret, scope or connection field, or a 4xx Norce refused outright: the next try fails the
  same way, so fail now and tell the user what to fix instead of burning retries;
* a Connect job that ended Validation failed: the same data fails the same validation;
* Norce still rate-limiting after the request's whole budget: retry, but not sooner than Norce asked
  (and never sooner than ``rate_limit_delay``);
* 5xx answers and connections lost: retry with the task's own delay.

Everything else falls through to the task's ``retries`` and ``retry_delay``. Needs Airflow 3.3 or later
(``retry_policy=`` on an operator); importing this module on older Airflow raises ``ImportError``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import RetryDecision, RetryPolicy

from airflow_provider_norce.connect.jobs import JobStatus
from airflow_provider_norce.exceptions import (
    NorceAPIError,
    NorceAuthError,
    NorceConnectionConfigError,
    NorceJobError,
    NorceRateLimitError,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: 4xx answers that can change on their own (timeout, rate limit): not a reason to give up.
_TRANSIENT_4XX = frozenset({408, 429})


class NorceTaskRetryPolicy(RetryPolicy):
    """Decide a failed Norce task's retry from the exception the provider raised.

    Usage (Airflow 3.3+)::

        NorceQueryExportOperator(..., retries=3, retry_policy=NorceTaskRetryPolicy())

    :param rate_limit_delay: the least delay before retrying a task that Norce rate-limited.
    """

    def __init__(self, rate_limit_delay: timedelta = timedelta(minutes=1)) -> None:
        self.rate_limit_delay = rate_limit_delay

    def evaluate(
        self,
        exception: BaseException,
        try_number: int,
        max_tries: int,
        context: Context | None = None,
    ) -> RetryDecision:
        if isinstance(exception, NorceConnectionConfigError):
            return RetryDecision.fail(f"fix the Norce connection {exception.conn_id!r}: {exception.field}")
        if isinstance(exception, NorceAuthError):
            return RetryDecision.fail("Norce refused the credentials or scope; a retry cannot fix that")
        if isinstance(exception, NorceRateLimitError):
            wait = timedelta(seconds=exception.retry_after or 0)
            return RetryDecision.retry(
                delay=max(wait, self.rate_limit_delay), reason="Norce is rate-limiting; retrying later"
            )
        if isinstance(exception, NorceJobError) and exception.status_id == JobStatus.VALIDATION_FAILED:
            return RetryDecision.fail(f"Connect job {exception.job_id} failed validation; fix the data")
        if isinstance(exception, NorceAPIError):
            status = exception.status_code
            if status is not None and 400 <= status < 500 and status not in _TRANSIENT_4XX:
                return RetryDecision.fail(f"Norce refused the request with {status}; a retry sends the same")
            return RetryDecision.retry(reason=f"Norce answered {status or 'nothing'}; transient")
        return RetryDecision.default()

    def serialize(self) -> dict[str, Any]:
        return {"rate_limit_delay": self.rate_limit_delay.total_seconds()}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> NorceTaskRetryPolicy:
        return cls(rate_limit_delay=timedelta(seconds=float(data.get("rate_limit_delay", 60))))
