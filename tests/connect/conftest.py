"""Fixtures of the Connect job tests that run the simulator on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from norce_connect_support import JOB_SECONDS, use_simulator

from airflow_provider_norce.simulator.clock import FakeClock


@pytest.fixture
def job_clock() -> FakeClock:
    """The simulator's clock: a job is running until the test moves it past :data:`JOB_SECONDS`."""
    return FakeClock()


@pytest.fixture
def clocked_sim(job_clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A simulator whose jobs end only when ``job_clock`` passes their duration; the connection points at it."""
    from airflow_provider_norce.simulator.server import NorceSimulator

    sim = NorceSimulator(job_duration=JOB_SECONDS, clock=job_clock).start()
    try:
        use_simulator(monkeypatch, sim)
        yield sim
    finally:
        sim.stop()
