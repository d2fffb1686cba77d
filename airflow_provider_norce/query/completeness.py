"""What an export proves about its file: the completeness record, and the duplicate check of page-by-page reads.

Why a record: a file that is short or holds a row twice looks like any other file. Every export therefore
ends with one line in the task log and one small dict in XCom saying how it read (key ranges, keyset pages,
or Norce's own nextLink), which key range it covered, how many rows and pages, and which fallback it took
because a server behaviour did not hold. The numbers come from what was read and checked, not from a plan.
"""

from __future__ import annotations

import itertools
from array import array
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_norce.exceptions import NorceUntrustedAnswerError

#: How an export read its rows (``mode``).
CONCURRENT = "key ranges"
KEYSET = "keyset pages"
NEXT_LINK = "nextLink pages"


@dataclass(frozen=True)
class ExportRecord:
    """The completeness record of one export.

    ``first``/``last``: the lowest and highest key written (``None`` without a key or rows); ``slices``:
    the key ranges of the plan (0 when not sliced), ``resumed`` of them from an earlier try; ``fallback``:
    the server behaviour that did not hold, when the export fell back to Norce's nextLink pages.
    """

    rows: int
    pages: int
    mode: str
    key: str | None = None
    first: Any = None
    last: Any = None
    slices: int = 0
    resumed: int = 0
    fallback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for the task log."""
        covered = (
            f"{self.key} {self.first} to {self.last}"
            if self.key and self.first is not None
            else ("no rows" if self.rows == 0 else f"no key checked ({self.key or 'none known'})")
        )
        sliced = f", {self.slices} slices ({self.resumed} from an earlier try)" if self.slices else ""
        fallback = f"; fell back because {self.fallback}" if self.fallback else ""
        return (
            f"{self.rows} rows, {self.pages} pages, read by {self.mode}{sliced}; covered {covered}{fallback}"
        )


class KeysSeen:
    """Every key of a page-by-page read, kept compactly (8 bytes a row), to prove no row came twice.

    Why: following Norce's nextLink trusts the server's paging; a ``$skip`` page that shifted (a row
    added before it mid-export) repeats a row. Keys that arrive in increasing order prove it at no cost;
    otherwise the keys are sorted once at the end. A row without the key (not selected) is not checked.
    """

    def __init__(self, key: str, where: str) -> None:
        self.key = key
        self.where = where
        self.keys = array("q")
        self.increasing = True
        self.checked = True
        self.first: Any = None
        self.last: Any = None
        self._previous: Any = None

    def add(self, rows: list[dict[str, Any]]) -> None:
        key, keys = self.key, self.keys
        for row in rows:
            value = row.get(key) if isinstance(row, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                self.checked = False
                continue
            if isinstance(value, int) and -(2**63) <= value < 2**63:
                number = value
            else:  # a string key (or a huge one): its 63-bit hash; a collision can only fail the export
                number = hash(str(value)) & 0x7FFFFFFFFFFFFFFF
                self.increasing = False
            if self.increasing and self._previous is not None and number <= self._previous:
                self.increasing = False
            keys.append(number)
            self._previous = number
            self.first = value if self.first is None else _lower(self.first, value)
            self.last = value if self.last is None else _lower(self.last, value, higher=True)

    def check(self) -> None:
        """Raise :class:`NorceUntrustedAnswerError` if any key came twice."""
        if self.increasing or not self.keys:
            return
        ordered = sorted(self.keys)
        for before, after in itertools.pairwise(ordered):
            if before == after:
                raise NorceUntrustedAnswerError(
                    f"{self.where}: Norce's pages held a row twice ({self.key} {after} or a row with the same "
                    "key): its nextLink paging shifted while the export ran (rows added or removed before "
                    "the page read), so the export stopped rather than write a row twice; the task's retry "
                    "reads it again",
                    behaviour="a row came twice across nextLink pages",
                )


def _lower(current: Any, value: Any, higher: bool = False) -> Any:
    """The lower (or higher) of two keys; keys of mixed types keep the current one."""
    try:
        return max(current, value) if higher else min(current, value)
    except TypeError:
        return current
