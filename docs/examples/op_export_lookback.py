"""A daily order export with concurrent slices and a look-back window, as docs/operators.md shows it.

tests/docs/test_examples_c.py runs this DAG's task against the local Norce simulator for two consecutive days,
with one order updated late in between, and loads both files with op_upsert_by_key.py: what the page says about
``lookback`` (the late order is caught, rows repeat across files, the upsert keeps one row per order) is what
that test checks. The test points ``destination`` at a temporary folder.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_norce.operators.query import NorceQueryExportOperator

with DAG(
    dag_id="docs_order_export_lookback",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
) as dag:
    # [START query_export_lookback]
    export_orders = NorceQueryExportOperator(
        task_id="export_orders",
        destination="/data/norce/orders/{{ ds }}.jsonl",
        max_concurrency=8,  # key-range slices fetched at once (the default); 1 = one page after another
        slice_rows=10_000,  # about this many rows a slice (the default); a retry resumes slice by slice
        lookback=timedelta(hours=6),  # re-read 6 h before the window: orders Norce updated late
    )
    # [END query_export_lookback]
