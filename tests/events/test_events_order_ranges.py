"""The export side's exactly-once rule: ranges named files, replays skipped, lost events covered."""

from __future__ import annotations

from types import SimpleNamespace

from airflow_provider_norce.query.order_ranges import (
    OrderRange,
    event_ranges,
    exported_ranges,
    payloads_of,
    plan_range,
    range_file_name,
)


def test_first_export_starts_at_the_watch_start_and_ends_at_the_newest_event():
    events = [OrderRange(100, 120), OrderRange(120, 130)]
    assert plan_range(events, []) == OrderRange(100, 130)
    assert plan_range([], []) is None


def test_a_replayed_event_exports_nothing_and_an_overlap_only_the_new_part():
    exported = [OrderRange(100, 120), OrderRange(120, 130)]
    assert plan_range([OrderRange(120, 130)], exported) is None
    assert plan_range([OrderRange(120, 140)], exported) == OrderRange(130, 140)


def test_a_lost_event_is_covered_by_the_next_export():
    exported = [OrderRange(100, 120)]
    # the event (120, 130] was lost in the triggerer; the next says (130, 135]
    assert plan_range([OrderRange(130, 135)], exported) == OrderRange(120, 135)


def test_file_names_round_trip_and_other_files_are_ignored(tmp_path):
    assert exported_ranges(str(tmp_path / "missing")) == []
    for r in (OrderRange(5, 9), OrderRange(9, 12345678)):
        (tmp_path / range_file_name(r)).write_text("")
    (tmp_path / "orders_x_1.jsonl").write_text("")
    (tmp_path / ".orders_000000000012_000000000013.jsonl.tmp").write_text("")
    assert exported_ranges(str(tmp_path)) == [OrderRange(5, 9), OrderRange(9, 12345678)]
    assert OrderRange(5, 9).as_dict() == {
        "after": 5,
        "through": 9,
        "file": "orders_000000000005_000000000009.jsonl",
    }
    assert OrderRange(5, 9).odata_filter == "Id gt 5 and Id le 9"


def test_payloads_come_from_trigger_events_only():
    asset = "norce_new_orders"  # an Asset in Airflow; only the values are read
    events = {
        asset: [
            SimpleNamespace(extra={"from_trigger": True, "payload": {"after": 1, "through": 4}}),
            SimpleNamespace(extra={"manual": True}),
            SimpleNamespace(extra={"from_trigger": True, "payload": {"after": "1", "through": 9}}),
        ]
    }
    payloads = payloads_of(events)
    assert len(payloads) == 2
    assert event_ranges(payloads) == [OrderRange(1, 4)]
    assert payloads_of(None) == []
