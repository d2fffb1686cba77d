"""Reading overlaps posting in NorceConnectImportOperator (issue 11 item 5), against the simulator (real HTTP).

The next batch is read and encoded on a worker thread while the calling thread posts the current one. These
tests prove, with events instead of sleeps, that it really runs ahead (and only one batch ahead), that the
POSTs, bodies and ledger entries are what the sequential loop produced, and that the worker thread never
outlives the import: not at the end, not on a reader error, a refused POST, the ledger's "uncertain"
refusal or an exception that nothing in the task may catch.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from norce_connect_support import DictStateStore, HistoryStore, WorkerKilled, imports, onhand, use_simulator

import airflow_provider_norce.hooks.norce as hook_module
from airflow_provider_norce.connect.items import FileItems
from airflow_provider_norce.connect.ledger import STATE_KEY
from airflow_provider_norce.exceptions import NorceJobError
from airflow_provider_norce.operators.connect import NorceConnectImportOperator

pytestmark = pytest.mark.norce_simulator(job_duration=600)

METHOD = "Product/ImportOnhands"
#: A guard against a deadlock when the code under test is broken, never a timing the tests rely on.
GUARD_SECONDS = 30


@pytest.fixture
def sim(norce_simulator, monkeypatch):
    use_simulator(monkeypatch, norce_simulator.sim)
    return norce_simulator.sim


@pytest.fixture(autouse=True)
def no_reader_thread_left() -> Iterator[None]:
    yield
    assert reader_threads() == [], "the reader thread outlived the import"


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("norce-import-reader")]


def items(n: int) -> list[dict[str, Any]]:
    return [{**onhand(f"P{i:05d}-å", i), "IncomingValue": i % 7} for i in range(n)]


def body_of(batch: list[dict[str, Any]]) -> bytes:
    """The body the sequential loop posted (and the ledger digested) before the overlap existed."""
    return json.dumps(batch, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


class Watch:
    """What both sides saw: items asked of the source (second pass), POSTs started and finished."""

    def __init__(self, gate_after: int | None = None) -> None:
        self.posts_started = 0
        self.posts_done = 0
        self.bodies: list[bytes] = []
        #: (item number, POSTs finished when the source was asked for it), second pass only
        self.asked: list[tuple[int, int]] = []
        self.gate_after = gate_after  # set ``gate`` when item number ``gate_after`` is handed out
        self.gate = threading.Event()
        self.gate_was_open: bool | None = None


class WatchedItems:
    """An item source (the operator's ItemSource protocol) that reports its second pass (the posting
    one) to a :class:`Watch`; the first pass is the operator's validation scan."""

    def __init__(self, values: list[dict[str, Any]], watch: Watch) -> None:
        self.name = "watched items"
        self.values = values
        self.watch = watch
        self.passes = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.passes += 1
        if self.passes == 1:
            yield from self.values
            return
        for number, value in enumerate(self.values, start=1):
            self.watch.asked.append((number, self.watch.posts_done))
            if number == self.watch.gate_after:
                self.watch.gate.set()
            yield value


def watched_hook(watch: Watch, gate_post: int | None = None) -> type:
    """A real NorceHook that tells ``watch`` about every import POST; POST number ``gate_post`` (1-based)
    is held, once started, until the source has handed out ``watch.gate_after`` items."""

    class WatchedHook(hook_module.NorceHook):
        def run(self, endpoint: str, method: str = "GET", **kwargs: Any) -> Any:
            if method != "POST":
                return super().run(endpoint, method, **kwargs)
            watch.posts_started += 1
            watch.bodies.append(kwargs["data"])
            if watch.posts_started == gate_post:
                watch.gate_was_open = watch.gate.wait(GUARD_SECONDS)
            response = super().run(endpoint, method, **kwargs)
            watch.posts_done += 1
            return response

    return WatchedHook


def operator(source: Any, batch_size: int, task_id: str = "overlap") -> NorceConnectImportOperator:
    op = NorceConnectImportOperator(
        task_id=task_id,
        import_method=METHOD,
        items=[],  # replaced below: the source is the input seam
        connect_header={"AccountId": 1},
        batch_size=batch_size,
        wait_for_completion=False,
    )
    op._source = lambda: source  # type: ignore[method-assign]
    return op


def test_the_next_batch_is_read_while_the_post_is_in_flight_and_no_further(sim, monkeypatch):
    size, values = 40, items(130)  # 4 batches, the last one short
    watch = Watch(gate_after=2 * size)  # the whole of batch 2
    monkeypatch.setattr(hook_module, "NorceHook", watched_hook(watch, gate_post=1))
    store = HistoryStore()

    job_ids = operator(WatchedItems(values, watch), size).execute({"task_state_store": store})

    # POST 1 started and waited: batch 2 was read meanwhile (a sequential loop would hang here).
    assert watch.gate_was_open is True
    # Only one ahead: item j of batch b+2 was asked for only once POST b had finished.
    for number, posts_done in watch.asked:
        batch = (number - 1) // size  # 0-based batch of this item
        assert posts_done >= batch - 1, f"item {number} was read while {posts_done} POSTs had finished"
    # The POSTs, in order, carry exactly the bytes the sequential loop posted.
    batches = [values[i : i + size] for i in range(0, len(values), size)]
    assert watch.bodies == [body_of(batch) for batch in batches]
    assert imports(sim) == 4 and job_ids == sorted(job_ids, key=int)
    # The ledger (what a retry trusts): each batch marked in flight before its POST, then its job recorded,
    # in order, with the digest of that body.
    assert [key for key, _ in store.history] == [STATE_KEY.format(index=i) for i in range(4) for _ in "mj"]
    for index, (job_id, batch) in enumerate(zip(job_ids, batches, strict=True)):
        digest = hashlib.sha256(body_of(batch)).hexdigest()
        marker, entry = store.history[2 * index][1], store.history[2 * index + 1][1]
        assert marker == {"uncertain": True, "in_flight": True, "sha256": digest}
        assert entry["job_id"] == job_id and entry["sha256"] == digest


