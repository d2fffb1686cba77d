"""DAGs of the KILL fault suite (tests/faults/test_fault_token_store.py, test_fault_killed_worker.py).

An export, a Connect import in small batches, and a DAG of two exports (two tasks that each need a token).
Each task has one retry without delay: after a worker is SIGKILLed, the retry is what the scheduler runs.
Everything that varies comes from ``dag_run.conf``; the connection is ``norce_default`` (the simulator).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator

START = pendulum.datetime(2026, 11, 1, tz="UTC")
RETRY = {"retries": 1, "retry_delay": timedelta(0)}

with DAG(dag_id="kill_fault_export", schedule=None, start_date=START, catchup=False, default_args=RETRY):
    NorceQueryExportOperator(
        task_id="export",
        entity="Products/ProductSkus",
        select="PartNo",
        orderby="PartNo",
        window_field=None,
        destination="{{ dag_run.conf['destination'] }}",
        file_format="jsonl",
    )

with DAG(dag_id="kill_fault_import", schedule=None, start_date=START, catchup=False, default_args=RETRY):
    NorceConnectImportOperator(
        task_id="import",
        import_method="Product/ImportOnhands",
        items_path="{{ dag_run.conf['items_path'] }}",
        connect_header={"AccountId": 1, "FullFile": False},
        batch_size=4,
        wait_for_completion=True,
        poll_interval=0.2,
        timeout=30,
    )

with DAG(dag_id="kill_fault_two_exports", schedule=None, start_date=START, catchup=False):
    first = NorceQueryExportOperator(
        task_id="skus",
        entity="Products/ProductSkus",
        select="PartNo",
        orderby="PartNo",
        window_field=None,
        destination="{{ dag_run.conf['destination'] }}",
    )
    second = NorceQueryExportOperator(
        task_id="skus_again",
        entity="Products/ProductSkus",
        select="PartNo",
        orderby="PartNo",
        window_field=None,
        destination="{{ dag_run.conf['destination'] }}.again",
    )
    first >> second
