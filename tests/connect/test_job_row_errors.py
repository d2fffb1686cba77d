"""A Connect job can end Succeeded with rows Norce did not import (Error lines in Job/GetLog) or imported in
part (Warning lines). Norce calls the job a success, so nothing fails by default; every path (operator in a
worker, operator deferred, sensor) logs the lines, counts them in its XCom and fails only with
``fail_on_row_errors=True``. Against the simulator: a stock row for an unknown SKU is "not imported".

The simulator's jobs take no time here (``job_duration=0``): they end as they are posted, so every wait
below ends at its first round and nothing sleeps. Waiting itself is tested in ``test_job_wait_drivers.py``."""

from __future__ import annotations

import pytest
from norce_connect_support import (
    DictStateStore,
    onhand,
    post_jobs,
    rebuild_trigger,
    run_trigger,
    use_simulator,
)

from airflow_provider_norce.exceptions import NorceJobError
from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.sensors.norce import NorceJobSensor

pytestmark = pytest.mark.norce_simulator(job_duration=0)
ITEMS = [onhand("100001", 5), onhand("999999", 7), onhand("100002", 6)]


@pytest.fixture
def sim(norce_simulator, monkeypatch):
    use_simulator(monkeypatch, norce_simulator.sim)
    return norce_simulator.sim


class RecordingTI:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def make(**kwargs) -> NorceConnectImportOperator:
    return NorceConnectImportOperator(
        task_id="import",
        import_method="Product/ImportOnhands",
        items=ITEMS,
        connect_header={"AccountId": 1},
        poll_interval=0.05,
        deferrable=False,
        **kwargs,
    )


def test_operator_logs_and_counts_rows_not_imported_and_succeeds(sim, capsys):
    ti = RecordingTI()
    job_ids = make().execute({"ti": ti, "task_state_store": DictStateStore()})
    logged = capsys.readouterr().out  # task logs go through Airflow's structlog to stdout
    summary = ti.pushed["summary"]
    job = summary["jobs"][job_ids[0]]
    assert (job["status"], job["row_errors"], summary["row_errors"], summary["succeeded"]) == (
        "Succeeded",
        1,
        1,
        1,
    )
    assert any("999999" in line for line in job["errors"])
    assert f"job {job_ids[0]} ended Succeeded, but its log has 1 Error line(s)" in logged
    assert "SKU '999999' does not exist" in logged


def test_operator_fails_on_row_errors_when_asked(sim):
    with pytest.raises(NorceJobError, match=r"ended Succeeded with 1 row\(s\) not imported.*999999"):
        make(fail_on_row_errors=True).execute({"task_state_store": DictStateStore()})


def test_clean_job_passes_with_fail_on_row_errors(sim):
    ti = RecordingTI()
    op = make(fail_on_row_errors=True)
    op.items = [onhand("100001", 5)]
    op.execute({"ti": ti, "task_state_store": DictStateStore()})
    assert ti.pushed["summary"]["row_errors"] == 0 and ti.pushed["summary"]["row_warnings"] == 0


def test_deferred_operator_sees_the_same_row_errors(sim):
    from airflow.providers.common.compat.sdk import TaskDeferred

    context = {"task_state_store": DictStateStore()}
    op = make(fail_on_row_errors=True)
    op.deferrable = True
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    (event,) = run_trigger(rebuild_trigger(info.value.trigger))
    assert event.payload["status"] == "success"  # the trigger reports; the task decides
    (job,) = event.payload["jobs"].values()
    assert job["row_errors"] == 1
    with pytest.raises(NorceJobError, match="999999"):
        op.execute_complete(context, event.payload, **info.value.kwargs)


def test_sensor_counts_row_errors_and_fails_only_when_asked(sim):
    job_ids = post_jobs(ITEMS)
    sensor = NorceJobSensor(task_id="wait", job_ids=job_ids, deferrable=False, poke_interval=0.05, timeout=10)
    result = sensor.poke({})
    assert result.is_done and result.xcom_value["row_errors"] == 1
    strict = NorceJobSensor(task_id="wait2", job_ids=job_ids, deferrable=False, fail_on_row_errors=True)
    with pytest.raises(NorceJobError, match="not imported"):
        strict.poke({})
