"""One export per destination at a time: an exclusive lock beside the destination file.

Why: two exports of one destination (a second scheduler, a manual run beside the scheduled one, a retry
while a zombie try still runs) would share its staging folder and each other's temporary files, and the one
that finished last would win. The second export fails at once, naming the holder, and touches nothing.

The lock is an ``flock`` on ``.<file>.norce-lock`` in the destination's folder: the kernel drops it when the
holder dies however it dies (SIGKILL, OOM), so a crashed export never blocks the next. The lock file is
removed by its holder on release; a waiter that locked a file already unlinked notices (its inode is not the
path's any more) and tries again, so two exports can never both hold "the" lock. Object-store destinations
have no such lock (documented); Airflow's ``max_active_runs``/``max_active_tis_per_dag`` keep one there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.query.files import DestinationError, describe
from airflow_provider_norce.storage import is_remote

if TYPE_CHECKING:
    from collections.abc import Iterator

LOCK_SUFFIX = ".norce-lock"


class DestinationBusyError(RuntimeError):
    """Another export of the same destination holds its lock; this one did nothing."""


def lock_path(destination: Any) -> str:
    path = os.path.abspath(os.fspath(destination))
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{LOCK_SUFFIX}")


@contextlib.contextmanager
def destination_lock(destination: Any, where: str) -> Iterator[None]:
    """Hold the destination's lock for the block, or raise :class:`DestinationBusyError` at once."""
    if is_remote(destination):
        yield
        return
    import fcntl

    path = lock_path(destination)
    for _ in range(10):  # only a holder releasing at this very moment makes it loop
        fd = _open(path, destination)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            os.close(fd)
            raise DestinationBusyError(
                f"{where}: another export of {describe(destination)} is running ({holder}); this try did not "
                "touch the file or its staging. Let that export finish (Airflow retries this task), or keep "
                "one run at a time with max_active_runs=1"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # locked a file its holder had just removed: lock the new one
    else:  # pragma: no cover - ten releases in a row between open and flock
        raise DestinationBusyError(f"{where}: could not lock {path}; try again")
    try:
        os.ftruncate(fd, 0)
        os.write(
            fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode()
        )
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _open(path: str, destination: Any) -> int:
    """The lock file, created if need be; a folder that cannot be written is the destination's problem."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as err:
        raise DestinationError(
            f"cannot write the export destination {describe(destination)!r}: its directory cannot be created "
            f"or written by this worker ({err.strerror or type(err).__name__}); give a destination the "
            "worker may write, or fix the directory's permissions"
        ) from None


def _holder(fd: int) -> str:
    """What the holder wrote into the lock file (its pid, host and start), for the error."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
