"""The durable retry ledger of a Connect import: which batches of a task instance already have a job.

It exists so that nothing is posted twice. Every batch's job id is written to durable task state before
the next batch is posted (Airflow 3.3 ``task_state_store``; below 3.3 an Airflow Variable ledger). A
retried try re-uses the recorded job ids and posts only batches that never got one; a POST whose answer
was lost is recorded as *uncertain* and never re-posted by a retry.

Before each POST an *in-flight* marker is written, strictly (``set(..., strict=True)``): a worker killed
between Norce processing the POST and the answer being recorded leaves the marker, and the retry refuses
the batch instead of posting it a second time. Where the POST provably never reached Norce the marker is
replaced by a *not posted* entry, which a retry treats as no entry. The entries::

    {"job_id": "1001", "sha256": ..., "validation_failures": 0, "messages": []}   # posted, job known
    {"uncertain": True, "in_flight": True, "sha256": ...}   # POST started, no answer recorded
    {"uncertain": True, "sha256": ...}                       # POST answered unusably (timeout, 5xx)
    {"not_posted": True, "sha256": ...}                      # Norce refused it / it never left

The marker carries ``uncertain`` too, so a provider version from before the marker refuses it as well.
Standard library only at import time.
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


#: The flags of a ledger entry (see the module docstring).
IN_FLIGHT, UNCERTAIN, NOT_POSTED = "in_flight", "uncertain", "not_posted"


class LedgerWriteError(RuntimeError):
    """A strict ``set`` could not record its entry (the store raised): the caller must not post."""


class Ledger(Protocol):
    """Which batches of this task instance already have a job, across tries."""

    def get(self, index: int) -> dict[str, Any] | None: ...

    def set(self, index: int, entry: dict[str, Any], *, strict: bool = False) -> None:
        """Record ``entry`` for batch ``index``.

        Not strict (the record after a POST): a failure is logged, never raised, as failing the task after
        Norce took the batch would make a retry post it again. Strict (the in-flight marker before a
        POST): a failure raises :class:`LedgerWriteError`, and the caller must not post.
        """
        ...

    def clear(self, count: int) -> None: ...

    def describe(self, index: int) -> str: ...


class TaskStateLedger:
    """Airflow 3.3+: one ``task_state_store`` key per batch; it survives retries of the task instance."""

    def __init__(self, store: Any, ti: Any = None) -> None:
        self.store = store
        self.ti = ti  # only to name the REST route in describe()

    def get(self, index: int) -> dict[str, Any] | None:
        value = self.store.get(STATE_KEY.format(index=index))
        return value if isinstance(value, dict) else None

    def set(self, index: int, entry: dict[str, Any], *, strict: bool = False) -> None:
        key = STATE_KEY.format(index=index)
        try:
            self.store.set(key, entry)
        except Exception as err:
            if strict:
                raise LedgerWriteError(f"could not write the task state key {key!r} ({_short(err)})") from err
            # The POST went through; failing the task now would make a retry post it again.
            log.exception("Could not record Norce Connect batch %d (%s) in task state", index, entry)

    def clear(self, count: int) -> None:
        for index in range(count):
            try:
                self.store.delete(STATE_KEY.format(index=index))
            except Exception:
                log.warning("Could not delete task state key %s", STATE_KEY.format(index=index))

    def describe(self, index: int) -> str:
        """``the task state key 'norce_connect_batch_N' of this task instance (REST API: DELETE ...)``.

        The quoted key comes first: operators (and tests) take it from the task log."""
        key = STATE_KEY.format(index=index)
        return f"the task state key {key!r} of this task instance (REST API: DELETE {self._route(key)})"

    def _route(self, key: str) -> str:
        """The public REST route of ``key`` (Airflow 3.3 ``core_api/routes/public/task_state_store.py``)."""
        from urllib.parse import quote

        ti = self.ti
        parts = [getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id")]
        if not all(isinstance(part, str) for part in parts):
            return (
                f"/api/v2/dags/{{dag_id}}/dagRuns/{{dag_run_id}}/taskInstances/{{task_id}}/state-store/{key}"
            )
        dag_id, run_id, task_id = (quote(str(part), safe=":+@") for part in parts)
        map_index = getattr(ti, "map_index", -1)
        query = f"?map_index={map_index}" if isinstance(map_index, int) and map_index >= 0 else ""
        return f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state-store/{key}{query}"


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

    def set(self, index: int, entry: dict[str, Any], *, strict: bool = False) -> None:
        entries = self._load()
        previous = entries.get(str(index))
        entries[str(index)] = entry
        try:
            self.variable.set(
                self.key,
                json.dumps(entries, separators=(",", ":")),
                description="airflow-provider-norce: Connect job ids by batch, so a retry does not re-post",
            )
        except Exception as err:
            if strict:
                # Not written: the copy in memory goes back to what the Variable still holds.
                if previous is None:
                    entries.pop(str(index), None)
                else:
                    entries[str(index)] = previous
                raise LedgerWriteError(
                    f"could not write the Airflow Variable {self.key!r} ({_short(err)})"
                ) from err
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
        """Only the batch's entry: deleting the whole Variable would make a retry post every batch again."""
        return (
            f'the entry "{index}" of the Airflow Variable {self.key!r} (a JSON object by batch index: '
            "remove only that entry; deleting the whole Variable makes a retry post every batch again)"
        )


class MemoryLedger:
    """No durable state at all (a context without a task instance): nothing survives this call."""

    def __init__(self) -> None:
        self.entries: dict[int, dict[str, Any]] = {}

    def get(self, index: int) -> dict[str, Any] | None:
        return self.entries.get(index)

    def set(self, index: int, entry: dict[str, Any], *, strict: bool = False) -> None:
        self.entries[index] = entry

    def clear(self, count: int) -> None:
        self.entries.clear()

    def describe(self, index: int) -> str:
        return "nothing (no durable state here)"


def ledger_for(context: Any, variable: Any = None) -> Ledger:
    """The most durable ledger the running Airflow offers to this task instance."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    ti = context.get("ti") if hasattr(context, "get") else None
    if store is not None:
        return TaskStateLedger(store, ti)
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


def recorded_entry(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a retry acts on: ``None`` for no entry and for a *not posted* one (Norce never took it)."""
    if entry is None or entry.get(NOT_POSTED):
        return None
    return entry


def _short(err: Exception) -> str:
    """``Type: first line`` of a store's error, at most 200 characters (a database error can quote its
    whole statement; only the kind of failure belongs in the task's error)."""
    first = (str(err).strip().splitlines() or [""])[0]
    text = f"{type(err).__name__}: {first}" if first else type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
