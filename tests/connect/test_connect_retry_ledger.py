"""A task retry never posts an import twice: durable state keyed by batch index, proven by the simulator's
``jobs_created`` counter. Two ``execute`` calls sharing one state store are two tries of one task instance."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from norce_connect_support import (
    MOCK_BASE,
    CrashingStateStore,
    DictStateStore,
    HistoryStore,
    WorkerKilled,
    imports,
    mock_norce,
    onhand,
    use_simulator,
)

from airflow_provider_norce.connect.ledger import (
    STATE_KEY,
    TaskStateLedger,
    VariableLedger,
    ledger_for,
    variable_key,
)
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
    # Each batch writes two entries: its in-flight marker, then its job id. Entry 4 is batch 2's job id:
    # the worker dies right after it was recorded, strictly between two batches.
    store = CrashingStateStore(crash_after=4)
    with pytest.raises(WorkerKilled):
        make().execute({"task_state_store": store})
    assert sim.counters()["jobs_created"] == 2
    assert store.get("norce_connect_batch_1")["job_id"] == "1002"

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


# -- the in-flight marker: a worker killed during a POST -------------------------------------------------


def key(index: int) -> str:
    return STATE_KEY.format(index=index)


class DiesInsteadOfRecording(DictStateStore):
    """The worker dies after Norce answered batch ``index``'s POST and before its job id is recorded: the
    gap the in-flight marker closes (Norce has the batch, the ledger has no job for it)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.died = False

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        if not self.died and key == STATE_KEY.format(index=self.index) and "job_id" in value:
            self.died = True
            raise WorkerKilled
        super().set(key, value, **kwargs)


class UnreachableStore(DictStateStore):
    """Every write from the ``fail_from``-th on fails, as when the worker loses the API server."""

    def __init__(self, fail_from: int) -> None:
        super().__init__()
        self.fail_from = fail_from

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        if self.fail_from and self.sets + 1 >= self.fail_from:
            raise RuntimeError("API server unreachable (simulated)")
        super().set(key, value, **kwargs)


def key_to_delete(message: str) -> str:
    """The task state key the refusal tells the user to delete."""
    found = re.search(r"delete the task state key '([^']+)' of this task instance", message)
    assert found, message
    return found.group(1)


def test_every_post_is_marked_in_flight_first_and_the_mark_is_replaced_by_its_job(sim):
    store = HistoryStore()

    job_ids = make(wait_for_completion=False).execute({"task_state_store": store})

    assert [k for k, _ in store.history] == [key(0), key(0), key(1), key(1), key(2), key(2)]
    for index, job_id in enumerate(job_ids):
        marker, record = store.history[2 * index][1], store.history[2 * index + 1][1]
        assert marker == {"uncertain": True, "in_flight": True, "sha256": record["sha256"]}
        assert record["job_id"] == job_id and "in_flight" not in record and "uncertain" not in record
    assert store.data == {}  # cleared on success, as before


def test_killed_before_the_post_left_the_retry_refuses_and_deleting_the_key_posts_only_the_rest(sim):
    store = CrashingStateStore(crash_after=3)  # batch 2's marker is written, then the worker dies
    with pytest.raises(WorkerKilled):
        make().execute({"task_state_store": store})
    assert imports(sim) == 1 and sim.counters()["jobs_created"] == 1
    assert store.get(key(1)) == {"uncertain": True, "in_flight": True, "sha256": store.get(key(1))["sha256"]}

    with pytest.raises(NorceJobError) as refused:
        make().execute({"task_state_store": store})

    message = str(refused.value)
    assert "Task 'import': batch 2 of 3 (items 3-4) of Product/ImportOnhands was in flight" in message
    assert "the worker running that try ended (killed, lost)" in message
    assert "so Norce may have received it. It is not posted again automatically." in message
    assert "This try posted nothing." in message
    assert "Check the Connect jobs in Norce Admin; if it never arrived, delete" in message
    assert "and clear this task" in message
    assert imports(sim) == 1  # nothing posted: not batch 2, not batch 3

    store.delete(key_to_delete(message))  # as the message says: it never arrived
    job_ids = make().execute({"task_state_store": store})

    assert job_ids == ["1001", "1002", "1003"]
    assert imports(sim) == 3 and sim.counters()["jobs_created"] == 3  # batches 2 and 3, once each
    assert store.data == {}


def test_killed_after_norce_took_the_post_the_retry_refuses_and_the_job_put_in_the_entry_resumes(sim):
    store = DiesInsteadOfRecording(index=1)
    with pytest.raises(WorkerKilled):
        make().execute({"task_state_store": store})
    assert sim.counters()["jobs_created"] == 2  # Norce has batch 2 as job 1002; the ledger does not
    assert store.get(key(1))["in_flight"] is True

    with pytest.raises(NorceJobError, match="was in flight") as refused:
        make().execute({"task_state_store": store})
    assert imports(sim) == 2

    # It did arrive (job 1002 in Norce Admin): the message's other way out.
    recipe = re.search(r"set that entry to (\{.*?\}) instead", str(refused.value))
    assert recipe, refused.value
    entry = json.loads(recipe.group(1).replace("<its job id>", "1002"))
    store.set(key_to_delete(str(refused.value)), entry)
    job_ids = make().execute({"task_state_store": store})

    assert job_ids == ["1001", "1002", "1003"]
    assert imports(sim) == 3 and sim.counters()["jobs_created"] == 3  # only batch 3 was posted


