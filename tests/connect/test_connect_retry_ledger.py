"""A task retry never posts an import twice: durable state keyed by batch index, proven by the simulator's
``jobs_created`` counter. Two ``execute`` calls sharing one state store are two tries of one task instance."""

from __future__ import annotations

import pytest
from norce_connect_support import (
    MOCK_BASE,
    CrashingStateStore,
    DictStateStore,
    WorkerKilled,
    imports,
    mock_norce,
    onhand,
    use_simulator,
)

from airflow_provider_norce.connect.ledger import TaskStateLedger, VariableLedger, ledger_for, variable_key
from airflow_provider_norce.exceptions import NorceJobError
from airflow_provider_norce.operators.connect import NorceConnectImportOperator

pytestmark = pytest.mark.norce_simulator(job_duration=0.2)

ITEMS = [onhand(str(100001 + i), 40 + i) for i in range(6)]


@pytest.fixture
def sim(norce_simulator, monkeypatch):
    use_simulator(monkeypatch, norce_simulator.sim)
    return norce_simulator.sim


def make(**kwargs) -> NorceConnectImportOperator:
    kwargs.setdefault("items", ITEMS)
    kwargs.setdefault("batch_size", 2)
    return NorceConnectImportOperator(
        task_id="import",
        import_method="Product/ImportOnhands",
        connect_header={"AccountId": 1},
        poll_interval=0.05,
        deferrable=False,
        **kwargs,
    )


def test_retry_after_a_wait_timeout_resumes_waiting_without_posting(sim):
    store = DictStateStore()
    sim.connect.job_duration = 1.0
    with pytest.raises(NorceJobError, match="still running"):
        make(timeout=0.1).execute({"task_state_store": store})
    assert sim.counters()["jobs_created"] == 3
    first_ids = [store.get(f"norce_connect_batch_{i}")["job_id"] for i in range(3)]

    job_ids = make().execute({"task_state_store": store})  # the retry

    assert job_ids == first_ids
    assert sim.counters()["jobs_created"] == 3 and imports(sim) == 3
    assert store.data == {}  # cleaned up on success: clearing the task later re-imports on purpose


def test_retry_after_a_crash_posts_only_batches_that_never_got_a_job(sim):
    store = CrashingStateStore(crash_after=2)  # dies right after batch 2's job id was recorded
    with pytest.raises(WorkerKilled):
        make().execute({"task_state_store": store})
    assert sim.counters()["jobs_created"] == 2

    job_ids = make().execute({"task_state_store": store})

    assert len(job_ids) == 3
    assert sim.counters()["jobs_created"] == 3  # batch 3 only


def test_post_answer_lost_after_processing_is_never_reposted(sim):
    store = DictStateStore()
    sim.add_fault("connect", "500", count=1, after_processing=True)  # job created, answer lost
    with pytest.raises(NorceJobError) as err:
        make().execute({"task_state_store": store})
    assert "may have been received by Norce" in str(err.value)
    assert "check the Connect jobs in Norce Admin before re-running" in str(err.value)
    assert sim.counters()["jobs_created"] == 1 and imports(sim) == 1  # the hook did not retry the POST

    with pytest.raises(NorceJobError, match="not posted again automatically") as again:
        make().execute({"task_state_store": store})
    assert "norce_connect_batch_0" in str(again.value)
    assert sim.counters()["jobs_created"] == 1 and imports(sim) == 1


def test_post_timeout_says_the_import_may_have_been_received(norce_simulator, monkeypatch):
    use_simulator(monkeypatch, norce_simulator.sim, timeout=0.5)
    sim = norce_simulator.sim
    sim.add_fault("connect", "timeout", count=1, delay=1.0, after_processing=True)
    with pytest.raises(NorceJobError, match="may have been received by Norce") as err:
        make(items=ITEMS[:1]).execute({})
    assert "Timeout" in str(err.value)
    assert imports(sim) == 1


