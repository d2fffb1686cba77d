"""The machine store across real processes, against the simulator (real HTTP, counted server-side)."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
from token_store_procs import Task, blocked_on, environment, run_together, wait_until

from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.tokens.cache import token_key


@pytest.fixture
def store_dir(tmp_path):
    path = tmp_path / "tokens"
    path.mkdir(mode=0o700)
    return path


def light_task(sim, store_dir, client_id=None, secret=None, mode="light", **env) -> Task:
    args = [mode, sim.base_url, client_id or sim.client_id, secret or sim.client_secret]
    return Task(args, environment(NORCE_TOKEN_CACHE_DIR=str(store_dir), **env))


@pytest.mark.norce_simulator(token_burst=20, token_rate_per_minute=3)
def test_forty_processes_started_together_share_one_token_request(norce_simulator, store_dir):
    """A 40-task fan-out, Norce's own limits: one token request, no 429 (issue 9's limiter floor)."""
    sim = norce_simulator.sim
    results = run_together([light_task(sim, store_dir) for _ in range(40)])

    assert all(r["ok"] for r in results), results
    assert len({r["token"] for r in results}) == 1  # every process used the same token
    counters = norce_simulator.counters()
    assert (counters["token_requests"], counters["token_429"]) == (1, 0)
    assert counters["requests"]["GET /commerce/metadata/1.1/GetApplication"] == 40


def test_hook_task_processes_share_the_machine_store_by_default(norce_simulator, store_dir):
    """Two NorceHook task processes with the default connection (token_cache unset = machine)."""
    env = environment(NORCE_TOKEN_CACHE_DIR=str(store_dir))
    results = run_together([Task(["hook"], env) for _ in range(2)])

    assert {r["store"] for r in results} == {"FileTokenStore"}
    assert len({r["token"] for r in results}) == 1
    assert norce_simulator.counters()["token_requests"] == 1


def test_a_process_killed_while_holding_the_lock_does_not_block_the_others(norce_simulator, store_dir):
    sim = norce_simulator.sim
    holder = light_task(sim, store_dir, mode="hang")
    waiters = [light_task(sim, store_dir) for _ in range(3)]
    try:
        holder.wait_for("ready")
        holder.go()
        holder.wait_for("fetching")  # it holds the key's flock and will never finish its fetch
        lock = store_dir / (
            token_key(sim.token_url, sim.client_id, "production", sim.client_secret) + ".lock"
        )
        with open(lock, "rb") as probe, pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for task in waiters:
            task.wait_for("ready")
            task.go()
        pids = {task.proc.pid for task in waiters}
        wait_until("every waiter queued on the held token lock", lambda: pids <= blocked_on(lock))
        holder.kill()  # SIGKILL: no cleanup code runs; the kernel drops the flock
        results = [task.result(timeout=60) for task in waiters]
    finally:
        for task in [holder, *waiters]:
            task.kill()

    assert all(r["ok"] for r in results), results
    assert len({r["token"] for r in results}) == 1
    assert norce_simulator.counters()["token_requests"] == 1  # the killed holder never sent one


CLIENTS = {f"client-{n:02d}": f"secret-{n:02d}" for n in range(12)}


@pytest.mark.norce_simulator(clients=CLIENTS, token_burst=5, token_rate_per_minute=120, retry_after=True)
def test_one_limiter_for_every_client_of_the_machine(norce_simulator, store_dir):
    """Twelve clients in twelve processes at once; the simulator admits 5 at once, then 2 a second.

    Each client has its own token key, so nothing is shared but the machine limiter (here 5 at once,
    then 100 a minute: a little stricter than the simulator, as the real defaults are equal to Norce's).
    """
    sim = norce_simulator.sim
    tasks = [
        light_task(sim, store_dir, client, secret, NORCE_TOKEN_REQUEST_LIMIT="5,100")
        for client, secret in CLIENTS.items()
    ]
    results = run_together(tasks)

    assert all(r["ok"] for r in results), results
    counters = norce_simulator.counters()
    assert counters["token_requests"] == 12
    assert counters["token_429"] == 0  # the limiter waited instead of earning a 429
    state = float((store_dir / "limiter.state").read_text())
    assert state > 0


@pytest.mark.norce_simulator(
    clients=CLIENTS, token_burst=5, token_rate_per_minute=120, retry_after=True, clock=FakeClock()
)
def test_without_a_shared_limiter_the_same_processes_earn_429s(norce_simulator, tmp_path):
    """The control of the test above: a limiter per process (a store directory each) cannot see the others.

    The simulator's clock stands still, so its burst of 5 never refills however slowly the processes run:
    exactly 7 of the 12 are refused (on a real clock a loaded machine could spread them out enough to pass).
    """
    sim = norce_simulator.sim
    tasks = []
    for n, (client, secret) in enumerate(CLIENTS.items()):
        own = tmp_path / f"own-{n}"
        own.mkdir(mode=0o700)
        tasks.append(light_task(sim, own, client, secret, NORCE_TOKEN_REQUEST_LIMIT="5,100"))
    results = run_together(tasks)

    assert norce_simulator.counters()["token_429"] == 7
    assert sum(bool(r["ok"]) for r in results) == 5


def test_the_store_holds_only_private_files(norce_simulator, store_dir):
    run_together([light_task(norce_simulator.sim, store_dir) for _ in range(2)])
    assert os.stat(store_dir).st_mode & 0o777 == 0o700
    names = sorted(p.name for p in store_dir.iterdir())
    assert any(n.endswith(".token") for n in names) and "limiter.state" in names
    for path in store_dir.iterdir():
        st = os.lstat(path)
        assert st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0, path
    token_file = next(store_dir.glob("*.token"))
    assert json.loads(token_file.read_text())["v"] == 1