def test_a_marker_that_cannot_be_recorded_means_no_post_and_the_retry_posts_the_batch(sim):
    store = UnreachableStore(fail_from=3)  # batch 1 marked and recorded; batch 2's marker fails
    with pytest.raises(NorceJobError) as err:
        make().execute({"task_state_store": store})

    message = str(err.value)
    assert "batch 2 of 3 (items 3-4) of Product/ImportOnhands was not posted" in message
    assert "in-flight marker could not be recorded" in message and repr(key(1)) in message
    assert "RuntimeError: API server unreachable (simulated)" in message
    assert "Nothing of this batch was posted; a retry posts it" in message
    assert imports(sim) == 1
    assert store.get(key(0))["job_id"] == "1001" and store.get(key(1)) is None

    store.fail_from = 0  # the API server is back
    assert make().execute({"task_state_store": store}) == ["1001", "1002", "1003"]
    assert imports(sim) == 3 and sim.counters()["jobs_created"] == 3


def test_a_refused_post_is_recorded_as_not_posted_and_the_retry_posts_it(sim):
    store = DictStateStore()
    sim.add_fault("connect", "html", count=1, status=400)
    with pytest.raises(NorceJobError, match="did not accept batch 1 of 3"):
        make().execute({"task_state_store": store})
    entry = store.get(key(0))
    assert entry == {"not_posted": True, "sha256": entry["sha256"]}
    assert imports(sim) == 1 and sim.counters()["jobs_created"] == 0

    assert make().execute({"task_state_store": store}) == ["1001", "1002", "1003"]
    assert imports(sim) == 4 and sim.counters()["jobs_created"] == 3


def test_a_refusing_retry_posts_nothing_not_even_a_failed_batch_before_the_refused_one(sim):
    from airflow_provider_norce.connect.jobs import fetch_job_state
    from airflow_provider_norce.hooks.norce import NorceHook

    items = [onhand("FAIL-1", 1), *ITEMS[1:]]  # batch 1's job ends Failed (applies nothing)
    store = CrashingStateStore(crash_after=3)  # batch 2's marker is written, then the worker dies
    with pytest.raises(WorkerKilled):
        make(items=items).execute({"task_state_store": store})
    sim.connect.job_duration = 0.0  # every job is finished now
    assert fetch_job_state(NorceHook("norce_default"), "1001").status == "Failed"

    with pytest.raises(NorceJobError, match=r"batch 2 of 3 .* was in flight .* This try posted nothing"):
        make(items=items).execute({"task_state_store": store})

    assert imports(sim) == 1  # the Failed batch 1 would be posted again, but not by a refusing retry


def test_the_in_flight_refusal_names_the_rest_route_of_the_key():
    ledger = ledger_for({"task_state_store": DictStateStore(), "ti": FakeTI()})
    assert ledger.describe(1) == (
        "the task state key 'norce_connect_batch_1' of this task instance (REST API: DELETE "
        "/api/v2/dags/nightly/dagRuns/scheduled__2026-11-20T00:00:00+00:00/taskInstances/import/"
        "state-store/norce_connect_batch_1?map_index=3)"
    )
    try:  # the route is Airflow's own (3.3+)
        from airflow.api_fastapi.core_api.routes.public.task_state_store import task_state_store_router
    except ImportError:
        return
    paths = {(method, route.path) for route in task_state_store_router.routes for method in route.methods}
    assert (
        "DELETE",
        "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/state-store/{key:path}",
    ) in paths


class DyingVariable(FakeVariable):
    """The Variable API of a worker that dies right after its ``die_after``-th write is stored."""

    die_after = 0
    writes = 0

    @classmethod
    def set(cls, key, value, description=None):
        super().set(key, value, description)
        cls.writes += 1
        if cls.writes == cls.die_after:
            raise WorkerKilled


def test_variable_ledger_in_flight_marker_removing_only_its_entry_posts_only_the_rest(sim, monkeypatch):
    import airflow_provider_norce.operators.connect as connect

    FakeVariable.values = {}
    DyingVariable.writes, DyingVariable.die_after = 0, 3  # batch 2's marker is stored, then the worker dies
    monkeypatch.setattr(connect, "ledger_for", lambda ctx: ledger_for(ctx, variable=DyingVariable))
    context = {"ti": FakeTI()}
    with pytest.raises(WorkerKilled):
        make().execute(context)

    with pytest.raises(NorceJobError, match="was in flight") as refused:
        make().execute(context)
    name = variable_key(FakeTI())
    assert f'delete the entry "1" of the Airflow Variable {name!r}' in str(refused.value)
    assert "remove only that entry" in str(refused.value)
    assert imports(sim) == 1

    entries = json.loads(FakeVariable.values[name])
    del entries["1"]  # as the message says (deleting the whole Variable would re-post batch 1)
    FakeVariable.values[name] = json.dumps(entries)
    assert make().execute(context) == ["1001", "1002", "1003"]
    assert imports(sim) == 3 and FakeVariable.values == {}


def test_variable_ledger_marker_write_failure_posts_nothing(sim, monkeypatch):
    import airflow_provider_norce.operators.connect as connect

    class BrokenVariable(FakeVariable):
        @classmethod
        def set(cls, key, value, description=None):
            raise RuntimeError("metadata database unreachable (simulated)")

    FakeVariable.values = {}
    monkeypatch.setattr(connect, "ledger_for", lambda ctx: ledger_for(ctx, variable=BrokenVariable))
    with pytest.raises(NorceJobError, match=r"batch 1 of 3 .* was not posted: its in-flight marker") as err:
        make().execute({"ti": FakeTI()})
    assert "metadata database unreachable" in str(err.value)
    assert imports(sim) == 0 and FakeVariable.values == {}
