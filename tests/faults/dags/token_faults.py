"""DAGs of the token fault suite (tests/faults/test_fault_tokens.py): an export and Connect job waits.

Every DAG reads what varies from ``dag_run.conf``; the connection is ``norce_default`` (the simulator).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator
from airflow_provider_norce.sensors.norce import NorceJobSensor

START = pendulum.datetime(2026, 11, 1, tz="UTC")
HEADER = {"AccountId": 1, "FullFile": False}

with DAG(dag_id="token_fault_export", schedule=None, start_date=START, catchup=False):
    NorceQueryExportOperator(
        task_id="export",
        entity="Products/ProductSkus",
        select="PartNo",
        orderby="PartNo",
        window_field=None,
        destination="{{ dag_run.conf['destination'] }}",
        file_format="jsonl",
    )

for deferrable in (False, True):
    suffix = "deferred" if deferrable else "sync"
    with DAG(dag_id=f"token_fault_import_{suffix}", schedule=None, start_date=START, catchup=False):
        NorceConnectImportOperator(
            task_id="import",
            import_method="Product/ImportOnhands",
            items_path="{{ dag_run.conf['items_path'] }}",
            connect_header=HEADER,
            wait_for_completion=True,
            poll_interval=0.3,
            timeout=30,
            deferrable=deferrable,
        )

    with DAG(dag_id=f"token_fault_sensor_{suffix}", schedule=None, start_date=START, catchup=False):
        post = NorceConnectImportOperator(
            task_id="post",
            import_method="Product/ImportOnhands",
            items_path="{{ dag_run.conf['items_path'] }}",
            connect_header=HEADER,
            wait_for_completion=False,
        )
        NorceJobSensor(
            task_id="wait",
            job_ids=post.output,
            poke_interval=0.3,
            timeout=30,
            mode="poke",
            deferrable=deferrable,
        )
