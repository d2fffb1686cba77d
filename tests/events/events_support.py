"""Helpers of the order-watch tests (a plain module: test directories are not packages)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from airflow_provider_norce.flows import drive
from airflow_provider_norce.query.order_watch import (
    Emit,
    LoadPosition,
    Now,
    ReadNewest,
    SavePosition,
    Sleep,
    Warn,
    WatchSettings,
    parse_position,
    watch_flow,
)
from airflow_provider_norce.triggers.orders import NorceNewOrdersTrigger


class Stop(Exception):
    """Ends a driven watch after the rounds a test asked for (the flow itself never ends)."""


def run_watch(
    settings: WatchSettings,
    read: Callable[[dict[str, str]], Any],
    store: dict[str, Any],
    rounds: int,
    now: Callable[[], float] = lambda: 0.0,
    warnings: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Drive :func:`watch_flow` synchronously for ``rounds`` polls; the payloads it emitted.

    ``read`` answers each Query read (the sync hook in these tests); ``store`` holds the saved values by
    watch name (the Variable's text, as the trigger writes it); ``warnings`` collects the WARNING lines.
    """
    emitted: list[dict[str, Any]] = []
    left = [rounds]

    def do(step: Any) -> Any:
        if isinstance(step, ReadNewest):
            return read(step.params)
        if isinstance(step, LoadPosition):
            return store.get(settings.name)
        if isinstance(step, SavePosition):
            store[settings.name] = step.saved.to_json()
            return None
        if isinstance(step, Now):
            return now()
        if isinstance(step, Emit):
            emitted.append(step.payload)
            return None
        if isinstance(step, Warn):
            if warnings is not None:
                warnings.append(step.message)
            return None
        assert isinstance(step, Sleep)
        if step.seconds > 0:
            left[0] -= 1
            if left[0] == 0:
                raise Stop
        return None

    try:
        drive(watch_flow(settings), do)
    except Stop:
        pass
    return emitted


def saved(value: Any) -> tuple[int, int]:
    """``(position, origin)`` of a saved value (the Variable's text)."""
    read = parse_position(value, WatchSettings("test", 1))
    return read.position, read.origin


class MemoryVariables:
    """Airflow's ``Variable`` API (``get``/``set``) over a dict: the trigger run outside a triggerer."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})
        self.writes: list[tuple[str, str]] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, description: str | None = None) -> None:
        self.values[key] = str(value)
        self.writes.append((key, str(value)))


class StoredTrigger(NorceNewOrdersTrigger):
    """The real trigger, its Variable I/O (the triggerer supervisor's) on :class:`MemoryVariables`: no
    triggerer here. Position parsing, read-back and the watch itself are the trigger's own."""

    store = MemoryVariables()

    async def _read_variable(self, key: str) -> str | None:
        return self.store.get(key)

    async def _write_variable(self, key: str, value: str) -> None:
        self.store.set(key, value)


def rebuild(trigger: NorceNewOrdersTrigger) -> NorceNewOrdersTrigger:
    """What the triggerer does: the class from the classpath, built from the JSON of the kwargs."""
    import importlib

    classpath, kwargs = trigger.serialize()
    kwargs = json.loads(json.dumps(kwargs))
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


async def next_event(events: Any, timeout: float = 30.0) -> Any:
    """The next event of a running trigger's ``run()`` (a guard timeout only: the event comes at once
    when the orders are there)."""
    return await asyncio.wait_for(events.__anext__(), timeout)
