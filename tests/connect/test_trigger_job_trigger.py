"""NorceJobTrigger and NorceAsyncClient in a real event loop against the simulator.

The simulator runs on a fake clock, so a job ends only when a test moves that clock: a test finishes the
jobs before it runs the trigger (the trigger then needs one round and never sleeps), or leaves them
running and gives the trigger a deadline already past. The trigger's rounds and sleeps themselves are
tested on a fake clock in ``test_job_wait_drivers.py``; nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from norce_connect_support import (
    JOB_SECONDS,
    imports,
    onhand,
    post_jobs,
    post_unchecked,
    rebuild_trigger,
    run_trigger,
)

from airflow_provider_norce.exceptions import NorceError
from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.triggers.norce import NorceJobTrigger


@pytest.fixture
def clock(job_clock: FakeClock) -> FakeClock:
    return job_clock


@pytest.fixture
def sim(clocked_sim):
    return clocked_sim


@pytest.fixture
def event_loop_sleeps(monkeypatch) -> list[float]:
    """``asyncio.sleep`` that returns at once and records the wait: the async client's retry backoff
    (tenacity looks ``asyncio.sleep`` up when it waits) is asserted, not waited through."""
    waits: list[float] = []

    async def recorded_sleep(seconds: float, *args, **kwargs) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    return waits


def test_serialize_is_plain_json_without_secrets_and_keeps_the_deadline(sim):
    trigger = NorceJobTrigger("norce_default", ["1001", "1002"], poll_interval=5, timeout=60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_norce.triggers.norce.NorceJobTrigger"
    text = json.dumps(kwargs)
    assert sim.client_secret not in text
    rebuilt = rebuild_trigger(trigger)
    assert rebuilt.serialize() == trigger.serialize()  # a restarted trigger keeps the original end_time
    assert rebuilt.end_time == trigger.end_time


def test_success_event_with_counts(sim, clock):
    job_ids = post_jobs([onhand(str(100001 + i), 3) for i in range(5)], batch_size=2)
    clock.advance(JOB_SECONDS)
    events = run_trigger(rebuild_trigger(NorceJobTrigger("norce_default", job_ids, poll_interval=0.05)))

    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert list(payload["jobs"]) == job_ids
    assert [j["updates"] for j in payload["jobs"].values()] == [2, 2, 1]
    assert all(j["status"] == "Succeeded" and j["finished"] for j in payload["jobs"].values())
    json.dumps(payload)


def test_failed_event_carries_error_lines_and_running_twice_is_harmless(sim, clock):
    job_ids = post_jobs([onhand("100001", 1), onhand("FAIL-9", 1)])
    clock.advance(JOB_SECONDS)
    trigger = NorceJobTrigger("norce_default", job_ids, poll_interval=0.05)
    first = run_trigger(rebuild_trigger(trigger))[0].payload
    second = run_trigger(rebuild_trigger(trigger))[0].payload  # e.g. a triggerer restart

    assert first == second
    assert first["status"] == "failed"
    job = first["jobs"][job_ids[0]]
    assert job["status_id"] == 3
    assert any("FAIL-9" in line for line in job["errors"])
    assert sim.counters()["jobs_created"] == 1 and imports(sim) == 1  # the trigger only reads


def test_validation_failed_job_is_reported_not_judged(sim, clock):
    job_ids = post_unchecked([{"PartNo": "100001"}])
    clock.advance(JOB_SECONDS)
    payload = run_trigger(NorceJobTrigger("norce_default", job_ids, poll_interval=0.05))[0].payload
    assert payload["status"] == "failed"
    assert payload["jobs"][job_ids[0]]["status"] == "Validation failed"
    assert payload["jobs"][job_ids[0]]["errors"]


def test_timeout_event(sim):
    """A trigger whose deadline has passed (e.g. restarted by the triggerer after it) looks once more,
    then reports the jobs still running; the task then fails with that message, never waits afresh."""
    job_ids = post_jobs([onhand("100001", 1)])
    trigger = NorceJobTrigger("norce_default", job_ids, poll_interval=5, timeout=60, end_time=time.time() - 1)
    payload = run_trigger(rebuild_trigger(trigger))[0].payload
    assert payload["status"] == "timeout"
    assert payload["message"] == (
        f"Norce Connect job(s) {job_ids[0]} still running after the 60.0 s timeout; they keep running in Norce"
    )
    assert payload["jobs"][job_ids[0]]["finished"] is False
    assert sim.counters()["requests"]["GET /commerce/connect/4.0/Job/Get"] == 1


def test_unknown_connection_is_an_error_event(sim):
    payload = run_trigger(NorceJobTrigger("norce_missing", ["1"], poll_interval=0.05))[0].payload
    assert payload["status"] == "error"
    assert "norce_missing" in payload["message"]


def test_unknown_job_is_an_error_event_naming_it(sim):
    payload = run_trigger(NorceJobTrigger("norce_default", ["987654"], poll_interval=0.05))[0].payload
    assert payload["status"] == "error"
    assert "987654" in payload["message"]
    assert sim.client_secret not in json.dumps(payload)


def test_revoked_token_is_renewed_once(sim, clock):
    job_ids = post_jobs([onhand("100001", 1)])
    clock.advance(JOB_SECONDS)
    sim.revoke_tokens()  # the token in the process cache is now refused
    payload = run_trigger(NorceJobTrigger("norce_default", job_ids, poll_interval=0.05))[0].payload
    assert payload["status"] == "success"
    counters = sim.counters()
    assert counters["api_401"] == 1 and counters["tokens_issued"] == 2


def test_429_and_5xx_on_job_reads_are_retried_like_the_sync_hook(sim, clock, event_loop_sleeps):
    job_ids = post_jobs([onhand("100001", 1)])
    clock.advance(JOB_SECONDS)
    sim.add_fault("jobs", "503", count=1)  # no Retry-After: the policy's backoff, 1 s plus up to 1 s jitter
    sim.add_fault("jobs", "429", count=2, retry_after=0)
    payload = run_trigger(NorceJobTrigger("norce_default", job_ids, poll_interval=5))[0].payload
    assert payload["status"] == "success"
    assert sim.counters()["api_429"] == 2
    assert sim.counters()["requests"]["GET /commerce/connect/4.0/Job/Get"] == 4
    assert len(event_loop_sleeps) == 3 and 1.0 <= event_loop_sleeps[0] <= 2.0
    assert event_loop_sleeps[1:] == [0.0, 0.0]  # Norce's Retry-After: 0 is honoured as given


def test_async_client_never_sends_the_token_elsewhere(sim):
    from airflow_provider_norce.hooks.async_client import NorceAsyncClient
    from airflow_provider_norce.hooks.norce import NorceHook

    config = NorceHook("norce_default").config

    async def go():
        async with NorceAsyncClient(config) as client:
            with pytest.raises(NorceError, match="refusing to send the Norce token"):
                await client.get_json("https://attacker.example/commerce/connect/4.0/Job/Get")
            return repr(client)

    text = asyncio.run(go())
    assert sim.client_secret not in text
    assert sim.counters()["token_requests"] == 0
