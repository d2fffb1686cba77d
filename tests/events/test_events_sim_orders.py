"""The simulator's run-time order appends: next Ids, Created = now, existing orders unchanged, every read path."""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_norce.simulator.clock import iso_z
from airflow_provider_norce.simulator.server import NorceSimulator


def rows(hook, url, **params):
    return hook.run_json(url, params=params)


@pytest.mark.norce_simulator(orders=1000)
def test_appended_orders_take_the_next_ids_and_leave_existing_orders_as_they_were(
    norce_simulator, hook, orders_url
):
    sim = norce_simulator.sim
    before = [sim.orders.row_json(i, ("Items",)) for i in (0, 1, 499, 998, 999)]
    ids = sim.add_orders(3)
    assert list(ids) == [1001, 1002, 1003]
    assert [sim.orders.row_json(i, ("Items",)) for i in (0, 1, 499, 998, 999)] == before
    assert len(sim.orders) == 1003

    newest = rows(hook, orders_url, **{"$top": "1", "$orderby": "Id desc", "$select": "Id,Created,Updated"})
    assert newest["value"][0]["Id"] == 1003
    created = newest["value"][0]["Created"]
    assert newest["value"][0]["Updated"] == created
    assert abs(json.loads(json.dumps(sim.time.wall())) - _epoch(created)) < 5  # the simulator clock's now


def _epoch(text: str) -> float:
    from airflow_provider_norce.simulator.odata import parse_datetime

    return parse_datetime(text)


@pytest.mark.norce_simulator(orders=500)
def test_every_query_read_path_sees_appended_orders(norce_simulator, hook, orders_url):
    sim = norce_simulator.sim
    rows(hook, orders_url, **{"$filter": "Id gt 490", "$count": "true"})  # fill the caches first
    sim.add_orders(4, "2026-12-05T10:00:00Z")
    counted = rows(hook, orders_url, **{"$filter": "Id gt 490", "$count": "true", "$select": "Id"})
    assert counted["@odata.count"] == 14
    assert [r["Id"] for r in counted["value"]][-4:] == [501, 502, 503, 504]
    by_created = rows(hook, orders_url, **{"$filter": "Created ge 2026-12-05T10:00:00Z", "$select": "Id"})
    assert [r["Id"] for r in by_created["value"]] == [501, 502, 503, 504]
    by_updated = rows(hook, orders_url, **{"$filter": "Updated eq 2026-12-05T10:00:00Z", "$select": "Id"})
    assert [r["Id"] for r in by_updated["value"]] == [501, 502, 503, 504]
    keyset = rows(
        hook, orders_url, **{"$filter": "Id gt 502", "$orderby": "Id", "$top": "1", "$select": "Id"}
    )
    assert [r["Id"] for r in keyset["value"]] == [503]
    single = hook.run_json(orders_url + "(504)")
    assert single["Id"] == 504 and single["Created"] == "2026-12-05T10:00:00Z"
    app = sim.application_id
    mine = rows(
        hook,
        orders_url,
        **{"$filter": f"ApplicationId eq {app} and Id gt 500", "$select": "Id,ApplicationId"},
    )
    assert {r["ApplicationId"] for r in mine["value"]} == {app}


def test_control_api_adds_orders_and_refuses_going_back_in_time():
    with NorceSimulator(orders=100) as sim:
        add = f"{sim.base_url}/_sim/orders/add"
        answer = requests.post(add, json={"count": 2, "created": "2026-12-02T00:00:00Z"}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ok": True, "first_id": 101, "last_id": 102}
        assert sim.orders.row(101)["Created"] == "2026-12-02T00:00:00Z"

        earlier = requests.post(add, json={"count": 1, "created": "2026-12-01T00:00:00Z"}, timeout=10)
        assert earlier.status_code == 400 and "before the newest order" in earlier.json()["error"]
        for body in ({}, {"count": 0}, {"count": "3"}, {"count": 1, "when": "now"}, [1]):
            bad = requests.post(add, json=body, timeout=10)
            assert bad.status_code == 400, body
        assert len(sim.orders) == 102

        now = requests.post(add, json={"count": 1}, timeout=10).json()
        assert now["first_id"] == 103
        # the clock's now lies before the last given instant here: raised to it, never going back
        assert sim.orders.row(102)["Created"] >= "2026-12-02T00:00:00Z"


def test_clock_now_is_the_created_of_new_orders():
    from airflow_provider_norce.simulator.clock import FakeClock

    clock = FakeClock(start=5_000.0)
    sim = NorceSimulator(
        orders=10, orders_start="2026-01-01T00:00:00Z", orders_end="2026-01-02T00:00:00Z", clock=clock
    )
    first = sim.add_orders(1)
    clock.advance(3600)
    second = sim.add_orders(1)
    created = [sim.orders.row(i - 1)["Created"] for i in (first.start, second.start)]
    assert created[1] == iso_z(_epoch(created[0]) + 3600)
