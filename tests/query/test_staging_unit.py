"""The staging folder and the destination lock on their own (no Airflow, no simulator): what a resumed
export may trust of a folder an earlier try, a dead writer, another plan or a damaged disk left."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import threading
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_norce.query.destination_lock import DestinationBusyError, destination_lock, lock_path
from airflow_provider_norce.query.slices import SlicePlan
from airflow_provider_norce.query.staging import (
    PLAN_FILE,
    Part,
    Staging,
    StagingError,
    fingerprint,
    remove_orphans,
)

DIGEST = fingerprint(endpoint="https://norce/Orders/Orders", params={"$filter": "x"}, key="Id")


def a_plan(**changes) -> SlicePlan:
    fields = {"fingerprint": DIGEST, "key": "Id", "low": 1, "head_end": 101, "high": 1001, "width": 100}
    return SlicePlan(**{**fields, **changes})


#: A stored plan with a fixed id: the parameters below must be the same in every pytest-xdist worker.
STORED = a_plan(plan_id="0123456789ab").to_json()


def rows_of(index: int, count: int = 3) -> bytes:
    return b"".join(b'{"Id":%d}\n' % (index * 100 + n) for n in range(count))


def write_part(staging: Staging, plan: SlicePlan, index: int, count: int = 3) -> Part:
    with staging.open_part(plan, index) as writer:
        writer.write(rows_of(index, count))
        writer.rows = count
        writer.keys([index * 100 + n for n in range(count)])
    found = staging.parts(plan, verify=True)
    return found[index]


@pytest.fixture
def staging(tmp_path) -> Staging:
    return Staging(str(tmp_path / "orders.jsonl"), DIGEST)


@contextlib.contextmanager
def plan_unreadable(error: OSError):
    real = Staging._open

    @contextlib.contextmanager
    def refusing(self, location):
        if os.path.basename(str(location)) == PLAN_FILE:
            raise error
        with real(self, location) as handle:
            yield handle

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Staging, "_open", refusing)
        yield


def listing(folder: str) -> dict[str, bytes]:
    found = {}
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as handle:
            found[name] = handle.read()
    return found


# -- names -------------------------------------------------------------------------------------------


@given(
    index=st.integers(0, 99_999),
    plan_id=st.text("0123456789abcdef", min_size=1, max_size=16),
    rows=st.integers(0, 10**9),
    first=st.one_of(st.none(), st.integers(-(2**63), 2**63)),
    last=st.one_of(st.none(), st.integers(-(2**63), 2**63)),
    crc=st.integers(0, 2**32 - 1),
)
def test_a_part_name_records_what_it_was_made_of(index, plan_id, rows, first, last, crc):
    name = Part.name_for(index, plan_id, rows, first, last, crc)
    assert Part.parse(name) == Part(index, plan_id, rows, first, last, crc, name)


@pytest.mark.parametrize(
    "name",
    [
        "plan.json",
        ".writing-00001-0123456789ab",
        "slice-1.abc.3.1.2.00000000.jsonl",  # index not 5 digits
        "slice-00001.ABC.3.1.2.00000000.jsonl",  # plan id not lower hex
        "slice-00001.abc.3.1.2.0000000.jsonl",  # CRC not 8 hex digits
        "slice-00001.abc.3.1.2.00000000.jsonl.bak",
        "slice-00001.abc.-3.1.2.00000000.jsonl",
    ],
)
def test_a_name_that_is_not_a_part_is_not_a_part(name):
    assert Part.parse(name) is None


# -- the plan ----------------------------------------------------------------------------------------


def test_no_folder_or_no_plan_is_nothing_to_resume(staging):
    assert staging.load_plan() == (None, None)
    os.makedirs(staging.folder)
    assert staging.load_plan() == (None, None)


def test_a_stored_plan_is_resumed_as_it_was(staging):
    plan = a_plan()
    staging.start(plan)
    assert staging.load_plan() == (plan, None)


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied"),
        OSError(5, "Input/output error"),
        TimeoutError("read timed out"),  # what an object store's client raises
        IsADirectoryError(21, "Is a directory"),
    ],
)
def test_a_plan_that_cannot_be_read_fails_the_try_and_changes_nothing(staging, error):
    plan = a_plan()
    staging.start(plan)
    write_part(staging, plan, 0)
    write_part(staging, plan, 3)
    before = listing(staging.folder)
    with plan_unreadable(error), pytest.raises(StagingError) as failed:
        staging.load_plan()
    assert str(staging.folder) in str(failed.value) and "cannot be read now" in str(failed.value)
    assert listing(staging.folder) == before, "no part removed, the plan kept"
    assert staging.load_plan() == (plan, None), "readable again: resumed"


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"{",
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b"42",
        b'{"version": 2}',
        json.dumps({**STORED, "fingerprint": "0" * 16}).encode(),  # another export
        json.dumps({**STORED, "version": 1}).encode(),
        json.dumps({**STORED, "plan_id": "../../etc"}).encode(),
        json.dumps({**STORED, "width": 0}).encode(),
        json.dumps({**STORED, "low": True}).encode(),
        json.dumps({**STORED, "high": "1001"}).encode(),
        json.dumps({**STORED, "head_end": 0}).encode(),
        json.dumps({**STORED, "extra": 1}).encode(),
        json.dumps({**STORED, "checksum": None}).encode(),
        # another valid plan, as an altered byte leaves it: it would adopt parts cut by other ranges
        json.dumps({**STORED, "width": 110}).encode(),
        json.dumps({**STORED, "head_end": 111}).encode(),
        json.dumps({k: v for k, v in STORED.items() if k != "checksum"}).encode(),
    ],
)
def test_a_plan_not_of_this_export_empties_the_folder(staging, text):
    plan = a_plan()
    staging.start(plan)
    write_part(staging, plan, 1)
    with open(staging.child(PLAN_FILE), "wb") as handle:
        handle.write(text)
    loaded, why = staging.load_plan()
    assert loaded is None and why and str(staging.folder) in why
    assert not os.path.exists(staging.folder), "no part can be matched to it: all gone"


def test_a_new_plan_starts_from_an_empty_folder(staging):
    old = a_plan()
    staging.start(old)
    write_part(staging, old, 1)
    with open(staging.child(".writing-00002-0123456789ab"), "wb") as handle:
        handle.write(b'{"Id":2')
    new = a_plan(width=50)
    staging.start(new)
    assert sorted(os.listdir(staging.folder)) == [PLAN_FILE]
    assert staging.parts(new, verify=True) == {}


# -- parts -------------------------------------------------------------------------------------------


def test_only_the_plans_own_checked_parts_count(staging):
    plan = a_plan()
    staging.start(plan)
    good = write_part(staging, plan, 2)
    bad = write_part(staging, plan, 4)
    with open(staging.child(bad.name), "r+b") as handle:
        handle.truncate(5)  # cut mid-line
    data = rows_of(5)
    crc = zlib.crc32(data)
    strangers = {
        Part.name_for(5, "0123456789ab", 3, 500, 502, crc): data,  # another plan's valid part
        Part.name_for(plan.count, plan.plan_id, 3, 500, 502, crc): data,  # beyond the plan
        Part.name_for(2, plan.plan_id, 3, 200, 202, zlib.crc32(rows_of(2))): rows_of(2),  # slice 2 twice
        ".writing-00007-0123456789ab": b'{"Id":7',  # a dead writer's temporary file
        "notes.txt": b"hello",
    }
    for name, content in strangers.items():
        with open(staging.child(name), "wb") as handle:
            handle.write(content)
    unchecked = staging.parts(plan, verify=False)
    assert set(unchecked) == {2, 4}, "verify=False takes names at their word"
    for name in strangers:
        assert name not in os.listdir(staging.folder) or name.startswith("slice-00002")
    found = staging.parts(plan, verify=True)
    assert set(found) == {2} and found[2].rows == good.rows
    assert len(staging.rejected) == 1 and bad.name in staging.rejected[0]
    assert "holds 0 lines" in staging.rejected[0]
    assert sorted(os.listdir(staging.folder)) == sorted([PLAN_FILE, found[2].name])


def test_a_part_appears_only_when_it_is_complete(staging):
    plan = a_plan()
    staging.start(plan)
    with pytest.raises(ConnectionError), staging.open_part(plan, 3) as writer:
        writer.write(b'{"Id":300}\n{"Id":3')
        raise ConnectionError("the page was lost")
    assert sorted(os.listdir(staging.folder)) == [PLAN_FILE], "no part, no temporary file"
    part = write_part(staging, plan, 3, count=2)
    assert (part.rows, part.first, part.last) == (2, 300, 301)
    assert part.crc == zlib.crc32(rows_of(3, 2)) and part.plan_id == plan.plan_id


def test_an_empty_slice_is_a_part_of_no_rows(staging):
    plan = a_plan()
    staging.start(plan)
    with staging.open_part(plan, 6):
        pass
    (part,) = staging.parts(plan, verify=True).values()
    assert (part.rows, part.first, part.last, part.crc) == (0, None, None, 0)
    out = io.BytesIO()
    assert staging.copy_part(part, out) == 0 and out.getvalue() == b""


@pytest.mark.parametrize("damage", ["truncate", "flip", "append", "empty"])
def test_a_part_changed_before_it_is_joined_fails_the_join_and_is_removed(staging, damage):
    plan = a_plan()
    staging.start(plan)
    part = write_part(staging, plan, 2, count=4)
    path = staging.child(part.name)
    with open(path, "rb") as handle:
        data = handle.read()
    changed = {
        "truncate": data[:-4],
        "flip": data[:3] + bytes([data[3] ^ 0x01]) + data[4:],
        "append": data + data,
        "empty": b"",
    }[damage]
    with open(path, "wb") as handle:
        handle.write(changed)
    with pytest.raises(StagingError, match="changed after it was written") as failed:
        staging.copy_part(part, io.BytesIO())
    assert part.name in str(failed.value) and str(staging.folder) in str(failed.value)
    assert not os.path.exists(path), "removed: the retry reads that slice again"


@pytest.mark.parametrize(
    "changed",
    [
        b'{"Id":200}\n{"Id":2',  # cut mid-line
        b'{"Id":200}\n{"Id":201}\n\xff\n',  # a line that is not UTF-8
        b'{"Id":200}\n[1,2]\n{"Id":202}\n',  # JSON, not an object
        b'{"Id":200}\n{"Id":201}\n{"Id":203}\n',  # valid rows, another CRC
    ],
)
def test_the_rows_of_a_changed_part_fail_with_staging_error_too(staging, changed):
    """The CSV join parses each line: a damaged line fails as a changed part (removed, named), not as a
    bare JSONDecodeError that leaves the part in place."""
    plan = a_plan()
    staging.start(plan)
    part = write_part(staging, plan, 2)
    assert [row["Id"] for row in staging.rows(part)] == [200, 201, 202]
    with open(staging.child(part.name), "wb") as handle:
        handle.write(changed)
    with pytest.raises(StagingError, match="changed after it was written") as failed:
        list(staging.rows(part))
    assert part.name in str(failed.value)
    assert not os.path.exists(staging.child(part.name))


def test_a_part_that_vanished_before_the_join_is_a_staging_error(staging):
    plan = a_plan()
    staging.start(plan)
    part = write_part(staging, plan, 1)
    os.unlink(staging.child(part.name))
    with pytest.raises(StagingError, match=rf"{part.name} .* vanished before it was joined"):
        staging.copy_part(part, io.BytesIO())
    with pytest.raises(StagingError, match="vanished"):
        list(staging.lines(part))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    junk=st.lists(
        st.tuples(
            st.integers(0, 12),  # index
            st.sampled_from(["own", "other", "000000000000"]),  # whose plan
            st.integers(0, 5),  # rows the name claims
            st.binary(max_size=40),  # content
        ),
        max_size=12,
    ),
    real=st.sets(st.integers(0, 9), max_size=6),  # the plan has slices 0 to 9
)
def test_whatever_lies_in_the_folder_a_checked_part_is_the_plans_own_and_matches_its_name(
    tmp_path, junk, real
):
    staging = Staging(os.path.join(tempfile.mkdtemp(dir=tmp_path), "orders.jsonl"), DIGEST)
    plan = a_plan()
    staging.start(plan)
    for index in real:
        write_part(staging, plan, index)
    for index, whose, rows, content in junk:
        plan_id = {"own": plan.plan_id, "other": "abcdef123456"}.get(whose, whose)
        crc = zlib.crc32(content) if rows == content.count(b"\n") else zlib.crc32(content) ^ 1
        name = Part.name_for(index, plan_id, rows, None, None, crc)
        with open(staging.child(name), "wb") as handle:
            handle.write(content)
    found = staging.parts(plan, verify=True)
    assert len(found) == len(set(found))
    for index, part in found.items():
        assert part.index == index < plan.count and part.plan_id == plan.plan_id
        with open(staging.child(part.name), "rb") as handle:
            content = handle.read()
        assert content.count(b"\n") == part.rows and zlib.crc32(content) == part.crc
    names = set(os.listdir(staging.folder)) - {PLAN_FILE}
    assert names == {part.name for part in found.values()}, "nothing else is left"


# -- orphans -----------------------------------------------------------------------------------------


def test_after_a_success_every_staging_folder_of_the_file_goes_and_no_other(tmp_path):
    destination = str(tmp_path / "orders.jsonl")
    mine = [Staging(destination, fingerprint(n=n)) for n in range(3)]
    others = [
        Staging(str(tmp_path / "other.jsonl"), DIGEST),
        Staging(str(tmp_path / "orders.jsonl.bak"), DIGEST),
        Staging(str(tmp_path / "sub" / "orders.jsonl"), DIGEST),
    ]
    for staging in mine + others:
        staging.start(a_plan(fingerprint=staging.digest))
    (tmp_path / ".orders.jsonl.norce-slices-file").write_bytes(b"a file, not a folder")
    (tmp_path / "orders.jsonl").write_bytes(b"the export\n")
    removed = remove_orphans(destination)
    assert sorted(removed) == sorted(staging.folder for staging in mine)
    assert all(not os.path.exists(staging.folder) for staging in mine)
    assert all(os.path.exists(os.path.join(staging.folder, PLAN_FILE)) for staging in others)
    assert (tmp_path / ".orders.jsonl.norce-slices-file").exists()
    assert remove_orphans(destination) == []


# -- the destination lock ----------------------------------------------------------------------------


def test_a_second_export_of_a_destination_fails_at_once_naming_it_and_the_holder(tmp_path):
    destination = str(tmp_path / "orders.jsonl")
    with destination_lock(destination, "Task 'a'"):
        started = time.monotonic()
        with pytest.raises(DestinationBusyError) as busy, destination_lock(destination, "Task 'b'"):
            pytest.fail("two holders")
        assert time.monotonic() - started < 1.0, "at once, not after a wait"
        message = str(busy.value)
        assert message.startswith("Task 'b': another export of") and destination in message
        assert f"pid {os.getpid()} on " in message
        assert os.path.exists(lock_path(destination))
    assert not os.path.exists(lock_path(destination)), "released and removed"
    with destination_lock(destination, "Task 'c'"):
        pass
    assert os.listdir(tmp_path) == []


def test_the_lock_is_released_when_the_export_fails(tmp_path):
    destination = str(tmp_path / "orders.jsonl")
    with pytest.raises(KeyError), destination_lock(destination, "Task 'a'"):
        raise KeyError("boom")
    with destination_lock(destination, "Task 'b'"):
        pass
    assert os.listdir(tmp_path) == []


def test_many_exports_at_once_never_hold_a_destination_together(tmp_path):
    """Threads racing to lock, release (unlinking the file) and lock again: never two holders."""
    destination = str(tmp_path / "orders.jsonl")
    holders, most, held, busy = [0], [0], [0], [0]
    guard = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(200):
            try:
                with destination_lock(destination, "Task 'x'"):
                    with guard:
                        holders[0] += 1
                        most[0] = max(most[0], holders[0])
                        held[0] += 1
                    time.sleep(0)
                    with guard:
                        holders[0] -= 1
            except DestinationBusyError:
                with guard:
                    busy[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1 and held[0] > 0 and held[0] + busy[0] == 1600
    assert os.listdir(tmp_path) == []
