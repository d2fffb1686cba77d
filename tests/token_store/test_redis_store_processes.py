"""The Redis token store across real processes and "machines", against the simulator and a real Redis.

A "machine" is a machine-store directory and a home of its own (``NORCE_TOKEN_CACHE_DIR``, ``HOME``):
with the machine store each machine fetches its own token; with Redis the whole cluster fetches one.
Redis is also killed under the processes (from the start, between two token needs, while a process
holds the lock or waits on it): every task still succeeds, with exactly one warning per process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from token_store_procs import Task, environment, run_together, wait_until

from airflow_provider_norce.tokens.cache import token_key

WORKER = str(Path(__file__).with_name("redis_worker.py"))

pytestmark = pytest.mark.usefixtures("fresh_token_state")


class RedisTask(Task):
    """A ``redis_worker.py`` process (same protocol as the machine-store workers)."""

    worker = WORKER


def machine_env(tmp_path: Path, machine: str, sim, redis_url: str | None, token_cache: str, **extra: str):
    """The environment of a task process on ``machine`` with the given ``token_cache``."""
    home = tmp_path / machine / "home"
    store = tmp_path / machine / "tokens"
    for path in (home, store):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    connection = sim.connection_dict()
    connection["extra"] = {
        **connection["extra"],
        "token_cache": token_cache,
        "token_cache_conn_id": "redis_tokens",
    }
    env = environment(
        HOME=str(home),
        NORCE_TOKEN_CACHE_DIR=str(store),
        AIRFLOW_CONN_NORCE_DEFAULT=json.dumps(connection),
        **extra,
    )
    if redis_url is not None:
        env["AIRFLOW_CONN_REDIS_TOKENS"] = redis_url
    return env


def sim_key(sim) -> str:
    return token_key(sim.token_url, sim.client_id, "prod", sim.client_secret)  # the default scope


@pytest.mark.parametrize(("token_cache", "token_requests"), [("redis", 1), ("machine", 2)])
def test_two_machines_share_one_token_request_through_redis(
    norce_simulator, redis_db, tmp_path, token_cache, token_requests
):
    """Two processes on each of two machines: one token request with Redis, one per machine without."""
    sim = norce_simulator.sim
    tasks = [
        RedisTask(["hook"], machine_env(tmp_path, machine, sim, redis_db.url, token_cache))
        for machine in ("machine-a", "machine-a", "machine-b", "machine-b")
    ]
    results = run_together(tasks)

    assert all(r["ok"] for r in results), results
    assert norce_simulator.counters()["token_requests"] == token_requests
    assert norce_simulator.counters()["token_429"] == 0
    assert all(r["fallback_warnings"] == 0 for r in results)
    if token_cache == "redis":
        assert {r["store"] for r in results} == {"FallbackTokenStore"}
        assert len({r["token"] for r in results}) == 1
        assert [
            p.name for m in ("machine-a", "machine-b") for p in (tmp_path / m / "tokens").glob("*.token")
        ] == []


def test_a_lock_holder_killed_blocks_the_next_process_only_for_the_lock_ttl(
    norce_simulator, redis_db, tmp_path
):
    sim = norce_simulator.sim
    env = machine_env(tmp_path, "machine-a", sim, redis_db.url, "redis", NORCE_TOKEN_REDIS_LOCK_TTL="2")
    holder = RedisTask(["hold"], env)
    waiter = RedisTask(["hook"], machine_env(tmp_path, "machine-b", sim, redis_db.url, "redis",
                                             NORCE_TOKEN_REDIS_LOCK_TTL="2"))  # fmt: skip
    probe = redis_db.client()
    try:
        holder.wait_for("ready")
        holder.go()
        holder.wait_for("locked")
        lock = f"norce:lock:{sim_key(sim)}"
        assert probe.exists(lock) == 1
        waiter.wait_for("ready")
        waiter.go()
        wait_until(
            "the waiter subscribed to the key's channel",
            lambda: probe.pubsub_numsub(f"norce:token-ready:{sim_key(sim)}")[0][1] == 1,
        )
        holder.kill()  # SIGKILL: no release; its lock dies with its TTL, not renewed any more
        result = waiter.result(timeout=120)
    finally:
        holder.kill()
        waiter.kill()

    assert result["ok"], result
    assert norce_simulator.counters()["token_requests"] == 1  # the killed holder never sent one
    assert probe.get(lock) is None  # the waiter released the lock it took over


def test_a_burst_across_processes_yields_exactly_the_burst_at_once(redis_db):
    """Four processes, six reservations each, a frozen clock: exactly ``burst`` slots without waiting."""
    frozen = str(time.time())
    tasks = [RedisTask(["reserve", frozen, "6", redis_db.url, "10"], environment()) for _ in range(4)]
    results = run_together(tasks)

    assert sum(r["immediate"] for r in results) == 10
    assert sum(r["refused"] for r in results) == 24 - 10


def test_redis_down_from_the_start_falls_back_to_the_machine_store(norce_simulator, own_redis, tmp_path):
    sim = norce_simulator.sim
    own_redis.stop()  # a port where nothing listens
    tasks = [
        RedisTask(["hook"], machine_env(tmp_path, "machine-a", sim, own_redis.url, "redis")) for _ in range(3)
    ]
    results = run_together(tasks)

    assert all(r["ok"] for r in results), results
    assert [r["fallback_warnings"] for r in results] == [1, 1, 1]
    assert len({r["token"] for r in results}) == 1  # shared through the machine store
    assert norce_simulator.counters()["token_requests"] == 1
    assert list((tmp_path / "machine-a" / "tokens").glob("*.token"))
    warning = next(w for w in results[0]["warnings"] if "falling back" in w)
    assert "redis_tokens" in warning and sim.client_secret not in warning


def test_redis_stopped_between_two_token_needs(norce_simulator, own_redis, tmp_path):
    sim = norce_simulator.sim
    task = RedisTask(["twice"], machine_env(tmp_path, "machine-a", sim, own_redis.url, "redis"))
    try:
        task.wait_for("ready")
        task.go()
        task.wait_for("first")  # got a token through Redis
        assert own_redis.client().exists(f"norce:token:{sim_key(sim)}") == 1
        own_redis.stop()
        task.go()
        result = task.result()
    finally:
        task.kill()

    assert result["ok"] and result["fallback_warnings"] == 1, result
    assert len(set(result["later"])) == 1  # the second need fetched once, the third read the machine store
    assert norce_simulator.counters()["token_requests"] == 2


def test_redis_stopped_while_one_process_holds_the_lock_and_another_waits(
    norce_simulator, own_redis, tmp_path
):
    sim = norce_simulator.sim
    holder = RedisTask(["slow-fetch"], machine_env(tmp_path, "machine-a", sim, own_redis.url, "redis"))
    waiter = RedisTask(["hook"], machine_env(tmp_path, "machine-a", sim, own_redis.url, "redis"))
    probe = own_redis.client()
    try:
        holder.wait_for("ready")
        holder.go()
        holder.wait_for("fetching")  # inside the Redis lock, before its token request
        assert probe.exists(f"norce:lock:{sim_key(sim)}") == 1
        waiter.wait_for("ready")
        waiter.go()
        wait_until(
            "the waiter subscribed to the key's channel",
            lambda: probe.pubsub_numsub(f"norce:token-ready:{sim_key(sim)}")[0][1] == 1,
        )
        own_redis.stop()
        holder.go()  # its fetch goes on: reserve, save and release all meet a dead Redis
        results = [holder.result(), waiter.result()]
    finally:
        holder.kill()
        waiter.kill()

    assert all(r["ok"] for r in results), results
    assert [r["fallback_warnings"] for r in results] == [1, 1]
    assert 1 <= norce_simulator.counters()["token_requests"] <= 2
