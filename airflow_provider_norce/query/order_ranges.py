"""Which order Ids an event-driven export writes, so that every new order lands in exactly one file.

The watch (:mod:`airflow_provider_norce.query.order_watch`) reports ranges ``(after, through]`` of new order
Ids at least once: a triggerer crash can replay a range, or (in a one-second window) lose one. The export
therefore never trusts an event's ``after`` alone. Its files are named by the range they hold
(:func:`range_file_name`), and the next range starts at the highest ``through`` already exported
(:func:`plan_range`): a replayed range is skipped, a lost one is covered by the next export, and two
exports never overlap as long as they run one at a time (``max_active_runs=1``) and each file appears
atomically (the export operator writes a temporary file and renames it). Before the first file there is no
highest ``through``: the export starts at the events' ``origin`` (:func:`event_origin`), the position the
watch saved at its first start, before any event; so a lost FIRST event is covered as well.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

#: ``orders_<after>_<through>.jsonl``: zero-padded, so the names sort by range.
_FILE = re.compile(r"^orders_(\d+)_(\d+)\.(jsonl|csv)$")


@dataclass(frozen=True, order=True)
class OrderRange:
    """New orders ``Id gt after and Id le through``."""

    after: int
    through: int

    @property
    def odata_filter(self) -> str:
        return f"Id gt {self.after} and Id le {self.through}"

    def as_dict(self) -> dict[str, Any]:
        return {"after": self.after, "through": self.through, "file": range_file_name(self)}


def range_file_name(order_range: OrderRange, suffix: str = "jsonl") -> str:
    """The file of one range, e.g. ``orders_000000010000_000000010042.jsonl``."""
    return f"orders_{order_range.after:012d}_{order_range.through:012d}.{suffix}"


def exported_ranges(folder: str) -> list[OrderRange]:
    """The ranges whose files exist in ``folder`` (none when it does not exist), sorted."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = [_FILE.match(name) for name in names]
    return sorted(OrderRange(int(m.group(1)), int(m.group(2))) for m in found if m)


def event_ranges(payloads: list[Any]) -> list[OrderRange]:
    """The ranges of the watch's event payloads (``{"after": A, "through": T, ...}``); other payloads are
    ignored, since an asset may also get events that did not come from the watch (a manual one)."""
    ranges = []
    for payload in payloads:
        after, through = (payload.get(k) if isinstance(payload, dict) else None for k in ("after", "through"))
        if isinstance(after, int) and isinstance(through, int):
            ranges.append(OrderRange(after, through))
    return ranges


def event_origin(payloads: list[Any]) -> int | None:
    """The watch's start (``origin``) the event payloads carry: the lowest, or None when none carries one
    (events of an earlier build of the watch, or events that did not come from the watch)."""
    origins = []
    for payload in payloads:
        origin = payload.get("origin") if isinstance(payload, dict) else None
        if isinstance(origin, int) and not isinstance(origin, bool) and origin >= 0:
            origins.append(origin)
    return min(origins) if origins else None


def payloads_of(triggering_asset_events: Any) -> list[Any]:
    """Every trigger payload in a run's ``triggering_asset_events`` (asset -> asset events whose ``extra``
    is ``{"from_trigger": True, "payload": ...}`` for events a watcher fired)."""
    payloads = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            if extra.get("from_trigger") and "payload" in extra:
                payloads.append(extra["payload"])
    return payloads


def plan_range(
    events: list[OrderRange], exported: list[OrderRange], origin: int | None = None
) -> OrderRange | None:
    """The range to export now, or None when the events hold nothing not yet exported.

    It ends at the highest ``through`` of the events and starts at the highest ``through`` already
    exported, or, before the first export, at the watch's start: ``origin`` (:func:`event_origin`, saved
    before the watch's first event, so a lost first event is covered) or, for events without one, the
    lowest ``after`` of the events (lower ones win: a position set back by hand replays from there).
    """
    if not events:
        return None
    through = max(r.through for r in events)
    if exported:
        after = max(r.through for r in exported)
    else:
        after = min(r.after for r in events)
        if origin is not None:
            after = min(after, origin)
    if through <= after:
        return None
    return OrderRange(after, through)
