"""Where the items of a Connect import come from: a list (or an XComArg resolved to one), or a JSON-array /
JSON-lines file (local or any ``ObjectStoragePath``).

It exists so that memory stays bounded: a file is streamed (the operator holds at most two batches: the
one being posted and the next, encoded by :func:`encoded_batches`), and the array parser reads chunks with
``json.JSONDecoder.raw_decode`` instead of ``json.load``. Standard library only, so importing it costs a
DAG parse nothing.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import os
import re
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from airflow_provider_norce.storage import fs_and_path, is_remote

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_norce.progress import Progress

#: Bytes read from an items file at a time.
CHUNK_BYTES = 1 << 16
#: One item may not exceed this many characters (a malformed file must not be read whole into memory).
MAX_ITEM_CHARS = 32 << 20


# -- item sources ----------------------------------------------------------------------------------


class ItemSource(Protocol):
    """What the operator reads items from: a name for messages, and the items, once per iteration."""

    name: str

    def __iter__(self) -> Iterator[dict[str, Any]]: ...


class ListItems:
    """Items given as a list (or an XComArg resolved to one)."""

    def __init__(self, items: Any, task_id: str) -> None:
        self.name = "items"
        if isinstance(items, (str, bytes)):
            raise ValueError(
                f"Task {task_id!r}: items must be a list of JSON objects, got a string; pass the XComArg "
                "itself (not a Jinja string), or use items_path for a file"
            )
        try:
            self.items = list(items)
        except TypeError:
            raise ValueError(
                f"Task {task_id!r}: items must be a list of JSON objects, got {type(items).__name__}"
            ) from None
        for number, item in enumerate(self.items, start=1):
            if not isinstance(item, dict):
                raise ValueError(
                    f"Task {task_id!r}: item {number} of items is a {type(item).__name__}, not a JSON object"
                )

    def count(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)


class FileItems:
    """Items streamed from a JSON-array or JSON-lines file, local or on any ``ObjectStoragePath``."""

    def __init__(self, path: Any, task_id: str) -> None:
        if isinstance(path, bool) or not (
            isinstance(path, (str, os.PathLike)) or (hasattr(path, "fs") and hasattr(path, "path"))
        ):
            raise ValueError(
                f"Task {task_id!r}: items_path must be a file path, an ObjectStoragePath or a URI "
                f"(file:///..., s3://...), got {type(path).__name__} {path!r}"[:300]
            )
        if isinstance(path, os.PathLike) and isinstance(os.fspath(path), bytes):
            raise ValueError(f"Task {task_id!r}: items_path must be a text path, got bytes {path!r}"[:300])
        if not str(path).strip():
            raise ValueError(f"Task {task_id!r}: items_path is empty; give the path of the items file")
        self.path = path
        self.task_id = task_id
        self.name = f"items_path {str(path)!r}"
        self._remote: tuple[Any, str] | None = None

    def _open(self) -> Any:
        try:
            if is_remote(self.path):
                # Resolved once, by the first pass (the validation scan, on the task's own thread): the
                # posting pass reads on a worker thread (connect/prefetch.py), which must not look up an
                # Airflow connection: below Airflow 3.3 the task's channel to its supervisor has no lock.
                if self._remote is None:
                    self._remote = fs_and_path(self.path)
                fs, path = self._remote
                return fs.open(path, "rb")
            return open(os.fspath(self.path), "rb")
        except FileNotFoundError:
            raise FileNotFoundError(f"Task {self.task_id!r}: {self.name} does not exist") from None
        except IsADirectoryError:
            raise ValueError(
                f"Task {self.task_id!r}: {self.name} is a directory; give the path of one JSON-array or "
                "JSON-lines file"
            ) from None
        except PermissionError:
            raise PermissionError(
                f"Task {self.task_id!r}: {self.name} cannot be read by this worker (permission denied); "
                "fix its permissions or give another file"
            ) from None

    def count(self) -> int:
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (item for _, item in self.numbered())

    def numbered(self) -> Iterator[tuple[int | None, dict[str, Any]]]:
        """The items with their line number in a JSON-lines file (``None`` in a JSON array), so that an
        error can point at the line to fix."""
        with self._open() as stream:
            lines = iter_json_items_with_lines(stream, self.name, allow_empty=False)
            for number, (line, item) in enumerate(_with_task(lines, self.task_id), start=1):
                if not isinstance(item, dict):
                    raise ValueError(
                        f"Task {self.task_id!r}: item {number} of {self.name} is a {type(item).__name__}, "
                        "not a JSON object"
                    )
                yield line, item


class CountedItems:
    """``source`` whose items, read once, are counted by ``progress`` (the validation pass's progress lines).

    Only for the pass that reads the items first: the posting pass counts batches, not items read.
    It keeps ``numbered()`` when the source has it, so errors still name a file's line.
    """

    def __init__(self, source: ItemSource, progress: Progress) -> None:
        self.source = source
        self.name = source.name
        self.progress = progress

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.progress.counted(iter(self.source))

    def numbered(self) -> Iterator[tuple[int | None, dict[str, Any]]]:
        numbered = getattr(self.source, "numbered", None)
        lines = numbered() if callable(numbered) else ((None, item) for item in self.source)
        return self.progress.counted(lines)


def _with_task(lines: Iterator[tuple[int | None, Any]], task_id: str) -> Iterator[tuple[int | None, Any]]:
    """The parser's errors (which name the file and the line or item) prefixed with the task."""
    while True:
        try:
            yield next(lines)
        except StopIteration:
            return
        except ValueError as err:
            raise ValueError(f"Task {task_id!r}: {err}") from None


def _batched(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


class EncodedBatch(NamedTuple):
    """One batch as it is posted: how many items, the request body and its sha256 (the ledger's digest)."""

    item_count: int
    body: bytes
    sha256: str


def encoded_batches(items: Iterator[dict[str, Any]], size: int) -> Iterator[EncodedBatch]:
    """``items`` in batches of ``size``, each encoded as the POST body: compact JSON, UTF-8.

    The items themselves are dropped once encoded: only the bytes are kept while a batch waits for its
    POST. The encoding is what the ledger's digests were computed from since the first release: changing
    it would make a retry re-post every batch an earlier try posted.
    """
    for batch in _batched(items, size):
        # allow_nan=False: NaN/Infinity are not JSON; ItemChecker refused such items before any POST
        body = json.dumps(batch, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        yield EncodedBatch(len(batch), body, hashlib.sha256(body).hexdigest())


# -- streaming JSON --------------------------------------------------------------------------------
#
# Linear whatever the size of one item: while an item is incomplete, the buffer is grown geometrically
# (at least doubling what is pending) before it is parsed again, so an item of N characters costs O(N)
# parsing and copying in all, not a re-parse per chunk (which was quadratic: 23.5 s for one 12 MB item).


def _limit_text() -> str:
    limit = MAX_ITEM_CHARS
    return f"{limit >> 20} MiB of text" if limit >= 1 << 20 else f"{limit} characters"


class _TooLarge(ValueError):
    """The pending item or line grew past ``MAX_ITEM_CHARS``; the caller says which one."""


class _Buffer:
    """Decoded text of a byte stream, read a chunk at a time; ``pos`` is the read position in ``text``."""

    def __init__(self, stream: Any, name: str, chunk_bytes: int | None = None) -> None:
        self.stream = stream
        self.name = name
        self.chunk_bytes = chunk_bytes or CHUNK_BYTES
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        self.offset = 0  # characters dropped before ``text``
        self.lines = 0  # newlines decoded so far (for the line of a UTF-8 error)
        self.started = False  # a leading byte-order mark is dropped
        self.eof = False

    def more(self, want: int = 0) -> None:
        """Drop what was consumed and read at least one more chunk, and then on until at least ``want``
        more characters were decoded (callers pass what is pending, so the buffer doubles)."""
        if self.eof:
            return
        pending = len(self.text) - self.pos
        parts: list[str] = []
        got = 0
        while True:
            data = self.stream.read(self.chunk_bytes)
            decoded = self._decode(data or b"", final=not data)
            if not self.started and decoded:
                self.started = True
                decoded = decoded.removeprefix("\ufeff")
            parts.append(decoded)
            got += len(decoded)
            if not data:
                self.eof = True
            if want and pending + got > MAX_ITEM_CHARS:
                raise _TooLarge(f"at character {self.offset + self.pos}")
            if self.eof or got >= want:
                break
        self.offset += self.pos
        self.text = self.text[self.pos :] + "".join(parts)
        self.pos = 0

    def _decode(self, data: bytes, final: bool) -> str:
        held = self.decoder.getstate()[0]  # bytes of a character cut by the previous chunk
        try:
            decoded = self.decoder.decode(data, final=final)
        except UnicodeDecodeError as err:
            line = self.lines + (held + data)[: err.start].count(b"\n") + 1
            raise ValueError(
                f"{self.name} is not UTF-8 text: line {line} holds byte(s) {err.object[err.start : err.end]!r} "
                f"({err.reason}); save the file as UTF-8"
            ) from None
        self.lines += decoded.count("\n")
        return decoded

    def peek(self) -> str | None:
        """The next non-whitespace character (not consumed), or None at the end."""
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if self.eof:
                return None
            self.more()

    def where(self) -> str:
        return f"character {self.offset + self.pos}"


_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\r\n]*")


def iter_json_items(stream: Any, name: str, chunk_bytes: int | None = None) -> Iterator[Any]:
    """The values of a JSON array, or of JSON lines, from a binary stream; bounded memory either way."""
    return (value for _, value in iter_json_items_with_lines(stream, name, chunk_bytes))


def iter_json_items_with_lines(
    stream: Any, name: str, chunk_bytes: int | None = None, allow_empty: bool = True
) -> Iterator[tuple[int | None, Any]]:
    """Like :func:`iter_json_items`, each value with its 1-based line number in JSON lines (``None`` for
    the items of a JSON array). With ``allow_empty=False`` an input of only whitespace is an error (an
    empty JSON array ``[]`` is still zero items)."""
    buf = _Buffer(stream, name, chunk_bytes)
    first = buf.peek()
    if first is None:
        if not allow_empty:
            raise ValueError(
                f"{name} is empty; it must hold a JSON array of objects ([{{...}}, {{...}}]) or JSON lines "
                "(one object per line). Check the task that writes it; for no items write []"
            )
        return
    if first == "[":
        yield from ((None, value) for value in _array_items(buf))
    else:
        yield from _json_lines(buf, first)


def _array_items(buf: _Buffer) -> Iterator[Any]:
    buf.pos += 1  # the "["
    number = 0
    while True:
        char = buf.peek()
        if char is None:
            raise ValueError(f"{buf.name}: the JSON array ends without its closing ']' after item {number}")
        if char == "]":
            buf.pos += 1
            break
        if number:
            if char != ",":
                raise ValueError(f"{buf.name}: expected ',' or ']' after item {number} at {buf.where()}")
            buf.pos += 1
            if buf.peek() in (None, "]"):
                raise ValueError(f"{buf.name}: expected an item after ',' at {buf.where()}")
        number += 1
        yield _decode_value(buf, number)
    if buf.peek() is not None:
        raise ValueError(
            f"{buf.name}: unexpected content after the JSON array's closing ']' at {buf.where()}"
        )


def _decode_value(buf: _Buffer, number: int) -> Any:
    """One JSON value at ``buf.pos``, reading more while it may be incomplete."""
    while True:
        try:
            value, end = _DECODER.raw_decode(buf.text, buf.pos)
        except json.JSONDecodeError as err:
            incomplete = err.msg.startswith("Unterminated string") or err.pos >= len(buf.text) - 8
            if buf.eof or not incomplete:
                raise ValueError(
                    f"{buf.name}: item {number} is not valid JSON at character {buf.offset + err.pos}: {err.msg}"
                ) from None
        else:
            # A value ending exactly at the buffer's end may continue in the next chunk (a number).
            if end < len(buf.text) or buf.eof:
                buf.pos = end
                return value
        try:
            buf.more(len(buf.text) - buf.pos)
        except _TooLarge as err:
            raise ValueError(
                f"{buf.name}: item {number} is larger than {_limit_text()} ({err}), or the file is "
                "malformed there; split such items or fix the file"
            ) from None


def _json_lines(buf: _Buffer, first: str) -> Iterator[tuple[int, Any]]:
    # Every complete line in the buffer is split off at once (one ``str.split`` per chunk, not a find and
    # a slice per line): reading is half the cost of the validation pass and all of the posting pass.
    line_number = 0
    scanned = buf.pos  # up to here the pending text holds no newline
    while True:
        last = buf.text.rfind("\n", scanned)
        if last < 0 and not buf.eof:
            pending = len(buf.text) - buf.pos
            try:
                buf.more(pending)
            except _TooLarge:
                raise ValueError(
                    f"{buf.name}: line {line_number + 1} is longer than {_limit_text()} without a line "
                    "break; JSON lines holds one object per line (split such items), or the file is "
                    "malformed there"
                ) from None
            scanned = buf.pos + pending  # ``more`` moved the pending text to the buffer's start
            continue
        end = len(buf.text) if last < 0 else last  # at the end of the file: the last line, unterminated
        block = buf.text[buf.pos : end].split("\n")
        buf.pos = scanned = end + 1 if last >= 0 else end
        for line in block:
            line_number += 1
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError as err:
                    hint = ""
                    # Only when line 1 ran out before its object ended (a pretty-printed object): an error
                    # inside the line is a plain syntax error there, not an object spread over lines.
                    cut_short = isinstance(err, json.JSONDecodeError) and err.pos >= len(line.rstrip())
                    if line_number == 1 and first == "{" and cut_short:
                        hint = (
                            "; the file looks like one JSON object over several lines: an items file is a "
                            "JSON array of objects ([{...}, {...}]) or JSON lines (one object per line)"
                        )
                    raise ValueError(
                        f"{buf.name}: line {line_number} is not valid JSON ({err}){hint}"
                    ) from None
                yield line_number, value
        if last < 0:
            return
