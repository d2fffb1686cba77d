"""Fixtures of the cluster tests: ONE local Airflow cluster for the whole test session.

Starting the cluster (PostgreSQL, two Redis servers, the Norce simulator, scheduler, DAG processor, triggerer,
API server and two Celery workers; about a minute) is the expensive part, so every cluster test file shares the
session-scoped ``cluster`` fixture. A test that kills a worker leaves it dead; before each cluster test the
``_every_worker_up`` fixture starts any dead worker again, so the next test sees both "machines".

The cluster needs Airflow 3.3 (its CeleryExecutor set-up and the REST API v2 this code speaks): below that every
test that uses it is skipped with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_cluster import LocalCluster

MINIMUM_AIRFLOW = (3, 3)


def airflow_version() -> tuple[int, ...]:
    from airflow import __version__

    return tuple(int(part) for part in __version__.split(".")[:2] if part.isdigit())


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """The session's cluster (``norce_default`` with ``token_cache=redis``), stopped at the end of the session.

    Its work folder (every component's log, the DAG outputs) is removed when every test passed and kept,
    with its path printed, when one failed; a failed start names the log to read and keeps it too."""
    if airflow_version() < MINIMUM_AIRFLOW:
        pytest.skip(f"the local cluster needs Airflow {'.'.join(map(str, MINIMUM_AIRFLOW))} or newer")
    local = LocalCluster()
    local.start()  # on failure it stops what it started before raising
    try:
        yield local
    finally:
        local.stop()
        if request.session.testsfailed:
            print(f"\nlocal cluster: logs kept in {local.logs_dir}")
        else:
            local.remove_workdir()


@pytest.fixture(autouse=True)
def _every_worker_up(request: pytest.FixtureRequest) -> None:
    """Before a test that uses the cluster: every worker runs (one killed by an earlier test is restarted)."""
    if "cluster" in request.fixturenames:
        request.getfixturevalue("cluster").ensure_workers()
