"""NorceTaskRetryPolicy (Airflow 3.3+): which Norce failures a task retry can fix."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytest.importorskip(
    "airflow.sdk.definitions.retry_policy", reason="task retry policies arrived in Airflow 3.3"
)

from airflow.sdk.definitions.retry_policy import RetryAction

from airflow_provider_norce.exceptions import (
    NorceAPIError,
    NorceAuthError,
    NorceConnectionConfigError,
    NorceJobError,
    NorceRateLimitError,
)
from airflow_provider_norce.retries.task_policy import NorceTaskRetryPolicy

POLICY = NorceTaskRetryPolicy(rate_limit_delay=timedelta(seconds=90))


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (NorceConnectionConfigError("norce_x", "host", "bad"), RetryAction.FAIL),
        (NorceAuthError("invalid_client"), RetryAction.FAIL),
        (NorceJobError("validation", job_id="7", status_id=4), RetryAction.FAIL),
        (NorceJobError("failed", job_id="7", status_id=3), RetryAction.DEFAULT),
        (NorceAPIError("400", status_code=400), RetryAction.FAIL),
        (NorceAPIError("404", status_code=404), RetryAction.FAIL),
        (NorceAPIError("503", status_code=503), RetryAction.RETRY),
        (NorceAPIError("lost connection"), RetryAction.RETRY),
        (ValueError("not ours"), RetryAction.DEFAULT),
    ],
)
def test_decisions(exc, action):
    assert POLICY.evaluate(exc, try_number=1, max_tries=3).action is action


def test_rate_limit_waits_at_least_as_long_as_norce_asked():
    asked = NorceRateLimitError("429", status_code=429, retry_after=300)
    assert POLICY.evaluate(asked, 1, 3).retry_delay == timedelta(seconds=300)
    silent = NorceRateLimitError("429", status_code=429)
    decision = POLICY.evaluate(silent, 1, 3)
    assert decision.action is RetryAction.RETRY and decision.retry_delay == timedelta(seconds=90)


def test_serialization_round_trip():
    again = NorceTaskRetryPolicy.deserialize(POLICY.serialize())
    assert again.rate_limit_delay == POLICY.rate_limit_delay
