"""Helpers of the tests that run Airflow itself (dag.test); a plain module, importable by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


def load_dagbag(path: str) -> Any:
    """A DagBag of ``path``, its DAGs recorded in the metadata DB as the DAG processor would record them.

    Airflow 3.1+ keeps DagBag in ``airflow.dag_processing.dagbag`` and its ``dag.test()`` writes what it
    needs itself. Airflow 3.0's ``dag.test()`` does not register the DAG's assets, and a task with an
    ``Asset`` outlet then fails as "inactive asset": there the bag is synced first, as the DAG processor
    of a real deployment does before any run.
    """
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.models.dagbag import DagBag

        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=path)
        bag.sync_to_db("dags-folder", None)
        return bag
    return DagBag(dag_folder=path)


def use_mock_connection(monkeypatch: Any, secret: str) -> None:
    """Point ``norce_default`` at the requests-mock host ``acme`` (one attempt per request, a process token
    cache emptied for this test), with ``secret`` as client secret so a test can search errors for it."""
    import json

    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

    conn = {
        "conn_type": "norce",
        "host": "acme",
        "login": "client-1",
        "password": secret,
        "extra": {"application_id": "42", "token_cache": "process", "max_attempts": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(conn))
    PROCESS_TOKEN_CACHE.clear()
    PROCESS_TOKEN_CACHE.limiter.tat = 0.0


def mock_connection_for_a_test(monkeypatch: Any, secret: str) -> Iterator[None]:
    """The body of a fixture (``yield from``): :func:`use_mock_connection` for one test, and the process token
    cache emptied after it, so that no token of the mock host outlives the test."""
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

    use_mock_connection(monkeypatch, secret)
    yield
    PROCESS_TOKEN_CACHE.clear()


def mock_token_endpoint(requests_mock: Any, access_token: str) -> Any:
    """The token endpoint of the requests-mock host ``acme`` (see :func:`use_mock_connection`) answering
    ``access_token``, valid 600 s; returns the mock, for the test to add Norce's other endpoints."""
    requests_mock.post(
        "https://acme.api-se.norce.tech/identity/1.0/connect/token",
        json={"access_token": access_token, "token_type": "Bearer", "expires_in": 600, "scope": "x"},
    )
    return requests_mock


def share_the_execution_api() -> None:
    """Airflow 3.0's ``dag.test()`` builds its in-process execution API app anew for every task (about 6 s
    each); 3.1+ builds it once per process (``functools.lru_cache``). Do as 3.1+ does, so a test of a
    two-task DAG does not spend most of its time starting Airflow's API."""
    import functools

    from airflow.sdk.execution_time import supervisor

    if not hasattr(supervisor.in_process_api_server, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(supervisor.in_process_api_server)
