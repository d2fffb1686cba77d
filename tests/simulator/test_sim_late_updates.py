"""Late order updates: ``sim.update_order`` / ``POST /_sim/orders/update`` move one order's ``Updated``.

Norce writes ``Updated`` late and out of order under load (third-party observation, ``query.json
entity_sets[Orders/Orders].fields_seen_elsewhere[Updated].note`` and ``incremental_sync``). The simulator answers ``Updated`` bounds by
bisection on a slot that rises with the index, which a moved order escapes; these tests check every read path
against an oracle built from the rows themselves (all orders fetched with no filter, filtered in Python).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from airflow_provider_norce.simulator.query import _patched

A, B = "2026-11-10T00:00:00Z", "2026-11-12T00:00:00Z"  # a window the slots of Ids ~334..400 fill
INSIDE = "2026-11-11T06:30:00Z"
WINDOW = f"Updated ge {A} and Updated lt {B}"
FALLBACK = f"({WINDOW}) or (Updated eq null and Created ge {A} and Created lt {B})"

Row = dict[str, Any]


def all_rows(client) -> list[Row]:
    rows, _ = client.all_pages("Orders/Orders")
    return rows


def served(client, **params: Any) -> list[Row]:
    rows, _ = client.all_pages("Orders/Orders", **params)
    return rows


def ids(rows: list[Row]) -> list[int]:
    return [row["Id"] for row in rows]


def in_window(value: str | None) -> bool:
    return value is not None and A <= value < B  # canonical ...Z strings compare as instants


def first(rows: list[Row], test: Callable[[Row], bool]) -> Row:
    return next(row for row in rows if test(row))


def late_updates(sim, client) -> dict[str, int]:
    """Moves that cover every way a late update can cross the window; returns their order ids by name."""
    rows = all_rows(client)
    picked = {
        "into_window_id_150": 150,  # slot on Nov 3: moved into [A, B), inside the Id bounds below
        "into_window_id_50": 50,  # the same, outside the Id bounds
        "into_window_from_end": 990,  # slot on Nov 30
        "out_of_window": first(rows, lambda r: in_window(r["Updated"]))["Id"],
        "null_into_window": first(rows, lambda r: r["Updated"] is None and r["Id"] < 300)["Id"],
        "null_created_in_window_out": first(rows, lambda r: r["Updated"] is None and in_window(r["Created"]))[
            "Id"
        ],
        "before_the_data": 700,
        "twice": 800,
    }
    sim.update_order(picked["into_window_id_150"], INSIDE)
    sim.update_order(picked["into_window_id_50"], INSIDE)
    sim.update_order(picked["into_window_from_end"], "2026-11-10T00:00:00Z")  # exactly A: ge includes it
    sim.update_order(picked["out_of_window"], "2026-11-29T08:00:00Z")
    sim.update_order(picked["null_into_window"], "2026-11-11T23:59:59Z")
    sim.update_order(picked["null_created_in_window_out"], "2026-11-20T00:00:00Z")
    sim.update_order(picked["before_the_data"], "2026-10-15T00:00:00Z")
    sim.update_order(picked["twice"], INSIDE)
    sim.update_order(picked["twice"], "2026-11-12T00:00:00Z")  # the last wins: exactly B, lt excludes it
    return picked


def test_an_order_moved_back_is_in_its_new_window_and_no_longer_in_its_old_one(make_sim):
    sim, client = make_sim(orders=1000)
    rows = all_rows(client)
    moved = first(rows[::-1], lambda r: r["Updated"] is not None)  # an order updated on Nov 30
    old = moved["Updated"]
    old_window = f"Updated ge {old} and Updated le {old}"
    before = ids(served(client, **{"$filter": WINDOW}))
    assert moved["Id"] not in before
    assert ids(served(client, **{"$filter": old_window})) == [moved["Id"]]

    sim.update_order(moved["Id"], INSIDE)

    assert ids(served(client, **{"$filter": WINDOW})) == sorted([*before, moved["Id"]])
    assert ids(served(client, **{"$filter": old_window})) == []
    row = client.get(f"/commerce/query/2.0/Orders/Orders({moved['Id']})").json()
    assert (row["Updated"], row["Created"]) == (INSIDE, moved["Created"]), "only Updated changes"


ORACLES: list[tuple[str, Callable[[Row], bool]]] = [
    (WINDOW, lambda r: in_window(r["Updated"])),
    (f"Updated gt {A} and Updated le {B}", lambda r: r["Updated"] is not None and A < r["Updated"] <= B),
    (f"Updated eq {INSIDE}", lambda r: r["Updated"] == INSIDE),
    (f"Id ge 100 and Id lt 200 and {WINDOW}", lambda r: 100 <= r["Id"] < 200 and in_window(r["Updated"])),
    (f"{WINDOW} and Id lt 200", lambda r: r["Id"] < 200 and in_window(r["Updated"])),
    (FALLBACK, lambda r: in_window(r["Updated"]) or (r["Updated"] is None and in_window(r["Created"]))),
    ("Updated eq null", lambda r: r["Updated"] is None),
    (f"Updated ne null and Updated lt {A}", lambda r: r["Updated"] is not None and r["Updated"] < A),
    (f"Created ge {A} and Created lt {B}", lambda r: in_window(r["Created"])),
    ("Id eq 150", lambda r: r["Id"] == 150),
    (f"Updated ge {A} and StatusId eq 5", lambda r: r["Updated"] is not None and r["Updated"] >= A and r["StatusId"] == 5),
]  # fmt: skip


@pytest.mark.parametrize(("filter_text", "oracle"), ORACLES, ids=[text for text, _ in ORACLES])
def test_every_filter_answers_what_the_rows_say_after_late_updates(make_sim, filter_text, oracle):
    sim, client = make_sim(orders=1000, page_size=7)  # small pages: every answer is followed by nextLinks
    late_updates(sim, client)
    rows = all_rows(client)  # the oracle's rows: no filter, the fast page path
    expected = [row for row in rows if oracle(row)]
    got, pages = client.all_pages("Orders/Orders", **{"$filter": filter_text})
    assert ids(got) == ids(expected)
    assert got == expected, "the filtered pages carry the same rows"
    assert pages == max(1, -(-len(expected) // 7))
    count = client.query("Orders/Orders", **{"$filter": filter_text, "$count": "true", "$top": "0"}).json()
    assert count["@odata.count"] == len(expected)


def test_the_moves_land_where_they_should(make_sim):
    sim, client = make_sim(orders=1000)
    picked = late_updates(sim, client)
    window = set(ids(served(client, **{"$filter": WINDOW})))
    for name in ("into_window_id_150", "into_window_id_50", "into_window_from_end", "null_into_window"):
        assert picked[name] in window, name
    for name in ("out_of_window", "null_created_in_window_out", "before_the_data", "twice"):
        assert picked[name] not in window, name
    fallback = set(ids(served(client, **{"$filter": FALLBACK})))
    assert picked["null_created_in_window_out"] not in fallback, "it has an Updated now, outside the window"
    bounded = ids(served(client, **{"$filter": f"Id ge 100 and Id lt 200 and {WINDOW}"}))
    assert bounded == [picked["into_window_id_150"]], "by slot, no Id in 100..199 lies in the window"
    assert sim.orders.changed_ids(*(_epoch(A), _epoch(B))) == ids(served(client, **{"$filter": FALLBACK}))


def test_orderby_follows_the_new_values(make_sim):
    sim, client = make_sim(orders=1000, page_size=50)
    late_updates(sim, client)
    rows = all_rows(client)
    for direction in ("asc", "desc"):
        expected = sorted(
            (r for r in rows if r["Updated"] is not None and r["Updated"] < B),
            key=lambda r: r["Updated"],
            reverse=direction == "desc",
        )
        got = served(client, **{"$filter": f"Updated lt {B}", "$orderby": f"Updated {direction}"})
        assert ids(got) == ids(expected), direction
    by_id_desc = served(client, **{"$filter": WINDOW, "$orderby": "Id desc"})
    assert ids(by_id_desc) == sorted((r["Id"] for r in rows if in_window(r["Updated"])), reverse=True)


def test_skip_and_top_page_through_the_late_rows(make_sim):
    sim, client = make_sim(orders=1000, page_size=4)
    late_updates(sim, client)
    expected = ids([row for row in all_rows(client) if in_window(row["Updated"])])
    got, pages = client.all_pages("Orders/Orders", **{"$filter": WINDOW, "$skip": "3", "$top": "10"})
    assert ids(got) == expected[3:13]
    assert pages == 3


def test_single_entity_and_expanded_items_show_the_late_updated(make_sim):
    sim, client = make_sim(orders=100)
    before = client.get("/commerce/query/2.0/Orders/Orders(42)?$expand=Items").json()
    sim.update_order(42, datetime(2026, 11, 20, 10, tzinfo=timezone.utc))
    after = client.get("/commerce/query/2.0/Orders/Orders(42)?$expand=Items").json()
    assert after["Updated"] == "2026-11-20T10:00:00Z"
    assert {item["Updated"] for item in after["Items"]} == {"2026-11-20T10:00:00Z"}
    assert after["Created"] == before["Created"]
    unchanged = {k: v for k, v in after.items() if k not in ("Updated", "Items")}
    assert unchanged == {k: v for k, v in before.items() if k not in ("Updated", "Items")}
    selected = client.query("Orders/Orders", **{"$filter": "Id eq 42", "$select": "Id,Updated"}).json()
    assert selected["value"] == [{"Id": 42, "Updated": "2026-11-20T10:00:00Z"}], "the dict path agrees"


def test_a_cached_answer_is_not_served_after_an_update(make_sim):
    sim, client = make_sim(orders=1000)
    query = {"$filter": FALLBACK, "$orderby": "Updated desc"}
    first_answer = ids(served(client, **query))
    assert ids(served(client, **query)) == first_answer  # the second one comes from the cache
    sim.update_order(5, INSIDE)
    changed = ids(served(client, **query))
    assert changed != first_answer and 5 in changed
    sim.update_order(5, "2026-11-25T00:00:00Z")  # the same query again, after a second update
    assert ids(served(client, **query)) == first_answer


def test_updates_over_http(make_sim):
    sim, client = make_sim(orders=100)
    url = sim.base_url + "/_sim/orders/update"
    answer = requests.post(url, json={"id": 7, "updated": "2026-11-20T10:00:00+01:00"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["ok"] is True
    row = client.get("/commerce/query/2.0/Orders/Orders(7)").json()
    assert row["Updated"] == "2026-11-20T09:00:00Z"
    assert sim.counters()["requests"].get("POST /_sim/orders/update") is None, "steering is not counted"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"id": 0, "updated": "2026-11-20T10:00:00Z"},
            "order id 0 does not exist: the simulator has orders 1 to 100",
        ),
        ({"id": 101, "updated": "2026-11-20T10:00:00Z"}, "order id 101 does not exist"),
        ({"id": "7", "updated": "2026-11-20T10:00:00Z"}, "order id '7' does not exist"),
        ({"id": 7, "updated": "yesterday"}, "is not an ISO-8601 instant with a zone"),
        ({"id": 7, "updated": "2026-11-20T10:00:00"}, "is not an ISO-8601 instant with a zone"),
        ({"id": 7, "updated": "2026-11-20"}, "is not an ISO-8601 instant with a zone"),
        ({"id": 7, "updated": "2026-11-20T10:00:00.5Z"}, "has a fraction of a second"),
        ({"id": 7, "updated": 1_800_000_000}, "must be an ISO-8601 string"),
        ({"id": 7}, "send a JSON object"),
        ({"id": 7, "updated": "2026-11-20T10:00:00Z", "created": "x"}, "send a JSON object"),
    ],
)
def test_bad_updates_over_http_are_400_and_change_nothing(make_sim, body, message):
    sim, _ = make_sim(orders=100)
    answer = requests.post(sim.base_url + "/_sim/orders/update", json=body, timeout=5)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert sim.orders.overridden == () and sim.orders.version == 0


def test_a_naive_datetime_is_refused():
    from airflow_provider_norce.simulator import NorceSimulator

    sim = NorceSimulator(orders=10)
    with pytest.raises(ValueError, match="has no time zone"):
        sim.update_order(1, datetime(2026, 11, 20, 10))
    sim.update_order(1, datetime(2026, 11, 20, 10, tzinfo=timezone(timedelta(hours=2))))
    assert sim.orders.scan_row(0)["Updated"] == "2026-11-20T08:00:00Z"
    assert sim.orders.overridden == (0,) and sim.orders.version == 1


def test_without_late_updates_a_bisected_range_is_kept_as_it_is():
    """The no-override fast path: a range with no moved index inside stays a range (no list is built)."""
    window = range(100, 200)
    assert _patched(window, (5, 300), []) is window
    assert _patched(window, (5, 150), [5]) == [5, *range(100, 150), *range(151, 200)]
    assert _patched([1, 3, 9], (3, 7), [7]) == [1, 7, 9]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
