"""Helpers of the fault suite (a plain module: test directories are not packages)."""

from __future__ import annotations

import json
import threading
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


def after_answers(sim: Any, prefix: str, actions: dict[int, Any], running_jobs_only: bool = False) -> None:
    """Run ``actions[n]()`` right after the simulator answered the n-th successful request under ``prefix``,
    before that answer is sent (a fault hook: a fault added there catches the very next request, e.g. every
    token expired between two pages). ``running_jobs_only``: count only Job/Get answers of a job still
    running, so the fault lands in the middle of the wait."""
    route = sim._route
    seen = [0]
    lock = threading.Lock()

    def hooked(handler, method, path, lowered, query, body, is_token):
        reply = route(handler, method, path, lowered, query, body, is_token)
        if lowered.startswith(prefix.lower()) and reply.status == 200:
            if running_jobs_only and b'"IsFinished":false' not in reply.body:
                return reply
            with lock:
                seen[0] += 1
                action = actions.get(seen[0])
            if action is not None:
                action()
        return reply

    sim._route = hooked


def assert_no_secret_in(text: str, sim: Any) -> None:
    """Neither the client secret nor any token the simulator issued. Airflow's own DEBUG lines of the
    ``MaskSecret`` messages its supervisor receives (apache/airflow#63921, issue 9 case 12, which the secrets
    audit covers) are left out: they are Airflow's, not this part's."""
    text = "\n".join(line for line in text.splitlines() if "MaskSecret(" not in line)
    assert sim.client_secret not in text
    for token in sim.issued_tokens():
        assert token not in text
