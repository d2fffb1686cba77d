"""Fixtures of the Query export tests: an Airflow metadata DB and dags folder for real ``dag.test()`` runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE_DAG = """
import pendulum
from airflow.sdk import DAG, task

with DAG("norce_probe_dag_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    @task
    def probe():
        return 1

    probe()
"""


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """``airflow db migrate`` once per session in the throwaway AIRFLOW_HOME (tests/conftest.py sets it)."""
    marker = os.path.join(os.environ["AIRFLOW_HOME"], ".norce-db-migrated")
    if not os.path.exists(marker):
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=300
        )
        open(marker, "w").close()


@pytest.fixture(scope="session")
def dags_folder(airflow_db) -> str:
    """The dags folder of the test AIRFLOW_HOME, once Airflow proved it can run a trivial ``dag.test()``.

    Airflow 3.3's ``dag.test()`` only runs DAGs found in a bundle, hence DAG files go there. Some
    installations cannot run any ``dag.test()`` (Airflow 3.0.6 with newer fastapi/cadwyn/pydantic than it
    was released with: its in-process Execution API answers every task start with a validation error);
    there the DAG tests are skipped with that reason rather than failed for Airflow's fault.
    """
    from airflow.configuration import conf

    folder = conf.get("core", "dags_folder")
    os.makedirs(folder, exist_ok=True)
    verdict = os.path.join(os.environ["AIRFLOW_HOME"], ".norce-dag-test-probe")
    if not os.path.exists(verdict):
        path = os.path.join(folder, "norce_probe_dag_test.py")
        with open(path, "w") as handle:
            handle.write(PROBE_DAG)
        from norce_query_testlib import load_dagbag

        run = load_dagbag(path).get_dag("norce_probe_dag_test").test()
        with open(verdict, "w") as handle:
            handle.write(str(run.state))
    with open(verdict) as handle:
        state = handle.read()
    if state != "success":
        import airflow

        pytest.skip(f"Airflow {airflow.__version__} here cannot run even a trivial dag.test() (run {state})")
    return folder
