"""The cluster-wide token store on Redis: one token, and one token-request budget, for every worker.

Why: Norce counts token requests per IP address (3 a minute after a burst of 20). Celery workers on
several hosts, or Kubernetes pods behind one NAT gateway, share that budget, but the machine store
only coordinates the processes of one host. Redis is what such deployments already run (the Celery
broker), so the token, its fetch lock and the limiter live there.

Keys (``prefix`` defaults to ``norce:``; ``<key>`` is :func:`~airflow_provider_norce.tokens.cache.token_key`,
a SHA-256 that carries no secret):

* ``norce:token:<key>``: the token, **encrypted** (see :class:`TokenCipher`), with a Redis expiry
  (``PEXPIREAT``) at the token's own expiry, so dead tokens vanish on their own;
* ``norce:lock:<key>``: a random owner id while one process fetches that key's token (``SET NX PX``);
  the holder renews it from a daemon thread and deletes it by compare-and-delete, so a killed holder's
  lock expires within ``lock_ttl`` and nobody ever deletes another's lock;
* ``norce:token-limiter``: the one float ``tat`` of :class:`~airflow_provider_norce.tokens.cache.TokenRequestLimiter`
  for the whole cluster, updated with ``WATCH``/``MULTI`` (optimistic, retried); it expires a minute
  after ``tat`` (from then on it would mean "no history" anyway);
* channel ``norce:token-ready:<key>``: published to after a save and after a lock release, so waiters
  wake the moment the token lands instead of polling.

The store raises Redis's own errors (``redis.exceptions.RedisError``); deciding that one is an outage and
using the machine store meanwhile is :mod:`~airflow_provider_norce.tokens.fallback`'s job (:func:`is_outage`
is the rule for Redis). The ``redis`` package is imported lazily, never by anything the DAG processor loads.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.exceptions import NorceError
from airflow_provider_norce.redaction import strip_userinfo
from airflow_provider_norce.tokens.cache import (
    SETTLED_MARGIN,
    TOKEN_BURST,
    TOKEN_RATE_PER_MINUTE,
    Token,
    TokenRequestLimiter,
    shared_tat,
    token_from_record,
    token_record,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import redis

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "norce:"
#: Seconds a fetch lock lives without renewal: how long a killed holder blocks the others at most.
DEFAULT_LOCK_TTL = 20.0
#: Seconds to connect to Redis and for each answer: a blackholed Redis costs this, never a hung task.
DEFAULT_SOCKET_TIMEOUT = 5.0
#: A waiter re-checks at least this often even without a notification (the safety net; a release or a
#: save wakes it at once).
DEFAULT_WAKE_INTERVAL = 1.0
#: How long a process waits for another one's fetch before giving up (as the machine store).
DEFAULT_LOCK_TIMEOUT = 900.0
#: The limiter key outlives its ``tat`` by this much (after ``tat`` its value means "no history" anyway).
LIMITER_GRACE = 60.0
#: WATCH/MULTI rounds before the limiter gives up (each round lets at least one contender through).
MAX_LIMITER_ROUNDS = 1000

#: Key derivation of the token cipher: HKDF-SHA256 of the client secret, 32 bytes (AES-256), with this
#: constant salt and info. Changing either makes every stored token unreadable (they are then refetched).
HKDF_SALT = b"airflow-provider-norce redis token store v1"
HKDF_INFO = b"norce access token encryption"
#: The first byte of every stored value: the format (version 1: AES-256-GCM, 12-byte random nonce).
FORMAT_V1 = b"\x01"
NONCE_BYTES = 12

#: Renew a lock if we still own it (compare-and-set by owner).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
#: Release a lock if we still own it, and wake the waiters (compare-and-delete by owner).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('publish', KEYS[2], 'released')
  return 1
end
return 0
"""
#: Delete a value only if it is still the one we read (never a token saved meanwhile).
_DELETE_IF_SAME = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class TokenCipher:
    """AES-256-GCM with a key derived from the client secret; the Redis key name is the associated data.

    Why: a reader of Redis (another team sharing the broker, a backup, ``MONITOR``) without the secret
    learns nothing usable, and a value copied under another key name does not decrypt there. The
    secret itself is not kept: only the derived key, inside the AEAD object, which has no useful repr.
    """

    def __init__(self, client_secret: str) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(
            client_secret.encode()
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(AES-256-GCM)"

    def seal(self, plaintext: bytes, name: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, name.encode())

    def open(self, blob: bytes, name: str) -> bytes:
        """The plaintext; ``ValueError`` when ``blob`` was not sealed under ``name`` with this secret."""
        from cryptography.exceptions import InvalidTag

        if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != FORMAT_V1:
            raise ValueError("not a value of this store's format")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, name.encode())
        except InvalidTag:
            raise ValueError("does not decrypt with this client secret under this key") from None


