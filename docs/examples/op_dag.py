"""The operators and the sensor of the docs pages (operators.md, sensors-triggers.md), in one runnable DAG.

tests/docs/test_examples_a.py runs this DAG with ``dag.test()`` against the local Norce simulator; the pages
include the parts between the ``[START ...]`` / ``[END ...]`` markers, so what they show is what ran.
The stock file and the output folder are DAG params (``stock_file``, ``output_dir``): the test copies this file into
its dags folder and points them at the sample of ``dags_examples/data/`` and a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, Param

# [START import_connect_operator]
from airflow_provider_norce.operators.connect import NorceConnectImportOperator

# [END import_connect_operator]
# [START import_norce_operator]
from airflow_provider_norce.operators.norce import NorceOperator

# [END import_norce_operator]
# [START import_query_operator]
from airflow_provider_norce.operators.query import NorceQueryExportOperator

# [END import_query_operator]
# [START import_sensor]
from airflow_provider_norce.sensors.norce import NorceJobSensor

# [END import_sensor]

SAMPLES = Path(__file__).resolve().parents[2] / "dags_examples" / "data"

with DAG(
    dag_id="docs_operator_examples",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    params={
        "stock_file": Param(str(SAMPLES / "onhands.jsonl"), type="string"),
        "output_dir": Param("/tmp/norce-docs-examples", type="string"),
    },
):
    # [START norce_operator_application]
    app = NorceOperator(task_id="application", endpoint="commerce/metadata/1.1/GetApplication")
    # [END norce_operator_application]

    # [START connect_import]
    import_stock = NorceConnectImportOperator(
        task_id="import_stock",
        import_method="Product/ImportOnhands",  # one of the 9 Connect import methods
        items_path="{{ params.stock_file }}",  # a local path or any ObjectStoragePath URI; or items=[...]
        connect_header={"AccountId": 1},  # FullFile: false and the field mask are added
        batch_size=1000,  # items per POST, i.e. per Connect job
        wait_for_completion=True,  # fail if a job ends Failed / Validation failed
        poll_interval=2,
        timeout=3600,  # seconds to wait for the jobs
        deferrable=True,  # wait in the triggerer, not in a worker slot
    )
    # [END connect_import]

    # [START norce_operator_job]
    job = NorceOperator(
        task_id="job_status",
        endpoint="commerce/connect/4.0/Job/Get",
        request_params={"id": "{{ ti.xcom_pull('import_stock')[0] }}"},
        response_check=lambda job: job["StatusId"] == 2,  # False fails the task, naming it
        response_filter=lambda job: {"id": job["JobId"], "updates": job["Updates"]},
    )
    # [END norce_operator_job]

    # [START norce_operator_paginate]
    open_orders = NorceOperator(
        task_id="open_orders",
        endpoint="commerce/query/2.0/Orders/Orders",
        request_params={"$filter": "StatusId eq 1", "$select": "Id,OrderNo"},
        paginate=True,  # follows @odata.nextLink; one combined list
    )
    # [END norce_operator_paginate]

    # [START query_export]
    export = NorceQueryExportOperator(
        task_id="export_orders",
        entity="Orders/Orders",  # the default
        destination="{{ params.output_dir }}/orders/{{ ds }}.jsonl",  # or "s3://aws_default@bucket/orders/..."
        file_format="jsonl",  # or "csv"
        # one Asset name means one URI in all DAGs: Airflow deactivates a name reused with another URI
        outlets=[Asset(name="norce_orders_daily", uri="file:///data/norce/orders")],
    )
    # [END query_export]

    # [START job_sensor]
    wait = NorceJobSensor(
        task_id="wait_for_stock",
        job_ids=import_stock.output,  # one id or a list; templated
        mode="reschedule",  # or deferrable=True
        poke_interval=60,
        timeout=2 * 3600,
    )
    # [END job_sensor]

    import_stock >> [job, wait]
