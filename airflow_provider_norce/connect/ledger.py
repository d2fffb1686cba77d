"""The durable retry ledger of a Connect import: which batches of a task instance already have a job.

It exists so that nothing is posted twice. Every batch's job id is written to durable task state before
the next batch is posted (Airflow 3.3 ``task_state_store``; below 3.3 an Airflow Variable ledger). A
retried try re-uses the recorded job ids and posts only batches that never got one; a POST whose answer
was lost is recorded as *uncertain* and never re-posted by a retry. Standard library only at import time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: Durable-state key of batch ``i`` (task_state_store, Airflow 3.3+). Renaming it breaks in-flight retries.
STATE_KEY = "norce_connect_batch_{index}"
VARIABLE_PREFIX = "norce_connect_ledger"


class Ledger(Protocol):
    """Which batches of this task instance already have a job, across tries."""

    def get(self, index: int) -> dict[str, Any] | None: ...

    def set(self, index: int, entry: dict[str, Any]) -> None: ...

    def clear(self, count: int) -> None: ...

    def describe(self, index: int) -> str: ...


class TaskStateLedger:
    """Airflow 3.3+: one ``task_state_store`` key per batch; it survives retries of the task instance."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, index: int) -> dict[str, Any] | None:
        value = self.store.get(STATE_KEY.format(index=index))
        return value if isinstance(value, dict) else None

    def set(self, index: int, entry: dict[str, Any]) -> None:
        try:
            self.store.set(STATE_KEY.format(index=index), entry)
        except Exception:
            # The POST went through; failing the task now would make a retry post it again.
            log.exception("Could not record Norce Connect batch %d (%s) in task state", index, entry)

    def clear(self, count: int) -> None:
        for index in range(count):
            try:
                self.store.delete(STATE_KEY.format(index=index))
            except Exception:
                log.warning("Could not delete task state key %s", STATE_KEY.format(index=index))

    def describe(self, index: int) -> str:
        return (
            f"the task state key {STATE_KEY.format(index=index)!r} of this task instance (REST API: DELETE "
            ".../taskInstances/{task_id}/state-store/{key})"
        )


class VariableLedger:
    """Below Airflow 3.3: one Airflow Variable per task instance (a JSON object keyed by batch index).

    Variables outlive a try (XCom does not: a task's XComs are cleared when its next try starts). The
    Variable is deleted when the task succeeds.
    """

    def __init__(self, key: str, variable: Any = None) -> None:
        if variable is None:
            from airflow.providers.common.compat.sdk import Variable

            variable = Variable
        self.key = key
        self.variable = variable
        self._entries: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            raw = self.variable.get(self.key, default=None)
            try:
                loaded = json.loads(raw) if raw else {}
            except ValueError:
                loaded = {}
            self._entries = loaded if isinstance(loaded, dict) else {}
        return self._entries

    def get(self, index: int) -> dict[str, Any] | None:
        value = self._load().get(str(index))
        return value if isinstance(value, dict) else None

    def set(self, index: int, entry: dict[str, Any]) -> None:
        entries = self._load()
        entries[str(index)] = entry
        try:
            self.variable.set(
                self.key,
                json.dumps(entries, separators=(",", ":")),
                description="airflow-provider-norce: Connect job ids by batch, so a retry does not re-post",
            )
        except Exception:
            log.exception(
                "Could not record Norce Connect batch %d (%s) in Variable %s", index, entry, self.key
            )

    def clear(self, count: int) -> None:
        try:
            self.variable.delete(self.key)
        except Exception:
            log.warning("Could not delete the Variable %s", self.key)
        self._entries = {}

    def describe(self, index: int) -> str:
        return f"the Airflow Variable {self.key!r}"


class MemoryLedger:
    """No durable state at all (a context without a task instance): nothing survives this call."""

    def __init__(self) -> None:
        self.entries: dict[int, dict[str, Any]] = {}

    def get(self, index: int) -> dict[str, Any] | None:
        return self.entries.get(index)

    def set(self, index: int, entry: dict[str, Any]) -> None:
        self.entries[index] = entry

    def clear(self, count: int) -> None:
        self.entries.clear()

    def describe(self, index: int) -> str:
        return "nothing (no durable state here)"


def ledger_for(context: Any, variable: Any = None) -> Ledger:
    """The most durable ledger the running Airflow offers to this task instance."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if store is not None:
        return TaskStateLedger(store)
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None and getattr(ti, "run_id", None) is not None:
        return VariableLedger(variable_key(ti), variable)
    log.warning("No durable task state here: a retry of this import would post it again")
    return MemoryLedger()


def variable_key(ti: Any) -> str:
    """``norce_connect_ledger.{dag}.{task}.{map index}.{run}``, shortened with a hash beyond 250 chars."""
    map_index = getattr(ti, "map_index", -1)
    key = f"{VARIABLE_PREFIX}.{ti.dag_id}.{ti.task_id}.{-1 if map_index is None else map_index}.{ti.run_id}"
    if len(key) > 250:
        key = key[:200] + "." + hashlib.sha256(key.encode()).hexdigest()[:16]
    return key