@dataclass
class Lease:
    """A held fetch lock: its Redis key, our random owner id, and the thread that keeps it alive."""

    name: str
    channel: str
    owner: str = field(repr=False)
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    renewer: threading.Thread | None = field(default=None, repr=False)


class RedisTokenStore:
    """A :class:`~airflow_provider_norce.tokens.cache.SharedTokenStore` on one Redis server (see the module).

    :param client: a ``redis.Redis`` client (socket timeouts set: see :data:`DEFAULT_SOCKET_TIMEOUT`).
    :param client_secret: the connection's secret; only a key derived from it is kept (:class:`TokenCipher`).
    :param where: how messages name this Redis (an Airflow connection id, host and port; never a password).
    :param prefix: the prefix of every key and channel, so several deployments can share one Redis.
    :param lock_ttl: seconds a fetch lock lives unrenewed (a killed holder blocks others this long at most).
    :param lock_timeout: seconds to wait for another process's fetch before raising.
    :param wake_interval: the longest a waiter sleeps without a notification before it looks again.
    :param burst: token requests the whole cluster may send at once.
    :param rate_per_minute: token requests per minute once the burst is spent.
    :param clock: wall clock (tokens carry absolute expiry times; the limiter's ``tat`` is one too).
    """

    def __init__(
        self,
        client: redis.Redis,
        client_secret: str,
        *,
        where: str = "Redis",
        prefix: str = DEFAULT_PREFIX,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        wake_interval: float = DEFAULT_WAKE_INTERVAL,
        burst: int = TOKEN_BURST,
        rate_per_minute: float = TOKEN_RATE_PER_MINUTE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lock_ttl <= 0 or wake_interval <= 0:
            raise ValueError("lock_ttl and wake_interval must be positive")
        #: ``Any``: redis-py types every command as "a value or an awaitable" (one class for sync and async).
        self.client: Any = client
        self.where = strip_userinfo(where)
        self.prefix = prefix
        self.lock_ttl = lock_ttl
        self.lock_timeout = lock_timeout
        self.wake_interval = wake_interval
        self.burst = burst
        self.rate_per_minute = rate_per_minute
        self.clock = clock
        self._cipher = TokenCipher(client_secret)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._delete_if_same = client.register_script(_DELETE_IF_SAME)
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r}, prefix={self.prefix!r})"

    # -- names -----------------------------------------------------------------------------------

    def token_name(self, key: str) -> str:
        return f"{self.prefix}token:{key}"

    def lock_name(self, key: str) -> str:
        return f"{self.prefix}lock:{key}"

    def channel(self, key: str) -> str:
        return f"{self.prefix}token-ready:{key}"

    @property
    def limiter_name(self) -> str:
        return f"{self.prefix}token-limiter"

    # -- SharedTokenStore ------------------------------------------------------------------------

    def load(self, key: str) -> Token | None:
        """The stored token of ``key``; a value that does not decrypt or parse is ignored and deleted."""
        name = self.token_name(key)
        raw = self.client.get(name)
        if raw is None:
            return None
        try:
            return self._parse(key, self._cipher.open(raw, name))
        except (ValueError, KeyError, TypeError):
            self._warn_once(
                f"unreadable:{name}",
                "Norce token store: ignoring and removing the unreadable token at %s in %s (written with "
                "another client secret, copied from another key, or not by this provider); the next fetch "
                "replaces it",
                name,
                self.where,
            )
            self._delete_if_same(keys=[name], args=[raw])
            return None

    def save(self, key: str, token: Token) -> None:
        """Store encrypted, expiring with the token; wake the waiters in the same transaction."""
        name = self.token_name(key)
        blob = self._cipher.seal(json.dumps(token_record(key, token)).encode(), name)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(name, blob)
        pipe.pexpireat(name, int(token.expires_at * 1000))
        pipe.publish(self.channel(key), "saved")
        pipe.execute()

    def discard(self, key: str, access_token: str) -> None:
        """Delete the stored token of ``key``, but only if it is ``access_token`` (not its replacement)."""
        name = self.token_name(key)
        raw = self.client.get(name)
        if raw is None:
            return
        try:
            stored = self._parse(key, self._cipher.open(raw, name))
        except (ValueError, KeyError, TypeError):
            stored = None
        if stored is None or stored.access_token == access_token:
            self._delete_if_same(keys=[name], args=[raw])

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Exclusive across the cluster while one process fetches ``key``'s token.

        Nobody queues to read: when a fresh token is stored already, or lands while we wait (the
        fetcher saves it before it releases the lock, and both wake us), this yields without the lock.
        """
        lease = self.acquire(key)
        try:
            yield
        finally:
            if lease is not None:
                self.release(lease)

    def reserve_token_request(self, max_wait: float) -> float | None:
        """Claim the cluster's next token-request slot: seconds to wait, or None beyond ``max_wait``."""
        return self._with_limiter(lambda limiter: limiter.reserve(max_wait))

    def note_rate_limited(self, retry_after: float | None) -> None:
        """Norce said 429: no worker of the cluster asks again before it says so."""
        self._with_limiter(lambda limiter: limiter.note_rate_limited(retry_after))

    # -- the lock --------------------------------------------------------------------------------

    def acquire(self, key: str) -> Lease | None:
        """Take ``key``'s fetch lock (a :class:`Lease`), or None when a fresh token is there to read.

        Waiting: we SUBSCRIBE to the key's channel and only then look again, so a save or release
        published after our look cannot be missed; each wait is bounded by ``wake_interval`` and the
        lock's remaining life (a killed holder's lock just expires), then we look again.
        """
        name, channel = self.lock_name(key), self.channel(key)
        deadline = time.monotonic() + self.lock_timeout
        pubsub = None
        try:
            while True:
                if self._fresh(key):
                    return None
                owner = secrets.token_hex(16)
                if self.client.set(name, owner, nx=True, px=self._ttl_ms):
                    return self._start_lease(Lease(name, channel, owner))
                if pubsub is None:
                    pubsub = self.client.pubsub()
                    self._subscribe(pubsub, channel)
                    continue  # subscribed now: look again before sleeping
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _LockTimeout(
                        f"Norce token store: another worker has held the token lock {name} in {self.where} "
                        f"for more than {self.lock_timeout:.0f} s while fetching a token; a dead holder's "
                        f"lock expires within {self.lock_ttl:g} s on its own, so a live one is stuck"
                    )
                self._wait(pubsub, min(remaining, self._until_expiry(name)))
        finally:
            if pubsub is not None:
                pubsub.close()

    def release(self, lease: Lease) -> None:
        """Stop renewing, delete the lock if it is still ours, and wake the waiters."""
        lease.stop.set()
        if lease.renewer is not None:
            lease.renewer.join(timeout=1.0)
        self._release(keys=[lease.name, lease.channel], args=[lease.owner])

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.lock_ttl * 1000))

    def _start_lease(self, lease: Lease) -> Lease:
        """Renew the lock every third of its TTL until released (or until it is found lost)."""

        def renew() -> None:
            while not lease.stop.wait(self.lock_ttl / 3):
                try:
                    if not self._renew(keys=[lease.name], args=[lease.owner, self._ttl_ms]):
                        log.debug("Norce token store: lost the lock %s (expired); not renewing", lease.name)
                        return
                except Exception:  # Redis went away: the fetch goes on; the lock expires by itself
                    return

        lease.renewer = threading.Thread(target=renew, name="norce-token-lock-renewer", daemon=True)
        lease.renewer.start()
        return lease

    def _subscribe(self, pubsub: Any, channel: str) -> None:
        """SUBSCRIBE and wait for Redis to confirm it, so every publish after this reaches us."""
        pubsub.subscribe(channel)
        deadline = time.monotonic() + self.wake_interval + DEFAULT_SOCKET_TIMEOUT
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=self.wake_interval)
            if message is not None and message.get("type") == "subscribe":
                return

    def _wait(self, pubsub: Any, limit: float) -> None:
        """Until a notification arrives, or ``min(limit, wake_interval)`` passes."""
        message = pubsub.get_message(timeout=max(0.01, min(limit, self.wake_interval)))
        while message is not None and message.get("type") != "message":
            message = pubsub.get_message(timeout=0.0)  # skip confirmations; a message or nothing

    def _until_expiry(self, name: str) -> float:
        """Seconds until the lock ``name`` expires (0 when it is gone already)."""
        ms = self.client.pttl(name)
        if ms == -1:  # no expiry: not ours (ours always have one); look again at the usual pace
            return self.wake_interval
        return max(0.0, ms / 1000.0) if ms is not None and ms >= 0 else 0.0

    def _fresh(self, key: str) -> bool:
        token = self.load(key)
        return token is not None and token.fresh(self.clock() + SETTLED_MARGIN)

    # -- the limiter -----------------------------------------------------------------------------

    def _with_limiter(self, action: Callable[[TokenRequestLimiter], Any]) -> Any:
        """Apply ``action`` to the cluster's limiter state atomically (WATCH/MULTI, retried on a race).

        Why one limiter for all keys: Norce counts token requests per IP address, not per client or
        scope, so every connection of every worker behind one address spends the same budget. The
        rule itself is :class:`~airflow_provider_norce.tokens.cache.TokenRequestLimiter`'s, not
        repeated here: this only loads and stores its one float.
        """
        import redis

        name = self.limiter_name
        with self.client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_LIMITER_ROUNDS):
                try:
                    pipe.watch(name)
                    limiter = TokenRequestLimiter(self.burst, self.rate_per_minute, self.clock)
                    limiter.tat = before = self._tat(pipe.get(name))
                    result = action(limiter)
                    if limiter.tat == before:
                        pipe.unwatch()
                        return result
                    pipe.multi()
                    pipe.set(name, repr(limiter.tat))
                    # relative: the worker's clock and Redis's may differ; after ``tat`` the value means nothing
                    ahead = max(0.0, limiter.tat - self.clock())
                    pipe.pexpire(name, int((ahead + LIMITER_GRACE) * 1000))
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue  # another worker moved it between our read and write: again
        raise _LimiterContention(
            f"Norce token store: the token-request limiter {name} in {self.where} changed under us "
            f"{MAX_LIMITER_ROUNDS} times in a row"
        )

    def _tat(self, raw: Any) -> float:
        """The shared ``tat``; absent or corrupt counts as no history, far ahead is clamped."""
        tat = None if raw is None else shared_tat(raw, self.clock())
        return 0.0 if tat is None else tat

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _parse(key: str, plaintext: bytes) -> Token:
        return token_from_record(json.loads(plaintext), key)

    def _warn_once(self, what: str, message: str, *args: Any) -> None:
        with self._warn_lock:
            if what in self._warned:
                return
            self._warned.add(what)
        log.warning(message, *args)


