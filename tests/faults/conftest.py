"""Fixtures of the fault suite: real DAG runs (``dag.test()``) against the simulator over real sockets.

Each test file keeps its DAGs in ``tests/faults/dags/<file>.py``; ``fault_dag`` copies one such file into the
test Airflow home's dags folder (Airflow 3.3's ``dag.test()`` runs only DAGs found there) and parses it.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

DAGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dags")


@pytest.fixture(scope="session")
def fault_dags_folder(dags_folder: str) -> str:
    target = os.path.join(dags_folder, "norce_faults")
    os.makedirs(target, exist_ok=True)
    return target


@pytest.fixture
def fault_dag(fault_dags_folder: str) -> Callable[[str, str], Any]:
    """``fault_dag("export_faults.py", "fault_export")``: that DAG, parsed from the dags folder."""
    from norce_airflow_testlib import load_dagbag

    def load(filename: str, dag_id: str) -> Any:
        folder = os.path.join(fault_dags_folder, os.path.splitext(filename)[0])
        os.makedirs(folder, exist_ok=True)
        shutil.copy(os.path.join(DAGS, filename), folder)
        bag = load_dagbag(folder)
        assert not bag.import_errors, bag.import_errors
        return bag.dags[dag_id]

    return load
