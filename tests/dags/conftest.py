"""Fixtures of the example-DAG tests: a migrated metadata DB and the examples in the test dags folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

# Airflow's unit-test config (AIRFLOW__CORE__UNIT_TEST_MODE) turns "@daily" into CronDataIntervalTimetable;
# a real Airflow 3 deployment makes it CronTriggerTimetable (empty data intervals). Test what users get.
os.environ["AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS"] = "False"

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "dags_examples")
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
def examples_folder() -> str:
    return os.path.abspath(EXAMPLES)


@pytest.fixture(scope="session")
def example_dags(examples_folder) -> dict:
    """The example DAGs, copied into the test AIRFLOW_HOME's dags folder and loaded from there.

    Airflow 3.3's ``dag.test()`` only runs DAGs it finds in a bundle (the dags folder), so the examples
    are run from there; ``airflow db migrate`` runs once first. Some installations cannot run any
    ``dag.test()`` (Airflow 3.0.6 with newer fastapi/cadwyn/pydantic than it was released with answers
    every task start with a validation error): a trivial probe DAG decides, and the tests are skipped
    with that reason rather than failed for Airflow's fault.
    """
    from airflow.configuration import conf
    from norce_dags_testlib import load_dagbag

    home = os.environ["AIRFLOW_HOME"]
    marker = os.path.join(home, ".norce-db-migrated")
    if not os.path.exists(marker):
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=300
        )
        open(marker, "w").close()
    folder = conf.get("core", "dags_folder")
    os.makedirs(folder, exist_ok=True)
    verdict = os.path.join(home, ".norce-dag-test-probe")
    if not os.path.exists(verdict):
        probe = os.path.join(folder, "norce_probe_dag_test.py")
        with open(probe, "w") as handle:
            handle.write(PROBE_DAG)
        run = load_dagbag(probe).get_dag("norce_probe_dag_test").test()
        with open(verdict, "w") as handle:
            handle.write(str(run.state))
    with open(verdict) as handle:
        state = handle.read()
    if state != "success":
        import airflow

        pytest.skip(f"Airflow {airflow.__version__} here cannot run even a trivial dag.test() (run {state})")
    target = os.path.join(folder, "norce_examples")
    shutil.copytree(examples_folder, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    bag = load_dagbag(target)
    assert not bag.import_errors, bag.import_errors
    return bag.dags
