"""The deferrable path for real: execute raises TaskDeferred, the trigger is serialized and rebuilt from its
classpath and kwargs, runs in an event loop against the simulator, and the operator resumes with its event."""

from __future__ import annotations

import pytest
from norce_connect_support import DictStateStore, imports, onhand, rebuild_trigger, run_trigger, use_simulator

from airflow_provider_norce.exceptions import NorceJobError
from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.sensors.norce import NorceJobSensor

pytestmark = pytest.mark.norce_simulator(job_duration=0.2)


@pytest.fixture
def sim(norce_simulator, monkeypatch):
    use_simulator(monkeypatch, norce_simulator.sim)
    return norce_simulator.sim


def deferred(op, context):
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    return info.value


def make(**kwargs) -> NorceConnectImportOperator:
    return NorceConnectImportOperator(
        task_id="import",
        import_method="Product/ImportOnhands",
        connect_header={"AccountId": 1},
        poll_interval=0.05,
        deferrable=True,
        **kwargs,
    )


def test_operator_defers_trigger_runs_operator_resumes(sim):
    store = DictStateStore()
    context = {"task_state_store": store}
    op = make(items=[onhand(str(100001 + i), 60 + i) for i in range(5)], batch_size=2, timeout=30)

    deferral = deferred(op, context)
    assert deferral.method_name == "execute_complete"
    assert deferral.timeout is not None and deferral.timeout.total_seconds() >= 30
    assert sim.counters()["jobs_created"] == 3
    assert len(store.data) == 3  # recorded before the worker slot was given up

    events = run_trigger(rebuild_trigger(deferral.trigger))
    assert len(events) == 1 and events[0].payload["status"] == "success"

    job_ids = op.execute_complete(context, events[0].payload, **(deferral.kwargs or {}))
    assert job_ids == list(events[0].payload["jobs"])
    assert store.data == {}
    assert imports(sim) == 3


def test_resume_without_defer_kwargs_uses_the_event(sim):
    op = make(items=[onhand("100001", 1)])
    deferral = deferred(op, {})
    event = run_trigger(rebuild_trigger(deferral.trigger))[0].payload
    assert op.execute_complete({}, event) == list(event["jobs"])


def test_deferred_failure_fails_with_error_lines(sim):
    op = make(items=[onhand("FAIL-7", 1)])
    deferral = deferred(op, {})
    event = run_trigger(rebuild_trigger(deferral.trigger))[0].payload
    with pytest.raises(NorceJobError, match=r"ended Failed .*importing 'FAIL-7' failed"):
        op.execute_complete({}, event, **(deferral.kwargs or {}))


def test_deferred_timeout_fails_and_a_retry_waits_for_the_same_jobs(sim):
    store = DictStateStore()
    sim.connect.job_duration = 1.5
    op = make(items=[onhand("100001", 1)], timeout=0.1)
    deferral = deferred(op, {"task_state_store": store})
    event = run_trigger(rebuild_trigger(deferral.trigger))[0].payload
    assert event["status"] == "timeout"
    with pytest.raises(NorceJobError, match="nothing is posted again"):
        op.execute_complete({"task_state_store": store}, event, **(deferral.kwargs or {}))

    retry = make(items=[onhand("100001", 1)], timeout=30)
    deferral = deferred(retry, {"task_state_store": store})
    event = run_trigger(rebuild_trigger(deferral.trigger))[0].payload
    assert retry.execute_complete({"task_state_store": store}, event, **(deferral.kwargs or {}))
    assert sim.counters()["jobs_created"] == 1


def test_sensor_defers_and_resumes(sim):
    job_ids = make(items=[onhand("100001", 1)], wait_for_completion=False).execute({})
    sim.connect.job_duration = 60  # still running at the sensor's first look, however slow the machine
    sensor = NorceJobSensor(task_id="wait", job_ids=job_ids, deferrable=True, poke_interval=0.05, timeout=30)
    deferral = deferred(sensor, {})
    sim.connect.job_duration = 0.2  # and done soon once the trigger waits for it
    event = run_trigger(rebuild_trigger(deferral.trigger))[0].payload
    summary = sensor.execute_complete({}, event)
    assert summary["succeeded"] == 1
    assert summary["jobs"][job_ids[0]]["status"] == "Succeeded"


def test_deferred_sensor_timeout_is_airflows_sensor_timeout(sim):
    """A trigger that times out fails the sensor as Airflow's own timeout would (so soft_fail applies)."""
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    job_ids = make(items=[onhand("100001", 1)], wait_for_completion=False).execute({})
    sim.connect.job_duration = 60  # still running when the trigger gives up
    sensor = NorceJobSensor(task_id="wait", job_ids=job_ids, deferrable=True, poke_interval=0.05, timeout=0.1)
    event = run_trigger(rebuild_trigger(deferred(sensor, {}).trigger))[0].payload
    assert event["status"] == "timeout"
    with pytest.raises(AirflowSensorTimeout, match="'wait'"):
        sensor.execute_complete({}, event)
