"""Test-session set-up: a throwaway Airflow home before anything imports Airflow."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="norce-airflow-home-")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each pytest-xdist worker is a test session of its own: its own Airflow home (metadata DB, dags
    # folder, logs) and its own machine token store, never the coordinator's it inherited.
    os.environ["AIRFLOW_HOME"] = _HOME
    os.environ["NORCE_TOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="norce-tokens-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# No AIRFLOW__CORE__UNIT_TEST_MODE: its config differs from a deployment's (it turns "@daily" into
# CronDataIntervalTimetable, where Airflow 3 gives CronTriggerTimetable). Test what users get.
# The machine-wide token store of this test session: never the user's real one, never shared between runs.
os.environ.setdefault("NORCE_TOKEN_CACHE_DIR", tempfile.mkdtemp(prefix="norce-tokens-"))
# Each test starts a simulator of its own, i.e. a separate "Norce" with its own limit; the machine limiter of
# the session must not make the hundredth test wait for the token slots of the first twenty. Tests of the
# limiter itself set their limits explicitly.
os.environ.setdefault("NORCE_TOKEN_REQUEST_LIMIT", "1000,1000")


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` once per test session, in the throwaway AIRFLOW_HOME set above."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=300
    )


@pytest.fixture(scope="session")
def dags_folder(airflow_db: None) -> str:
    """The dags folder of the test AIRFLOW_HOME: Airflow 3.3's ``dag.test()`` only runs DAGs found there."""
    from airflow.configuration import conf
    from norce_airflow_testlib import share_the_execution_api

    share_the_execution_api()
    folder = conf.get("core", "dags_folder")
    os.makedirs(folder, exist_ok=True)
    return folder
