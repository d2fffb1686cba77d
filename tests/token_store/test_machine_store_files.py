"""The machine store in one process: what it trusts, what it replaces, and what it shares."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os

import pytest

from airflow_provider_norce.exceptions import NorceAuthError, NorceError
from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.tokens.cache import Token, TokenCache, token_key
from airflow_provider_norce.tokens.machine_store import (
    MAX_FILE_BYTES,
    FileTokenStore,
    default_directories,
    private_directory,
    request_limit_from_env,
)
from airflow_provider_norce.tokens.store import register_token_store, store_for

KEY = token_key("https://acme.api-se.norce.tech/identity/1.0/connect/token", "client-1", "production", "s")
OTHER_UID = 54321


@pytest.fixture
def clock() -> FakeClock:
    """The wall clock of the stores and caches of these tests (token expiry and the limiter)."""
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def store_dir(tmp_path):
    path = tmp_path / "tokens"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def store(store_dir, clock):
    return FileTokenStore(store_dir, clock=clock)


def token(clock: FakeClock, name: str = "tok-1", lifetime: float = 600.0) -> Token:
    now = clock()
    return Token(access_token=name, expires_at=now + lifetime, obtained_at=now)


def fetcher(clock: FakeClock, *names: str):
    """A fetch that hands out ``names`` in turn and records that it was called."""
    calls = []

    def fetch(reserve, note):
        assert reserve(0.0) == 0.0
        calls.append(1)
        return token(clock, names[len(calls) - 1])

    fetch.calls = calls
    return fetch


def test_a_saved_token_round_trips_in_a_private_file(store, store_dir, clock):
    store.save(KEY, token(clock, "tok-1"))
    loaded = store.load(KEY)
    assert loaded is not None and loaded.access_token == "tok-1"
    st = os.stat(store_dir / f"{KEY}.token")
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid()
    assert "tok-1" not in repr(store) and "tok-1" not in repr(loaded)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_token_file_owned_by_another_user_is_ignored_and_replaced(store, store_dir, caplog, clock):
    store.save(KEY, token(clock, "planted"))
    path = store_dir / f"{KEY}.token"
    os.chown(path, OTHER_UID, OTHER_UID)
    with caplog.at_level(logging.WARNING):
        assert store.load(KEY) is None
    got = TokenCache(clock=clock).get(KEY, fetcher(clock, "fresh"), store)
    assert got.access_token == "fresh"
    assert os.stat(path).st_uid == os.geteuid()
    assert store.load(KEY).access_token == "fresh"


def test_a_token_file_readable_by_others_is_ignored_and_replaced(store, store_dir, clock):
    store.save(KEY, token(clock, "exposed"))
    path = store_dir / f"{KEY}.token"
    os.chmod(path, 0o644)
    assert store.load(KEY) is None
    assert TokenCache(clock=clock).get(KEY, fetcher(clock, "fresh"), store).access_token == "fresh"
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_a_symlinked_or_hard_linked_token_file_is_ignored(store, store_dir, tmp_path, clock):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    FileTokenStore(elsewhere, clock=clock).save(KEY, token(clock, "linked"))
    target = elsewhere / f"{KEY}.token"
    path = store_dir / f"{KEY}.token"
    path.symlink_to(target)
    assert store.load(KEY) is None
    os.link(target, path)
    assert store.load(KEY) is None
    store.save(KEY, token(clock, "own"))
    assert store.load(KEY).access_token == "own"
    assert json.loads(target.read_text())["access_token"] == "linked"  # the link was replaced, not its target


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"v": 1}', b'{"v": 2, "access_token": "x"}', b"\xff" * 10],
)
def test_a_corrupt_token_file_is_ignored_and_replaced(store, store_dir, content, clock):
    path = store_dir / f"{KEY}.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    assert store.load(KEY) is None
    assert TokenCache(clock=clock).get(KEY, fetcher(clock, "fresh"), store).access_token == "fresh"
    assert json.loads(path.read_text())["access_token"] == "fresh"


def test_a_token_file_copied_to_another_key_is_not_served_to_it(store, store_dir, clock):
    other = token_key(
        "https://acme.api-se.norce.tech/identity/1.0/connect/token", "client-2", "production", "s"
    )
    store.save(KEY, token(clock, "client-1-token"))
    (store_dir / f"{other}.token").write_bytes((store_dir / f"{KEY}.token").read_bytes())
    os.chmod(store_dir / f"{other}.token", 0o600)
    assert store.load(other) is None


def test_keys_differ_by_client_scope_secret_and_endpoint():
    url = "https://acme.api-se.norce.tech/identity/1.0/connect/token"
    keys = {
        token_key(url, "client-1", "production", "s"),
        token_key(url, "client-2", "production", "s"),
        token_key(url, "client-1", "stage", "s"),
        token_key(url, "client-1", "production", "wrong"),
        token_key(url.replace("acme", "other"), "client-1", "production", "s"),
    }
    assert len(keys) == 5


def test_discard_removes_only_the_refused_token(store, clock):
    store.save(KEY, token(clock, "new"))
    store.discard(KEY, "old")  # a process still holding the old token must not drop its replacement
    assert store.load(KEY).access_token == "new"
    store.discard(KEY, "new")
    assert store.load(KEY) is None


def test_a_warm_process_never_touches_the_store(store, clock):
    class Counting(FileTokenStore):
        touched = 0

        def locked(self, key):
            Counting.touched += 1
            return super().locked(key)

    counting = Counting(store.directory, clock=clock)
    cache = TokenCache(clock=clock)
    fetch = fetcher(clock, "only")
    for _ in range(5):
        cache.get(KEY, fetch, counting)
    assert Counting.touched == 1 and len(fetch.calls) == 1


def test_a_second_process_cache_reads_the_token_the_first_saved(store, clock):
    first = TokenCache(clock=clock).get(KEY, fetcher(clock, "shared"), store)
    fetch = fetcher(clock, "never")
    second = TokenCache(clock=clock).get(KEY, fetch, store)
    assert second.access_token == first.access_token and fetch.calls == []


def test_a_token_due_for_renewal_is_fetched_again(store, clock):
    store.save(KEY, token(clock, "old", lifetime=30.0))  # renewed 3 s (10 %) before expiry
    clock.advance(26.9)
    assert TokenCache(clock=clock).get(KEY, fetcher(clock, "x"), store).access_token == "old"
    clock.advance(0.1)  # 27 s: due
    assert TokenCache(clock=clock).get(KEY, fetcher(clock, "renewed"), store).access_token == "renewed"


def test_the_limiter_is_one_budget_for_every_store_instance(store_dir, clock):
    a = FileTokenStore(store_dir, burst=2, rate_per_minute=60, clock=clock)
    b = FileTokenStore(store_dir, burst=2, rate_per_minute=60, clock=clock)
    assert a.reserve_token_request(10) == 0.0
    assert b.reserve_token_request(10) == 0.0
    assert a.reserve_token_request(10) == pytest.approx(1.0)  # the burst of 2 is spent, 1 a second
    assert b.reserve_token_request(10) == pytest.approx(2.0)
    assert a.reserve_token_request(1.5) is None  # beyond the caller's budget: no slot taken
    clock.advance(2.0)
    b.note_rate_limited(30.0)  # Norce said 429: nobody on this machine asks for 30 s
    assert a.reserve_token_request(10) is None
    assert a.reserve_token_request(60) == pytest.approx(30.0)


def test_a_corrupt_or_foreign_limiter_state_is_not_trusted(store_dir, clock):
    state = store_dir / "limiter.state"
    state.write_text("garbage")
    os.chmod(state, 0o600)
    assert FileTokenStore(store_dir, burst=1, rate_per_minute=60, clock=clock).reserve_token_request(0) == 0.0
    assert float(state.read_text()) == pytest.approx(clock.now + 1.0)
    state.write_text(repr(clock.now + 10_000))  # far ahead: a clock jump or tampering, clamped to an hour
    assert FileTokenStore(store_dir, clock=clock).reserve_token_request(7200) <= 3600 + 60
    if os.geteuid() == 0:
        state.write_text(repr(clock.now + 500))
        os.chown(state, OTHER_UID, OTHER_UID)
        assert (
            FileTokenStore(store_dir, burst=1, rate_per_minute=60, clock=clock).reserve_token_request(0)
            == 0.0
        )


def test_private_directory_tightens_an_open_directory_of_ours_and_removes_only_untrusted_entries(
    tmp_path, clock, caplog
):
    """Open (0755) while our processes use it: what could have been planted or tampered with goes, ours stays.

    Emptying it instead made processes released together delete each other's fresh token, lock and
    limiter files (see test_machine_store_open_directory.py for the race itself).
    """
    path = tmp_path / "open"
    path.mkdir(mode=0o700)
    store = FileTokenStore(path, clock=clock)
    with store.locked(KEY):
        store.save(KEY, token(clock, "ours"))
    assert store.reserve_token_request(0) == 0.0
    ours = sorted(p.name for p in path.iterdir())
    assert ours == sorted([f"{KEY}.lock", f"{KEY}.token", "limiter.lock", "limiter.state"])

    os.chmod(path, 0o755)
    (path / "readable.token").write_text("{}")  # ours, but group/other could have read or rewritten it
    os.chmod(path / "readable.token", 0o644)
    (path / "big.token").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    os.chmod(path / "big.token", 0o600)
    outside = tmp_path / "outside"
    outside.write_text("not the store's")
    os.chmod(outside, 0o600)
    os.link(outside, path / "hardlink.token")  # a second name of a file: nlink 2
    (path / "symlink.token").symlink_to(path / f"{KEY}.token")  # a symlink goes, its target stays
    (path / "subdir").mkdir()  # the store uses no directories: left alone, never a tree removed
    planted = {"readable.token", "big.token", "hardlink.token", "symlink.token"}
    if os.geteuid() == 0:
        (path / "foreign.token").write_text("{}")
        os.chmod(path / "foreign.token", 0o600)
        os.chown(path / "foreign.token", OTHER_UID, OTHER_UID)
        planted.add("foreign.token")

    with caplog.at_level(logging.WARNING, logger="airflow_provider_norce.tokens.machine_store"):
        assert private_directory(path) == path
        os.chmod(path, 0o755)
        assert private_directory(path) == path  # tightened again, but warned once per process
    assert os.stat(path).st_mode & 0o777 == 0o700
    assert sorted(p.name for p in path.iterdir()) == sorted([*ours, "subdir"])
    assert outside.read_text() == "not the store's"
    assert store.load(KEY).access_token == "ours"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "was open to other users (mode 755); made it 0700" in warnings[0]
    assert f"removed {len(planted)} untrusted entries" in warnings[0]
    assert all(repr(name) in warnings[0] for name in planted)


def test_private_directory_replaces_a_symlink_and_refuses_another_users(tmp_path):
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert private_directory(link) == link
    assert not link.is_symlink() and link.is_dir()
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, OTHER_UID, OTHER_UID)
        assert private_directory(foreign) is None


def test_private_directory_creates_missing_parents_privately(tmp_path):
    path = tmp_path / "a" / "b" / "tokens"
    assert private_directory(path) == path
    assert os.stat(path).st_mode & 0o777 == 0o700


def test_store_for_chooses_by_kind(monkeypatch, tmp_path):
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(tmp_path / "machine"))
    assert store_for("process") is None
    machine = store_for("machine")
    assert isinstance(machine, FileTokenStore) and machine.directory == tmp_path / "machine"
    assert store_for("machine") is machine  # one per process and configuration
    with pytest.raises(ValueError, match="unknown auth_cache 'memcached'"):
        store_for("memcached")
    with pytest.raises(ValueError, match="needs the connection's configuration"):
        store_for("redis")
    register_token_store("test-cluster", lambda: machine)
    assert store_for("test-cluster") is machine
    with pytest.raises(ValueError, match="built in"):
        register_token_store("machine", lambda: None)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_an_unusable_directory_falls_back_to_the_process_cache(monkeypatch, tmp_path, caplog):
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, OTHER_UID, OTHER_UID)
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(foreign))
    with caplog.at_level(logging.WARNING):
        assert store_for("machine") is None
    assert "NORCE_TOKEN_CACHE_DIR" in caplog.text


def test_default_directories():
    env = {"XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/airflow"}
    dirs = [str(d) for d in default_directories(env)]
    assert dirs[0] == "/run/user/1000/airflow-provider-norce/tokens"
    assert dirs[1] == "/home/airflow/.cache/airflow-provider-norce/tokens"
    assert dirs[2].endswith(f"airflow-provider-norce-{os.geteuid()}")
    assert [str(d) for d in default_directories({**env, "NORCE_TOKEN_CACHE_DIR": "/x"})] == ["/x"]


def test_request_limit_from_env():
    assert request_limit_from_env({}) == (20, 3.0)
    assert request_limit_from_env({"NORCE_TOKEN_REQUEST_LIMIT": "5, 120"}) == (5, 120.0)
    for bad in ("5", "0,3", "5,-1", "a,b", "5,inf"):
        with pytest.raises(NorceError, match="NORCE_TOKEN_REQUEST_LIMIT"):
            request_limit_from_env({"NORCE_TOKEN_REQUEST_LIMIT": bad})


def test_a_lock_held_too_long_is_a_clear_error(store_dir):
    store = FileTokenStore(store_dir, lock_timeout=0.2)
    with open(store_dir / f"{KEY}.lock", "wb") as held:
        os.chmod(held.name, 0o600)
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(NorceError, match=r"held .* for more than 0 s") as err, store.locked(KEY):
            pass
    assert KEY[:16] in str(err.value)


# -- through the hook, against the simulator ------------------------------------------------------


def hook_for(sim, monkeypatch, conn_id, client_id, secret, **extra):
    from airflow_provider_norce.hooks.norce import NorceHook

    conn = sim.connection_dict()
    conn["login"], conn["password"] = client_id, secret
    conn["extra"] = {**conn["extra"], **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return NorceHook(conn_id, token_cache=TokenCache())  # a process cache of its own: another "process"


@pytest.mark.norce_simulator(clients={"client-b": "secret-b"})
def test_a_cached_token_is_never_read_by_another_client_scope_or_secret(
    norce_simulator, monkeypatch, store_dir
):
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(store_dir))
    sim = norce_simulator.sim
    a = hook_for(sim, monkeypatch, "a", sim.client_id, sim.client_secret)
    a2 = hook_for(sim, monkeypatch, "a2", sim.client_id, sim.client_secret)
    b = hook_for(sim, monkeypatch, "b", "client-b", "secret-b")
    stage = hook_for(sim, monkeypatch, "st", sim.client_id, sim.client_secret, scope="stage")
    wrong = hook_for(sim, monkeypatch, "w", sim.client_id, "not-the-secret")

    token_a = a.get_access_token()
    assert a2.get_access_token() == token_a  # same client, same scope, same secret: shared
    assert norce_simulator.counters()["token_requests"] == 1
    assert b.get_access_token() != token_a
    assert stage.get_access_token() != token_a
    with pytest.raises(NorceAuthError, match="invalid_client"):
        wrong.get_access_token()  # a wrong secret never rides on the stored token
    assert norce_simulator.counters()["token_requests"] == 4
    assert isinstance(a.shared_store, FileTokenStore)


def test_a_token_refused_with_401_is_dropped_from_the_machine_store(norce_simulator, monkeypatch, store_dir):
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(store_dir))
    sim = norce_simulator.sim
    first = hook_for(sim, monkeypatch, "p1", sim.client_id, sim.client_secret)
    old = first.get_access_token()
    sim.revoke_tokens()
    first.run("commerce/metadata/1.1/GetApplication")  # 401 -> dropped here and on disk -> renewed
    second = hook_for(sim, monkeypatch, "p2", sim.client_id, sim.client_secret)
    assert second.get_access_token() == first.get_access_token() != old
    counters = norce_simulator.counters()
    assert counters["api_401"] == 1 and counters["token_requests"] == 2


def test_process_kind_bypasses_the_machine_store(norce_simulator, monkeypatch, store_dir):
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(store_dir))
    sim = norce_simulator.sim
    one = hook_for(sim, monkeypatch, "q1", sim.client_id, sim.client_secret, token_cache="process")
    two = hook_for(sim, monkeypatch, "q2", sim.client_id, sim.client_secret, token_cache="process")
    assert one.shared_store is None
    assert one.get_access_token() != two.get_access_token()
    assert list(store_dir.glob("*.token")) == []


def test_readers_do_not_queue_behind_the_lock_when_a_fresh_token_is_on_disk(store_dir, clock):
    store = FileTokenStore(store_dir, lock_timeout=0.2, clock=clock)  # the held lock is never released
    store.save(KEY, token(clock, "ready"))
    with open(store_dir / f"{KEY}.lock", "wb") as held:
        os.chmod(held.name, 0o600)
        fcntl.flock(held, fcntl.LOCK_EX)  # a process is busy (say, discarding): readers still read
        assert TokenCache(clock=clock).get(KEY, fetcher(clock, "never"), store).access_token == "ready"
        store.save(KEY, token(clock, "due", lifetime=1.0))  # due soon: the reader must take the lock to fetch
        with pytest.raises(NorceError, match="for more than"):
            TokenCache(clock=clock).get(KEY, fetcher(clock, "blocked"), store)


def _returns_within(seconds: float, call, unblock) -> object:
    """``call()``'s result, failing the test if it has not returned after ``seconds`` (then ``unblock()``
    lets the stuck thread go, so it does not outlive the test)."""
    import threading

    result: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        unblock()
        thread.join(5)
        pytest.fail(f"did not return within {seconds} s (blocked opening a FIFO)")
    if errors:
        raise errors[0]
    return result[0]


def _release_fifo_readers(*paths) -> None:
    """Open each FIFO for writing without blocking: a reader stuck in ``open()`` then gets EOF."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def test_a_fifo_in_the_store_is_ignored_and_removed_without_blocking(store, store_dir, clock, caplog):
    token_path, state_path, lock_path = (
        store_dir / f"{KEY}.token",
        store_dir / "limiter.state",
        store_dir / f"{KEY}.lock",
    )
    for path in (token_path, state_path, lock_path):
        os.mkfifo(path, 0o600)
    with caplog.at_level(logging.WARNING):
        loaded = _returns_within(5, lambda: store.load(KEY), lambda: _release_fifo_readers(token_path))
    assert loaded is None
    assert not token_path.exists()  # an untrusted entry: removed
    assert "ignoring" in caplog.text and "token" in caplog.text

    got = _returns_within(
        5,
        lambda: TokenCache(clock=clock).get(KEY, fetcher(clock, "fresh"), store),
        lambda: _release_fifo_readers(state_path, lock_path),
    )
    assert got.access_token == "fresh"
    for path in (token_path, state_path, lock_path):
        assert not path.exists() or os.path.isfile(path)  # replaced by a private file of ours, or gone
    assert store.load(KEY).access_token == "fresh"
