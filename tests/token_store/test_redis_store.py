"""The Redis token store in one process, against a real ``redis-server``: what is stored, the wake-up,
the fallback rule with its cool-down, the warm path, and the connection's validation."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time

import pytest

from airflow_provider_norce.exceptions import NorceConnectionConfigError
from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.tokens.cache import Token, TokenCache, token_key
from airflow_provider_norce.tokens.fallback import FallbackTokenStore
from airflow_provider_norce.tokens.machine_store import FileTokenStore
from airflow_provider_norce.tokens.redis_store import _RENEW as _RENEW_SCRIPT

pytestmark = pytest.mark.usefixtures("fresh_token_state")

SECRET = "s3cr3t-client-secret-XYZ"
ACCESS = "eyJhbGciOi.access-token-value.sig"
KEY = token_key("https://acme.example/token", "client-1", "prod", SECRET)
WARNING_WORDS = ("Norce token store", "Redis", "falling back")


def redis_store(server, secret=SECRET, **kwargs):
    from airflow_provider_norce.tokens.redis_store import RedisTokenStore

    return RedisTokenStore(server.client(), secret, where=f"test Redis :{server.port}", **kwargs)


def a_token(now: float, access: str = ACCESS, lifetime: float = 600) -> Token:
    return Token(access, now + lifetime, now)


def fallback_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if all(w in r.getMessage() for w in WARNING_WORDS)]


# -- what Redis holds ------------------------------------------------------------------------------


def test_the_stored_value_holds_no_token_and_no_secret_and_keys_carry_none(redis_db):
    store = redis_store(redis_db)
    store.save(KEY, a_token(time.time()))
    raw_client = redis_db.client()

    names = [name.decode() for name in raw_client.scan_iter("*")]
    assert names == [f"norce:token:{KEY}"]
    raw = raw_client.get(names[0])
    for needle in (ACCESS, SECRET, hashlib.sha256(SECRET.encode()).hexdigest(), "access_token"):
        assert needle.encode() not in raw, needle
        assert all(needle not in name for name in names)
    assert store.load(KEY).access_token == ACCESS
    assert 0 < raw_client.pttl(names[0]) <= 600_000  # expires with the token


def test_a_value_moved_under_another_key_is_refused_and_removed(redis_db, caplog):
    store = redis_store(redis_db)
    store.save(KEY, a_token(time.time()))
    other = token_key("https://acme.example/token", "client-2", "prod", SECRET)
    raw_client = redis_db.client()
    raw_client.set(store.token_name(other), raw_client.get(store.token_name(KEY)))

    with caplog.at_level(logging.WARNING):
        assert store.load(other) is None
    assert raw_client.exists(store.token_name(other)) == 0  # deleted, as a corrupt file would be
    assert store.load(KEY).access_token == ACCESS  # the original is untouched
    assert "unreadable token" in caplog.text and SECRET not in caplog.text


def test_a_wrong_client_secret_cannot_read_the_token(redis_db):
    redis_store(redis_db).save(KEY, a_token(time.time()))
    intruder = redis_store(redis_db, secret="not-the-secret")
    assert intruder.load(KEY) is None


def test_garbage_under_a_token_key_is_ignored_and_removed(redis_db):
    store = redis_store(redis_db)
    redis_db.client().set(store.token_name(KEY), b"\x01" + b"x" * 40)
    assert store.load(KEY) is None
    assert redis_db.client().exists(store.token_name(KEY)) == 0


def test_discard_removes_only_the_refused_token(redis_db):
    store = redis_store(redis_db)
    store.save(KEY, a_token(time.time(), access="newer-token"))
    store.discard(KEY, ACCESS)  # a refused older token: its replacement stays
    assert store.load(KEY).access_token == "newer-token"
    store.discard(KEY, "newer-token")
    assert store.load(KEY) is None


def test_the_prefix_separates_deployments(redis_db):
    redis_store(redis_db, prefix="team-a:").save(KEY, a_token(time.time()))
    assert redis_store(redis_db, prefix="team-b:").load(KEY) is None
    assert [n.decode() for n in redis_db.client().scan_iter("*")] == [f"team-a:token:{KEY}"]


def test_repr_and_errors_never_show_the_secret(redis_db):
    store = redis_store(redis_db)
    fallback = FallbackTokenStore(store, lambda: None, is_outage=lambda e: True, where="x", advice="y")
    for text in (repr(store), repr(fallback), repr(store._cipher)):
        assert SECRET not in text and "s3cr3t" not in text


# -- the lock and the wake-up ----------------------------------------------------------------------


def test_a_waiter_is_woken_by_the_publish_when_the_token_lands(redis_db):
    """The waiter's safety-net interval is an hour: only the notification can wake it in this test."""
    holder = redis_store(redis_db, lock_ttl=3600)
    waiter = redis_store(redis_db, lock_ttl=3600, wake_interval=3600)
    lease = holder.acquire(KEY)
    assert lease is not None
    got: dict[str, object] = {}

    def wait() -> None:
        got["lease"] = waiter.acquire(KEY)  # None: it found the landed token and did not queue

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    probe = redis_db.client()
    while probe.pubsub_numsub(holder.channel(KEY))[0][1] < 1:  # the waiter has subscribed: it waits
        assert thread.is_alive()
        time.sleep(0.01)
    holder.save(KEY, a_token(time.time()))  # publishes
    thread.join(timeout=60)
    assert not thread.is_alive(), "the waiter was not woken by the save"
    assert got["lease"] is None
    holder.release(lease)
    assert probe.exists(holder.lock_name(KEY)) == 0