def test_failed_job_is_posted_again_by_a_retry_and_succeeded_ones_are_not(sim):
    items = [*ITEMS[:2], onhand("FAIL-1", 1), *ITEMS[3:]]
    store = DictStateStore()
    with pytest.raises(NorceJobError, match="FAIL-1"):
        make(items=items).execute({"task_state_store": store})
    assert sim.counters()["jobs_created"] == 3

    with pytest.raises(NorceJobError, match="FAIL-1"):
        make(items=items).execute({"task_state_store": store})
    # a Failed job applied nothing, so only its batch is posted again (as ResumableJobMixin resubmits)
    assert sim.counters()["jobs_created"] == 4


def test_changed_batch_content_is_posted_not_confused_with_the_old_job(sim):
    store = DictStateStore()
    make(wait_for_completion=False).execute({"task_state_store": store})  # succeeds: state cleared
    assert store.data == {}
    store.set("norce_connect_batch_0", {"job_id": "1001", "sha256": "something else"})
    make().execute({"task_state_store": store})
    assert sim.counters()["jobs_created"] == 6


def test_validation_failures_of_a_recorded_batch_still_fail_the_retry(requests_mock, monkeypatch):
    """Norce's own ValidationSummary (requests-mock: the simulator follows the same contracts as the
    operator's checks, so no item it refuses can be posted) is recorded and fails the retry too."""
    mock_norce(requests_mock, monkeypatch)
    summary = {
        "NrOfItemsInTotal": 2,
        "NrOfValidationFailures": 1,
        "Messages": ["Row 2: Sku 100002 is unknown."],
    }
    requests_mock.post(
        f"{MOCK_BASE}/commerce/connect/4.0/Product/ImportOnhands",
        json={"StatusCode": "Success", "Description": "", "JobId": "21", "ValidationSummary": summary},
    )
    requests_mock.get(
        f"{MOCK_BASE}/commerce/connect/4.0/Job/Get", json={"JobId": 21, "StatusId": 1, "IsFinished": False}
    )
    items = [onhand("100001", 1), onhand("100002", 2)]
    store = DictStateStore()
    for _ in range(2):
        with pytest.raises(NorceJobError, match="in validation"):
            make(items=items).execute({"task_state_store": store})
    posts = [r for r in requests_mock.request_history if r.method == "POST" and "ImportOnhands" in r.url]
    assert len(posts) == 1


class FakeVariable:
    """Airflow's Variable API (get/set/delete) over a dict: the fallback ledger below Airflow 3.3."""

    values: dict[str, str] = {}

    @classmethod
    def get(cls, key, default=None):
        return cls.values.get(key, default)

    @classmethod
    def set(cls, key, value, description=None):
        cls.values[key] = value

    @classmethod
    def delete(cls, key):
        cls.values.pop(key, None)


class FakeTI:
    dag_id, task_id, run_id, map_index = "nightly", "import", "scheduled__2026-11-20T00:00:00+00:00", 3

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_variable_ledger_below_3_3_survives_a_retry(sim, monkeypatch):
    FakeVariable.values = {}
    context = {"ti": FakeTI()}
    ledger = ledger_for(context, variable=FakeVariable)
    assert isinstance(ledger, VariableLedger)
    assert (
        variable_key(FakeTI()) == "norce_connect_ledger.nightly.import.3.scheduled__2026-11-20T00:00:00+00:00"
    )

    import airflow_provider_norce.operators.connect as connect

    # The operator calls the ledger_for it imported into its own module: patch it there.
    monkeypatch.setattr(connect, "ledger_for", lambda ctx: ledger_for(ctx, variable=FakeVariable))
    sim.connect.job_duration = 1.0
    with pytest.raises(NorceJobError, match="still running"):
        make(timeout=0.1).execute(context)
    assert set(FakeVariable.values) == {variable_key(FakeTI())}

    make().execute(context)

    assert sim.counters()["jobs_created"] == 3
    assert FakeVariable.values == {}  # deleted on success
    summary = context["ti"].pushed["summary"]
    assert summary["succeeded"] == len(summary["jobs"]) == 3 and summary["row_errors"] == 0


def test_task_state_ledger_is_preferred():
    assert isinstance(ledger_for({"task_state_store": DictStateStore(), "ti": FakeTI()}), TaskStateLedger)
