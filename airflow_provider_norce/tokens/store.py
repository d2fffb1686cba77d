"""Choosing the token store shared beyond one process, from the connection's ``auth_cache`` extra (formerly ``token_cache``).

* ``process``: none; each process keeps its own tokens (:data:`~airflow_provider_norce.tokens.cache.PROCESS_TOKEN_CACHE`).
* ``machine`` (the default): :class:`~airflow_provider_norce.tokens.machine_store.FileTokenStore` in a private
  directory, shared by every task process of this machine and user.
* ``redis``: :class:`~airflow_provider_norce.tokens.redis_store.RedisTokenStore` on the Airflow Redis
  connection named by the ``auth_cache_conn_id`` extra, shared by every worker of a cluster; behind
  :class:`~airflow_provider_norce.tokens.fallback.FallbackTokenStore`, so an unreachable Redis means the
  machine store meanwhile (one warning per process), never a failed task. Tuned by the environment:
  ``NORCE_TOKEN_REDIS_LOCK_TTL`` (seconds a dead fetcher's lock blocks others, default 20),
  ``NORCE_TOKEN_REDIS_COOLDOWN`` (seconds before an unreachable Redis is tried again, default 30),
  ``NORCE_TOKEN_REDIS_TIMEOUT`` (connect and socket timeout in seconds, default 5) and
  ``NORCE_TOKEN_REDIS_PREFIX`` (of every key, default ``norce:``).
* anything registered with :func:`register_token_store`: a store shared wider, for example by every
  worker of a cluster (Redis, the Airflow metadata database). It only has to implement the six methods
  of :class:`~airflow_provider_norce.tokens.cache.SharedTokenStore`.

The store is looked up when a hook first needs a token (never at import or in ``__init__``), once per
process and configuration.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_norce.exceptions import NorceConnectionConfigError, NorceError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.tokens.cache import SharedTokenStore

log = logging.getLogger(__name__)

ENV_REDIS_LOCK_TTL = "NORCE_TOKEN_REDIS_LOCK_TTL"
ENV_REDIS_COOLDOWN = "NORCE_TOKEN_REDIS_COOLDOWN"
ENV_REDIS_TIMEOUT = "NORCE_TOKEN_REDIS_TIMEOUT"
ENV_REDIS_PREFIX = "NORCE_TOKEN_REDIS_PREFIX"
#: What the warnings tell an operator to do when the ``redis`` package is missing.
REDIS_INSTALL_HINT = "pip install 'airflow-provider-norce[redis]'"

_factories: dict[str, Callable[[], SharedTokenStore | None]] = {}
_machine_stores: dict[tuple[str | None, str | None], SharedTokenStore | None] = {}
_redis_stores: dict[tuple[str, ...], SharedTokenStore | None] = {}
_lock = threading.Lock()


def register_token_store(kind: str, factory: Callable[[], SharedTokenStore | None]) -> None:
    """Make ``auth_cache = kind`` use the store ``factory`` returns (called when a hook first needs it)."""
    if kind in ("process", "machine", "redis"):
        raise ValueError(f"auth_cache {kind!r} is built in and cannot be replaced")
    _factories[kind] = factory


def registered_token_stores() -> tuple[str, ...]:
    """The ``auth_cache`` kinds added with :func:`register_token_store`, for the connection's validation."""
    return tuple(sorted(_factories))


def store_for(config: NorceConnectionConfig | str) -> SharedTokenStore | None:
    """The shared store of a connection (its ``auth_cache`` extra), or of a kind given by name.

    ``process``: None (the in-process cache alone). ``machine``: the machine-wide store, or None with
    a warning when no private directory can be had. ``redis``: the cluster store of the connection's
    ``auth_cache_conn_id`` (needs the configuration: its cipher is keyed by the client secret), with
    the machine store as fallback. Other kinds: their registered factory.
    """
    kind = config if isinstance(config, str) else config.token_cache
    if kind == "process":
        return None
    if kind == "machine":
        return machine_store()
    if kind == "redis":
        if isinstance(config, str):
            raise ValueError(
                "auth_cache 'redis' needs the connection's configuration: call store_for(config)"
            )
        return redis_store(config)
    factory = _factories.get(kind)
    if factory is None:
        known = ", ".join(["process", "machine", "redis", *sorted(_factories)])
        raise ValueError(f"unknown auth_cache {kind!r}; known: {known}")
    return factory()


def machine_store() -> SharedTokenStore | None:
    """The machine store of the current ``NORCE_TOKEN_CACHE_DIR`` / ``NORCE_TOKEN_REQUEST_LIMIT``."""
    from airflow_provider_norce.tokens.machine_store import ENV_DIR, ENV_LIMIT

    config = (os.environ.get(ENV_DIR), os.environ.get(ENV_LIMIT))
    with _lock:
        if config not in _machine_stores:
            _machine_stores[config] = _build_machine_store()
        return _machine_stores[config]


