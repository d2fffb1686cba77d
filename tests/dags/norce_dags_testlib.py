"""Helpers of the example-DAG tests (a plain module: test directories are not packages)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

UTC = dt.timezone.utc


def parse_dagbag(path: str) -> Any:
    """Parse ``path`` as the DAG processor does, touching no database (3.0 and 3.1+ import paths)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=path)


def order_ids_in_window(sim: Any, start: dt.datetime, end: dt.datetime) -> list[int]:
    """Ids of the simulator's orders of its application changed in [start, end) (``Updated``, or ``Created``
    where ``Updated`` is null), from its data model (not over OData)."""
    return sim.orders.changed_ids(start.timestamp(), end.timestamp(), sim.application_id)


def write_jsonl(path: Any, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def read_jsonl(path: Any) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