def test_a_released_lock_wakes_a_waiter_that_then_takes_it(redis_db):
    """A fetch that failed saves nothing; its release still wakes the next one, which fetches."""
    holder = redis_store(redis_db, lock_ttl=3600)
    waiter = redis_store(redis_db, lock_ttl=3600, wake_interval=3600)
    lease = holder.acquire(KEY)
    got: dict[str, object] = {}
    thread = threading.Thread(target=lambda: got.setdefault("lease", waiter.acquire(KEY)), daemon=True)
    thread.start()
    probe = redis_db.client()
    while probe.pubsub_numsub(holder.channel(KEY))[0][1] < 1:
        time.sleep(0.01)
    holder.release(lease)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert got["lease"] is not None and probe.get(holder.lock_name(KEY)).decode() == got["lease"].owner
    waiter.release(got["lease"])


def test_release_never_deletes_another_holders_lock(redis_db):
    store = redis_store(redis_db, lock_ttl=3600)
    lease = store.acquire(KEY)
    probe = redis_db.client()
    probe.set(store.lock_name(KEY), "someone-else")  # ours expired and another took it
    store.release(lease)
    assert probe.get(store.lock_name(KEY)) == b"someone-else"


def test_the_holder_renews_its_lock_while_it_fetches(redis_db):
    """Renewals are counted by Redis itself (``EVALSHA`` of the renew script): four of them, at a third
    of the TTL each, span more than the TTL, and the lock is still ours and alive."""
    store = redis_store(redis_db, lock_ttl=3.0)
    probe = redis_db.client()
    store.client.script_load(_RENEW_SCRIPT)  # so every renewal is one EVALSHA
    lease = store.acquire(KEY)
    renewals_before = redis_db.command_counts().get("evalsha", 0)
    wait_until_true = time.monotonic() + 60  # bounds a hang only
    while redis_db.command_counts().get("evalsha", 0) - renewals_before < 4:
        assert probe.get(store.lock_name(KEY)) == lease.owner.encode(), "the lock expired while held"
        assert time.monotonic() < wait_until_true, "no renewals"
        time.sleep(0.05)
    assert probe.get(store.lock_name(KEY)) == lease.owner.encode()
    store.release(lease)
    assert probe.exists(store.lock_name(KEY)) == 0


# -- the limiter -----------------------------------------------------------------------------------


def test_the_cluster_limiter_applies_the_gcra_rule_on_one_shared_float(redis_db):
    clock = FakeClock(1_800_000_000.0)
    a = redis_store(redis_db, burst=3, rate_per_minute=6, clock=clock)
    b = redis_store(redis_db, burst=3, rate_per_minute=6, clock=clock)
    assert [a.reserve_token_request(0.0), b.reserve_token_request(0.0), a.reserve_token_request(0.0)] == [
        0.0
    ] * 3
    assert b.reserve_token_request(0.0) is None  # the burst of the whole "cluster" is spent
    assert a.reserve_token_request(10.0) == 10.0  # the next slot: one interval (60 / 6 s) on
    b.note_rate_limited(30.0)
    assert a.reserve_token_request(29.0) is None
    assert float(redis_db.client().get(a.limiter_name)) > clock()


