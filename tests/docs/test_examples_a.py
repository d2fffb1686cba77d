"""The example files of the docs pages connection.md, operators.md and sensors-triggers.md, run for real.

Each page includes its code from ``docs/examples/conn_*`` / ``op_*``; these tests run those files (against the
local Norce simulator where they make a call), so a page cannot show code that does not work.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_provider_norce.connection import NorceConnectionConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
SAMPLES = Path(__file__).resolve().parents[2] / "dags_examples" / "data"
UTC = dt.timezone.utc


def section(path: Path, name: str) -> str:
    """The text between ``# [START name]`` and ``# [END name]`` of an example file, as a page includes it."""
    match = re.search(rf"# \[START {name}\]\n(.*?)# \[END {name}\]", path.read_text(encoding="utf-8"), re.S)
    assert match, f"{path.name} has no [START {name}] / [END {name}] section"
    return match.group(1)


def connection(conn_id: str, fields: dict) -> object:
    from airflow.models.connection import Connection

    return Connection(conn_id=conn_id, **{**fields, "extra": json.dumps(fields.get("extra", {}))})


def test_conn_env_defines_a_stage_connection(tmp_path):
    """The page's export line, run by bash, defines a connection the provider reads as a stage tenant."""
    script = section(EXAMPLES / "conn_env.sh", "conn_env") + 'printf %s "$AIRFLOW_CONN_NORCE_DEFAULT"\n'
    value = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
    config = NorceConnectionConfig.from_connection(connection("norce_default", json.loads(value)))
    assert config.token_url == "https://acme.api-se.stage.norce.tech/identity/1.0/connect/token"
    assert config.service_url("query") == "https://acme.api-se.stage.norce.tech/commerce/query/2.0/"
    assert (config.environment, config.scope, config.application_id) == ("stage", "stage", 1234)


def test_conn_extras_json_sets_every_extra():
    fields = json.loads((EXAMPLES / "conn_extras.json").read_text(encoding="utf-8"))
    config = NorceConnectionConfig.from_connection(connection("norce_stage", fields))
    assert config.base_url == "https://acme.api-se.stage.norce.tech"
    assert (config.platform, config.region, config.application_id) == ("commerce", "se", 1234)
    assert (config.timeout, config.verify, config.max_attempts, config.max_retry_wait) == (60, True, 6, 300)
    assert dict(config.proxies or {}) == {"https": "http://proxy.internal:3128"}
    assert config.token_cache == "machine"


def test_conn_test_command_against_the_simulator(norce_simulator, airflow_db):
    """``airflow connections test`` as the page shows it, with norce_default pointing at the simulator."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["bash", str(EXAMPLES / "conn_env.sh"), "--test-only"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "success" in result.stdout.lower()
    assert norce_simulator.counters()["token_requests"] >= 1


def test_hook_example_against_the_simulator(norce_simulator):
    sys.path.insert(0, str(EXAMPLES))
    try:
        from op_hook import hook_calls
    finally:
        sys.path.remove(str(EXAMPLES))
    result = hook_calls()
    assert result["last_order"]["ApplicationId"] == 1234
    assert result["job"]["JobId"] and result["job"]["StatusId"] in (1, 2, 5, 6)
    assert result["ok"] is True and result["token"]
    assert norce_simulator.counters()["jobs_created"] == 1


@pytest.mark.norce_simulator(job_duration=0.3, orders=2000)
def test_operator_dag_runs_against_the_simulator(norce_simulator, dags_folder, tmp_path):
    """Every operator and the sensor of the pages, in one DAG run (the import is deferrable, as shown)."""
    from norce_airflow_testlib import load_dagbag

    target = Path(dags_folder) / "norce_docs_examples_a"
    target.mkdir(exist_ok=True)
    shutil.copy(EXAMPLES / "op_dag.py", target / "op_dag.py")
    bag = load_dagbag(str(target))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags["docs_operator_examples"].test(
        logical_date=dt.datetime(2026, 11, 20, tzinfo=UTC),
        run_conf={"stock_file": str(SAMPLES / "onhands.jsonl"), "output_dir": str(tmp_path)},
    )
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert (tmp_path / "orders" / "2026-11-20.jsonl").is_file()
    assert norce_simulator.counters()["jobs_created"] == 1


def _airflow_33() -> bool:
    from importlib.metadata import version

    return tuple(int(part) for part in version("apache-airflow").split(".")[:2]) >= (3, 3)


@pytest.mark.skipif(not _airflow_33(), reason="retry_policy= is Airflow 3.3+")
def test_task_retry_policy_example_decides_as_the_page_says():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.retry_policy import RetryAction

    from airflow_provider_norce.exceptions import NorceAPIError, NorceAuthError, NorceRateLimitError

    bag = DagBag(dag_folder=str(EXAMPLES / "op_retry_policy.py"))
    assert not bag.import_errors, bag.import_errors
    task = bag.dags["docs_task_retry_policy"].get_task("export_orders")
    policy = task.retry_policy
    assert task.retries == 3
    assert policy.evaluate(NorceAuthError("refused"), 1, 3).action == RetryAction.FAIL
    rate_limited = policy.evaluate(NorceRateLimitError("429", status_code=429, retry_after=120), 1, 3)
    assert (rate_limited.action, rate_limited.retry_delay) == (RetryAction.RETRY, timedelta(seconds=120))
    assert policy.evaluate(NorceAPIError("bad request", status_code=400), 1, 3).action == RetryAction.FAIL
    assert policy.evaluate(NorceAPIError("gateway", status_code=502), 1, 3).action == RetryAction.RETRY
