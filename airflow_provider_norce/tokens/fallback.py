"""The one rule for a shared token store that cannot be reached: use the machine store meanwhile.

Why: the cluster store (Redis) is an optimisation of the token budget, never a dependency of a pipeline.
When it fails with an outage (refused, timed out, reset, a read-only or out-of-memory server ...), every
operation of :class:`FallbackTokenStore` goes to the machine store instead: tokens are then shared by the
processes of one machine only, which costs at most one token request per machine. One warning per
process says what failed and what to check; after ``cooldown`` seconds the primary store is tried again,
so a restarted Redis is used again without restarting any worker.

This also holds mid-operation: a process that holds the primary's lock, or waits on it, when the primary
dies carries on with the machine store (the primary's lock then expires by its TTL).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_norce.redaction import strip_userinfo
from airflow_provider_norce.tokens.cache import TokenRequestLimiter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_norce.tokens.cache import SharedTokenStore, Token

log = logging.getLogger(__name__)

#: Seconds the machine store stands in before the primary store is tried again.
DEFAULT_COOLDOWN = 30.0
T = TypeVar("T")

#: What has been warned about in this process (one warning per process and primary store).
_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once_per_process(what: str, message: str, *args: Any) -> bool:
    """Log ``message`` as a warning the first time ``what`` is seen in this process; True if it was."""
    with _warned_lock:
        if what in _warned:
            return False
        _warned.add(what)
    log.warning(message, *args)
    return True


class FallbackTokenStore:
    """A :class:`~airflow_provider_norce.tokens.cache.SharedTokenStore` that is ``primary`` while it answers.

    :param primary: the store to use (the Redis store).
    :param fallback: returns the store to use meanwhile (the machine store), or None when there is none
        (then this process limits and caches for itself).
    :param is_outage: whether an exception of ``primary`` means "cannot be used now"; any other
        exception is a bug and propagates.
    :param where: how the warning names the primary (a connection id, host and port; never a secret).
    :param advice: what the warning tells the operator to check.
    :param cooldown: seconds before the primary is tried again after an outage.
    :param clock: monotonic clock for the cool-down.
    """

    def __init__(
        self,
        primary: SharedTokenStore,
        fallback: Callable[[], SharedTokenStore | None],
        *,
        is_outage: Callable[[BaseException], bool],
        where: str,
        advice: str,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self._fallback = fallback
        self._is_outage = is_outage
        self.where = strip_userinfo(where)
        self.advice = strip_userinfo(advice)
        self.cooldown = cooldown
        self.clock = clock
        self._down_until: float | None = None
        self._lock = threading.Lock()
        #: For when there is no machine store either: this process's own limiter.
        self._own_limiter = TokenRequestLimiter()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.primary!r}, down={self.down})"

    @property
    def down(self) -> bool:
        """Whether the primary is skipped now (an outage less than ``cooldown`` seconds ago)."""
        with self._lock:
            return self._down_until is not None and self.clock() < self._down_until

    # -- SharedTokenStore ------------------------------------------------------------------------

    def load(self, key: str) -> Token | None:
        return self._call(lambda store: store.load(key), None)

    def save(self, key: str, token: Token) -> None:
        self._call(lambda store: store.save(key, token), None)

    def discard(self, key: str, access_token: str) -> None:
        self._call(lambda store: store.discard(key, access_token), None)

    def reserve_token_request(self, max_wait: float) -> float | None:
        own = self._own_limiter
        return self._call(lambda store: store.reserve_token_request(max_wait), own.reserve, max_wait)

    def note_rate_limited(self, retry_after: float | None) -> None:
        own = self._own_limiter
        self._call(lambda store: store.note_rate_limited(retry_after), own.note_rate_limited, retry_after)

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """The primary's lock; the fallback's when the primary is down or fails while we wait for it."""
        held = None
        if not self.down:
            manager = self.primary.locked(key)
            try:
                manager.__enter__()
                held = manager
            except Exception as err:
                self._went_down(err)
        if held is None:
            store = self._fallback()
            if store is None:
                yield
                return
            with store.locked(key):
                yield
            return
        try:
            yield
        except BaseException as body_error:
            self._leave(held, body_error)
            raise
        self._leave(held, None)

    # -- the rule --------------------------------------------------------------------------------

    def _call(self, action: Callable[[SharedTokenStore], T], alone: Callable[..., T] | None, *args: Any) -> T:
        """``action`` on the primary; on an outage (now or within the cool-down) on the fallback store."""
        if not self.down:
            try:
                result = action(self.primary)
            except Exception as err:
                self._went_down(err)
            else:
                self._came_back()
                return result
        store = self._fallback()
        if store is not None:
            return action(store)
        return alone(*args) if alone is not None else None  # type: ignore[return-value]

    def _leave(self, manager: Any, body_error: BaseException | None) -> None:
        """Exit the primary's lock; an outage while releasing it only costs the lock's TTL."""
        try:
            if body_error is None:
                manager.__exit__(None, None, None)
            else:
                manager.__exit__(type(body_error), body_error, body_error.__traceback__)
        except Exception as err:
            if err is body_error:
                return  # the body's own error, re-raised by the caller
            self._went_down(err)

    def _went_down(self, err: Exception) -> None:
        """Re-raise ``err`` unless it is an outage; else skip the primary for ``cooldown`` and warn once."""
        if not self._is_outage(err):
            raise err
        with self._lock:
            was_up = self._down_until is None
            self._down_until = self.clock() + self.cooldown
        first = warn_once_per_process(
            f"outage:{self.where}",
            "Norce token store: Redis %s cannot be used (%s: %s); falling back to the machine store, so "
            "tokens are now shared per machine only (each machine asks Norce for its own token). Redis is "
            "tried again every %g s. %s",
            self.where,
            type(err).__name__,
            _short(err),
            self.cooldown,
            self.advice,
        )
        if not first and was_up:
            log.info(
                "Norce token store: Redis %s failed again (%s); using the machine store",
                self.where,
                _short(err),
            )

    def _came_back(self) -> None:
        with self._lock:
            if self._down_until is None:
                return
            self._down_until = None
        log.info(
            "Norce token store: Redis %s answers again; tokens are shared cluster-wide again", self.where
        )


def _reset_after_fork() -> None:
    """A forked task process is a process of its own: it warns for itself, with a lock no thread holds."""
    global _warned_lock
    _warned_lock = threading.Lock()
    _warned.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _short(err: BaseException) -> str:
    """The error's text for the warning, without any ``user:password@`` (redis-py names the host it could not
    reach, and a host field may hold a whole URL with its password)."""
    text = strip_userinfo(" ".join(str(err).split()))
    return text[:300] if text else "no details"
