"""Choosing the token store shared beyond one process, from the connection's ``token_cache`` extra.

* ``process``: none; each process keeps its own tokens (:data:`~airflow_provider_norce.tokens.cache.PROCESS_TOKEN_CACHE`).
* ``machine`` (the default): :class:`~airflow_provider_norce.tokens.machine_store.FileTokenStore` in a private
  directory, shared by every task process of this machine and user.
* anything registered with :func:`register_token_store`: a store shared wider, for example by every
  worker of a cluster (Redis, the Airflow metadata database). It only has to implement the six methods
  of :class:`~airflow_provider_norce.tokens.cache.SharedTokenStore`.

The store is looked up when a hook first needs a token (never at import or in ``__init__``), once per
process and configuration.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_norce.tokens.cache import SharedTokenStore

log = logging.getLogger(__name__)

_factories: dict[str, Callable[[], SharedTokenStore | None]] = {}
_machine_stores: dict[tuple[str | None, str | None], SharedTokenStore | None] = {}
_lock = threading.Lock()


def register_token_store(kind: str, factory: Callable[[], SharedTokenStore | None]) -> None:
    """Make ``token_cache = kind`` use the store ``factory`` returns (called when a hook first needs it)."""
    if kind in ("process", "machine"):
        raise ValueError(f"token_cache {kind!r} is built in and cannot be replaced")
    _factories[kind] = factory


def registered_token_stores() -> tuple[str, ...]:
    """The ``token_cache`` kinds added with :func:`register_token_store`, for the connection's validation."""
    return tuple(sorted(_factories))


def store_for(kind: str) -> SharedTokenStore | None:
    """``process``: None (the in-process cache alone). ``machine``: the machine-wide store, or None with
    a warning when no private directory can be had. Other kinds: their registered factory."""
    if kind == "process":
        return None
    if kind == "machine":
        return machine_store()
    factory = _factories.get(kind)
    if factory is None:
        known = ", ".join(["process", "machine", *sorted(_factories)])
        raise ValueError(f"unknown token_cache {kind!r}; known: {known}")
    return factory()


def machine_store() -> SharedTokenStore | None:
    """The machine store of the current ``NORCE_TOKEN_CACHE_DIR`` / ``NORCE_TOKEN_REQUEST_LIMIT``."""
    from airflow_provider_norce.tokens.machine_store import ENV_DIR, ENV_LIMIT

    config = (os.environ.get(ENV_DIR), os.environ.get(ENV_LIMIT))
    with _lock:
        if config not in _machine_stores:
            _machine_stores[config] = _build_machine_store()
        return _machine_stores[config]


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
        "Set %s to a directory only this user can access, or the connection extra token_cache to 'process'.",
        ", ".join(tried),
        ENV_DIR,
    )
    return None


def _owned_by_another_user(path: Path) -> bool:
    try:
        return os.lstat(path).st_uid != os.geteuid()
    except OSError:
        return False
