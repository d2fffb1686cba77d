"""DAGs of the transport fault suite (``tests/faults/test_fault_transport.py``).

Three small DAGs, each one task, no task retries (the test reads how the first try ends, then runs again):

* ``fault_transport_export``: a Query export of ``Products/ProductSkus`` (jsonl, the whole set ordered by
  ``PartNo``) to ``params.destination``; the simulator's ``page_size`` makes it a few pages;
* ``fault_transport_import``: a Connect ``Product/ImportOnhands`` of ``params.items_path`` in batches of 2,
  waiting for the jobs (``params.deferrable`` waits in the triggerer through the async client);
* ``fault_transport_call``: one ``NorceOperator`` GET of ``GetApplication``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.norce import NorceOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator

START = pendulum.datetime(2026, 11, 1, tz="UTC")
DEFAULTS = {"retries": 0}

with DAG(
    dag_id="fault_transport_export",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    params={"destination": Param("/tmp/fault_transport_export.jsonl", type="string")},
):
    NorceQueryExportOperator(
        task_id="export",
        entity="Products/ProductSkus",
        destination="{{ params.destination }}",
        file_format="jsonl",
        select=["PartNo", "Created"],
        orderby="PartNo",
        window_field=None,
        progress_interval=0,
    )

for dag_id, deferrable in (("fault_transport_import", False), ("fault_transport_import_deferred", True)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        default_args=DEFAULTS,
        params={"items_path": Param("/tmp/fault_transport_onhands.jsonl", type="string")},
    ):
        NorceConnectImportOperator(
            task_id="import_stock",
            import_method="Product/ImportOnhands",
            items_path="{{ params.items_path }}",
            connect_header={"AccountId": 1, "FullFile": False},
            batch_size=2,
            wait_for_completion=True,
            poll_interval=0.1,
            timeout=30,
            deferrable=deferrable,
        )

with DAG(
    dag_id="fault_transport_call",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
):
    NorceOperator(
        task_id="get_application",
        endpoint="commerce/metadata/1.1/GetApplication",
        request_params={"format": "json"},
        response_filter=lambda answer: {"Id": answer.get("Id"), "Name": answer.get("Name")},
    )
