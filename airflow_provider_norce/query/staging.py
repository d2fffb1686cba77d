"""The staging folder of a concurrent export: its plan and its finished slices, beside the destination.

Why beside the destination, and not only in Airflow's task state: a retried try must find the *rows* of the
slices already read, not just a note that they were read. The destination's store (a shared disk, a bucket)
is the one place both the killed try and its retry, on any worker host, can reach; keeping the record there
too means the record can never claim a slice whose rows are gone. It works the same on every Airflow
version and outside Airflow (a script, a benchmark).

Layout, for ``/exports/orders.jsonl``::

    /exports/.orders.jsonl.norce-slices-<16 hex of the export's fingerprint>/
        plan.json     the key ranges, the plan's id and their checksum (written once, before any slice)
        slice-00003.<plan id>.<rows>.<first key>.<last key>.<crc32>.jsonl
                      one JSON-lines part per finished slice, committed by one rename

Nothing in the folder is trusted: a part counts only when its name carries the plan's id (a new plan never
adopts another plan's parts), and its rows and CRC-32 are checked against its content before a resumed
export uses it and again while it is joined; a part that does not match is removed and read again. A plan
that cannot be read (an I/O error) fails the try rather than count as "no plan"; one that is not a valid
plan of this export empties the folder. Only one export of a destination runs at a time
(:mod:`airflow_provider_norce.query.destination_lock`), so nothing here races another export.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
import zlib
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_norce.query.files import describe
from airflow_provider_norce.query.slices import SlicePlan
from airflow_provider_norce.storage import fs_and_path, is_remote

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

PLAN_FILE = "plan.json"
FOLDER_MARK = ".norce-slices-"
_PART = re.compile(r"^slice-(\d{5})\.([0-9a-f]+)\.(\d+)\.(-?\d+|n)\.(-?\d+|n)\.([0-9a-f]{8})\.jsonl$")
_CHUNK = 1 << 20


class StagingError(RuntimeError):
    """The staging folder cannot be trusted or read now; the try fails and its retry starts from what is
    left (a part found bad is removed first, so it is read again)."""


def fingerprint(**identity: Any) -> str:
    """16 hex characters naming one export: the URL, every query option, the key; not the time it runs."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Part:
    """A committed part as its name records it: the slice, its rows, its first and last key, its CRC-32."""

    index: int
    plan_id: str
    rows: int
    first: int | None
    last: int | None
    crc: int
    name: str

    @classmethod
    def parse(cls, name: str) -> Part | None:
        match = _PART.match(name)
        if match is None:
            return None
        first, last = (None if text == "n" else int(text) for text in match.group(4, 5))
        return cls(
            int(match.group(1)),
            match.group(2),
            int(match.group(3)),
            first,
            last,
            int(match.group(6), 16),
            name,
        )

    @staticmethod
    def name_for(index: int, plan_id: str, rows: int, first: int | None, last: int | None, crc: int) -> str:
        def key(value: int | None) -> str:
            return "n" if value is None else str(value)

        return f"slice-{index:05d}.{plan_id}.{rows}.{key(first)}.{key(last)}.{crc:08x}.jsonl"


