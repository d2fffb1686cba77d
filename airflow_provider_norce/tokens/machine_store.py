"""The machine-wide token store: one token, and one token-request budget, for every process of a machine.

Why: Airflow runs each task in a process of its own, and Norce admits 3 token requests a minute per IP
address after a burst of 20. Forty mapped tasks starting together would each ask for a token and
half of them would be refused; with this store the first process fetches, the others wait on a file
lock and read its result, and all token requests of the machine pass one limiter.

Layout: a private directory (mode 0700, owned by the user running Airflow) holding, per
:func:`~airflow_provider_norce.tokens.cache.token_key`,

* ``<key>.lock``: ``fcntl.flock``-ed while one process fetches that key's token. The kernel releases
  a ``flock`` when its holder dies, so a killed task never blocks the others;
* ``<key>.token``: the token as JSON (0600), written to a temporary file and renamed over the old one,
  so readers see the old or the new token, never half of one;

and, for the whole machine, ``limiter.lock`` + ``limiter.state``: the GCRA ``tat`` of
:class:`~airflow_provider_norce.tokens.cache.TokenRequestLimiter` (one float), read, advanced and
written under its own lock. The limiter lock is only ever taken inside a key lock (never the other
way round), and only for a read-modify-write, so there is no lock-order deadlock.

Nothing in the directory is trusted blindly (one rule, :func:`trusted_file`): a file that is not a
regular file, is a symlink, has more than one link, is owned by another user, is readable or writable
by group or others, is too large or does not parse is ignored and removed (the next save writes a
good one in its place). A directory of ours found open to others is tightened, and only what fails
that rule is removed from it, never another process's fresh files. A
token file names the key it belongs to, so a file copied or renamed to another key's name is not
served to that key's client.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.exceptions import NorceError
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
    from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger(__name__)

#: Overrides where the machine store lives (one directory per machine and user).
ENV_DIR = "NORCE_TOKEN_CACHE_DIR"
#: ``BURST,PER_MINUTE``: the token-request limit the store enforces (Norce's is ``20,3``). For tests and
#: simulators; raising it against Norce only earns 429s.
ENV_LIMIT = "NORCE_TOKEN_REQUEST_LIMIT"
MAX_FILE_BYTES = 64 * 1024
#: How long a process waits for another one's token fetch before giving up with an error. A fetch
#: may wait up to the retry budget (300 s by default) for a token slot, plus its request timeouts.
DEFAULT_LOCK_TIMEOUT = 900.0
LIMITER_LOCK = "limiter.lock"
LIMITER_STATE = "limiter.state"
_SAFE_KEY = re.compile(r"^[0-9a-f]{16,128}$")
_OPEN_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def default_directories(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where the store may live, best first: ``$NORCE_TOKEN_CACHE_DIR`` alone when it is set.

    ``$XDG_RUNTIME_DIR`` is a per-user tmpfs (tokens never reach a disk); ``~/.cache`` survives
    reboots; ``/tmp/airflow-provider-norce-<uid>`` is the last resort (``/tmp`` is sticky, so another
    user can squat the name but not replace our directory: a squatted one is refused).
    """
    env = os.environ if environ is None else environ
    override = env.get(ENV_DIR)
    if override:
        return [Path(override).expanduser()]
    candidates: list[Path] = []
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute():
        candidates.append(Path(runtime) / "airflow-provider-norce" / "tokens")
    home = env.get("HOME") or _home_of_uid()
    if home:
        candidates.append(Path(home) / ".cache" / "airflow-provider-norce" / "tokens")
    candidates.append(Path(tempfile.gettempdir()) / f"airflow-provider-norce-{os.geteuid()}")
    return candidates


