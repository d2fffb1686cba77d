"""Atomic JSON-lines and CSV files, on a local disk or any object store Airflow (or fsspec) can reach.

Why atomic: an export that dies half-way (a 500 that outlived its retries, a killed worker) must not leave a
half-written file where a downstream job, or an Asset-scheduled DAG, would read it as complete. Rows are
therefore written to a temporary file *beside* the destination (same directory, so the final rename never
crosses a file system or a bucket) and moved into place only after the last row was written and flushed.
On any failure the temporary file is removed and the destination keeps what it held before: the previous
complete file, or nothing.

Why streaming: writers take rows one page at a time and never hold more than the current page, so an export
of millions of orders needs as much memory as one of a thousand.

Destinations:

* a local path (``str`` or :class:`os.PathLike`): temp file + ``fsync`` + :func:`os.replace` (atomic on POSIX);
* an :class:`ObjectStoragePath` or a URI string with a scheme (``file://``, ``s3://aws_default@bucket/key``,
  ``gs://...``): temp object + ``fs.mv``. On object stores an object becomes visible only once complete, so
  readers see the old object or the new one, never a partial one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import uuid
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_norce.storage import fs_and_path, is_remote

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

FILE_FORMATS = ("jsonl", "csv")
TEMP_SUFFIX = ".norce-tmp"


class DestinationError(ValueError):
    """The destination cannot be written (a directory, not writable, the wrong type); raised before any
    row is written, so nothing of the export was kept."""


def destination_problem(destination: Any) -> str | None:
    """Why ``destination`` can never receive the export, found before anything is fetched; else ``None``.

    Checked: its type (a path, an ``ObjectStoragePath`` or a URI), a trailing ``/`` (a directory), and for a
    local path an existing directory in its place.
    """
    if isinstance(destination, bool) or not (
        isinstance(destination, (str, os.PathLike))
        or (hasattr(destination, "fs") and hasattr(destination, "path"))
    ):
        return (
            "destination must be a file path, an ObjectStoragePath or a URI (file:///..., s3://...), got "
            f"{type(destination).__name__} {destination!r}"[:300]
        )
    if isinstance(destination, os.PathLike) and isinstance(os.fspath(destination), bytes):
        return f"destination must be a text path, got bytes {destination!r}"[:300]
    text = describe(destination)
    if not text.strip():
        return "destination is empty; give a file path or URI"
    if text.endswith(("/", os.sep)):
        return (
            f"destination {text!r} ends in '/', so it names a directory, not a file; give a file name such as "
            f"{text.rstrip('/' + os.sep)}/orders.jsonl"
        )
    if not is_remote(destination) and os.path.isdir(text):
        return (
            f"destination {text!r} is a directory; give a file path inside it such as "
            f"{os.path.join(text, 'orders.jsonl')}"
        )
    return None


def temp_name(final_name: str) -> str:
    """A hidden, recognisable sibling name for the file being written (``.orders.jsonl.<hex>.norce-tmp``)."""
    return f".{final_name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"


def describe(destination: Any) -> str:
    """The destination as a string for logs and XCom (an ObjectStoragePath renders as its URI)."""
    return os.fspath(destination) if isinstance(destination, os.PathLike) else str(destination)


@contextlib.contextmanager
def atomic_output(destination: Any) -> Iterator[IO[bytes]]:
    """Open ``destination`` for writing bytes so that it holds the complete file or its old content.

    Yields a binary file object of a temporary sibling; on normal exit the temporary file replaces the
    destination, on any exception (including a task being killed with SIGTERM) it is removed.
    """
    if is_remote(destination):
        with _atomic_object(destination) as handle:
            yield handle
    else:
        with _atomic_local(os.fspath(destination)) as handle:
            yield handle


@contextlib.contextmanager
def _atomic_local(path: str) -> Iterator[IO[bytes]]:
    directory, name = os.path.split(os.path.abspath(path))
    if not name or path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise DestinationError(f"export destination {path!r} names a directory, not a file")
    try:
        os.makedirs(directory, exist_ok=True)
        temp = os.path.join(directory, temp_name(name))
        handle = open(temp, "xb")  # noqa: SIM115 - closed below on every path
        # Locked while written: a writer killed with SIGKILL cannot remove its temporary file, but the
        # kernel drops its lock, so the next export of this destination knows the file is abandoned.
        _lock_nowait(handle.fileno())
        _remove_abandoned_temps(directory, name, keep=temp)
    except OSError as err:
        raise DestinationError(
            f"cannot write the export destination {path!r}: its directory {directory!r} cannot be created "
            f"or written by this worker ({err.strerror or type(err).__name__}); give a destination the "
            "worker may write, or fix the directory's permissions"
        ) from None
    try:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(temp, path)
    except BaseException:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable; not possible everywhere
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _lock_nowait(fd: int) -> bool:
    """An exclusive ``flock`` on ``fd`` if it can be had at once (False if another process holds one)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, nothing is ever taken for abandoned
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _remove_abandoned_temps(directory: str, name: str, keep: str) -> None:
    """Remove this destination's temporary files whose writer died (nobody holds their lock).

    Why: a worker killed in the middle of an export (SIGKILL, OOM killer, a lost node) leaves its
    temporary file behind; without this, every killed try would leave one more beside the destination.
    A file another export is still writing is locked by it and kept.
    """
    prefix, suffix = f".{name}.", TEMP_SUFFIX
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(suffix)) or entry.path == keep:
            continue
        if len(entry.name) != len(prefix) + 12 + len(suffix):  # .<name>.<12 hex>.norce-tmp only
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if _lock_nowait(fd):
                with contextlib.suppress(OSError):  # gone already, or not ours to remove: leave it
                    os.unlink(entry.path)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic_object(destination: Any) -> Iterator[IO[bytes]]:
    fs, path = fs_and_path(destination)
    parent, _, name = path.rstrip("/").rpartition("/")
    if not name or path.endswith("/"):
        raise DestinationError(f"export destination {describe(destination)!r} names a directory, not a file")
    is_dir = False
    with contextlib.suppress(Exception):  # a store that cannot tell is asked nothing more here
        is_dir = bool(fs.isdir(path))
    if is_dir:
        raise DestinationError(
            f"export destination {describe(destination)!r} is a directory; give a file path inside it"
        )
    with contextlib.suppress(Exception):  # object stores have no directories; local ones need them
        fs.makedirs(parent, exist_ok=True)
    temp = f"{parent}/{temp_name(name)}" if parent else temp_name(name)
    try:
        handle = fs.open(temp, "wb")
    except OSError as err:
        raise DestinationError(
            f"cannot write the export destination {describe(destination)!r} "
            f"({err.strerror or type(err).__name__}); give a destination the worker may write, or fix its "
            "permissions"
        ) from None
    try:
        yield handle
        handle.close()
        fs.mv(temp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            handle.close()
        with contextlib.suppress(Exception):
            if fs.exists(temp):
                fs.rm(temp)
        raise


class RowWriter:
    """Writes rows (dicts) to a binary stream in one format; counts them."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.rows = 0

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Write whatever a format needs at the end (nothing for JSON lines and CSV)."""


class JsonLinesWriter(RowWriter):
    """One compact JSON object per line, UTF-8, keys in the order Norce sent them."""

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        dumps = json.dumps
        lines = [dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows]
        if lines:
            self.stream.write(("\n".join(lines) + "\n").encode("utf-8"))
            self.rows += len(lines)


class CsvWriter(RowWriter):
    """RFC 4180 CSV with a header row; nested values (objects, lists) are written as JSON text.

    The columns are ``fields`` when given (an OData ``$select``), else the keys of the first row. A later
    row with a column the header lacks is an error rather than a silently dropped value.
    """

    def __init__(self, stream: IO[bytes], fields: Sequence[str] | None = None) -> None:
        super().__init__(stream)
        self.fields: list[str] | None = list(fields) if fields else None
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        self._writer: Any = None
        self._columns: set[str] = set()

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if self._writer is None:
                if self.fields is None:
                    self.fields = list(row)
                self._columns = set(self.fields)
                self._writer = csv.writer(self._text, lineterminator="\r\n")
                self._writer.writerow(self.fields)
            extra = [key for key in row if key not in self._columns]
            if extra:
                raise ValueError(
                    f"CSV export: row {self.rows + 1} has column(s) {', '.join(extra)} that the header "
                    f"({', '.join(self.fields or [])}) lacks; pass select=... to fix the columns, "
                    "or use file_format='jsonl'"
                )
            self._writer.writerow([_csv_value(row.get(name)) for name in self.fields or ()])
            self.rows += 1

    def close(self) -> None:
        self._text.flush()
        self._text.detach()  # leave the binary stream open: atomic_output closes it


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    # bools, numbers, objects and lists as JSON: true/false, 12.5, {"a":1}, [...]
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def make_writer(file_format: str, stream: IO[bytes], fields: Sequence[str] | None = None) -> RowWriter:
    """The writer for ``file_format`` (``jsonl`` or ``csv``)."""
    if file_format == "jsonl":
        return JsonLinesWriter(stream)
    if file_format == "csv":
        return CsvWriter(stream, fields)
    raise ValueError(f"file_format {file_format!r} is not one of {', '.join(FILE_FORMATS)}")


def write_rows_atomically(
    destination: Any,
    rows: Iterable[dict[str, Any]],
    file_format: str = "jsonl",
    fields: Sequence[str] | None = None,
) -> int:
    """Write ``rows`` (any iterable, consumed lazily) to ``destination`` atomically; returns the row count.

    A convenience for tasks that produce files themselves (e.g. a transform step before a Connect import).
    """
    with atomic_output(destination) as stream:
        writer = make_writer(file_format, stream, fields)
        for row in rows:
            writer.write_rows((row,))
        writer.close()
    return writer.rows
