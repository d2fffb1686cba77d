"""The staging folder of a sliced export, end to end against the simulator: killed tries, corrupted and
foreign parts, unreadable plans, two exports of one destination, orphaned folders.

Every test compares the final file byte for byte with an uninterrupted export of the same query, and checks
that nothing is left beside it (no staging folder, no lock file, no temporary file).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_provider_norce.operators.query import NorceQueryExportOperator
from airflow_provider_norce.query.destination_lock import DestinationBusyError, destination_lock, lock_path
from airflow_provider_norce.query.staging import (
    FOLDER_MARK,
    PLAN_FILE,
    Part,
    PartWriter,
    Staging,
    StagingError,
)

MONTH = "Updated ge 2026-11-01T00:00:00Z and Updated lt 2026-12-01T00:00:00Z"
LATER = "Updated ge 2026-11-05T00:00:00Z and Updated lt 2026-12-01T00:00:00Z"  # another filter
PREVIOUS = b'{"previous":"file"}\n'
SLICED = {"max_concurrency": 4, "slice_rows": 300}


class _Ti:
    """A task instance on try 1 of 2: a failure is retried, so the staging folder is kept for it."""

    try_number = 1
    max_tries = 1


class _LastTi:
    """The last try: no retry follows."""

    try_number = 2
    max_tries = 1


def export(path: Any, retry: bool = True, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("filter", MONTH)
    kwargs.setdefault("filter_application", False)
    op = NorceQueryExportOperator(task_id="export_orders", destination=str(path), **kwargs)
    return op.execute({"params": {}, "ti": _Ti() if retry else _LastTi()})


def staging_folders(directory: Any, name: str = "orders.jsonl") -> list[str]:
    return sorted(entry for entry in os.listdir(directory) if entry.startswith(f".{name}{FOLDER_MARK}"))


def the_folder(directory: Any, name: str = "orders.jsonl") -> str:
    folders = staging_folders(directory, name)
    assert len(folders) == 1, folders
    return os.path.join(str(directory), folders[0])


def part_names(folder: str) -> list[str]:
    return sorted(name for name in os.listdir(folder) if Part.parse(name) is not None)


def snapshot(directory: Any) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> content): what "touched nothing" compares."""
    found: dict[str, bytes] = {}
    for root, _dirs, files in os.walk(str(directory)):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, str(directory))] = handle.read()
    return found


def read_bytes(path: Any) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def references(norce_simulator, tmp_path) -> dict[str, bytes]:
    """The uninterrupted exports of the month (JSON lines and CSV), read one page at a time."""
    folder = tmp_path / "reference"
    folder.mkdir()
    found = {}
    for file_format in ("jsonl", "csv"):
        export(folder / f"orders.{file_format}", max_concurrency=1, file_format=file_format)
        found[file_format] = read_bytes(folder / f"orders.{file_format}")
    assert len(found["jsonl"].splitlines()) > 1_500
    return _Bytes(found)


class _Bytes(dict):
    """The reference files, shown by name only in a falsifying example."""

    def __repr__(self) -> str:
        return f"<reference exports: {', '.join(f'{k} ({len(v)} bytes)' for k, v in self.items())}>"


# -- a worker killed anywhere ------------------------------------------------------------------------


class Crash(Exception):
    """The worker died here (the test's SIGKILL): raised at the k-th write of the staging folder, and at
    every one after it, so nothing the dead try would have cleaned up is cleaned up."""


class Killer:
    """Counts the writes to the staging folder of one try; the ``at``-th one and every later one crash."""

    def __init__(self, at: int | tuple[str, int] | None) -> None:
        self.at = at
        self.count = 0
        self.kinds: dict[str, int] = {}
        self.dead = False
        self.where = ""
        self._lock = threading.Lock()

    def step(self, where: str) -> None:
        with self._lock:
            if self.dead:
                raise Crash(f"dead since {self.where}")
            self.count += 1
            kind = where.split(" ")[0]
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            if isinstance(self.at, tuple):
                due = self.at == (kind, self.kinds[kind])
            else:
                due = self.at is not None and self.count >= self.at
            if due:
                self.dead, self.where = True, f"write {self.count}: {where}"
                raise Crash(self.where)

    def half_dead(self, where: str) -> bool:
        """Whether this write dies in the middle (the caller writes half of it first)."""
        try:
            self.step(where)
        except Crash:
            return True
        return False


