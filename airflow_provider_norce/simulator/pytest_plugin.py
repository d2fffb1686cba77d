"""pytest plugin (entry point ``norce``): the ``norce_simulator`` fixture.

Cheap to import and Airflow-free: pytest loads it in every run of every project that installs this
package, so the simulator itself is imported only when a test asks for the fixture.

Usage::

    @pytest.mark.norce_simulator(expires_in=2, orders=1000)
    def test_export(norce_simulator):
        ...  # AIRFLOW_CONN_NORCE_DEFAULT points at norce_simulator.url
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_norce.simulator.server import NorceSimulator

CONN_ID = "norce_default"


@dataclass(frozen=True)
class SimulatorHandle:
    """What the fixture yields: where the simulator is and how to read or steer it."""

    url: str
    conn_id: str
    connection: dict[str, Any]
    sim: NorceSimulator

    def counters(self) -> dict[str, Any]:
        """The simulator's traffic counters (see ``NorceSimulator.counters``)."""
        return self.sim.counters()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "norce_simulator(**kwargs): NorceSimulator keyword arguments for the norce_simulator fixture",
    )


@pytest.fixture
def norce_simulator(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimulatorHandle]:
    """A running NorceSimulator with ``AIRFLOW_CONN_NORCE_DEFAULT`` pointing at it; stopped afterwards."""
    from airflow_provider_norce.simulator.server import NorceSimulator

    kwargs: dict[str, Any] = {}
    marker = request.node.get_closest_marker("norce_simulator")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.norce_simulator takes keyword arguments only")
        kwargs.update(marker.kwargs)
    sim = NorceSimulator(**kwargs).start()
    try:
        connection = sim.connection_dict()
        monkeypatch.setenv("AIRFLOW_CONN_" + CONN_ID.upper(), json.dumps(connection))
        yield SimulatorHandle(url=sim.base_url, conn_id=CONN_ID, connection=connection, sim=sim)
    finally:
        sim.stop()