def redis_store(config: NorceConnectionConfig) -> SharedTokenStore | None:
    """The Redis store of ``config`` behind the machine-store fallback; one per process, Redis connection,
    client secret (digest) and tuning. The Redis connection is looked up here, on first need only.

    Without the ``redis`` package: the machine store, with one warning per process saying how to install it.
    """
    settings = _redis_settings()
    secret_digest = hashlib.sha256(config.client_secret.encode()).hexdigest()
    cache_key = (config.token_cache_conn_id, secret_digest, *map(repr, settings))
    with _lock:
        if cache_key in _redis_stores:
            return _redis_stores[cache_key]
    try:
        import redis  # noqa: F401
    except ImportError:
        from airflow_provider_norce.tokens.fallback import warn_once_per_process

        warn_once_per_process(
            "redis-missing",
            "Norce token store: connection %r sets auth_cache 'redis' but the Python package redis is not "
            "installed; falling back to the machine store, so tokens are shared per machine only. Install "
            "it on every worker: %s",
            config.conn_id,
            REDIS_INSTALL_HINT,
        )
        return machine_store()
    try:
        store = _build_redis_store(config, *settings)
    except NorceConnectionConfigError:
        raise  # the connection names a Redis that cannot exist as given: a human must fix it
    except Exception as err:  # the look-up itself failed (a secrets backend, the supervisor): not cached
        from airflow_provider_norce.tokens.fallback import warn_once_per_process

        warn_once_per_process(
            f"redis-lookup:{config.token_cache_conn_id}",
            "Norce token store: could not read the Redis connection %r named by connection %r (%s); falling "
            "back to the machine store, so tokens are shared per machine only. Check that the connection "
            "can be read on this worker",
            config.token_cache_conn_id,
            config.conn_id,
            type(err).__name__,
        )
        return machine_store()
    with _lock:
        return _redis_stores.setdefault(cache_key, store)


def _build_redis_store(
    config: NorceConnectionConfig, lock_ttl: float, cooldown: float, timeout: float, prefix: str
) -> SharedTokenStore:
    from airflow_provider_norce.tokens.fallback import FallbackTokenStore
    from airflow_provider_norce.tokens.machine_store import request_limit_from_env
    from airflow_provider_norce.tokens.redis_connection import redis_client
    from airflow_provider_norce.tokens.redis_store import RedisTokenStore, is_outage

    client, target = redis_client(config.token_cache_conn_id, config.conn_id, socket_timeout=timeout)
    burst, per_minute = request_limit_from_env()
    primary = RedisTokenStore(
        client,
        config.client_secret,
        where=str(target),
        prefix=prefix,
        lock_ttl=lock_ttl,
        burst=burst,
        rate_per_minute=per_minute,
    )
    advice = (
        f"Check that the Redis server of Airflow connection {target.conn_id!r} is running and reachable "
        f"from this worker ({target.host}:{target.port}), and the connection's password and TLS settings "
        f"(Norce connection {config.conn_id!r}, extra auth_cache_conn_id)."
    )
    return FallbackTokenStore(
        primary, machine_store, is_outage=is_outage, where=str(target), advice=advice, cooldown=cooldown
    )


def _redis_settings(environ: Mapping[str, str] | None = None) -> tuple[float, float, float, str]:
    """``(lock_ttl, cooldown, timeout, prefix)`` from the environment, else the defaults."""
    from airflow_provider_norce.tokens.fallback import DEFAULT_COOLDOWN
    from airflow_provider_norce.tokens.redis_store import (
        DEFAULT_LOCK_TTL,
        DEFAULT_PREFIX,
        DEFAULT_SOCKET_TIMEOUT,
    )

    env = os.environ if environ is None else environ
    prefix = env.get(ENV_REDIS_PREFIX) or DEFAULT_PREFIX
    return (
        _seconds(env, ENV_REDIS_LOCK_TTL, DEFAULT_LOCK_TTL),
        _seconds(env, ENV_REDIS_COOLDOWN, DEFAULT_COOLDOWN),
        _seconds(env, ENV_REDIS_TIMEOUT, DEFAULT_SOCKET_TIMEOUT),
        prefix,
    )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise NorceError(f"{name}={raw!r} is not a positive number of seconds (unset it for {default:g})")
    return value


def _build_machine_store() -> SharedTokenStore | None:
    from airflow_provider_norce.tokens.machine_store import (
        ENV_DIR,
        FileTokenStore,
        default_directories,
        private_directory,
        request_limit_from_env,
    )

    burst, per_minute = request_limit_from_env()
    override = os.environ.get(ENV_DIR)
    if override:
        # The directory the user chose is kept even while it cannot be used (missing and not creatable,
        # read-only, a file in its place): the store re-checks it before every use, warns once saying what
        # to do, and shares tokens again as soon as it is fine, without restarting this process. Only a
        # directory of another user is refused for good: never ours to repair.
        chosen = Path(override).expanduser()
        if private_directory(chosen, []) is not None or not _owned_by_another_user(chosen):
            return FileTokenStore(chosen, burst=burst, rate_per_minute=per_minute)
    tried = []
    for candidate in default_directories():
        directory = private_directory(candidate)
        if directory is not None:
            return FileTokenStore(directory, burst=burst, rate_per_minute=per_minute)
        tried.append(str(candidate))
    log.warning(
        "Norce token store: no private directory could be used (%s); tokens are cached per process only. "
        "Set %s to a directory only this user can access, or the connection extra auth_cache to 'process'.",
        ", ".join(tried),
        ENV_DIR,
    )
    return None


def _owned_by_another_user(path: Path) -> bool:
    try:
        return os.lstat(path).st_uid != os.geteuid()
    except OSError:
        return False
