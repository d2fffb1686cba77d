"""A local Norce Commerce for offline DAG runs and tests, like moto for AWS.

``NorceSimulator`` serves Norce's identity, Query and Connect APIs on 127.0.0.1 with Norce's limits and
failures (token rate limit, expiring tokens, asynchronous import jobs, injected faults). It is stdlib-only
and never imports Airflow, so a test process, a benchmark or ``python -m airflow_provider_norce.simulator
serve`` can run it anywhere. Names are imported lazily so that importing this package (for example by the
pytest plugin) costs nothing until a simulator is actually built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_norce.simulator.clock import FakeClock
    from airflow_provider_norce.simulator.server import NorceSimulator

__all__ = ["FakeClock", "NorceSimulator"]


def __getattr__(name: str) -> Any:
    if name == "NorceSimulator":
        from airflow_provider_norce.simulator.server import NorceSimulator

        return NorceSimulator
    if name == "FakeClock":
        from airflow_provider_norce.simulator.clock import FakeClock

        return FakeClock
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
