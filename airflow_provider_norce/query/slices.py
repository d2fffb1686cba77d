"""How a concurrent export cuts its window into key ranges, and how one range is read page by page.

Free of I/O: the hook fetches, :mod:`airflow_provider_norce.query.concurrent` runs slices in parallel, this
module decides what each request asks for.

Why key ranges, not ``$skip`` ranges after a ``$count``: Norce never published ``$count`` (``query.json
odata_options.$count``: "NOT FOUND"), and a third party saw deep ``$skip`` pages answer 500 intermittently
and moved to keyset paging (``query.json entity_sets[Products/Products].third_party_notes``). Norce rate-limits
Query (429) without publishing numbers or a ``Retry-After`` (``query.json rate_limit``): see
:mod:`airflow_provider_norce.query.aimd` for how the concurrency backs off. A key range
``Id ge a and Id lt b`` needs neither, and reading it by keyset (``Id gt <last key read>``, ``$orderby=Id``)
is also immune to rows entering or leaving the filter while the export runs: ``$skip`` pages shift then, and
a row at a page boundary is read twice or not at all. Key order is also the order a sequential export
writes on Norce and in the simulator (ASP.NET OData orders server-driven pages by key for stable paging),
so the concatenated slices give the same file.

The plan is made from the first page (read in key order, as a small sequential export would) and one more
request for the last key; it is kept in the staging folder so that a retried task cuts the window the same
way even if rows were added since.

Nothing Norce answers is trusted (:class:`~airflow_provider_norce.exceptions.NorceUntrustedAnswerError`):
the last-key read must be one row at or above the first page's last key (``$orderby ... desc`` and ``$top``
honoured), every keyset page must hold integer keys, increasing, inside the bounds asked for, and an empty
page must not carry a nextLink (a server that filters after paging). The last range is open above, so
a last key that is too low (or rows added since) costs speed, never rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.exceptions import NorceUntrustedAnswerError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Slices per worker at least (when the rows allow): the last slices of a plan finish at different times,
#: and with several slices per worker the idle tail is a small part of the export.
SLICES_PER_WORKER = 4

#: ``plan.json`` layout version; a plan of another version is not resumed but made afresh.
#: 3 (0.2): the last range is open above, the plan has an id its parts carry and a checksum of its fields.
PLAN_VERSION = 3


@dataclass(frozen=True)
class KeyRange:
    """Slice ``index`` of a plan: the rows whose key lies in ``[low, high)`` (``high`` None: no upper bound)."""

    index: int
    low: int
    high: int | None

    def describe(self, key: str) -> str:
        return (
            f"{key} {self.low} to {self.high - 1}" if self.high is not None else f"{key} {self.low} and above"
        )


@dataclass(frozen=True)
class SlicePlan:
    """The key ranges of one export; range 0 is the first page already read when the plan was made.

    ``[head_end, high)`` is cut into ranges of ``width`` keys, and the last one is open above: rows beyond
    the last key read when planning (added since, or a last-key read that was wrong) are read by it.
    ``plan_id`` is new for every plan: a part carries it, so a plan never adopts another plan's parts.
    """

    fingerprint: str
    key: str
    low: int
    head_end: int
    high: int
    width: int
    plan_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    version: int = PLAN_VERSION

    @property
    def count(self) -> int:
        """Slices in all: the head and the ranges from ``head_end`` up (at least one, open above)."""
        return 1 + max(1, math.ceil((self.high - self.head_end) / self.width))

    def ranges(self) -> list[KeyRange]:
        """Every slice in key order (the order their rows go into the file)."""
        ranges = [KeyRange(0, self.low, self.head_end)]
        low = self.head_end
        while low + self.width < self.high:
            ranges.append(KeyRange(len(ranges), low, low + self.width))
            low += self.width
        ranges.append(KeyRange(len(ranges), low, None))
        return ranges

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {**data, "checksum": _checksum(data)}

    @classmethod
    def from_json(cls, data: Any, fingerprint: str) -> SlicePlan | None:
        """The plan a previous try stored, or ``None`` when it belongs to another export or version, or
        was altered: a plan changed into another valid one (a width, a bound) would adopt parts cut by
        other ranges, so its checksum must match its fields."""
        if not isinstance(data, dict):
            return None
        fields = {name: value for name, value in data.items() if name != "checksum"}
        if data.get("checksum") != _checksum(fields):
            return None
        try:
            plan = cls(**fields)
        except TypeError:
            return None
        valid = (
            plan.version == PLAN_VERSION
            and plan.fingerprint == fingerprint
            and isinstance(plan.plan_id, str)
            and plan.plan_id.isalnum()
            and all(
                isinstance(v, int) and not isinstance(v, bool)
                for v in (plan.low, plan.head_end, plan.high, plan.width)
            )
            and plan.low < plan.head_end <= plan.high
            and plan.width > 0
        )
        return plan if valid else None


def _checksum(fields: dict[str, Any]) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def plan_slices(
    fingerprint: str,
    key: str,
    head_keys: list[int],
    last_key: int,
    concurrency: int,
    slice_rows: int,
) -> SlicePlan:
    """Cut the window after the first page into ranges of about ``slice_rows`` rows.

    Rows per key are estimated from the first page (its length over the keys it spans), because no count
    is available. The estimate decides the number of ranges: enough to keep ``concurrency`` requests busy,
    never more ranges than the pages the rest would take at that density, so a sparse window (old orders
    updated yesterday, spread over ten million ids) does not become thousands of empty requests.
    With ``concurrency`` 1 the rest is one range, open above: the export reads it by keyset, page by page.
    """
    first, head_last = head_keys[0], head_keys[-1]
    head_end = head_last + 1
    high = max(last_key + 1, head_end)
    span = high - head_end
    if span <= 0 or concurrency <= 1:
        return SlicePlan(fingerprint, key, first, head_end, head_end, 1)
    page_rows = max(1, len(head_keys))
    density = min(1.0, len(head_keys) / (head_last - first + 1))
    expected = max(1.0, span * density)
    per_slice = min(
        float(slice_rows), max(float(page_rows), expected / (SLICES_PER_WORKER * max(1, concurrency)))
    )
    count = max(1, math.ceil(expected / per_slice))
    return SlicePlan(fingerprint, key, first, head_end, high, math.ceil(span / count))


def and_filter(base: str | None, condition: str) -> str:
    """``(base) and condition``: the user's filter (or the window) narrowed to a key range."""
    return f"({base}) and {condition}" if base else condition


