"""The staging folder of a concurrent export: its plan and its finished slices, beside the destination.

Why beside the destination, and not only in Airflow's task state: a retried try must find the *rows* of the
slices already read, not just a note that they were read. The destination's store (a shared disk, a bucket)
is the one place both the killed try and its retry, on any worker host, can reach; keeping the record there
too means the record can never claim a slice whose rows are gone. It works the same on every Airflow
version and outside Airflow (a script, a benchmark).

Layout, for ``/exports/orders.jsonl``::

    /exports/.orders.jsonl.norce-slices-<16 hex of the export's fingerprint>/
        plan.json            the key ranges (written once, before any slice)
        slice-00000.jsonl    one JSON-lines part per finished slice, committed atomically

A part exists only when its slice is complete (each is written with
:func:`~airflow_provider_norce.query.files.atomic_output`), so "finished" is "present". The folder is
removed once the final file is in place; to start an export over, delete it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_norce.query.files import atomic_output, describe
from airflow_provider_norce.storage import fs_and_path, is_remote

if TYPE_CHECKING:
    from collections.abc import Iterator

PLAN_FILE = "plan.json"
_PART = re.compile(r"^slice-(\d{5})\.jsonl$")


def fingerprint(**identity: Any) -> str:
    """16 hex characters naming one export: the URL, every query option, the key; not the time it runs."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Staging:
    """The staging folder of the export of ``destination`` identified by ``digest``."""

    def __init__(self, destination: Any, digest: str) -> None:
        self.destination = destination
        self.remote = is_remote(destination)
        folder = f".{_file_name(destination)}.norce-slices-{digest}"
        if self.remote and not isinstance(destination, str):
            self.folder: Any = destination.parent / folder  # an ObjectStoragePath
        elif self.remote:
            self.folder = f"{destination.rstrip('/').rpartition('/')[0]}/{folder}"
        else:
            self.folder = os.path.join(os.path.dirname(os.path.abspath(os.fspath(destination))), folder)

    def __str__(self) -> str:
        return describe(self.folder)

    def child(self, name: str) -> Any:
        """Where ``name`` lives inside the folder, in the destination's own kind of location."""
        if self.remote and not isinstance(self.folder, str):
            return self.folder / name
        if self.remote:
            return f"{self.folder}/{name}"
        return os.path.join(self.folder, name)

    def part(self, index: int) -> Any:
        return self.child(f"slice-{index:05d}.jsonl")

    def read_plan(self) -> Any:
        """The stored plan as JSON, or ``None`` when there is none (or it cannot be read)."""
        try:
            with self._open(self.child(PLAN_FILE)) as handle:
                return json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError):
            return None

    def write_plan(self, plan: dict[str, Any]) -> None:
        with atomic_output(self.child(PLAN_FILE)) as handle:
            handle.write(json.dumps(plan, sort_keys=True).encode("utf-8"))

    def finished(self) -> set[int]:
        """The slices whose parts are committed."""
        names: list[str] = []
        with contextlib.suppress(OSError, FileNotFoundError):
            if self.remote:
                fs, path = fs_and_path(self.folder)
                names = [str(entry).rstrip("/").rpartition("/")[2] for entry in fs.ls(path, detail=False)]
            else:
                names = os.listdir(self.folder)
        return {int(match.group(1)) for match in map(_PART.match, names) if match}

    @contextlib.contextmanager
    def open_part(self, index: int) -> Iterator[IO[bytes]]:
        """Write a slice's part; it appears only if the block completes."""
        with atomic_output(self.part(index)) as handle:
            yield handle

    def copy_part(self, index: int, out: IO[bytes]) -> int:
        """Append a committed part to ``out`` in large chunks (never a part in memory); its rows (lines)."""
        lines = 0
        with self._open(self.part(index)) as handle:
            while chunk := handle.read(1 << 20):
                lines += chunk.count(b"\n")
                out.write(chunk)
        return lines

    @contextlib.contextmanager
    def read_part(self, index: int) -> Iterator[IO[bytes]]:
        with self._open(self.part(index)) as handle:
            yield handle

    def remove(self) -> None:
        """Delete the folder; a failure only leaves it behind (the export itself is complete)."""
        with contextlib.suppress(OSError, FileNotFoundError):
            if self.remote:
                fs, path = fs_and_path(self.folder)
                fs.rm(path, recursive=True)
            else:
                shutil.rmtree(self.folder)

    @contextlib.contextmanager
    def _open(self, location: Any) -> Iterator[IO[bytes]]:
        if self.remote:
            fs, path = fs_and_path(location)
            with fs.open(path, "rb") as handle:
                yield handle
        else:
            with open(location, "rb") as handle:
                yield handle


def _file_name(destination: Any) -> str:
    if is_remote(destination) and not isinstance(destination, str):
        return str(destination.name)
    return os.path.basename(describe(destination).rstrip("/"))
