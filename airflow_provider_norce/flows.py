"""Running I/O-free flows: the one loop that both the sync and the async side use.

The rules of a request attempt (:mod:`airflow_provider_norce.retries.attempt`) and of waiting for Connect
jobs (:mod:`airflow_provider_norce.connect.job_wait`) are generators in the style of httpx's auth flows: a
flow yields a step (what it needs done), receives the result, and returns its outcome. A driver only does
the I/O of each step: :func:`drive` with a plain function (the task: ``requests``, ``time.sleep``),
:func:`drive_async` with a coroutine function (the triggerer: ``httpx``, ``asyncio.sleep``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator

Step = TypeVar("Step")
Reply = TypeVar("Reply")
R = TypeVar("R")


def drive(flow: Generator[Step, Reply, R], do: Callable[[Step], Reply]) -> R:
    """Run ``flow``, doing each step with ``do`` (the sync driver's I/O); the flow's outcome."""
    done, value = advance(flow, None)
    while not done:
        done, value = advance(flow, do(value))
    return value


async def drive_async(flow: Generator[Step, Reply, R], do: Callable[[Step], Awaitable[Reply]]) -> R:
    """Run ``flow``, awaiting each step of ``do`` (the async driver's I/O); the flow's outcome."""
    done, value = advance(flow, None)
    while not done:
        done, value = advance(flow, await do(value))
    return value


def advance(flow: Generator[Step, Reply, R], reply: Any) -> tuple[bool, Any]:
    """Give ``reply`` to ``flow``: ``(False, next step)``, or ``(True, outcome)`` once the flow is over."""
    try:
        return False, flow.send(reply)
    except StopIteration as stop:
        return True, stop.value