class _LockTimeout(NorceError):
    """Another worker held a token lock past ``lock_timeout``."""


class _LimiterContention(NorceError):
    """The limiter key kept changing under every WATCH (not an outage: a bug or an abuse)."""


#: Server answers that describe the server's state (an outage for our purposes), not a mistake in a
#: command: read-only replica, out of memory, loading, busy script, no quorum, missing permission.
_SERVER_STATES = (
    "READONLY",
    "OOM",
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "MISCONF",
    "NOREPLICAS",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOAUTH",
    "NOPERM",
    "WRONGPASS",
    "WRONGTYPE",
)


def is_outage(err: BaseException) -> bool:
    """Whether ``err`` means "Redis cannot be used now" (fall back), not a programming error (raise).

    Outages: connection refused or reset, timeouts, authentication, TLS, and server states such as a
    read-only replica or ``OOM``; also ``WRONGTYPE`` (something else owns our key names: the store cannot
    be used until the prefix is changed). Programming errors: ``DataError`` (a bad argument) and other
    ``ResponseError``\\ s (an unknown command, a broken script).
    """
    try:
        from redis import exceptions
    except ImportError:
        return False
    if not isinstance(err, exceptions.RedisError):
        return False
    if isinstance(err, exceptions.DataError):
        return False
    if isinstance(err, exceptions.ResponseError):
        word = str(err).split(" ", 1)[0].upper()
        return isinstance(err, exceptions.ReadOnlyError) or word in _SERVER_STATES
    return True
