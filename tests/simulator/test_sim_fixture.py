"""The pytest plugin's ``norce_simulator`` fixture, used the way other test suites use it."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
import requests

from airflow_provider_norce.connection import NorceConnectionConfig
from airflow_provider_norce.simulator import FakeClock

pytest_plugins = ["pytester"]


def test_fixture_starts_a_simulator_and_sets_the_connection(norce_simulator):
    assert norce_simulator.conn_id == "norce_default"
    assert norce_simulator.url == norce_simulator.sim.base_url
    assert json.loads(os.environ["AIRFLOW_CONN_NORCE_DEFAULT"]) == norce_simulator.connection
    assert norce_simulator.connection == {
        "conn_type": "norce",
        "host": norce_simulator.url,
        "login": "sim-client",
        "password": "sim-secret",
        "extra": {"application_id": "1234"},
    }
    form = {"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "sim-secret"}
    response = requests.post(
        norce_simulator.url + "/identity/1.0/connect/token", data={**form, "scope": "prod"}, timeout=5
    )
    assert response.status_code == 200
    assert norce_simulator.counters()["tokens_issued"] == 1


@pytest.mark.norce_simulator(expires_in=2, orders=7, application_id=99, clock=FakeClock())
def test_marker_overrides_simulator_arguments(norce_simulator):
    sim = norce_simulator.sim
    assert norce_simulator.connection["extra"] == {"application_id": "99"}
    assert len(sim.orders) == 7
    assert sim.identity.expires_in == 2
    sim.time.now.advance(5)  # the marker's fake clock drives the simulator


def test_connection_dict_is_accepted_by_the_providers_connection_parser(norce_simulator):
    data = norce_simulator.connection
    conn = SimpleNamespace(
        conn_id="norce_default",
        host=data["host"],
        login=data["login"],
        password=data["password"],
        extra_dejson=data["extra"],
    )
    config = NorceConnectionConfig.from_connection(conn)
    assert config.token_url == norce_simulator.sim.token_url
    assert config.application_id == 1234
    assert config.service_url("query") == norce_simulator.url + "/commerce/query/2.0/"


def test_connection_uri_carries_the_base_url(norce_simulator):
    uri = norce_simulator.sim.connection_uri()
    assert uri.startswith("norce://sim-client:sim-secret@127.0.0.1:")
    assert "base_url=http%3A%2F%2F127.0.0.1%3A" in uri
    assert "application_id=1234" in uri


def test_fixture_stops_the_simulator_and_registers_its_marker(pytester):
    # After the fixture's teardown this process must no longer listen on the simulator's port, and the old URL
    # must not reach that simulator. The port itself may be taken again at once by another pytest-xdist
    # worker's server, so "a request there fails" would be a race: instead a refused connection or an answer
    # that does not know the token this simulator issued (each simulator has its own token store) both pass.
    pytester.makepyfile(
        """
        import psutil, pytest, requests

        seen = {}

        @pytest.mark.norce_simulator(orders=3)
        def test_uses_it(norce_simulator):
            form = {"grant_type": "client_credentials", "client_id": "sim-client",
                    "client_secret": "sim-secret", "scope": "prod"}
            token = requests.post(norce_simulator.sim.token_url, data=form, timeout=5)
            assert token.status_code == 200
            seen.update(url=norce_simulator.url, port=norce_simulator.sim.port,
                        token=token.json()["access_token"])
            assert len(norce_simulator.sim.orders) == 3
            assert reaches_the_same_simulator(seen["url"], seen["token"])

        def test_it_was_stopped():
            listening = {c.laddr.port for c in psutil.Process().net_connections(kind="tcp")
                         if c.status == psutil.CONN_LISTEN and c.laddr}
            assert seen["port"] not in listening
            assert not reaches_the_same_simulator(seen["url"], seen["token"])

        def reaches_the_same_simulator(url, token):
            try:
                answer = requests.get(url + "/_sim/tokens", timeout=5)
                body = answer.json() if answer.status_code == 200 else None
            except (requests.RequestException, ValueError):
                return False
            return isinstance(body, dict) and token in body.get("tokens", [])
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=2)