def private_directory(path: Path, problems: list[str] | None = None) -> Path | None:
    """``path`` as a directory only we can use (created 0700 if missing), or None if it cannot be.

    Ours but too open: tightened to 0700, and what may have been planted or tampered with while it was open
    is removed (see :func:`_remove_untrusted_entries`); our own private files stay. A symlink: removed
    and replaced by a real directory. Another user's: refused (never ours to repair). Why it cannot be
    used is logged as a warning, or appended to ``problems`` when that is given (a caller that warns once).
    """
    uid = os.geteuid()

    def refuse(message: str, *args: Any) -> None:
        if problems is None:
            log.warning("Norce token store: " + message, *args)
        else:
            problems.append(message % args)

    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            log.warning("Norce token store: %s is a symlink; replacing it with a private directory", path)
            path.unlink()
            path.mkdir(mode=0o700)
            st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            refuse("%s is not a directory; not using it", path)
            return None
        if st.st_uid != uid:
            refuse("%s belongs to uid %d, not to this user (uid %d); not using it", path, st.st_uid, uid)
            return None
        if st.st_mode & 0o077:
            os.chmod(path, 0o700, follow_symlinks=False)
            removed = _remove_untrusted_entries(path)
            _warn_tightened_once(path, stat.S_IMODE(st.st_mode), removed)
        return path
    except OSError as err:
        refuse("cannot use %s (%s)", path, err.strerror or type(err).__name__)
        return None


def trusted_file(st: os.stat_result) -> bool:
    """The one trust rule of the store's files (``st`` from ``lstat``/``fstat``): why each part matters.

    A regular file (a symlink could point anywhere, a FIFO would block a reader); owned by us (another
    user's file may be planted); no group/other bits (someone else could have read or rewritten it); one
    link (a hard link could make a file of ours answer under a name it was not written for); at most
    :data:`MAX_FILE_BYTES` (a reader never takes in more).
    """
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_uid == os.geteuid()
        and not st.st_mode & 0o077
        and st.st_nlink == 1
        and st.st_size <= MAX_FILE_BYTES
    )


def _remove_untrusted_entries(path: Path) -> list[str]:
    """Remove from the just-tightened ``path`` every entry that fails :func:`trusted_file`; their names.

    Why not empty it: every task process that found the directory open did that, and processes released
    together deleted each other's fresh token, lock and limiter files (40 tasks on a 0755 directory made 13
    token requests instead of 1). Removing only what fails the trust rule is enough: a file another user
    planted is not ours, a hard link has more than one link, a symlink is not a regular file (it is removed,
    never followed), and every read re-checks its file anyway. Our own private files (tokens, locks, the
    limiter, another process's temporary file being written) pass and stay. Subdirectories are left alone as
    before (the store uses none; one in a file's place is removed when that file is used), so a directory
    pointed at by mistake never loses a tree.
    """
    removed = []
    for entry in os.scandir(path):
        with contextlib.suppress(OSError):  # gone already (another process cleaned it): nothing to do
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) or trusted_file(st):
                continue
            os.unlink(entry.path)
            removed.append(entry.name)
    return removed


_tightened_warned: set[str] = set()
_tightened_lock = threading.Lock()


def _warn_tightened_once(path: Path, mode: int, removed: list[str]) -> None:
    """Warn once per process and directory that ``path`` was tightened, and what was removed from it."""
    with _tightened_lock:
        if str(path) in _tightened_warned:
            return
        _tightened_warned.add(str(path))
    shown = ", ".join(repr(name) for name in sorted(removed)[:10])
    if len(removed) > 10:
        shown += f" and {len(removed) - 10} more"
    log.warning(
        "Norce token store: %s was open to other users (mode %o); made it 0700 and removed %s. Create it "
        "with mode 0700 (or let the provider create it) so this does not happen again",
        path,
        mode,
        f"{len(removed)} untrusted entries ({shown})" if removed else "nothing (no untrusted entries)",
    )


