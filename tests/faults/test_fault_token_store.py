"""The machine token store under abuse, as real DAG runs (``dag.test()``) against the simulator.

The store (``NORCE_TOKEN_CACHE_DIR``) is an optimisation: one token for every task process of a worker.
Its directory deleted, read-only, full of garbage or on a full disk must never fail a run: the task
fetches its own token, warns once naming the directory and what to do, sends no storm of token
requests, and the next run uses the store again as soon as it is fine, without a hand clean-up.

Each "run" below starts with an empty process cache, as a new task process would: only the store can
spare it a token request. DAGs: ``tests/faults/dags/kill_faults.py``.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from norce_faults_testlib import assert_no_secret_in, read_jsonl, task_states

UTC = dt.timezone.utc
DAGS = "kill_faults.py"
DAG_ID = "kill_fault_two_exports"
_RUNS = iter(range(1, 10_000))
WARNING = "Norce token store"

pytestmark = [
    pytest.mark.norce_simulator(products=12, page_size=10),
    # each run starts from an empty process cache; the tests choose the store's directory
    pytest.mark.usefixtures("empty_process_caches"),
]


@pytest.fixture
def tmpfs(tmp_path):
    """``mount()``: a fresh 64 KiB tmpfs (a file system that really says ENOSPC / EROFS), unmounted after."""
    mounted: list[Path] = []

    def mount(size: str = "64k") -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True, capture_output=True)


def use_store(monkeypatch: Any, directory: Path) -> Path:
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(directory))
    return directory


def run(sim: Any, fault_dag: Any, capsys: Any, tmp_path: Path) -> tuple[Any, str]:
    """One run of the two-task DAG from a cold process cache (a new worker process); returns it and its log."""
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

    PROCESS_TOKEN_CACHE.clear()
    dag = fault_dag(DAGS, DAG_ID)
    capsys.readouterr()
    number = next(_RUNS)
    destination = tmp_path / f"skus-{number}.jsonl"
    start = dt.datetime(2026, 11, 20, tzinfo=UTC) + dt.timedelta(minutes=number)
    dag_run = dag.test(logical_date=start, run_conf={"destination": str(destination)})
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert task_states(dag_run) == {"skus": "success", "skus_again": "success"}, out
    expected = sorted(sim.catalog.skus)
    assert [row["PartNo"] for row in read_jsonl(destination)] == expected
    assert [row["PartNo"] for row in read_jsonl(f"{destination}.again")] == expected
    return dag_run, out


def tokens_issued(sim: Any) -> int:
    return sim.counters()["tokens_issued"]


def store_warnings(caplog: Any) -> list[str]:
    """The store's warnings since the last call (it logs through the stdlib logger of its module)."""
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "airflow_provider_norce.tokens.machine_store" and r.levelno >= logging.WARNING
    ]
    caplog.clear()
    return lines


def assert_one_clear_warning(caplog: Any, directory: Path, *, cause: str) -> None:
    """Exactly one warning about the store: it names the directory, the cause and what to do."""
    warnings = store_warnings(caplog)
    assert len(warnings) == 1, "\n".join(warnings)
    (line,) = warnings
    assert str(directory) in line and cause in line, line
    assert "NORCE_TOKEN_CACHE_DIR" in line and "auth_cache" in line, line  # what to do


def assert_store_is_whole(directory: Path) -> None:
    """Only the store's own private regular files, no leftovers."""
    names = sorted(os.listdir(directory))
    assert [n for n in names if n.endswith(".token")], names
    for name in names:
        st = os.lstat(directory / name)
        assert stat.S_ISREG(st.st_mode) and not st.st_mode & 0o077, (name, oct(st.st_mode))
        assert not name.startswith(".tmp-"), names


# -- the directory deleted ----------------------------------------------------------------------------------


def test_store_directory_deleted_between_runs_is_recreated(sim, fault_dag, capsys, tmp_path, monkeypatch):
    directory = use_store(monkeypatch, tmp_path / "cache" / "tokens")
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == 1
    shutil.rmtree(tmp_path / "cache")  # a cleaner wiped it, parents included

    _, out = run(sim, fault_dag, capsys, tmp_path)  # the stored token is gone: one new token, shared again

    assert tokens_issued(sim) == 2
    assert_store_is_whole(directory)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == 2, "the recreated store is shared again"
    assert_no_secret_in(out, sim)


# -- read-only -----------------------------------------------------------------------------------------------


def test_read_only_store_falls_back_to_fetching_and_warns_once(
    sim, fault_dag, capsys, caplog, tmp_path, monkeypatch, tmpfs
):
    mount = tmpfs()
    directory = use_store(monkeypatch, mount / "tokens")
    directory.mkdir(mode=0o700)
    remount(mount, "ro")  # root ignores mode bits: only a read-only file system stops it

    _, out = run(sim, fault_dag, capsys, tmp_path)

    assert tokens_issued(sim) == 1, "one token for the run's two tasks: no storm"
    assert_one_clear_warning(caplog, directory, cause="Read-only file system")
    assert os.listdir(directory) == []
    _, out = run(sim, fault_dag, capsys, tmp_path)  # nothing could be shared: a new process fetches its own
    assert tokens_issued(sim) == 2
    assert store_warnings(caplog) == []  # warned once per process, not once per call

    remount(mount, "rw")
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == 3
    assert_store_is_whole(directory)
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == 3, "writable again: the next process reads the stored token"
    assert_no_secret_in(out, sim)


