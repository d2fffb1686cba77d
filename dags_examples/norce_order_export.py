"""Daily incremental order export: yesterday's changed orders from Norce Query to a JSON-lines file.

Each run exports the orders whose ``Updated`` lies in the day before the run (``@daily`` runs at midnight
UTC; the operator's default window is the schedule period ending at the run, see the README), with their
order lines (``$expand=Items``: ``LineNumber``, ``PartNo``, ``QtyOrdered``, ``PriceSale``, ...). Orders never
updated since they were created have a null ``Updated``; the window then reads their ``Created``. Norce's
``applicationId`` header does not filter orders, so the export adds ``ApplicationId eq <the connection's
application id>`` to its filter: a tenant's other storefronts stay out of this file. The file
appears atomically and a re-run of the same day rewrites the same file, so downstream jobs never read half
an export. The ``norce_orders`` Asset lets downstream DAGs run as soon as a day's export is written::

    with DAG("orders_to_warehouse", schedule=[Asset(name="norce_orders", uri="file:///tmp/norce-exports/orders")]):
        ...

Parsing this file makes no network call and reads no connection.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, Param

from airflow_provider_norce.operators.query import NorceQueryExportOperator

EXPORT_DIR = os.environ.get("NORCE_EXPORT_DIR", "/tmp/norce-exports")
ORDERS = Asset(name="norce_orders", uri=f"file://{EXPORT_DIR}/orders")

with DAG(
    dag_id="norce_order_export",
    description="Orders updated yesterday, from Norce Query to a JSON-lines file",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "output_dir": Param(
            EXPORT_DIR, type="string", description="Folder (or URI) the export is written to"
        ),
    },
    tags=["norce", "query", "export"],
):
    NorceQueryExportOperator(
        task_id="export_orders",
        entity="Orders/Orders",
        # The run of 2026-11-20 exports 2026-11-19: name the file after the day it holds.
        destination="{{ params.output_dir }}/orders/orders_{{ macros.ds_add(ds, -1) }}.jsonl",
        file_format="jsonl",
        expand="Items",
        # Key order; the export reads key ranges of Id concurrently (max_concurrency, default 8) and
        # resumes a killed try from its finished ranges. Norce may write Updated late: add
        # lookback=timedelta(hours=6) to re-read 6 h before the window (then load the files by Id: an
        # order can be in two of them; see the docs' "Late updates").
        orderby="Id",
        outlets=[ORDERS],
    )