@pytest.mark.parametrize("fmt", ["jsonl", "array"])
def test_a_file_import_posts_the_same_bodies_in_order(sim, monkeypatch, tmp_path, fmt):
    size, values = 25, items(110)
    path = tmp_path / f"stock.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(v) + "\n" for v in values), encoding="utf-8")
    else:
        path.write_text("[\n" + ",\n".join(json.dumps(v, indent=2) for v in values) + "\n]", encoding="utf-8")
    watch = Watch()
    monkeypatch.setattr(hook_module, "NorceHook", watched_hook(watch))

    job_ids = NorceConnectImportOperator(
        task_id="file",
        import_method=METHOD,
        items_path=str(path),
        connect_header={"AccountId": 1},
        batch_size=size,
        wait_for_completion=False,
    ).execute({})

    assert watch.bodies == [body_of(values[i : i + size]) for i in range(0, len(values), size)]
    assert len(job_ids) == 5 == imports(sim)
    hook = hook_module.NorceHook("norce_default")
    jobs = [
        hook.run(hook.service_url("connect") + "Job/Get", params={"id": job_id}).json() for job_id in job_ids
    ]
    assert [job["Totals"] for job in jobs] == [25, 25, 25, 25, 10]


class FileChangedAfterScan:
    """A file that was valid when the operator validated it and holds a bad line when it posts it (it was
    rewritten in between): both passes are real :class:`FileItems` reads."""

    def __init__(self, valid: FileItems, broken: FileItems) -> None:
        self.name = valid.name
        self.sources = [valid, broken]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.sources.pop(0))


def test_a_reader_error_mid_file_surfaces_unchanged_after_the_batches_before_it(sim, tmp_path):
    size, values = 10, items(45)
    valid, broken = tmp_path / "valid.jsonl", tmp_path / "broken.jsonl"
    lines = [json.dumps(v) for v in values]
    valid.write_text("\n".join(lines) + "\n")
    lines[26] = lines[26][:-5]  # line 27, in batch 3: cut short
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as sequential:  # what the reader says, read on this thread
        list(FileItems(str(broken), "overlap"))
    source = FileChangedAfterScan(FileItems(str(valid), "overlap"), FileItems(str(broken), "overlap"))

    with pytest.raises(ValueError) as raised:
        operator(source, size).execute({})

    assert str(raised.value) == str(sequential.value)
    assert "line 27 is not valid JSON" in str(raised.value)
    assert imports(sim) == 2  # the two batches before the bad line, as the sequential loop posted them


def test_a_refused_post_stops_the_reader(sim):
    sim.add_fault("connect", "html", count=1, status=400)

    with pytest.raises(NorceJobError, match=r"did not accept batch 1 of 3"):
        operator(iter_source(items(30)), 10).execute({})

    assert imports(sim) == 1


def test_an_uncertain_batch_stops_the_reader_before_any_post(sim):
    values = items(30)
    store = DictStateStore()
    digest = hashlib.sha256(body_of(values[:10])).hexdigest()
    store.set(STATE_KEY.format(index=0), {"uncertain": True, "sha256": digest})

    with pytest.raises(NorceJobError, match=r"batch 1 of 3 .* was posted on an earlier try"):
        operator(iter_source(values), 10).execute({"task_state_store": store})

    assert imports(sim) == 0


@pytest.mark.parametrize("fatal", [WorkerKilled, KeyboardInterrupt])
def test_an_exception_nothing_may_catch_still_stops_the_reader(sim, fatal):
    class DyingStore(DictStateStore):
        def set(self, key: str, value: Any, **kwargs: Any) -> None:
            super().set(key, value, **kwargs)
            if "job_id" in value:  # not at batch 1's in-flight marker, written before its POST
                raise fatal  # right after batch 1's job id was recorded

    store = DyingStore()
    with pytest.raises(fatal):
        operator(iter_source(items(30)), 10).execute({"task_state_store": store})

    assert imports(sim) == 1
    assert store.get(STATE_KEY.format(index=0))["job_id"]


def iter_source(values: list[dict[str, Any]]) -> Any:
    """A plain list as an item source (every pass yields the same items)."""

    class Source:
        name = "items"

        def __iter__(self) -> Iterator[dict[str, Any]]:
            return iter(values)

    return Source()


def test_a_remote_file_is_resolved_once_on_the_task_thread(sim, monkeypatch, tmp_path):
    """The worker thread must not look up Airflow connections (below 3.3 the task's channel to its
    supervisor has no lock): the file system is resolved by the validation scan, on the task's thread."""
    import airflow_provider_norce.connect.items as connect_items

    path = tmp_path / "stock.jsonl"
    values = items(25)
    path.write_text("".join(json.dumps(v) + "\n" for v in values), encoding="utf-8")
    resolved_on: list[str] = []
    real_fs_and_path = connect_items.fs_and_path

    def recording_fs_and_path(location: Any) -> Any:
        resolved_on.append(threading.current_thread().name)
        return real_fs_and_path(location)

    monkeypatch.setattr(connect_items, "fs_and_path", recording_fs_and_path)

    job_ids = NorceConnectImportOperator(
        task_id="remote",
        import_method=METHOD,
        items_path=f"file://{path}",
        connect_header={"AccountId": 1},
        batch_size=10,
        wait_for_completion=False,
    ).execute({})

    assert len(job_ids) == 3 == imports(sim)
    assert resolved_on == [threading.current_thread().name]