# -- the fallback rule -----------------------------------------------------------------------------


def test_redis_down_then_back_after_the_cool_down(own_redis, tmp_path, caplog):
    """Down: the machine store stands in, one warning. Back: not used before the cool-down, used after."""
    from airflow_provider_norce.tokens.redis_store import is_outage

    machine = FileTokenStore(tmp_path / "machine")
    (tmp_path / "machine").mkdir(mode=0o700)
    clock = FakeClock(0.0)
    primary = redis_store(own_redis)
    store = FallbackTokenStore(
        primary,
        lambda: machine,
        is_outage=is_outage,
        where="test",
        advice="check it",
        cooldown=30,
        clock=clock,
    )
    own_redis.stop()
    with caplog.at_level(logging.WARNING):
        store.save(KEY, a_token(time.time()))  # Redis down: saved on the machine
        assert store.load(KEY).access_token == ACCESS
        with store.locked(KEY):
            assert store.reserve_token_request(0.0) == 0.0
    assert machine.load(KEY).access_token == ACCESS
    assert len(fallback_warnings(caplog)) == 1 and store.down

    own_redis.start()
    assert store.load(KEY).access_token == ACCESS  # within the cool-down: still the machine store
    assert own_redis.client().exists(primary.token_name(KEY)) == 0
    clock.advance(31)
    store.save(KEY, a_token(time.time(), access="after-restart"))
    assert primary.load(KEY).access_token == "after-restart"  # Redis is used again
    assert not store.down
    assert len(fallback_warnings(caplog)) == 1


def test_a_programming_error_is_not_taken_for_an_outage(redis_db, tmp_path):
    import redis

    from airflow_provider_norce.tokens.redis_store import is_outage

    assert is_outage(redis.ConnectionError("refused")) and is_outage(redis.TimeoutError("t"))
    assert is_outage(redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'"))
    assert not is_outage(redis.ResponseError("ERR unknown command 'FOO'"))
    assert not is_outage(redis.DataError("Invalid input of type: 'dict'"))
    assert not is_outage(ValueError("x"))
    store = FallbackTokenStore(
        redis_store(redis_db), lambda: None, is_outage=is_outage, where="t", advice="a", cooldown=30
    )
    redis_db.client().hset(f"norce:token:{KEY}", "a", "b")  # WRONGTYPE: something else owns the name
    assert store.load(KEY) is None and store.down  # taken as "cannot be used", not as a crash


# -- choosing it: the connection, the hook, the warm path ------------------------------------------


def norce_conn(monkeypatch, sim, **extra):
    connection = sim.connection_dict()
    connection["extra"] = {**connection["extra"], **extra}
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(connection))


@pytest.fixture
def machine_dir(tmp_path, monkeypatch):
    path = tmp_path / "machine"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(path))
    return path


def test_a_warm_process_makes_no_redis_call(norce_simulator, redis_db, monkeypatch, machine_dir, caplog):
    from airflow_provider_norce.hooks.norce import NorceHook

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_TOKENS", redis_db.url)
    norce_conn(monkeypatch, norce_simulator.sim, auth_cache="redis", auth_cache_conn_id="redis_tokens")
    cold = NorceHook("norce_default")
    token = cold.get_access_token()
    assert type(cold.shared_store).__name__ == "FallbackTokenStore"
    assert redis_db.client().exists(f"norce:token:{cold._token_key}") == 1

    before = redis_db.command_counts()
    warm = NorceHook("norce_default")
    assert warm.get_access_token() == token
    warm.run_json("commerce/metadata/1.1/GetApplication")
    assert redis_db.command_counts() == before  # not one Redis command
    assert "shared_store" not in warm.__dict__  # not even the store was built

    redis_db.stop()  # and with Redis gone, a warm task does not even notice
    with caplog.at_level(logging.WARNING):
        assert NorceHook("norce_default").get_access_token() == token
    assert not fallback_warnings(caplog)
    assert norce_simulator.counters()["token_requests"] == 1


