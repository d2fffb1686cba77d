"""Deprecated path of :mod:`airflow_provider_norce.retries.task_policy`, kept for DAG files written for 0.1."""

from __future__ import annotations

import warnings

from airflow_provider_norce.retries.task_policy import *  # noqa: F403
from airflow_provider_norce.retries.task_policy import NorceTaskRetryPolicy  # noqa: F401

warnings.warn(
    "airflow_provider_norce.task_retry moved to airflow_provider_norce.retries.task_policy; import "
    "NorceTaskRetryPolicy from there",
    DeprecationWarning,
    stacklevel=2,
)
