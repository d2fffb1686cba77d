"""Many task processes meeting a machine-store directory that is ours but open to others (issue 12 follow-up).

Found on a cluster: a deployment script created ``NORCE_TOKEN_CACHE_DIR`` 0755; every task process that saw it
open tightened it and *emptied* it, so processes released together deleted each other's fresh token, lock and
limiter files, and 40 tasks made 13 token requests instead of 1. Real processes, real HTTP, counted by the
simulator.
"""

from __future__ import annotations

import os
import threading

import pytest
from token_store_procs import Task, environment


@pytest.fixture
def store_dir(tmp_path):
    path = tmp_path / "tokens"
    path.mkdir(mode=0o700)
    return path


@pytest.mark.norce_simulator(token_burst=20, token_rate_per_minute=3)
def test_hook_processes_released_together_on_an_open_directory_share_one_token_request(
    norce_simulator, store_dir
):
    """Twenty NorceHook task processes whose first look at the store directory finds it 0755.

    A hook builds its store at its first token, after the release, so every process checks the directory
    at about the same moment, as on the cluster (13 token requests from 40 tasks). Whether the old rule
    (empty the directory) failed here depended on how the scheduler interleaved the processes (here it
    made 2 requests in some runs, 1 in others); the next test makes that race certain. The directory is
    opened again once all are ready too, in case one looked before the release.
    """
    os.chmod(store_dir, 0o755)
    env = environment(NORCE_TOKEN_CACHE_DIR=str(store_dir))
    tasks = [Task(["hook"], env) for _ in range(20)]
    try:
        for task in tasks:
            task.wait_for("ready")
        os.chmod(store_dir, 0o755)
        for task in tasks:
            task.go()
        results = [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.kill()

    assert all(r["ok"] for r in results), results
    assert {r["store"] for r in results} == {"FileTokenStore"}
    assert len({r["token"] for r in results}) == 1  # every process used the same token
    counters = norce_simulator.counters()
    assert (counters["token_requests"], counters["token_429"]) == (1, 0)
    assert os.stat(store_dir).st_mode & 0o777 == 0o700


@pytest.mark.norce_simulator(token_burst=20, token_rate_per_minute=3)
def test_a_directory_reopened_while_thirty_processes_run_still_gives_one_token_request(
    norce_simulator, store_dir
):
    """The same race made certain: the directory is set back to 0755 over and over while the processes run.

    (As a configuration-management run re-applying a 0755 mode would.) Every check a process makes then
    finds it open and tightens it; with the old rule each of those emptied it, so how many tokens were
    fetched depended only on timing. Our own private files must survive every tightening: one request.
    """
    sim = norce_simulator.sim
    env = environment(NORCE_TOKEN_CACHE_DIR=str(store_dir))
    tasks = [Task(["light", sim.base_url, sim.client_id, sim.client_secret], env) for _ in range(30)]
    stop = threading.Event()

    def reopen() -> None:
        while not stop.is_set():
            os.chmod(store_dir, 0o755)
            stop.wait(0.0001)  # pacing only: leave the two cores to the processes

    opener = threading.Thread(target=reopen, name="reopen-store-dir")
    try:
        for task in tasks:
            task.wait_for("ready")
        opener.start()
        for task in tasks:
            task.go()
        results = [task.result() for task in tasks]
    finally:
        stop.set()
        if opener.is_alive():
            opener.join()
        for task in tasks:
            task.kill()

    assert all(r["ok"] for r in results), results
    assert len({r["token"] for r in results}) == 1
    counters = norce_simulator.counters()
    assert (counters["token_requests"], counters["token_429"]) == (1, 0)
