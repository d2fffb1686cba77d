"""A Connect import and a Query export that a test kills a Celery worker under, mid-run.

Why: a worker host can die at any moment (OOM, a node drained, a spot instance reclaimed). Airflow then fails
the task by its heartbeat timeout and retries it on another worker; the provider must make that retry exact:

* ``import_stock`` posts a file of several batches with ``Product/ImportOnhands``. Each batch has an
  *in-flight* marker in Airflow's durable task state before its POST and its job id after it, so the retry on
  another host re-uses the recorded jobs and never posts a batch twice: a batch whose POST was in flight when
  the worker died may have reached Norce, so the retry refuses it and fails, naming the task-state key. Once
  Norce shows no job for it, an operator deletes that key and clears the task; that try posts the rest.
* ``export_orders`` writes the orders ``Id le params.max_id`` (the whole set, no time window, no application
  filter) to a JSON-lines file, reading key ranges concurrently; finished ranges are staged beside the
  destination (a folder every worker reaches), the retry reads only the missing ones, and the final file
  appears atomically (no partial file).

``retries=1`` with a short ``retry_delay``: one kill costs one retry (the import's refusing retry is its last,
so the test's clear starts try 3). The test holds one request of each task in the simulator (a ``timeout``
fault) while it kills the workers running them, so both are mid-run.
Parsing makes no network call and reads no connection.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator

#: Where the test puts the items file and reads the export; the cluster gives every component one output folder.
OUTPUT_DIR = os.environ.get("NORCE_CLUSTER_OUTPUT", "/tmp/norce-cluster-kill")
#: The Norce account the import runs as.
ACCOUNT_ID = 1

with DAG(
    dag_id="norce_cluster_kill",
    description="A Connect import and a Query export for the killed-worker test of the local cluster",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=5)},
    params={
        "conn_id": Param("norce_default", type="string", description="Norce connection"),
        "items_path": Param(
            f"{OUTPUT_DIR}/kill/onhands.jsonl", type="string", description="ImportOnhands items, JSON lines"
        ),
        "batch_size": Param(20, type="integer", minimum=1, description="Items per Connect POST"),
        "export_path": Param(
            f"{OUTPUT_DIR}/kill/orders.jsonl", type="string", description="Destination of the export"
        ),
        "max_id": Param(8000, type="integer", minimum=1, description="Exports the orders with Id <= max_id"),
    },
    tags=["norce", "cluster-test"],
):
    NorceConnectImportOperator(
        task_id="import_stock",
        norce_conn_id="{{ params.conn_id }}",
        import_method="Product/ImportOnhands",
        items_path="{{ params.items_path }}",
        batch_size="{{ params.batch_size }}",
        connect_header={"AccountId": ACCOUNT_ID, "FullFile": False},
        wait_for_completion=True,
        poll_interval=1,
    )
    NorceQueryExportOperator(
        task_id="export_orders",
        norce_conn_id="{{ params.conn_id }}",
        entity="Orders/Orders",
        destination="{{ params.export_path }}",
        file_format="jsonl",
        filter="Id le {{ params.max_id }}",
        window_field=None,
        filter_application=False,
        orderby="Id",
        # Two key ranges in flight, ranges of 1,000 rows (2 pages): several ranges finish before the kill,
        # so the retry's resume from the staged ranges is exercised.
        max_concurrency=2,
        slice_rows=1000,
    )
