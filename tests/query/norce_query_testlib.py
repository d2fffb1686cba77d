"""Helpers for the operator and export tests (a plain module: test directories are not packages)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
from typing import Any

UTC = dt.timezone.utc


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def order_ids_in_window(
    sim: Any, start: dt.datetime, end: dt.datetime, all_applications: bool = False
) -> list[int]:
    """Ids of the simulator's orders of its application with start <= (Updated, else Created) < end.

    Read from its data model, not over OData, so the export is checked against something it did not produce.
    """
    application = None if all_applications else sim.application_id
    return sim.orders.changed_ids(start.timestamp(), end.timestamp(), application)


def read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(io.StringIO(handle.read())))


def leftovers(directory: str) -> list[str]:
    """Temporary files an export may have left behind."""
    return sorted(name for name in os.listdir(directory) if name.endswith(".norce-tmp"))


def set_sim_connection(monkeypatch: Any, sim: Any, conn_id: str = "norce_default", **extra: Any) -> None:
    """Point ``conn_id`` at ``sim`` with extra settings (e.g. a small retry budget)."""
    conn = sim.connection_dict()
    conn["extra"] = {**conn["extra"], "token_cache": "process", **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def context_for(
    start: dt.datetime | None, end: dt.datetime | None, dag: Any = None, **more: Any
) -> dict[str, Any]:
    """The context entries the operators read, as a task run gets them."""
    ctx: dict[str, Any] = {
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": end,
        "dag": dag,
        "params": {},
    }
    ctx.update(more)
    return ctx
