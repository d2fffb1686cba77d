"""Task retries that know Norce (Airflow 3.3+): ``retry_policy=NorceTaskRetryPolicy()`` on a Norce task.

A DAG file; ``tests/docs/test_examples_b.py`` parses it (on Airflow 3.3 and later) and checks the policy's
decisions; docs/deployment.md shows the part between the markers.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_norce.operators.query import NorceQueryExportOperator

with DAG(
    dag_id="docs_norce_retry_policy",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
) as dag:
    # [START dep_retry_policy]
    from airflow_provider_norce.retries.task_policy import NorceTaskRetryPolicy

    NorceQueryExportOperator(
        task_id="export_orders",
        entity="Orders/Orders",
        destination="/data/norce/orders/{{ ds }}.jsonl",
        retries=3,
        retry_delay=timedelta(minutes=5),  # 5xx and lost connections: the task's own delay
        retry_policy=NorceTaskRetryPolicy(rate_limit_delay=timedelta(minutes=1)),  # 429: at least this
    )
    # [END dep_retry_policy]
