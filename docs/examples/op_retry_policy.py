"""A task retry policy that knows Norce (Airflow 3.3+), as operators.md shows it.

tests/docs/test_examples_a.py parses this DAG on Airflow 3.3+ and asks the task's policy what it decides for
the errors the page names.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_norce.operators.query import NorceQueryExportOperator

# [START task_retry_policy]
from airflow_provider_norce.retries.task_policy import NorceTaskRetryPolicy

# [END task_retry_policy]

with DAG(
    dag_id="docs_task_retry_policy",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
):
    # [START task_retry_policy_use]
    NorceQueryExportOperator(
        task_id="export_orders",
        destination="/data/norce/orders/{{ ds }}.jsonl",
        retries=3,
        retry_policy=NorceTaskRetryPolicy(),
    )
    # [END task_retry_policy_use]
