"""Where the items of a Connect import come from: a list (or an XComArg resolved to one), or a JSON-array /
JSON-lines file (local or any ``ObjectStoragePath``).

It exists so that memory stays bounded: a file is streamed, one batch is in memory at a time, and the
array parser reads chunks with ``json.JSONDecoder.raw_decode`` instead of ``json.load``. Standard library
only, so importing it costs a DAG parse nothing.
"""

from __future__ import annotations

import codecs
import itertools
import json
import os
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_norce.storage import fs_and_path, is_remote

if TYPE_CHECKING:
    from collections.abc import Iterator

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

    def _open(self) -> Any:
        try:
            if is_remote(self.path):
                fs, path = fs_and_path(self.path)
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
            for number, (line, item) in enumerate(iter_json_items_with_lines(stream, self.name), start=1):
                if not isinstance(item, dict):
                    raise ValueError(
                        f"Task {self.task_id!r}: item {number} of {self.name} is a {type(item).__name__}, "
                        "not a JSON object"
                    )
                yield line, item


def _batched(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


# -- streaming JSON --------------------------------------------------------------------------------


class _Buffer:
    """Decoded text of a byte stream, read a chunk at a time; ``pos`` is the read position in ``text``."""

    def __init__(self, stream: Any, name: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.stream = stream
        self.name = name
        self.chunk_bytes = chunk_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text = ""
        self.pos = 0
        self.offset = 0  # characters dropped before ``text``
        self.eof = False

    def more(self) -> None:
        """Read one more chunk, dropping what was consumed."""
        if self.eof:
            return
        data = self.stream.read(self.chunk_bytes)
        try:
            decoded = self.decoder.decode(data or b"", final=not data)
        except UnicodeDecodeError as err:
            raise ValueError(f"{self.name} is not UTF-8 text ({err})") from None
        self.offset += self.pos
        self.text = self.text[self.pos :] + decoded
        self.pos = 0
        if not data:
            self.eof = True
        if len(self.text) > MAX_ITEM_CHARS:
            raise ValueError(
                f"{self.name}: one item is larger than {MAX_ITEM_CHARS >> 20} MiB of text at character "
                f"{self.offset}, or the file is malformed there"
            )

    def peek(self) -> str | None:
        """The next non-whitespace character (not consumed), or None at the end."""
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            self.pos = pos
            if pos < len(text):
                return text[pos]
            if self.eof:
                return None
            self.more()

    def where(self) -> str:
        return f"character {self.offset + self.pos}"


_DECODER = json.JSONDecoder()


def iter_json_items(stream: Any, name: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
    """The values of a JSON array, or of JSON lines, from a binary stream; bounded memory either way."""
    return (value for _, value in iter_json_items_with_lines(stream, name, chunk_bytes))


def iter_json_items_with_lines(
    stream: Any, name: str, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[int | None, Any]]:
    """Like :func:`iter_json_items`, each value with its 1-based line number in JSON lines (``None`` for
    the items of a JSON array)."""
    buf = _Buffer(stream, name, chunk_bytes)
    first = buf.peek()
    if first is None:
        return
    if first == "[":
        yield from ((None, value) for value in _array_items(buf))
    else:
        yield from _json_lines(buf)


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
        buf.more()


def _json_lines(buf: _Buffer) -> Iterator[tuple[int, Any]]:
    line_number = 0
    while True:
        newline = buf.text.find("\n", buf.pos)
        if newline < 0 and not buf.eof:
            buf.more()
            continue
        end = len(buf.text) if newline < 0 else newline
        line = buf.text[buf.pos : end]
        buf.pos = end + 1 if newline >= 0 else end
        line_number += 1
        if line.strip():
            try:
                yield line_number, json.loads(line)
            except ValueError as err:
                raise ValueError(f"{buf.name}: line {line_number} is not valid JSON ({err})") from None
        if newline < 0:
            return
