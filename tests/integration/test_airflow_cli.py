"""The package as Airflow's own CLI sees it: registered, and its connection test works end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", **(env or {})}
    return subprocess.run([AIRFLOW, *args], env=full_env, capture_output=True, text=True, timeout=120)


def test_providers_list_and_hooks_show_the_package():
    listed = airflow("providers", "list")
    assert "airflow-provider-norce" in listed.stdout, listed.stderr
    hooks = airflow("providers", "hooks")
    line = next(line for line in hooks.stdout.splitlines() if line.startswith("norce "))
    assert "airflow_provider_norce.hooks.norce.NorceHook" in line


def test_connections_test_succeeds_against_the_simulator(norce_simulator):
    result = airflow("connections", "test", "norce_default")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    assert norce_simulator.counters()["requests"].get("GET /commerce/metadata/1.1/GetApplication") == 1


@pytest.mark.norce_simulator(client_secret="the-right-secret-123")
def test_connections_test_with_a_wrong_secret_fails_without_showing_it(norce_simulator):
    conn = dict(norce_simulator.connection, password="wrong-secret-456789")
    result = airflow("connections", "test", "norce_bad", env={"AIRFLOW_CONN_NORCE_BAD": json.dumps(conn)})
    output = result.stdout + result.stderr
    assert "Connection failed!" in output
    assert "invalid_client" in output and "'norce_bad'" in output
    assert "wrong-secret-456789" not in output
    assert "the-right-secret-123" not in output
