"""Fixtures of the example-DAG tests: the examples, copied into the test dags folder and loaded from there."""

from __future__ import annotations

import os
import shutil

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "dags_examples")


@pytest.fixture(scope="session")
def examples_folder() -> str:
    return os.path.abspath(EXAMPLES)


@pytest.fixture(scope="session")
def example_dags(examples_folder: str, dags_folder: str) -> dict:
    """The example DAGs as a deployment would load them (Airflow 3.3's ``dag.test()`` needs the dags folder)."""
    from norce_airflow_testlib import load_dagbag

    target = os.path.join(dags_folder, "norce_examples")
    shutil.copytree(examples_folder, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    bag = load_dagbag(target)
    assert not bag.import_errors, bag.import_errors
    return bag.dags
