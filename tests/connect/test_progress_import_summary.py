"""The import's one summary line on the paths the progress test does not take: a deferred wait (the line comes
when the task resumes, in another process than the one that posted) and an import not waited for."""

from __future__ import annotations

import pytest
from norce_connect_support import DictStateStore, onhand, rebuild_trigger, run_trigger, use_simulator
from norce_progress_testlib import operator_messages

from airflow_provider_norce.operators.connect import NorceConnectImportOperator

pytestmark = pytest.mark.norce_simulator(job_duration=0.2)


@pytest.fixture
def sim(norce_simulator, monkeypatch):
    use_simulator(monkeypatch, norce_simulator.sim)
    return norce_simulator.sim


def make(**kwargs) -> NorceConnectImportOperator:
    return NorceConnectImportOperator(
        task_id="import_stock",
        import_method="Product/ImportOnhands",
        connect_header={"AccountId": 1},
        items=[onhand(str(100001 + i), 60 + i) for i in range(5)],
        batch_size=2,
        poll_interval=0.05,
        progress_interval=0,
        **kwargs,
    )


def summaries(capsys, caplog) -> list[str]:
    return [line for line in operator_messages(capsys, caplog) if line.startswith("Imported ")]


def test_a_deferred_import_logs_its_summary_when_it_resumes(sim, capsys, caplog):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make(deferrable=True)
    context = {"task_state_store": DictStateStore()}
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    deferral = info.value
    assert summaries(capsys, caplog) == [], "no summary before the jobs are known to be done"
    assert deferral.kwargs["items"] == 5 and isinstance(deferral.kwargs["started_at"], float)

    events = run_trigger(rebuild_trigger(deferral.trigger))
    job_ids = op.execute_complete(context, events[0].payload, **deferral.kwargs)

    (line,) = summaries(capsys, caplog)
    assert line.startswith("Imported 5 items in 3 batches to Product/ImportOnhands in ")
    assert line.endswith(f"; job ids: {', '.join(job_ids)}; every job finished")


def test_an_import_not_waited_for_says_so(sim, capsys, caplog):
    job_ids = make(wait_for_completion=False, deferrable=False).execute(
        {"task_state_store": DictStateStore()}
    )

    messages = operator_messages(capsys, caplog)
    (line,) = [line for line in messages if line.startswith("Imported ")]
    assert line.endswith(f"; job ids: {', '.join(job_ids)}; the jobs were not waited for")
    assert not any("waiting for jobs" in line for line in messages)
