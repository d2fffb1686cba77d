"""DAGs of the token fault suite (tests/faults/test_fault_tokens.py): an export and Connect job waits.

Every DAG reads what varies from ``dag_run.conf``; the connection is ``norce_default`` (the simulator). The
export and the import are the tasks of ``tests/faults/fault_dag_tasks.py``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG
from fault_dag_tasks import ONHAND_HEADER, onhand_import, sku_export

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.sensors.norce import NorceJobSensor

START = pendulum.datetime(2026, 11, 1, tz="UTC")

with DAG(dag_id="token_fault_export", schedule=None, start_date=START, catchup=False):
    sku_export("export", "{{ dag_run.conf['destination'] }}")

for deferrable in (False, True):
    suffix = "deferred" if deferrable else "sync"
    with DAG(dag_id=f"token_fault_import_{suffix}", schedule=None, start_date=START, catchup=False):
        onhand_import("import", "{{ dag_run.conf['items_path'] }}", poll_interval=0.3, deferrable=deferrable)

    with DAG(dag_id=f"token_fault_sensor_{suffix}", schedule=None, start_date=START, catchup=False):
        post = NorceConnectImportOperator(
            task_id="post",
            import_method="Product/ImportOnhands",
            items_path="{{ dag_run.conf['items_path'] }}",
            connect_header=ONHAND_HEADER,
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
