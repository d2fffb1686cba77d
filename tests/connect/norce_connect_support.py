"""Helpers of the Connect import, job and trigger tests (a plain module: test directories are not packages)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

CONN_ID = "norce_default"


#: How long a job of the fake-clock simulator (``clocked_sim``) runs, in simulator seconds: they pass only
#: when a test advances the clock.
JOB_SECONDS = 60.0


class DictStateStore:
    """The shape of Airflow 3.3's ``context["task_state_store"]`` (get/set/delete), kept in a dict.

    One instance shared by two ``execute`` calls is exactly what two tries of one task instance see:
    the store is scoped to (dag, run, task, map index), not to the try.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.sets = 0

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: Any, **_: Any) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        self.data[key] = json.dumps(value)  # JSON round trip, as the API server stores it
        self.sets += 1

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class HistoryStore(DictStateStore):
    """A task state store that remembers every entry set, in order (the import clears them at its end)."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[tuple[str, Any]] = []

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        super().set(key, value, **kwargs)
        self.history.append((key, value))


class WorkerKilled(BaseException):
    """Stands for the worker process dying (SIGKILL, OOM): nothing in the task can catch it."""


class CrashingStateStore(DictStateStore):
    """Records ``crash_after`` entries, then the worker 'dies' right after the last one is stored."""

    def __init__(self, crash_after: int) -> None:
        super().__init__()
        self.crash_after = crash_after

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        super().set(key, value, **kwargs)
        if self.sets == self.crash_after:
            self.crash_after = -1  # only the first try dies
            raise WorkerKilled


def use_simulator(monkeypatch: pytest.MonkeyPatch, sim: Any, **extra: Any) -> None:
    """Point ``norce_default`` at ``sim`` with the in-process token cache, and give this test a fresh
    process cache and limiter (each test stands for a new machine; Norce's 20-token burst is per IP)."""
    conn = sim.connection_dict()
    conn["extra"] = {**conn["extra"], "token_cache": "process", **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    PROCESS_TOKEN_CACHE.clear()
    PROCESS_TOKEN_CACHE.limiter.tat = 0.0


def onhand(part_no: str, value: float, warehouse: str = "MAIN", location: str = "MAIN") -> dict[str, Any]:
    """An on-hand item as Norce's contract wants it (PartNo, WarehouseCode and LocationCode are required)."""
    return {"PartNo": part_no, "WarehouseCode": warehouse, "LocationCode": location, "OnhandValue": value}


def post_jobs(items: list[dict[str, Any]], **kwargs: Any) -> list[str]:
    """Create Connect jobs through the operator without waiting for them (it is tested elsewhere);
    ``kwargs`` go to the operator (e.g. ``batch_size``)."""
    from airflow_provider_norce.operators.connect import NorceConnectImportOperator

    return NorceConnectImportOperator(
        task_id="post",
        import_method="Product/ImportOnhands",
        items=items,
        connect_header={"AccountId": 1},
        wait_for_completion=False,
        allow_validation_failures=True,
        **kwargs,
    ).execute({})


def post_unchecked(items: list[Any], header: dict[str, Any] | None = None) -> list[str]:
    """POST ``items`` as one ImportOnhands job straight through the hook, without the operator's checks:
    for jobs that Norce itself must refuse in validation (the operator never sends such items)."""
    from airflow_provider_norce.hooks.norce import NorceHook

    hook = NorceHook(CONN_ID)
    header = header or {"AccountId": 1, "FullFile": False, "SkuOnhandFieldsThatAreSet": [3]}
    response = hook.run(
        hook.service_url("connect") + "Product/ImportOnhands",
        method="POST",
        data=json.dumps(items).encode("utf-8"),
        headers={"X-StormConnect-Header": json.dumps(header), "Content-Type": "application/json"},
    )
    return [str(response.json()["JobId"])]


def imports(sim: Any, method: str = "Product/ImportOnhands") -> int:
    """How many import POSTs reached the simulator (created a job or not)."""
    return int(sim.counters()["requests"].get(f"POST /commerce/connect/4.0/{method}", 0))


def rebuild_trigger(trigger: Any) -> Any:
    """What the triggerer does: import the serialized classpath and build the trigger from its kwargs."""
    import importlib

    classpath, kwargs = trigger.serialize()
    kwargs = json.loads(json.dumps(kwargs))  # plain JSON-able kwargs, as the trigger table stores them
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def run_trigger(trigger: Any, timeout: float = 30.0) -> list[Any]:
    """Run a trigger's ``run()`` in a fresh event loop until it ends; every event it yielded."""

    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout))


def sku_rows(sim: Any, **params: Any) -> dict[str, dict[str, Any]]:
    """``Products/ProductSkus`` read over Query (real HTTP), by PartNo."""
    from airflow_provider_norce.hooks.norce import NorceHook

    hook = NorceHook(CONN_ID)
    return {
        row["PartNo"]: row
        for row in hook.paginate(hook.service_url("query") + "Products/ProductSkus", params=params or None)
    }


MOCK_BASE = "https://acme.api-se.norce.tech"


def mock_norce(
    requests_mock: Any, monkeypatch: pytest.MonkeyPatch, method: str = "Product/ImportOnhands"
) -> Any:
    """Point ``norce_default`` at a requests-mock Norce that accepts one import method (job id ``12``);
    returns the import route, whose ``request_history`` holds what was posted (header and body)."""
    conn = {
        "conn_type": "norce",
        "host": "acme",
        "login": "client-1",
        "password": "pw",
        "extra": {"token_cache": "process", "max_attempts": 1},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    PROCESS_TOKEN_CACHE.clear()
    requests_mock.post(
        f"{MOCK_BASE}/identity/1.0/connect/token",
        json={"access_token": "tok", "expires_in": 600, "token_type": "Bearer"},
    )
    return requests_mock.post(
        f"{MOCK_BASE}/commerce/connect/4.0/{method}",
        json={"StatusCode": "Success", "Description": "", "JobId": "12", "ValidationSummary": None},
    )


def sent_headers(route: Any) -> list[dict[str, Any]]:
    """The ``X-StormConnect-Header`` of every import POST, parsed."""
    return [json.loads(r.headers["X-StormConnect-Header"]) for r in route.request_history]


def sent_items(route: Any) -> list[dict[str, Any]]:
    """Every item of every import POST, in order."""
    return [item for r in route.request_history for item in r.json()]


#: Query's ids of the simulator's seeded warehouse ``MAIN`` and its location ``MAIN``.
MAIN_WAREHOUSE_ID = MAIN_LOCATION_ID = 1


def main_stock(rows: dict[str, dict[str, Any]], part_no: str) -> float | None:
    """The ``OnHandValue`` of ``part_no`` at MAIN/MAIN in ``sku_rows(sim, $expand="OnHand")``."""
    for row in rows[part_no].get("OnHand") or []:
        if (row.get("WarehouseId"), row.get("LocationId")) == (MAIN_WAREHOUSE_ID, MAIN_LOCATION_ID):
            return row.get("OnHandValue")
    return None