def test_read_only_store_still_serves_its_fresh_token(sim, fault_dag, capsys, tmp_path, monkeypatch, tmpfs):
    mount = tmpfs()
    use_store(monkeypatch, mount / "tokens")
    run(sim, fault_dag, capsys, tmp_path)
    remount(mount, "ro")

    run(sim, fault_dag, capsys, tmp_path)

    assert tokens_issued(sim) == 1, "reading needs no write: the stored token is used"


# -- full disk -----------------------------------------------------------------------------------------------


def fill(mount: Path) -> None:
    fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC, err  # the disk is really full
    finally:
        os.close(fd)


def test_full_disk_falls_back_to_fetching_then_recovers(
    sim, fault_dag, capsys, caplog, tmp_path, monkeypatch, tmpfs
):
    mount = tmpfs()
    directory = use_store(monkeypatch, mount / "tokens")
    directory.mkdir(mode=0o700)
    fill(mount)

    _, out = run(sim, fault_dag, capsys, tmp_path)

    assert tokens_issued(sim) == 1
    assert_one_clear_warning(caplog, directory, cause="No space left on device")
    assert not [n for n in os.listdir(directory) if n.startswith(".tmp-")], "no half-written temp files"
    (mount / "filler").unlink()  # space again
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == 2
    assert_store_is_whole(directory)
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == 2
    assert_no_secret_in(out, sim)


def test_a_file_in_the_store_directorys_place_then_fixed(
    sim, fault_dag, capsys, caplog, tmp_path, monkeypatch
):
    """NORCE_TOKEN_CACHE_DIR names a file (never ours to delete: it may be a typo for something precious):
    the run fetches its own token and warns; once the path is a directory, the same process shares again."""
    directory = use_store(monkeypatch, tmp_path / "tokens")
    directory.write_text("not a directory")

    _, out = run(sim, fault_dag, capsys, tmp_path)

    assert tokens_issued(sim) == 1
    assert_one_clear_warning(caplog, directory, cause="is not a directory")
    assert directory.read_text() == "not a directory"
    directory.unlink()
    directory.mkdir(mode=0o700)
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == 2
    assert_store_is_whole(directory)
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == 2, "used again without a restart of the process"
    assert_no_secret_in(out, sim)


# -- garbage -----------------------------------------------------------------------------------------------


def _replace(path: Path, what: str) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if what == "dir":
        path.mkdir()
        (path / "inside").write_text("x")
    elif what == "dangling":
        path.symlink_to(path.parent / "gone" / "nowhere")
    elif what == "open":
        path.write_bytes(b"")
        path.chmod(0o666)
    else:
        path.write_bytes(what.encode())
        path.chmod(0o600)


GARBAGE = {
    "binary token file": {".token": "\x00\xff\xfe garbage \x00"},
    "token of another key": {".token": '{"v": 1, "key": "0123", "access_token": "x", "expires_at": 9e9}'},
    "token JSON not an object": {".token": "[1, 2, 3]"},
    "truncated token JSON": {".token": '{"v": 1, "key": '},
    "directory as token file": {".token": "dir"},
    "directory as lock file": {".lock": "dir"},
    # with the token spoiled too, so that the run needs the limiter
    "directory as limiter files": {"limiter.lock": "dir", "limiter.state": "dir", ".token": "{}"},
    "dangling lock symlinks": {".lock": "dangling", "limiter.lock": "dangling", ".token": "{}"},
    "lock open to others": {".lock": "open"},
    "garbage limiter state": {"limiter.state": "not a number"},
    "leftovers and strays": {".tmp-abandoned": "half a tok", "stray.token": "{}", "notes.txt": "hello"},
}


@pytest.mark.parametrize("garbage", list(GARBAGE), ids=list(GARBAGE))
def test_garbage_in_the_store_is_repaired_by_the_next_run(
    sim, fault_dag, capsys, tmp_path, monkeypatch, garbage
):
    directory = use_store(monkeypatch, tmp_path / "tokens")
    run(sim, fault_dag, capsys, tmp_path)
    (token_file,) = directory.glob("*.token")
    key = token_file.name[: -len(".token")]
    for name, what in GARBAGE[garbage].items():
        _replace(
            directory / (key + name if name.startswith(".") and name != ".tmp-abandoned" else name), what
        )

    _, out = run(sim, fault_dag, capsys, tmp_path)  # completes, whatever the store holds

    replaced_token = ".token" in GARBAGE[garbage]
    assert tokens_issued(sim) == (2 if replaced_token else 1), "at most one new token for the run"
    run(sim, fault_dag, capsys, tmp_path)
    assert tokens_issued(sim) == (2 if replaced_token else 1), "repaired: the next process reads the store"
    for name in (f"{key}.token", f"{key}.lock", *(["limiter.lock"] if replaced_token else [])):
        st = os.lstat(directory / name)
        assert stat.S_ISREG(st.st_mode) and not st.st_mode & 0o077, (name, oct(st.st_mode))
    assert_no_secret_in(out, sim)
