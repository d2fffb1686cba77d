"""DAGs of the transport fault suite (``tests/faults/test_fault_transport.py``).

Three small DAGs, each one task, no task retries (the test reads how the first try ends, then runs again):

* ``fault_transport_export``: a Query export of ``Products/ProductSkus`` (jsonl, the whole set ordered by
  ``PartNo``) to ``params.destination``; the simulator's ``page_size`` makes it a few pages;
* ``fault_transport_import``: a Connect ``Product/ImportOnhands`` of ``params.items_path`` in batches of 2,
  waiting for the jobs (``params.deferrable`` waits in the triggerer through the async client);
* ``fault_transport_call``: one ``NorceOperator`` GET of ``GetApplication``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param
from fault_dag_tasks import onhand_import, sku_export

from airflow_provider_norce.operators.norce import NorceOperator

#: What the three DAGs have in common: run by hand only, no task retries.
DAG_ARGS: dict[str, Any] = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 11, 1, tz="UTC"),
    "catchup": False,
    "default_args": {"retries": 0},
}

with DAG(
    dag_id="fault_transport_export",
    **DAG_ARGS,
    params={"destination": Param("/tmp/fault_transport_export.jsonl", type="string")},
):
    sku_export("export", "{{ params.destination }}", select=["PartNo", "Created"], progress_interval=0)

for dag_id, deferrable in (("fault_transport_import", False), ("fault_transport_import_deferred", True)):
    with DAG(
        dag_id=dag_id,
        **DAG_ARGS,
        params={"items_path": Param("/tmp/fault_transport_onhands.jsonl", type="string")},
    ):
        onhand_import(
            "import_stock", "{{ params.items_path }}", batch_size=2, poll_interval=0.1, deferrable=deferrable
        )

with DAG(dag_id="fault_transport_call", **DAG_ARGS):
    NorceOperator(
        task_id="get_application",
        endpoint="commerce/metadata/1.1/GetApplication",
        request_params={"format": "json"},
        response_filter=lambda answer: {"Id": answer.get("Id"), "Name": answer.get("Name")},
    )