def test_an_unknown_redis_connection_names_both_connections_and_the_field(
    norce_simulator, monkeypatch, machine_dir
):
    from airflow_provider_norce.hooks.norce import NorceHook

    norce_conn(monkeypatch, norce_simulator.sim, auth_cache="redis", auth_cache_conn_id="no_such_redis")
    with pytest.raises(NorceConnectionConfigError) as info:
        NorceHook("norce_default").get_access_token()
    message = str(info.value)
    assert "'norce_default'" in message and "'auth_cache_conn_id'" in message and "'no_such_redis'" in message
    assert norce_simulator.sim.client_secret not in message
    assert norce_simulator.counters()["token_requests"] == 0


def test_redis_cluster_mode_is_refused_naming_the_connection(norce_simulator, monkeypatch, machine_dir):
    from airflow_provider_norce.hooks.norce import NorceHook

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_CLUSTER", "redis://127.0.0.1:7000/0?cluster=true")
    norce_conn(monkeypatch, norce_simulator.sim, auth_cache="redis", auth_cache_conn_id="redis_cluster")
    with pytest.raises(NorceConnectionConfigError, match="cluster mode") as info:
        NorceHook("norce_default").get_access_token()
    assert "'redis_cluster'" in str(info.value) and "'auth_cache_conn_id'" in str(info.value)


def test_redis_default_is_the_default_connection(norce_simulator, redis_db, monkeypatch, machine_dir):
    from airflow_provider_norce.hooks.norce import NorceHook

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", redis_db.url)
    norce_conn(monkeypatch, norce_simulator.sim, token_cache="redis")
    hook = NorceHook("norce_default")
    assert hook.config.token_cache_conn_id == "redis_default"
    hook.get_access_token()
    assert redis_db.client().exists(f"norce:token:{hook._token_key}") == 1


@pytest.mark.parametrize(
    ("value", "words"),
    [(" ", "only whitespace"), ("redis tokens", "not an Airflow connection id"), (["x"], "not an array")],
)
def test_a_bad_token_cache_conn_id_names_the_connection_and_the_field(value, words):
    from airflow.models.connection import Connection

    from airflow_provider_norce.connection import NorceConnectionConfig

    conn = Connection(conn_id="norce_x", conn_type="norce", host="acme", login="c", password=SECRET,
                      extra=json.dumps({"auth_cache": "redis", "auth_cache_conn_id": value}))  # fmt: skip
    with pytest.raises(NorceConnectionConfigError) as info:
        NorceConnectionConfig.from_connection(conn, "norce_x")
    message = str(info.value)
    assert "'norce_x'" in message and "'auth_cache_conn_id'" in message and words in message
    assert SECRET not in message


def test_without_the_redis_package_the_machine_store_is_used_with_one_warning(
    norce_simulator, monkeypatch, machine_dir, caplog
):
    from airflow_provider_norce.hooks.norce import NorceHook

    monkeypatch.setitem(sys.modules, "redis", None)  # what ``import redis`` meets when it is not installed
    norce_conn(monkeypatch, norce_simulator.sim, token_cache="redis")
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            hook = NorceHook("norce_default")
            hook.get_access_token()
            assert isinstance(hook.shared_store, FileTokenStore)
    hints = [r for r in caplog.records if "pip install 'airflow-provider-norce[redis]'" in r.getMessage()]
    assert len(hints) == 1


def test_the_redis_connection_is_looked_up_once_per_process_and_secret(
    norce_simulator, redis_db, monkeypatch, machine_dir
):
    from airflow_provider_norce.tokens.store import store_for

    monkeypatch.setenv("AIRFLOW_CONN_REDIS_TOKENS", redis_db.url)
    norce_conn(monkeypatch, norce_simulator.sim, auth_cache="redis", auth_cache_conn_id="redis_tokens")
    from airflow_provider_norce.hooks.norce import NorceHook

    config = NorceHook("norce_default").config
    assert store_for(config) is store_for(config)
    from dataclasses import replace

    assert store_for(replace(config, client_secret="another")) is not store_for(config)


def test_token_cache_get_through_the_redis_store_fetches_once(redis_db):
    clock_now = time.time()
    fetches = []

    def fetch(reserve, note):
        assert reserve(0.0) == 0.0
        fetches.append(1)
        return a_token(clock_now)

    store = redis_store(redis_db)
    for _ in range(3):  # three "processes": each its own process cache
        assert TokenCache().get(KEY, fetch, store).access_token == ACCESS
    assert len(fetches) == 1