def keyset_pages(
    fetch: Callable[[dict[str, str]], tuple[list[dict[str, Any]], bool]],
    params: dict[str, str],
    key_range: KeyRange,
    key: str,
    where: str,
) -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    """The pages of one key range and their keys, read by keyset: each request asks for keys after the last
    one read.

    ``fetch(params)`` returns a page's rows and whether Norce said more follow (an ``@odata.nextLink``,
    which is not followed: its ``$skip`` is what keyset paging avoids). Each key comes at most once and in
    increasing order; a page that breaks that (a server ignoring ``$orderby`` or the key bounds), or an empty
    page that says more follow, raises :class:`NorceUntrustedAnswerError` rather than write rows twice, out
    of order, or too few.
    """
    base = params.get("$filter")
    upper = "" if key_range.high is None else f" and {key} lt {key_range.high}"
    condition = f"{key} ge {key_range.low}{upper}"
    last: int | None = None
    while True:
        rows, more = fetch({**params, "$filter": and_filter(base, condition), "$orderby": key})
        keys = checked_keys(rows, key, where, key_range, last)
        if more and not keys:
            raise NorceUntrustedAnswerError(
                f"{where}: Norce answered an empty page that says more rows follow (an @odata.nextLink) to "
                f"a key-range request ({key_range.describe(key)}); a server that filters after paging "
                "cannot be read by key ranges",
                behaviour="an empty page with an @odata.nextLink",
            )
        yield rows, keys
        # drop this page before asking for the next: with N slices in flight, a page kept alive across the
        # request would double what the export holds over the sequential one
        del rows
        if not more:
            return
        last = keys[-1]
        condition = f"{key} gt {last}{upper}"


def checked_keys(
    rows: list[dict[str, Any]],
    key: str,
    where: str,
    key_range: KeyRange | None = None,
    after: int | None = None,
) -> list[int]:
    """The rows' keys, checked: integers, increasing, after ``after`` and inside ``key_range`` when given.

    One check for every page a concurrent export reads (the planning page, the last-key probe, each keyset
    page): a page that breaks it would be written twice or out of order, so the export stops instead.
    """
    keys: list[int] = []
    last = after
    for row in rows:
        value = row.get(key) if isinstance(row, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise NorceUntrustedAnswerError(
                f"{where}: a row's slice_key {key!r} is {value!r}, not an integer, so the window cannot be "
                "read by key ranges; set slice_key to an integer key of the entity set",
                behaviour=f"a {key} that is not an integer",
            )
        below = key_range is not None and value < key_range.low
        above = key_range is not None and key_range.high is not None and value >= key_range.high
        if below or above:
            assert key_range is not None
            raise NorceUntrustedAnswerError(
                f"{where}: Norce answered {key} {value} to a request for {key_range.describe(key)}: it "
                f"ignored the key bounds of $filter, so the export cannot read by key ranges",
                behaviour=f"{key} bounds in $filter ignored",
            )
        if last is not None and value <= last:
            raise NorceUntrustedAnswerError(
                f"{where}: Norce answered {key} {value} after {key} {last} with $orderby={key}: the rows are "
                "not in increasing key order (or a row came twice), so the export stopped rather than write "
                "a row twice or out of order",
                behaviour=f"$orderby={key} not honoured",
            )
        keys.append(value)
        last = value
    return keys


def checked_last_key(rows: list[dict[str, Any]], head_keys: list[int], key: str, where: str) -> int:
    """The key of the last-key read (``$orderby=<key> desc&$top=1``), checked against the first page.

    The first page said more rows follow, so the last key must be one row at or above the first page's
    last key: more rows mean ``$top`` was ignored, a lower key that ``desc`` was, no row that the filter
    is not stable. Each raises :class:`NorceUntrustedAnswerError` naming the behaviour.
    """
    if len(rows) != 1:
        raise NorceUntrustedAnswerError(
            f"{where}: asked for the last {key} ($orderby={key} desc&$top=1), Norce answered {len(rows)} "
            f"rows{' ($top ignored)' if rows else ' though the first page said more follow'}",
            behaviour="$top ignored" if rows else "the last-key read answered no row",
        )
    last = checked_keys(rows, key, where)[0]
    if last < head_keys[-1]:
        raise NorceUntrustedAnswerError(
            f"{where}: asked for the last {key} ($orderby={key} desc&$top=1), Norce answered {key} {last}, "
            f"below the first page's last {key} {head_keys[-1]}: it ignored 'desc'",
            behaviour=f"$orderby={key} desc ignored",
        )
    return last
