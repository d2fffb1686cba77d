"""Fixtures of the fault suite: real DAG runs (``dag.test()``) against the simulator over real sockets.

Each test file keeps its DAGs in ``tests/faults/dags/<file>.py``; ``fault_dag`` copies one such file into the
test Airflow home's dags folder (Airflow 3.3's ``dag.test()`` runs only DAGs found there) and parses it.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

import pytest
from norce_faults_testlib import set_connection

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

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


@pytest.fixture
def empty_process_caches() -> Iterator[None]:
    """An empty process token cache (and no remembered working scopes) before and after the test, as a new
    task process has: a simulator of an earlier test may have had the same port, and a token cached for it
    would change the token counts."""
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE, WORKING_SCOPES

    PROCESS_TOKEN_CACHE.clear()
    WORKING_SCOPES.clear()
    yield
    PROCESS_TOKEN_CACHE.clear()
    WORKING_SCOPES.clear()


@pytest.fixture
def fresh_token_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_process_caches: None) -> Path:
    """The test's own machine token store (``tmp_path / "tokens"``, NORCE_TOKEN_CACHE_DIR) and an empty
    process cache; returns the store's directory."""
    store = tmp_path / "tokens"
    store.mkdir(mode=0o700)
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(store))
    return store


@pytest.fixture
def fault_connection_extras() -> dict[str, Any]:
    """Extras of ``norce_default`` in a fault test: a retry budget that keeps a failing test fast. A test
    module overrides this fixture where it needs other ones."""
    return {"max_attempts": 2, "max_retry_wait": 2, "timeout": 5}


@pytest.fixture
def sim(
    norce_simulator: Any, monkeypatch: pytest.MonkeyPatch, fault_connection_extras: dict[str, Any]
) -> Any:
    """The simulator, ``norce_default`` pointing at it with ``fault_connection_extras``."""
    set_connection(monkeypatch, norce_simulator.sim, **fault_connection_extras)
    return norce_simulator.sim