def request_limit_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, float]:
    """``(burst, per_minute)`` from ``$NORCE_TOKEN_REQUEST_LIMIT``, else Norce's own (20, 3)."""
    env = os.environ if environ is None else environ
    raw = (env.get(ENV_LIMIT) or "").strip()
    if not raw:
        return TOKEN_BURST, TOKEN_RATE_PER_MINUTE
    try:
        burst_text, rate_text = raw.split(",")
        burst, rate = int(burst_text), float(rate_text)
        if burst < 1 or not (rate > 0 and math.isfinite(rate)):
            raise ValueError
    except ValueError:
        raise NorceError(
            f"{ENV_LIMIT}={raw!r} is not BURST,PER_MINUTE with a burst of at least 1 and a positive rate; "
            f"Norce's own limit is {TOKEN_BURST},{TOKEN_RATE_PER_MINUTE:g} (unset the variable to use it)"
        ) from None
    return burst, rate


class FileTokenStore:
    """A :class:`~airflow_provider_norce.tokens.cache.SharedTokenStore` in a private directory.

    :param directory: a directory made private by :func:`private_directory` (the store re-checks it
        before each use and recreates it if a cleaner removed it).
    :param burst: token requests the whole machine may send at once.
    :param rate_per_minute: token requests per minute once the burst is spent.
    :param clock: wall clock shared by every process (tokens carry absolute expiry times).
    :param lock_timeout: seconds to wait for another process's fetch before raising.

    Every failure of the file system (full disk, directory removed or made insecure under us) degrades
    to process-local behaviour with a warning: a task never fails because the cache could not be used.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        burst: int = TOKEN_BURST,
        rate_per_minute: float = TOKEN_RATE_PER_MINUTE,
        clock: Callable[[], float] = time.time,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.directory = Path(directory)
        self.burst = burst
        self.rate_per_minute = rate_per_minute
        self.clock = clock
        self.lock_timeout = lock_timeout
        #: Used only when the limiter files cannot be (the process then limits itself alone).
        self._fallback_limiter = TokenRequestLimiter(burst, rate_per_minute, clock)
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.directory)!r})"

    # -- SharedTokenStore ------------------------------------------------------------------------

    def load(self, key: str) -> Token | None:
        """The stored token of ``key`` if the file is trustworthy and well-formed; else None (and removed)."""
        path = self._token_path(key)
        data = self._read_private(path)
        if data is None:
            return None
        try:
            token = token_from_record(json.loads(data), key)
        except (ValueError, KeyError, TypeError):
            self._warn_once(f"corrupt:{path}", "Norce token store: ignoring and removing corrupt %s", path)
            self._remove(path)
            return None
        return token

    def save(self, key: str, token: Token) -> None:
        """Write atomically (temporary file, then rename over the old one); failures only cost sharing."""
        try:
            self._write_private(self._token_path(key), json.dumps(token_record(key, token)).encode())
        except OSError as err:
            self._degraded("could not save a token", err)

    def discard(self, key: str, access_token: str) -> None:
        """Remove the stored token of ``key``, but only if it is ``access_token`` (not its replacement)."""
        fd = self._acquire(self._path(key, ".lock"))
        try:
            stored = self.load(key)
            if stored is not None and stored.access_token == access_token:
                self._remove(self._token_path(key))
        finally:
            if fd is not None:
                os.close(fd)

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Exclusive across the machine's processes while one of them fetches ``key``'s token.

        Nobody queues to read: when a fresh token is on disk already, or appears while we wait (the
        fetching process saves it before it lets go of the lock), this yields without taking the lock,
        so forty waiting tasks read the new token at once instead of one after another.
        """
        fd = self._acquire(self._path(key, ".lock"), settled=lambda: self._fresh_on_disk(key))
        try:
            yield
        finally:
            if fd is not None:
                os.close(fd)  # closing the last descriptor releases the flock

    def reserve_token_request(self, max_wait: float) -> float | None:
        """Claim the machine's next token-request slot: seconds to wait, or None beyond ``max_wait``."""
        return self._with_limiter(lambda limiter: limiter.reserve(max_wait))

    def note_rate_limited(self, retry_after: float | None) -> None:
        """Norce said 429: no process of this machine asks again before it says so."""
        self._with_limiter(lambda limiter: limiter.note_rate_limited(retry_after))

    def _fresh_on_disk(self, key: str) -> bool:
        """A stored token that stays fresh for a while yet (so the caller's ``load`` finds it fresh too)."""
        token = self.load(key)
        return token is not None and token.fresh(self.clock() + SETTLED_MARGIN)

    # -- the limiter -----------------------------------------------------------------------------

    def _with_limiter(self, action: Callable[[TokenRequestLimiter], Any]) -> Any:
        fd = self._acquire(self.directory / LIMITER_LOCK)
        if fd is None:
            return action(self._fallback_limiter)
        try:
            limiter = TokenRequestLimiter(self.burst, self.rate_per_minute, self.clock)
            limiter.tat = self._read_tat()
            before = limiter.tat
            result = action(limiter)
            if limiter.tat != before:
                try:
                    self._write_private(self.directory / LIMITER_STATE, repr(limiter.tat).encode())
                except OSError as err:
                    self._degraded("could not save the token-request limiter state", err)
                    self._fallback_limiter.tat = max(self._fallback_limiter.tat, limiter.tat)
            return result
        finally:
            os.close(fd)

    def _read_tat(self) -> float:
        """The shared ``tat``; an absent, untrusted or corrupt state counts as no history (and is removed)."""
        path = self.directory / LIMITER_STATE
        data = self._read_private(path)
        if data is None:
            return 0.0
        tat = shared_tat(data, self.clock())
        if tat is None:
            self._remove(path)
            return 0.0
        return tat

    # -- files -----------------------------------------------------------------------------------

    def _path(self, key: str, suffix: str) -> Path:
        name = key if _SAFE_KEY.match(key) else _digest(key)
        return self.directory / f"{name}{suffix}"

    def _token_path(self, key: str) -> Path:
        return self._path(key, ".token")

    def _read_private(self, path: Path) -> bytes | None:
        """The bytes of ``path`` if it is our own private regular file; anything else is removed.

        Opened non-blocking: opening a FIFO planted in a file's place for reading would otherwise wait
        for a writer forever (the task hangs); it is refused by :func:`trusted_file` before any read.
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _OPEN_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:  # a symlink planted where a file of ours belongs
                self._warn_once(f"untrusted:{path}", "Norce token store: ignoring symlink %s", path)
                self._remove(path)
            return None
        try:
            st = os.fstat(fd)
            if not trusted_file(st):
                self._warn_once(
                    f"untrusted:{path}",
                    "Norce token store: ignoring %s (owner uid %d, mode %o, %d links): only a private "
                    "file of this user is trusted",
                    path,
                    st.st_uid,
                    stat.S_IMODE(st.st_mode),
                    st.st_nlink,
                )
                self._remove(path)
                return None
            os.set_blocking(fd, True)  # a regular file of ours: read it as any other
            return os.read(fd, MAX_FILE_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _write_private(self, path: Path, data: bytes) -> None:
        fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)  # 0600, O_EXCL
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)  # replaces a bad file or a symlink itself, never a symlink's target
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _remove(self, path: Path) -> None:
        """Remove what is at ``path``: a file, a symlink (never its target), or a directory in a file's place
        (no file of the store is a directory; one left there would block that file forever)."""
        try:
            os.unlink(path)
        except IsADirectoryError:
            self._remove_directory(path)
        except OSError:
            pass

    def _remove_directory(self, path: Path) -> None:
        import shutil

        self._warn_once(
            f"dir:{path}", "Norce token store: removing the directory %s found in a file's place", path
        )
        with contextlib.suppress(OSError):
            shutil.rmtree(path)  # symlink-safe: links inside are removed, never followed

    def _acquire(self, path: Path, settled: Callable[[], bool] | None = None) -> int | None:
        """An fd holding an exclusive ``flock`` on ``path``, or None: the store is unusable (with a
        warning), or ``settled()`` said the lock is not needed any more."""
        problems: list[str] = []
        if private_directory(self.directory, problems) is None:
            self._degraded("; ".join(problems) or "not usable")
            return None
        deadline = time.monotonic() + self.lock_timeout
        for _ in range(8):  # a bad lock file is replaced; one that keeps coming back is given up on
            try:
                # Non-blocking: a FIFO or device in the lock's place must never block the open.
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | _OPEN_FLAGS, 0o600)
            except OSError as err:
                if err.errno in (errno.ELOOP, errno.EISDIR):  # a symlink or a directory in the lock's place
                    self._remove(path)
                    continue
                self._degraded(f"cannot open the lock file {path.name}", err)
                return None
            try:
                if not trusted_file(os.fstat(fd)):
                    os.close(fd)
                    self._warn_once(f"untrusted:{path}", "Norce token store: replacing untrusted %s", path)
                    self._remove(path)
                    continue
                os.set_blocking(fd, True)
                if not self._flock(fd, path, deadline, settled):
                    os.close(fd)
                    return None
                if _same_file(fd, path):
                    return fd
                os.close(fd)  # the lock file was replaced while we waited: lock the one there now
            except _LockTimeout:
                raise  # fd now belongs to the waiting helper thread
            except BaseException:
                os.close(fd)
                raise
        self._degraded(f"cannot get a trustworthy lock file {path.name}")
        return None

    def _flock(self, fd: int, path: Path, deadline: float, settled: Callable[[], bool] | None = None) -> bool:
        """Take the exclusive lock on ``fd`` (True), or find ``settled()`` true first (False).

        Waiting is a blocking ``flock`` (the kernel wakes the waiter the moment the holder releases or
        dies; no polling that would steal CPU from the holder) in a helper thread, so that the caller
        can give up at ``deadline`` with a clear error. With ``settled``, a waiter waits for a *shared*
        lock, which every waiter is granted together when the holder lets go, drops it and looks again.
        """
        import fcntl

        while True:
            if settled is not None and settled():
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            if settled is None:
                self._wait(fd, path, deadline, fcntl.LOCK_EX)
                return True
            self._wait(fd, path, deadline, fcntl.LOCK_SH)

    def _wait(self, fd: int, path: Path, deadline: float, operation: int) -> None:
        """Block until ``flock(fd, operation)`` succeeds (a shared lock is dropped again at once)."""
        import fcntl

        granted = threading.Event()
        decided = threading.Lock()
        state = {"abandoned": False}

        def wait() -> None:
            try:
                fcntl.flock(fd, operation)
                if operation == fcntl.LOCK_SH:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                return
            with decided:
                if not state["abandoned"]:
                    granted.set()
                    return
            os.close(fd)  # the caller gave up: release at once

        threading.Thread(target=wait, name="norce-token-lock", daemon=True).start()
        if granted.wait(max(0.0, deadline - time.monotonic())):
            return
        with decided:
            if granted.is_set():
                return
            state["abandoned"] = True  # from here on the helper owns (and will close) fd
        raise _LockTimeout(
            f"Norce token store: another process has held {path} for more than "
            f"{self.lock_timeout:.0f} s while fetching a token; if no Airflow task is running, "
            f"delete that file (a dead holder's lock is released by the kernel on its own)"
        )

    def _degraded(self, what: str, err: OSError | None = None) -> None:
        """Warn once per process that the store cannot be used as it should, why, and what to do."""
        cause = f": {err.strerror or type(err).__name__}" if err is not None else ""
        self._warn_once(
            "degraded",
            "Norce token store %s: %s%s. The task goes on without it, but tokens are not shared between "
            "task processes until this is fixed (each process asks Norce for its own). To fix: make %s a "
            "writable directory of this user (mode 0700) with free space, or point %s at one, or set the "
            "connection extra auth_cache to 'process' to not use a machine store",
            self.directory,
            what,
            cause,
            self.directory,
            ENV_DIR,
        )

    def _warn_once(self, what: str, message: str, *args: Any) -> None:
        with self._warn_lock:
            if what in self._warned:
                return
            self._warned.add(what)
        log.warning(message, *args)


class _LockTimeout(NorceError):
    """Another process held a token lock past ``lock_timeout``."""


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _home_of_uid() -> str | None:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_dir
    except (ImportError, KeyError):
        return None
