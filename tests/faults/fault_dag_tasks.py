"""The tasks the fault DAGs (``tests/faults/dags/*.py``) have in common: a Query export of every SKU and a
Connect import of on-hand stock from an item file.

A plain module, imported by the DAG files: ``fault_dag`` parses them in the test process (``dag.test()`` runs
their tasks there too, and a killed-worker test forks from it), where ``tests/faults`` is on ``sys.path``.
"""

from __future__ import annotations

from typing import Any

#: The Connect header of every on-hand import of the fault DAGs.
ONHAND_HEADER = {"AccountId": 1, "FullFile": False}


def order_export(task_id: str, destination: str, **kwargs: Any) -> Any:
    """A concurrent ``NorceQueryExportOperator`` of every order of November 2026 (all applications), 4 slices
    at a time of about 300 rows: an export a test can kill between slices and compare with the simulator's
    orders."""
    from airflow_provider_norce.operators.query import NorceQueryExportOperator

    arguments: dict[str, Any] = {
        "filter": "Updated ge 2026-11-01T00:00:00Z and Updated lt 2026-12-01T00:00:00Z",
        "filter_application": False,
        "max_concurrency": 4,
        "slice_rows": 300,
        **kwargs,
    }
    return NorceQueryExportOperator(task_id=task_id, destination=destination, **arguments)


def sku_export(task_id: str, destination: str, **kwargs: Any) -> Any:
    """A ``NorceQueryExportOperator`` of every ``Products/ProductSkus`` row, ordered by ``PartNo`` (no window):
    an export whose rows a test can compare with the simulator's catalog. ``kwargs`` override the rest."""
    from airflow_provider_norce.operators.query import NorceQueryExportOperator

    arguments: dict[str, Any] = {
        "entity": "Products/ProductSkus",
        "select": "PartNo",
        "orderby": "PartNo",
        "window_field": None,
        "file_format": "jsonl",
        **kwargs,
    }
    return NorceQueryExportOperator(task_id=task_id, destination=destination, **arguments)


def onhand_import(task_id: str, items_path: str, **kwargs: Any) -> Any:
    """A ``NorceConnectImportOperator`` of ``Product/ImportOnhands`` from ``items_path``, waiting for its jobs
    (poll every 0.2 s, at most 30 s). ``kwargs`` override the rest (batch size, deferral, the wait)."""
    from airflow_provider_norce.operators.connect import NorceConnectImportOperator

    arguments: dict[str, Any] = {
        "import_method": "Product/ImportOnhands",
        "connect_header": ONHAND_HEADER,
        "wait_for_completion": True,
        "poll_interval": 0.2,
        "timeout": 30,
        **kwargs,
    }
    return NorceConnectImportOperator(task_id=task_id, items_path=items_path, **arguments)
