"""DAGs of the KILL fault suite (tests/faults/test_fault_token_store.py, test_fault_killed_worker.py).

An export (sequential, and a concurrent one of orders), a Connect import in small batches, and a DAG of two exports (two tasks that each need a token).
Each task has one retry without delay: after a worker is SIGKILLed, the retry is what the scheduler runs.
Everything that varies comes from ``dag_run.conf``; the connection is ``norce_default`` (the simulator). The
tasks themselves are those of ``tests/faults/fault_dag_tasks.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG
from fault_dag_tasks import onhand_import, order_export, sku_export

START = pendulum.datetime(2026, 11, 1, tz="UTC")
RETRY = {"retries": 1, "retry_delay": timedelta(0)}

with DAG(dag_id="kill_fault_export", schedule=None, start_date=START, catchup=False, default_args=RETRY):
    sku_export("export", "{{ dag_run.conf['destination'] }}")

with DAG(
    dag_id="kill_fault_order_export", schedule=None, start_date=START, catchup=False, default_args=RETRY
):
    order_export("export", "{{ dag_run.conf['destination'] }}")

with DAG(dag_id="kill_fault_import", schedule=None, start_date=START, catchup=False, default_args=RETRY):
    onhand_import("import", "{{ dag_run.conf['items_path'] }}", batch_size=4)

with DAG(dag_id="kill_fault_two_exports", schedule=None, start_date=START, catchup=False):
    sku_export("skus", "{{ dag_run.conf['destination'] }}") >> sku_export(
        "skus_again", "{{ dag_run.conf['destination'] }}.again"
    )
