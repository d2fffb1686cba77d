"""Helpers of the fault suite (a plain module: test directories are not packages)."""

from __future__ import annotations

import json
from typing import Any


def task_states(run: Any) -> dict[str, str]:
    """``{task_id: state}`` of a finished ``dag.test()`` run."""
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def set_connection(
    monkeypatch: Any, sim: Any, conn_id: str = "norce_default", **extra: Any
) -> dict[str, Any]:
    """Point ``conn_id`` at ``sim`` with ``extra`` merged over the simulator's own extras (e.g. small
    ``max_attempts``/``max_retry_wait``/``timeout`` so a fault test stays fast); returns the connection."""
    connection = sim.connection_dict()
    merged = dict(connection.get("extra") or {})
    merged.update(extra)
    connection["extra"] = merged
    monkeypatch.setenv("AIRFLOW_CONN_" + conn_id.upper(), json.dumps(connection))
    return connection


def read_jsonl(path: Any) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Any, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