class PartWriter:
    """A part being written: counts its bytes' CRC-32; the slice tells it the rows and keys it wrote."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.crc = 0
        self.rows = 0
        self.first: int | None = None
        self.last: int | None = None

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        return self.handle.write(data)

    def keys(self, keys: list[int]) -> None:
        """Record the keys of a page just written (in key order)."""
        if keys:
            if self.first is None:
                self.first = keys[0]
            self.last = keys[-1]


class Staging:
    """The staging folder of the export of ``destination`` identified by ``digest``."""

    def __init__(self, destination: Any, digest: str) -> None:
        self.destination = destination
        self.digest = digest
        self.remote = is_remote(destination)
        self.folder = sibling(destination, f".{_file_name(destination)}{FOLDER_MARK}{digest}")
        #: parts the last :meth:`parts` call removed for not matching their names, with why (for the log)
        self.rejected: list[str] = []

    def __str__(self) -> str:
        return describe(self.folder)

    def child(self, name: str) -> Any:
        """Where ``name`` lives inside the folder, in the destination's own kind of location."""
        if self.remote and not isinstance(self.folder, str):
            return self.folder / name
        if self.remote:
            return f"{self.folder}/{name}"
        return os.path.join(self.folder, name)

    # -- the plan ---------------------------------------------------------------------------------------
    def load_plan(self) -> tuple[SlicePlan | None, str | None]:
        """The plan of an earlier try and ``None``, or ``None`` and why there is none to resume.

        No folder or no plan file: nothing to resume. A plan file that cannot be read (an I/O error, not
        "absent") raises :class:`StagingError`: planning afresh would cut the window differently from the
        parts already there. A file that is not a valid plan of this export (another version, corrupt JSON)
        is discarded with the whole folder, since no part can be matched to it.
        """
        try:
            with self._open(self.child(PLAN_FILE)) as handle:
                text = handle.read()
        except FileNotFoundError:
            return None, None
        except OSError as err:
            raise StagingError(
                f"the plan in the staging folder {self} cannot be read now ({err.strerror or err}); this try "
                "stops and its retry reads it again. To start the export over, delete the folder"
            ) from None
        try:
            plan = SlicePlan.from_json(json.loads(text.decode("utf-8")), self.digest)
        except (ValueError, UnicodeDecodeError):
            plan = None
        if plan is None:
            self.remove()
            return (
                None,
                f"its plan.json was not a plan of this export (corrupt, or another version): removed {self}",
            )
        return plan, None

    def start(self, plan: SlicePlan) -> None:
        """Make the folder hold ``plan`` and nothing else (no part of an earlier plan survives)."""
        self.remove()
        self._makedirs()
        self._write_atomically(self.child(PLAN_FILE), json.dumps(plan.to_json(), sort_keys=True).encode())

    # -- parts ------------------------------------------------------------------------------------------
    def parts(self, plan: SlicePlan, verify: bool) -> dict[int, Part]:
        """The committed parts of ``plan`` by slice. Anything else in the folder (another plan's parts,
        a killed writer's temporary file) is removed; with ``verify`` every part's content is checked
        against its name and a part that does not match is removed (its slice is read again)."""
        found: dict[int, Part] = {}
        self.rejected = []
        for name in self._names():
            if name == PLAN_FILE:
                continue
            part = Part.parse(name)
            if (
                part is None
                or part.plan_id != plan.plan_id
                or part.index >= plan.count
                or part.index in found
            ):
                self._remove_file(name)
                continue
            problem = self._problem(part) if verify else None
            if problem is not None:
                self.rejected.append(f"{name} {problem}")
                self._remove_file(name)
                continue
            found[part.index] = part
        return found

    @contextlib.contextmanager
    def open_part(self, plan: SlicePlan, index: int) -> Iterator[PartWriter]:
        """Write slice ``index``'s part; it appears, named for its content, only if the block completes."""
        temp = self.child(f".writing-{index:05d}-{uuid.uuid4().hex[:12]}")
        with self._open_write(temp) as handle:
            writer = PartWriter(handle)
            try:
                yield writer
            except BaseException:
                handle.close()
                self._remove_location(temp)
                raise
        name = Part.name_for(index, plan.plan_id, writer.rows, writer.first, writer.last, writer.crc)
        self._rename(temp, self.child(name))

    def copy_part(self, part: Part, out: IO[bytes]) -> int:
        """Append a part to ``out`` in large chunks (never a part in memory), checking it as it goes; its
        rows. A part whose content does not match its name is removed and raises :class:`StagingError`."""
        lines, crc = 0, 0
        with self._open_part(part) as handle:
            while chunk := handle.read(_CHUNK):
                lines += chunk.count(b"\n")
                crc = zlib.crc32(chunk, crc)
                out.write(chunk)
        self._check(part, lines, crc)
        return lines

    def lines(self, part: Part) -> Generator[bytes, None, None]:
        """The part's lines, checked as :meth:`copy_part` checks them (the check ends the iteration)."""
        lines, crc = 0, 0
        with self._open_part(part) as handle:
            for line in handle:
                lines += line.endswith(b"\n")
                crc = zlib.crc32(line, crc)
                yield line
        self._check(part, lines, crc)

    def rows(self, part: Part) -> Iterator[dict[str, Any]]:
        """The part's rows, checked as :meth:`lines` checks them; a line that is not a JSON object (the part
        was cut or altered) is caught here, before the check at its end: the part is removed and
        :class:`StagingError` raised, as for any other change."""
        lines = self.lines(part)
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict):
                lines.close()
                self._remove_file(part.name)
                raise StagingError(
                    f"the staged part {part.name} in {self} changed after it was written (its line {number} "
                    "is not a JSON object); it was removed, and the retry reads that slice again"
                )
            yield row

    def remove(self) -> None:
        """Delete the folder; a failure only leaves it behind (the export itself is complete)."""
        with contextlib.suppress(OSError):
            if self.remote:
                fs, path = fs_and_path(self.folder)
                if fs.exists(path):
                    fs.rm(path, recursive=True)
            elif os.path.lexists(self.folder):
                shutil.rmtree(self.folder)

    # -- checks -----------------------------------------------------------------------------------------
    def _problem(self, part: Part) -> str | None:
        lines, crc = 0, 0
        try:
            with self._open(self.child(part.name)) as handle:
                while chunk := handle.read(_CHUNK):
                    lines += chunk.count(b"\n")
                    crc = zlib.crc32(chunk, crc)
        except OSError as err:
            return f"cannot be read ({err.strerror or err})"
        if lines != part.rows or crc != part.crc:
            return f"holds {lines} lines with CRC {crc:08x}, its name says {part.rows} with {part.crc:08x}"
        return None

    def _check(self, part: Part, lines: int, crc: int) -> None:
        if lines != part.rows or crc != part.crc:
            self._remove_file(part.name)
            raise StagingError(
                f"the staged part {part.name} in {self} changed after it was written (it holds {lines} lines "
                f"with CRC {crc:08x}, its name says {part.rows} with {part.crc:08x}); it was removed, and the "
                "retry reads that slice again"
            )

    # -- storage ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _open_part(self, part: Part) -> Iterator[IO[bytes]]:
        """A part to join; one that vanished since it was listed is a :class:`StagingError`, not a bare
        ``FileNotFoundError`` (the retry reads its slice again)."""
        with contextlib.ExitStack() as stack:
            try:
                handle = stack.enter_context(self._open(self.child(part.name)))
            except FileNotFoundError:
                raise StagingError(
                    f"the staged part {part.name} in {self} vanished before it was joined; the retry reads "
                    "that slice again"
                ) from None
            yield handle

    def _names(self) -> list[str]:
        try:
            if self.remote:
                fs, path = fs_and_path(self.folder)
                return [str(entry).rstrip("/").rpartition("/")[2] for entry in fs.ls(path, detail=False)]
            return os.listdir(self.folder)
        except FileNotFoundError:
            return []

    def _makedirs(self) -> None:
        if self.remote:
            fs, path = fs_and_path(self.folder)
            with contextlib.suppress(Exception):  # object stores have no directories
                fs.makedirs(path, exist_ok=True)
        else:
            os.makedirs(self.folder, exist_ok=True)

    def _remove_file(self, name: str) -> None:
        self._remove_location(self.child(name))

    def _remove_location(self, location: Any) -> None:
        with contextlib.suppress(OSError):
            if self.remote:
                fs, path = fs_and_path(location)
                fs.rm(path)
            else:
                os.unlink(location)

    @contextlib.contextmanager
    def _open(self, location: Any) -> Iterator[IO[bytes]]:
        if self.remote:
            fs, path = fs_and_path(location)
            with fs.open(path, "rb") as handle:
                yield handle
        else:
            with open(location, "rb") as handle:
                yield handle

    @contextlib.contextmanager
    def _open_write(self, location: Any) -> Iterator[IO[bytes]]:
        if self.remote:
            fs, path = fs_and_path(location)
            with fs.open(path, "wb") as handle:
                yield handle
        else:
            with open(location, "xb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())

    def _rename(self, source: Any, target: Any) -> None:
        if self.remote:
            fs, source_path = fs_and_path(source)
            fs.mv(source_path, fs_and_path(target)[1])
        else:
            os.replace(source, target)

    def _write_atomically(self, location: Any, data: bytes) -> None:
        temp = self.child(f".writing-plan-{uuid.uuid4().hex[:12]}")
        with self._open_write(temp) as handle:
            handle.write(data)
        self._rename(temp, location)


def sibling(destination: Any, name: str) -> Any:
    """``name`` in the destination's folder, in the destination's own kind of location."""
    if is_remote(destination) and not isinstance(destination, str):
        return destination.parent / name  # an ObjectStoragePath
    if is_remote(destination):
        return f"{destination.rstrip('/').rpartition('/')[0]}/{name}"
    return os.path.join(os.path.dirname(os.path.abspath(os.fspath(destination))), name)


def remove_orphans(destination: Any) -> list[str]:
    """Remove every staging folder of ``destination`` and return what was removed.

    Called after a successful export, under the destination's lock: no other export of this destination is
    running, so any staging folder left beside it belongs to a try that will never be resumed (a failed try
    whose filter or window has changed since), and it holds customer rows. Local destinations only; on an
    object store the folders are left (listed in the docs as a limit).
    """
    if is_remote(destination):
        return []
    folder = os.path.dirname(os.path.abspath(os.fspath(destination)))
    prefix = f".{_file_name(destination)}{FOLDER_MARK}"
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    shutil.rmtree(entry.path)
                    removed.append(entry.path)
    return removed


def _file_name(destination: Any) -> str:
    if is_remote(destination) and not isinstance(destination, str):
        return str(destination.name)
    return os.path.basename(describe(destination).rstrip("/"))