@contextlib.contextmanager
def killed_at(at: int | tuple[str, int] | None):
    """Patch every write, rename and removal of the staging folder (and every part copied into the file)
    to count towards ``at``: the ``at``-th of them, or the n-th of one kind (``("renamed", 3)``: just after
    the third rename). Yields the :class:`Killer` (its ``count`` is the writes of a whole try)."""
    killer = Killer(at)
    real_open_write = Staging._open_write
    real_rename = Staging._rename
    real_remove_location = Staging._remove_location
    real_remove = Staging.remove
    real_makedirs = Staging._makedirs
    real_copy = Staging.copy_part
    real_lines = Staging.lines
    real_write = PartWriter.write

    @contextlib.contextmanager
    def open_write(self, location):
        killer.step(f"open {os.path.basename(str(location))}")
        with real_open_write(self, location) as handle:
            yield handle
        killer.step(f"written {os.path.basename(str(location))}")

    def rename(self, source, target):
        killer.step(f"rename to {os.path.basename(str(target))}")
        real_rename(self, source, target)
        killer.step(f"renamed to {os.path.basename(str(target))}")

    def remove_location(self, location):
        killer.step(f"remove {os.path.basename(str(location))}")
        real_remove_location(self, location)

    def remove(self):
        killer.step("rmtree the folder")
        real_remove(self)

    def makedirs(self):
        killer.step("mkdir the folder")
        real_makedirs(self)

    def copy_part(self, part, out):
        killer.step(f"join {part.name}")
        return real_copy(self, part, out)

    def lines(self, part):
        killer.step(f"join {part.name}")
        return real_lines(self, part)

    def write(self, data):
        if killer.half_dead("page into a part"):
            self.handle.write(data[: len(data) // 2])  # the page is cut mid-line, as a kill leaves it
            self.handle.flush()
            raise Crash(killer.where)
        return real_write(self, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Staging, "_open_write", open_write)
        patch.setattr(Staging, "_rename", rename)
        patch.setattr(Staging, "_remove_location", remove_location)
        patch.setattr(Staging, "remove", remove)
        patch.setattr(Staging, "_makedirs", makedirs)
        patch.setattr(Staging, "copy_part", copy_part)
        patch.setattr(Staging, "lines", lines)
        patch.setattr(PartWriter, "write", write)
        yield killer


@contextlib.contextmanager
def unreadable_plan():
    """plan.json answers EACCES (a transient object-store error, a permission flipped): we run as root,
    so chmod 000 would not do it."""
    real_open = Staging._open

    @contextlib.contextmanager
    def refusing(self, location):
        if os.path.basename(str(location)) == PLAN_FILE:
            raise PermissionError(13, "Permission denied", str(location))
        with real_open(self, location) as handle:
            yield handle

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Staging, "_open", refusing)
        yield


#: the kinds of write a try can die at (the first word of :meth:`Killer.step`'s ``where``)
KINDS = ("open", "written", "rename", "renamed", "remove", "rmtree", "mkdir", "join", "page")

#: where a try dies: at its k-th write (an uninterrupted try makes about 120), or at the n-th of a kind
KILL = st.one_of(
    st.integers(min_value=1, max_value=130),
    st.tuples(st.sampled_from(KINDS), st.integers(min_value=1, max_value=20)),
)

CORRUPTIONS = (
    "truncate",
    "flip",
    "delete",
    "foreign",
    "beyond",
    "temp",
    "bad plan",
    "plan of another export",
    "altered plan",
    "unreadable plan",
)


def corrupt(folder: str, what: str, pick: int, where: float) -> None:
    """Damage the staging folder between two tries as storage, an operator or a dead writer might."""
    parts = part_names(folder)
    part = os.path.join(folder, parts[pick % len(parts)]) if parts else None
    plan_path = os.path.join(folder, PLAN_FILE)
    if what == "truncate" and part:
        data = read_bytes(part)
        if data:
            cut = max(1, min(len(data) - 1, int(len(data) * where)))
            if data[cut - 1 : cut] == b"\n":
                cut -= 1  # mid-line
            with open(part, "r+b") as handle:
                handle.truncate(cut)
    elif what == "flip" and part:
        data = bytearray(read_bytes(part))
        if data:
            data[int((len(data) - 1) * where)] ^= 0x04
            with open(part, "wb") as handle:
                handle.write(bytes(data))
    elif what == "delete" and part:
        os.unlink(part)
    elif what in ("foreign", "beyond") and part:
        # a valid part (its name matches its content) of another plan, or of this plan beyond its slices:
        # adopting it would write its rows twice
        parsed = Part.parse(os.path.basename(part))
        assert parsed is not None
        plan_id = "0123456789ab" if what == "foreign" else parsed.plan_id
        index = (parsed.index + 1) if what == "foreign" else 99_999
        name = Part.name_for(index, plan_id, parsed.rows, parsed.first, parsed.last, parsed.crc)
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(read_bytes(part))
    elif what == "temp":
        for name in (".writing-00001-0123456789ab", ".writing-plan-0123456789ab"):
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(b'{"Id":1,"half a ro')
    elif what == "bad plan" and os.path.exists(plan_path):
        with open(plan_path, "wb") as handle:
            handle.write([b"", b"{", b"[]", b"\xff\xfe", b'{"version": 2}', b"null"][pick % 6])
    elif what in ("plan of another export", "altered plan") and os.path.exists(plan_path):
        with open(plan_path, "rb") as handle:
            plan = json.load(handle)
        if what == "altered plan":  # still a valid plan of this export, cut in other ranges
            plan[("width", "head_end", "high")[pick % 3]] += 1 + pick
        else:
            plan["fingerprint"] = "f" * 16
        with open(plan_path, "w") as handle:
            json.dump(plan, handle)


#: what happens to the staging folder between two tries: (damage, which part, where in it)
DAMAGE = st.lists(
    st.tuples(
        st.sampled_from(CORRUPTIONS),
        st.integers(min_value=0, max_value=50),
        st.floats(min_value=0.0, max_value=1.0),
    ),
    max_size=3,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    file_format=st.sampled_from(["jsonl", "jsonl", "csv"]),
    first=KILL,  # the first try always dies somewhere
    retries=st.lists(st.tuples(st.one_of(st.none(), KILL), DAMAGE), max_size=2),  # None: not killed
)
@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_an_export_killed_after_any_write_and_resumed_writes_the_uninterrupted_file(
    norce_simulator, references, tmp_path, file_format, first, retries
):
    """Kill the export at its k-th write to the staging folder (the plan, a page of a part, a part's
    rename, a part joined, the folder's removal...), damage the folder between tries, retry: the file
    is the uninterrupted export's bytes, the previous file stays until then, nothing is left beside it."""
    directory = tempfile.mkdtemp(dir=tmp_path)
    destination = os.path.join(directory, f"orders.{file_format}")
    with open(destination, "wb") as handle:
        handle.write(PREVIOUS)
    options = {**SLICED, "file_format": file_format}
    done = False
    for at, damage in [(first, []), *retries]:
        folders = staging_folders(directory, f"orders.{file_format}")
        folder = os.path.join(directory, folders[0]) if folders else None
        unreadable = False
        if folder:
            for what, pick, where in damage:
                if what == "unreadable plan":
                    unreadable = True
                else:
                    corrupt(folder, what, pick, where)
        if unreadable and folder and os.path.exists(os.path.join(folder, PLAN_FILE)):
            before = snapshot(directory)
            with unreadable_plan(), pytest.raises(StagingError, match="cannot be read now") as failed:
                export(destination, **options)
            assert folder in str(failed.value)
            assert snapshot(directory) == before, "the try touched nothing"
        with killed_at(at) as killer:
            try:
                export(destination, **options)
            except Crash:
                written = read_bytes(destination)
                if written != PREVIOUS:  # only once the file is complete: killed removing the folder
                    assert written == references[file_format] and "rmtree" in killer.where, killer.where
                event(f"killed at: {killer.where.split(': ')[1].split(' ')[0]}")
                continue
            except StagingError:
                # only a part damaged *during* this try fails it; between tries the resume catches it
                pytest.fail("a damaged part was not caught when the try resumed")
        done = True
        break
    if not done:
        export(destination, **options)
    assert read_bytes(destination) == references[file_format]
    assert os.listdir(directory) == [f"orders.{file_format}"], "no staging, lock or temporary file left"


@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_the_writes_a_killed_try_can_die_at_are_all_reached(norce_simulator, references, tmp_path):
    """The state machine above draws k up to 260: an uninterrupted try makes fewer writes than that, so
    every point of the export (down to the removal of the folder) is a place it dies at."""
    with killed_at(None) as killer:
        export(tmp_path / "orders.jsonl", **SLICED)
    assert 40 < killer.count < 260, killer.kinds
    assert set(killer.kinds) == set(KINDS) - {"remove"}, killer.kinds  # nothing is removed on the way
    assert read_bytes(tmp_path / "orders.jsonl") == references["jsonl"]


@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_a_killed_last_try_leaves_no_staging(norce_simulator, references, tmp_path):
    """No retry follows the last try: its staging (customer rows) is removed when it fails."""
    destination = tmp_path / "orders.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        real = Staging.copy_part

        def failing_join(self, part, out):
            if part.index == 3:
                raise OSError(5, "Input/output error")
            return real(self, part, out)

        patch.setattr(Staging, "copy_part", failing_join)
        with pytest.raises(OSError, match="Input/output error"):
            export(destination, retry=False, **SLICED)
    assert os.listdir(tmp_path) == ["reference"], "no file, no staging"


# -- an unreadable plan ------------------------------------------------------------------------------


def _a_failed_try(destination: Any, **options: Any) -> str:
    """Run a try that reads some slices and fails (a page answer lost): returns its staging folder."""
    from airflow_provider_norce.exceptions import NorceAPIError
    from airflow_provider_norce.hooks.norce import NorceHook

    real = NorceHook.odata_page
    directory, name = os.path.split(str(destination))
    before = set(staging_folders(directory, name))

    def failing(self, endpoint, params=None):
        self.answered = getattr(self, "answered", 0) + 1
        if self.answered > 12:
            raise NorceAPIError("simulated lost worker", status_code=400)
        return real(self, endpoint, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NorceHook, "odata_page", failing)
        with pytest.raises(NorceAPIError, match="simulated lost worker"):
            export(destination, **{**SLICED, **options})
    created = sorted(set(staging_folders(directory, name)) - before)
    folder = os.path.join(directory, created[0]) if created else the_folder(directory, name)
    assert PLAN_FILE in os.listdir(folder) and part_names(folder)
    return folder


@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_an_unreadable_plan_fails_the_try_and_touches_nothing(norce_simulator, references, tmp_path):
    destination = tmp_path / "orders.jsonl"
    destination.write_bytes(PREVIOUS)
    folder = _a_failed_try(destination)
    before = snapshot(tmp_path)
    sim = norce_simulator.sim
    sim.reset_counters()
    with unreadable_plan(), pytest.raises(StagingError) as failed:
        export(destination, **SLICED)
    message = str(failed.value)
    assert folder in message and "cannot be read now" in message and "Permission denied" in message
    assert snapshot(tmp_path) == before, "no part removed, no plan made, the file kept"
    assert sim.counters()["requests"].get("GET /commerce/query/2.0/Orders/Orders", 0) == 0

    kept = part_names(folder)
    result = export(destination, **SLICED)
    assert destination.read_bytes() == references["jsonl"]
    assert result["completeness"]["resumed"] == len(kept), "the retry resumed the same plan"
    assert sorted(os.listdir(tmp_path)) == ["orders.jsonl", "reference"]


# -- damaged parts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "temp", "foreign", "beyond"])
@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_a_damaged_or_foreign_part_is_caught_when_the_try_resumes(
    norce_simulator, references, tmp_path, damage, capsys
):
    destination = tmp_path / "orders.jsonl"
    folder = _a_failed_try(destination)
    parts = part_names(folder)
    corrupt(folder, damage, pick=len(parts) // 2, where=0.5)
    result = export(destination, **SLICED)
    assert destination.read_bytes() == references["jsonl"]
    expected_resumed = len(parts) - (damage in ("truncate", "flip", "delete"))
    assert result["completeness"]["resumed"] == expected_resumed
    if damage in ("truncate", "flip"):
        assert "a staged part did not match its content and is read again" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["orders.jsonl", "reference"]


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
@pytest.mark.parametrize("damage", ["truncate", "flip", "append"])
@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_a_part_damaged_during_the_try_fails_its_join_and_the_retry_is_exact(
    norce_simulator, references, tmp_path, damage, file_format
):
    """A part changed after it was committed, before this very try joins it: the join notices, the try
    fails with StagingError naming the part, the previous file stays, the part is removed; the retry reads
    that slice again and writes the uninterrupted file."""
    destination = tmp_path / f"orders.{file_format}"
    destination.write_bytes(PREVIOUS)
    real_copy, real_lines = Staging.copy_part, Staging.lines
    damaged: list[str] = []

    def damage_part(self, part):
        if part.index == 2 and not damaged:
            damaged.append(part.name)
            path = self.child(part.name)
            data = read_bytes(path)
            if damage == "truncate":
                data = data[: len(data) // 2 + 1]
            elif damage == "flip":
                data = data[:5] + bytes([data[5] ^ 0x01]) + data[6:]
            else:  # a writer that went on after the rename (a zombie try): rows appended
                data += data
            with open(path, "wb") as handle:
                handle.write(data)

    def copy_part(self, part, out):
        damage_part(self, part)
        return real_copy(self, part, out)

    def lines(self, part):
        damage_part(self, part)
        return real_lines(self, part)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Staging, "copy_part", copy_part)
        patch.setattr(Staging, "lines", lines)
        with pytest.raises(StagingError, match="changed after it was written") as failed:
            export(destination, file_format=file_format, **SLICED)
    assert damaged and damaged[0] in str(failed.value)
    assert destination.read_bytes() == PREVIOUS
    folder = the_folder(tmp_path, destination.name)
    assert damaged[0] not in os.listdir(folder), "the bad part was removed"

    result = export(destination, file_format=file_format, **SLICED)
    assert destination.read_bytes() == references[file_format]
    assert result["completeness"]["resumed"] == result["completeness"]["slices"] - 1, "only that slice"
    assert sorted(os.listdir(tmp_path)) == sorted([destination.name, "reference"])


# -- plans -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plan", ["garbage", "another export", "another version", "empty", "wider", "another head", "lower"]
)
@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_a_plan_not_of_this_export_empties_the_folder_with_a_warning(
    norce_simulator, references, tmp_path, plan, capsys
):
    destination = tmp_path / "orders.jsonl"
    folder = _a_failed_try(destination)
    plan_path = os.path.join(folder, PLAN_FILE)
    with open(plan_path, "rb") as handle:
        stored = json.load(handle)
    if plan == "garbage":
        data = b'{"fingerprint": "'
    elif plan == "another export":
        data = json.dumps({**stored, "fingerprint": "0" * 16}).encode()
    elif plan == "another version":
        data = json.dumps({**stored, "version": 1}).encode()
    elif plan == "wider":  # an altered byte that leaves a valid plan cut in other ranges
        data = json.dumps({**stored, "width": stored["width"] + 10}).encode()
    elif plan == "another head":
        data = json.dumps({**stored, "head_end": stored["head_end"] + 10}).encode()
    elif plan == "lower":
        data = json.dumps({**stored, "low": stored["low"] - 1}).encode()
    else:
        data = b""
    with open(plan_path, "wb") as handle:
        handle.write(data)
    result = export(destination, **SLICED)
    assert destination.read_bytes() == references["jsonl"]
    assert result["completeness"]["resumed"] == 0, "no part of the discarded plan adopted"
    assert (
        "staging folder not resumed: its plan.json was not a plan of this export" in capsys.readouterr().out
    )
    assert sorted(os.listdir(tmp_path)) == ["orders.jsonl", "reference"]


@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_a_new_plan_never_adopts_the_parts_of_the_plan_it_replaces(norce_simulator, references, tmp_path):
    """Bug 4: the plan vanished (or was unreadable and taken for absent) after a failed try; the new plan
    cuts the window afresh and must not take the old parts (other ranges) for its own."""
    destination = tmp_path / "orders.jsonl"
    folder = _a_failed_try(destination, max_concurrency=2, slice_rows=600)  # cut in other ranges
    old = part_names(folder)
    os.unlink(os.path.join(folder, PLAN_FILE))
    result = export(destination, **SLICED)
    assert destination.read_bytes() == references["jsonl"]
    assert result["completeness"]["resumed"] == 0 and old
    assert sorted(os.listdir(tmp_path)) == ["orders.jsonl", "reference"]


# -- orphans -----------------------------------------------------------------------------------------


@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_the_staging_of_an_abandoned_export_of_the_file_is_removed_after_a_success(
    norce_simulator, references, tmp_path, capsys
):
    """Bug 5: a try with another filter failed and left its staging (customer rows); a later export of
    the same file succeeds: that folder goes, logged. Another destination's staging in the same directory
    (an export of it that will be retried) stays."""
    destination = tmp_path / "orders.jsonl"
    abandoned = _a_failed_try(destination, filter=LATER)
    other = _a_failed_try(tmp_path / "other.jsonl")
    other_before = snapshot(other)
    # names that only look alike: another file's lock and a file (not a folder) with the prefix
    (tmp_path / ".orders.jsonl.bak.norce-slices-0123456789abcdef").mkdir()
    result = export(destination, **SLICED)
    assert destination.read_bytes() == references["jsonl"] and result["rows"] > 0
    assert not os.path.exists(abandoned)
    assert (
        f"Removed the staging folder of an earlier, abandoned export of this file: {abandoned}"
        in capsys.readouterr().out
    )
    assert snapshot(other) == other_before, "another destination's staging is kept"
    assert sorted(os.listdir(tmp_path)) == sorted(
        [
            "orders.jsonl",
            "reference",
            os.path.basename(other),
            ".orders.jsonl.bak.norce-slices-0123456789abcdef",
        ]
    )
    export(tmp_path / "other.jsonl", **SLICED)
    assert (tmp_path / "other.jsonl").read_bytes() == references["jsonl"]
    assert not os.path.exists(other)


@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_a_failed_try_keeps_the_staging_of_the_file_it_failed_to_write(norce_simulator, tmp_path):
    """remove_orphans only runs after a success: a failure keeps every folder (its own and the earlier)."""
    destination = tmp_path / "orders.jsonl"
    abandoned = _a_failed_try(destination, filter=LATER)
    own = _a_failed_try(destination)
    assert abandoned != own
    assert os.path.exists(abandoned) and os.path.exists(own)


# -- one export per destination ----------------------------------------------------------------------


def _export_in_child(destination: str, sim_connection: str, barrier: Any, results: Any) -> None:
    os.environ["AIRFLOW_CONN_NORCE_DEFAULT"] = sim_connection
    barrier.wait(timeout=30)
    try:
        result = export(destination, **SLICED)
        results.put(("ok", result["rows"]))
    except BaseException as err:
        results.put((type(err).__name__, str(err)))


@pytest.mark.norce_simulator(orders=2_000, page_size=100, latency=0.01)
def test_two_exports_of_one_destination_at_once_one_fails_and_the_file_is_exact(
    norce_simulator, references, tmp_path
):
    """Bug 3: two processes start the same export of one file at the same moment. One holds the lock and
    writes the file; the other fails at once with DestinationBusyError naming the file (or, if they did
    not overlap, both succeed). The file is never doubled, nothing is left."""
    destination = str(tmp_path / "orders.jsonl")
    context = multiprocessing.get_context("fork")
    outcomes = []
    for _round in range(3):
        barrier, results = context.Barrier(2), context.Queue()
        connection = os.environ["AIRFLOW_CONN_NORCE_DEFAULT"]
        workers = [
            context.Process(target=_export_in_child, args=(destination, connection, barrier, results))
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        got = sorted(results.get(timeout=120) for _ in workers)
        for worker in workers:
            worker.join(timeout=30)
            assert worker.exitcode == 0
        kinds = [kind for kind, _ in got]
        assert kinds in (["DestinationBusyError", "ok"], ["ok", "ok"]), got
        if kinds[0] == "DestinationBusyError":
            assert destination in got[0][1] and "another export of" in got[0][1]
        outcomes.append(kinds)
        assert read_bytes(destination) == references["jsonl"]
        assert sorted(os.listdir(tmp_path)) == ["orders.jsonl", "reference"]
    assert ["DestinationBusyError", "ok"] in outcomes, "with a 10 ms link two exports do overlap"


@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_a_busy_destination_fails_at_once_and_touches_nothing(norce_simulator, references, tmp_path):
    destination = tmp_path / "orders.jsonl"
    destination.write_bytes(PREVIOUS)
    folder = _a_failed_try(destination)
    before = snapshot(tmp_path)
    sim = norce_simulator.sim
    sim.reset_counters()
    with destination_lock(destination, "another task"):
        holding = read_bytes(lock_path(destination))
        with pytest.raises(DestinationBusyError) as busy:
            export(destination, **SLICED)
        assert f"pid {os.getpid()}" in str(busy.value) and str(destination) in str(busy.value)
        assert read_bytes(lock_path(destination)) == holding
    assert sim.counters()["requests"].get("GET /commerce/query/2.0/Orders/Orders", 0) == 0
    assert snapshot(tmp_path) == before, "no part, plan, temporary file or the file itself touched"
    assert not os.path.exists(lock_path(destination)), "the holder removed its lock file"

    export(destination, **SLICED)  # released: the next export runs, and resumes the failed try
    assert destination.read_bytes() == references["jsonl"]
    assert not os.path.exists(folder) and not os.path.exists(lock_path(destination))
    export(destination, **SLICED)  # and a third
    assert sorted(os.listdir(tmp_path)) == ["orders.jsonl", "reference"]


def _hold_the_lock(destination: str, ready: Any) -> None:
    with destination_lock(destination, "a worker about to be killed"):
        ready.set()
        time.sleep(120)


@pytest.mark.norce_simulator(orders=2_000, page_size=100)
def test_a_lock_held_by_a_killed_worker_does_not_block_the_next_export(norce_simulator, references, tmp_path):
    destination = str(tmp_path / "orders.jsonl")
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold_the_lock, args=(destination, ready))
    holder.start()
    try:
        assert ready.wait(timeout=30)
        with pytest.raises(DestinationBusyError, match=f"pid {holder.pid} on "):
            export(destination, **SLICED)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=30)
    assert holder.exitcode == -signal.SIGKILL
    assert os.path.exists(lock_path(destination)), "SIGKILL: no finally ran, the lock file stays"
    export(destination, **SLICED)
    assert read_bytes(destination) == references["jsonl"]
    assert sorted(os.listdir(tmp_path)) == ["orders.jsonl", "reference"]
