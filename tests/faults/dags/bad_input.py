"""DAGs of the bad-input fault suite (``tests/faults/test_fault_bad_input.py``): every task gets one bad input
and must fail before any request reaches the simulator. No dependencies between tasks, no retries: one
``dag.test()`` runs every case of a DAG, each task failing on its own.

* ``bad_input_connections``: one ``NorceOperator`` per bad connection ``bad_<case>`` (the test defines
  them), plus an export and an import on connections whose host is a pasted service URL.
* ``bad_input_arguments``: templated arguments rendered from ``dag_run.conf`` to the wrong thing.
* ``bad_input_item_files``: Connect imports of hostile item files named by ``dag_run.conf``.
* ``bad_input_storm_connect``: a Storm connection whose ``base_url`` is Norce's Storm Connect URL, path
  included (the path must be kept there).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.norce import NorceOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
ARGS = {"retries": 0}
GET_APPLICATION = "commerce/metadata/1.1/GetApplication"
ONHAND_HEADER = {"AccountId": 1}

#: The bad connections, ``bad_<case>``; the test defines each one.
CONNECTION_CASES = (
    "no_login",
    "no_password",
    "login_with_space",
    "login_unicode",
    "application_id_text",
    "application_id_superscript",
    "application_id_arabic_digits",
    "application_id_with_space",
    "extra_not_json",
    "extra_not_object",
    "host_with_service_path",
    "host_with_token_path",
    "base_url_with_service_path",
    "norce_host_with_path",
    "host_port_out_of_range",
    "host_port_not_a_number",
    "client_name_with_port",
    "client_name_unicode",
    "host_with_space",
    "http_to_remote_host",
    "http_token_url_to_remote_host",
)

with DAG("bad_input_connections", schedule=None, start_date=START, catchup=False, default_args=ARGS):
    for case in CONNECTION_CASES:
        NorceOperator(task_id=f"conn_{case}", endpoint=GET_APPLICATION, norce_conn_id=f"bad_{case}")
    NorceQueryExportOperator(
        task_id="export_host_with_service_path",
        entity="Products/ProductSkus",
        destination="{{ dag_run.conf['work_dir'] }}/export.jsonl",
        window_field=None,
        norce_conn_id="bad_export_host_with_service_path",
    )
    NorceConnectImportOperator(
        task_id="import_host_with_service_path",
        import_method="Product/ImportOnhands",
        items=[{"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 1}],
        connect_header=ONHAND_HEADER,
        deferrable=False,
        norce_conn_id="bad_import_host_with_service_path",
    )


def conf(key: str) -> str:
    return "{{ dag_run.conf['" + key + "'] }}"


ITEMS = [{"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 1}]

with DAG("bad_input_arguments", schedule=None, start_date=START, catchup=False, default_args=ARGS):

    def export(task_id: str, **kwargs: object) -> None:
        kwargs.setdefault("destination", "{{ dag_run.conf['work_dir'] }}/" + task_id + ".jsonl")
        kwargs.setdefault("entity", "Products/ProductSkus")
        kwargs.setdefault("window_field", None)
        NorceQueryExportOperator(task_id=task_id, **kwargs)  # type: ignore[arg-type]

    def import_(task_id: str, **kwargs: object) -> None:
        kwargs.setdefault("import_method", "Product/ImportOnhands")
        kwargs.setdefault("connect_header", ONHAND_HEADER)
        kwargs.setdefault("deferrable", False)
        if "items_path" not in kwargs:
            kwargs.setdefault("items", ITEMS)
        NorceConnectImportOperator(task_id=task_id, **kwargs)  # type: ignore[arg-type]

    def call(task_id: str, **kwargs: object) -> None:
        kwargs.setdefault("endpoint", GET_APPLICATION)
        NorceOperator(task_id=task_id, **kwargs)  # type: ignore[arg-type]

    # export: every templated field
    export("export_destination_empty", destination=conf("empty"))
    export("export_destination_directory", destination=conf("work_dir"))
    export("export_destination_slash", destination=conf("work_dir") + "/exports/")
    export("export_file_format_unknown", file_format=conf("xml"))
    export("export_entity_empty", entity=conf("empty"))
    export("export_entity_no_namespace", entity=conf("word"))
    export("export_filter_application_word", entity="Orders/Orders", filter_application=conf("maybe"))
    export("export_conn_id_empty", norce_conn_id=conf("empty"))
    export("export_conn_id_unknown", norce_conn_id=conf("unknown_conn") + "_export")
    # import: every templated field
    import_("import_batch_size_word", batch_size=conf("ten"))
    import_("import_poll_interval_negative", poll_interval=conf("minus_one"))
    import_("import_timeout_inf", timeout=conf("inf"))
    import_("import_wait_word", wait_for_completion=conf("maybe"))
    import_("import_method_unknown", import_method=conf("unknown_method"))
    import_("import_header_not_json", connect_header=conf("word"))
    import_("import_items_path_empty", items=None, items_path=conf("empty"))
    import_("import_items_path_directory", items=None, items_path=conf("work_dir"))
    import_("import_items_jinja_string", items="{{ dag_run.conf['items'] }}")
    import_("import_conn_id_empty", norce_conn_id=conf("empty"))
    import_("import_conn_id_unknown", norce_conn_id=conf("unknown_conn") + "_import")
    # one call: every templated field
    call("call_endpoint_empty", endpoint=conf("empty"))
    call("call_endpoint_other_host", endpoint=conf("other_host_url"))
    call("call_method_unknown", method=conf("unknown_http_method"))
    call("call_paginate_word", paginate=conf("maybe"))
    call("call_request_params_text", request_params=conf("word"))
    call("call_headers_text", headers=conf("word"))
    call("call_conn_id_empty", norce_conn_id=conf("empty"))
    call("call_conn_id_unknown", norce_conn_id=conf("unknown_conn") + "_call")


#: Item-file cases; the test writes ``<case>.json`` into ``dag_run.conf['work_dir']``.
ITEM_FILE_CASES = (
    "empty",
    "whitespace_only",
    "not_json",
    "json_object",
    "array_of_numbers",
    "ten_mb_line_not_json",
    "ten_mb_line_not_an_object",
    "invalid_utf8",
)

with DAG("bad_input_item_files", schedule=None, start_date=START, catchup=False, default_args=ARGS):
    for case in ITEM_FILE_CASES:
        NorceConnectImportOperator(
            task_id=f"items_{case}",
            import_method="Product/ImportOnhands",
            items_path="{{ dag_run.conf['work_dir'] }}/" + case + ".json",
            connect_header=ONHAND_HEADER,
            deferrable=False,
        )

with DAG("bad_input_storm_connect", schedule=None, start_date=START, catchup=False, default_args=ARGS):
    NorceConnectImportOperator(
        task_id="storm_import",
        import_method="Product/ImportOnhands",
        items=ITEMS,
        connect_header=ONHAND_HEADER,
        deferrable=False,
        poll_interval=0.2,
        timeout=30,
        norce_conn_id="storm_sim",
    )
