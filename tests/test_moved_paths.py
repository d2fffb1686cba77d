"""Import paths that DAG files and tests written for 0.1 use keep working after the move to subpackages.

Each old path must give the very object of its new home (not a copy that could drift) and say, in a
DeprecationWarning, where it moved. The trigger's class path is stored in the metadata database with every
deferred task, so it must not move at all.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MOVED = [
    ("airflow_provider_norce.export_files", "write_rows_atomically", "airflow_provider_norce.query.files"),
    (
        "airflow_provider_norce.task_retry",
        "NorceTaskRetryPolicy",
        "airflow_provider_norce.retries.task_policy",
    ),
    ("airflow_provider_norce.testing", "NorceSimulator", "airflow_provider_norce.simulator.server"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_old_path_gives_the_new_object_with_a_warning(old: str, name: str, new: str) -> None:
    if new.endswith("task_policy"):
        pytest.importorskip(
            "airflow.sdk.definitions.retry_policy", reason="task retry policies need Airflow 3.3"
        )
    target = getattr(importlib.import_module(new), name)  # first: Airflow's import re-routes warnings
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.rsplit(".", 1)[0]):
        value = getattr(importlib.import_module(old), name)
    assert value is target


def test_trigger_class_path_is_unchanged() -> None:
    from airflow_provider_norce.triggers.norce import NorceJobTrigger

    path, _ = NorceJobTrigger(norce_conn_id="norce_default", job_ids=["1"], poll_interval=1).serialize()
    assert path == "airflow_provider_norce.triggers.norce.NorceJobTrigger"


def test_old_simulator_command_still_serves_help() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "default", "-m", "airflow_provider_norce.testing", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "airflow_provider_norce.simulator" in result.stderr


@pytest.mark.parametrize("package", ["tokens", "connect", "query", "retries", "simulator"])
def test_importing_a_concern_package_imports_nothing_else(package: str) -> None:
    """The DAG processor imports provider modules on every parse: a package's __init__ pulls in no library."""
    code = (
        "import sys; before = set(sys.modules); "
        f"import airflow_provider_norce.{package}; "
        "print(sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] not in sys.stdlib_module_names and not m.startswith('airflow_provider_norce')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
