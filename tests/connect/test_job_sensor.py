"""NorceJobSensor poke paths against the simulator (real HTTP).

The simulator runs on a fake clock: a job is running until the test moves the clock past its duration,
so "still running at the first poke" holds however slow the machine, and nothing sleeps.
"""

from __future__ import annotations

import pytest
from norce_connect_support import JOB_SECONDS, onhand, post_jobs, post_unchecked

from airflow_provider_norce.exceptions import NorceJobError
from airflow_provider_norce.sensors.norce import NorceJobSensor
from airflow_provider_norce.simulator.clock import FakeClock


@pytest.fixture
def clock(job_clock: FakeClock) -> FakeClock:
    return job_clock


@pytest.fixture
def sim(clocked_sim):
    return clocked_sim


def sensor(job_ids, **kwargs) -> NorceJobSensor:
    return NorceJobSensor(task_id="wait", job_ids=job_ids, deferrable=False, poke_interval=0.05, **kwargs)


def finish_jobs(clock: FakeClock) -> None:
    """Let every job posted so far reach its end state (the simulator settles them on the next request)."""
    clock.advance(JOB_SECONDS)


def test_poke_not_done_then_done_with_summary(sim, clock):
    job_ids = post_jobs([onhand("100001", 5), onhand("100002", 6)])
    s = sensor(job_ids[0])  # a single id is accepted too
    assert s.poke({}).is_done is False
    clock.advance(JOB_SECONDS / 2)
    assert s.poke({}).is_done is False
    assert sim.counters()["requests"].get("GET /commerce/connect/4.0/Job/GetLog", 0) == 0  # running: no log
    finish_jobs(clock)
    result = s.poke({})
    assert result.is_done is True
    job = result.xcom_value["jobs"][job_ids[0]]
    assert (job["status_id"], job["updates"], job["fail"]) == (2, 2, 0)
    assert result.xcom_value["succeeded"] == 1


def test_poke_failed_job_raises_with_error_lines(sim, clock):
    job_ids = post_jobs([onhand("FAIL-5", 1)])
    finish_jobs(clock)
    with pytest.raises(NorceJobError, match=r"job \d+ ended Failed .*FAIL-5") as err:
        sensor(job_ids).poke({})
    assert err.value.job_id == job_ids[0] and err.value.status_id == 3


def test_validation_failed_job_fails_unless_allowed(sim, clock):
    job_ids = post_unchecked([{"PartNo": "100001"}])
    finish_jobs(clock)
    with pytest.raises(NorceJobError, match=r"ended Validation failed .*Row 1: the item failed validation"):
        sensor(job_ids).poke({})
    result = sensor(job_ids, allow_validation_failures=True).poke({})
    assert result.is_done and result.xcom_value["validation_failed"] == 1


def test_execute_in_poke_mode_returns_the_summary(sim, clock):
    job_ids = post_jobs([onhand("100001", 1)])
    finish_jobs(clock)  # done at the first poke: Airflow's poke loop never sleeps
    summary = sensor(job_ids, timeout=30).execute({})
    assert summary["jobs"][job_ids[0]]["status"] == "Succeeded"


def test_reschedule_mode_and_templating(sim):
    s = sensor("{{ ti.xcom_pull('post') }}", mode="reschedule", norce_conn_id="{{ var.value.conn }}")
    assert s.mode == "reschedule"
    assert {"job_ids", "norce_conn_id"} <= set(s.template_fields)
    assert sim.counters()["requests"] == {}  # nothing at construction


def test_empty_job_ids_is_a_clear_error(sim):
    with pytest.raises(ValueError, match="job_ids is empty"):
        sensor([]).poke({})
