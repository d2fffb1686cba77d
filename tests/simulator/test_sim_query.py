"""Query (OData v4): filters, select, order, top/skip, server-driven paging, errors, lazy big data."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_norce.testing import NorceSimulator

ORDERS = "Orders/Orders"
WINDOW = "Updated ge 2026-11-10T00:00:00Z and Updated lt 2026-11-12T00:00:00Z"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_window_filter_count_equals_brute_force(make_sim):
    _, client = make_sim(orders=3000)
    everything, pages = client.all_pages(ORDERS)
    assert len(everything) == 3000
    assert pages == 6
    low = datetime(2026, 11, 10, tzinfo=timezone.utc)
    high = datetime(2026, 11, 12, tzinfo=timezone.utc)
    expected = [row["Id"] for row in everything if low <= _ts(row["Updated"]) < high]
    assert expected
    rows, _ = client.all_pages(ORDERS, **{"$filter": WINDOW})
    assert [row["Id"] for row in rows] == expected
    counted = client.query(ORDERS, **{"$filter": WINDOW, "$count": "true", "$top": "1"}).json()
    assert counted["@odata.count"] == len(expected)


def test_scanned_filter_matches_brute_force_across_pages(make_sim):
    _, client = make_sim(orders=2500)
    everything, _ = client.all_pages(ORDERS)
    expected = [
        r["Id"]
        for r in everything
        if r["StatusId"] == 3 and (r["Currency"] == "EUR" or r["TotalAmount"] > 2000)
    ]
    rows, pages = client.all_pages(
        ORDERS, **{"$filter": "StatusId eq 3 and (Currency eq 'EUR' or TotalAmount gt 2000)"}
    )
    assert [row["Id"] for row in rows] == expected
    assert pages == -(-len(expected) // 500)


def test_created_filter_compares_instants(make_sim):
    _, client = make_sim(orders=1000)
    everything, _ = client.all_pages(ORDERS)
    cut = datetime(2026, 11, 15, tzinfo=timezone.utc)
    rows, _ = client.all_pages(ORDERS, **{"$filter": "Created lt 2026-11-15T01:00:00+01:00"})
    assert [r["Id"] for r in rows] == [r["Id"] for r in everything if _ts(r["Created"]) < cut]


def test_paging_next_link_keeps_the_query_and_advances_skip(make_sim):
    sim, client = make_sim(orders=1200)
    first = client.query(ORDERS, **{"$filter": "StatusId ne 1", "$select": "Id,Updated"}).json()
    assert len(first["value"]) == 500
    assert first["@odata.context"].endswith("#Orders(Id,Updated)")
    link = urlsplit(first["@odata.nextLink"])
    assert f"{link.scheme}://{link.netloc}" == sim.base_url
    params = parse_qs(link.query)
    assert params["$skip"] == ["500"]
    assert params["$filter"] == ["StatusId ne 1"]
    assert params["$select"] == ["Id,Updated"]
    assert set(first["value"][0]) == {"Id", "Updated"}


def test_last_page_has_no_next_link_and_top_limits_paging(make_sim):
    _, client = make_sim(orders=1200)
    rows, pages = client.all_pages(ORDERS, **{"$top": "700"})
    assert len(rows) == 700
    assert pages == 2
    assert [r["Id"] for r in rows] == list(range(1, 701))
    small = client.query(ORDERS, **{"$top": "10"}).json()
    assert len(small["value"]) == 10
    assert "@odata.nextLink" not in small


def test_page_size_is_configurable(make_sim):
    _, client = make_sim(orders=95, page_size=20)
    rows, pages = client.all_pages(ORDERS)
    assert len(rows) == 95
    assert pages == 5


def test_skip_top_and_orderby(make_sim):
    _, client = make_sim(orders=100)
    page = client.query(ORDERS, **{"$orderby": "Updated desc", "$skip": "5", "$top": "3"}).json()
    assert [r["Id"] for r in page["value"]] == [95, 94, 93]
    by_amount = client.query(
        ORDERS, **{"$orderby": "TotalAmount desc,Id", "$select": "Id,TotalAmount"}
    ).json()
    amounts = [r["TotalAmount"] for r in by_amount["value"]]
    assert amounts == sorted(amounts, reverse=True)
    by_customer = client.query(ORDERS, **{"$orderby": "CustomerId asc, Id desc"}).json()["value"]
    keys = [(r["CustomerId"], -r["Id"]) for r in by_customer]
    assert keys == sorted(keys)
    beyond = client.query(ORDERS, **{"$skip": "1000"}).json()
    assert beyond["value"] == []


def test_updated_is_monotonic_and_orders_carry_items(make_sim):
    _, client = make_sim(orders=600)
    rows, _ = client.all_pages(ORDERS)
    stamps = [_ts(r["Updated"]) for r in rows]
    assert stamps == sorted(stamps)
    assert stamps[0] == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert stamps[-1] < datetime(2026, 12, 1, tzinfo=timezone.utc)
    order = rows[0]
    assert set(order) == {
        "Id",
        "OrderNo",
        "Created",
        "Updated",
        "StatusId",
        "CustomerId",
        "Currency",
        "TotalAmount",
        "Items",
    }
    assert 1 <= len(order["Items"]) <= 3
    assert order["TotalAmount"] == pytest.approx(sum(item["Amount"] for item in order["Items"]))
    assert all(_ts(r["Created"]) <= _ts(r["Updated"]) for r in rows)


def test_data_is_deterministic_from_the_seed():
    def first_rows(seed: int) -> list:
        sim = NorceSimulator(orders=50, seed=seed)
        return [sim.orders.row(i) for i in range(50)]

    assert first_rows(7) == first_rows(7)
    assert first_rows(7) != first_rows(8)


def test_a_million_orders_are_lazy_and_queryable(make_sim):
    sim, client = make_sim(orders=1_000_000)
    assert len(sim.orders) == 1_000_000
    last = client.query(ORDERS + "(1000000)").json()
    assert last["Id"] == 1_000_000
    window = client.query(ORDERS, **{"$filter": "Updated ge 2026-11-30T23:00:00Z", "$count": "true"}).json()
    assert window["@odata.count"] == pytest.approx(1_000_000 / 720, abs=2)  # one hour of a 30-day spread
    assert window["value"][0]["Updated"] >= "2026-11-30T23:00:00Z"
    ids = client.query(ORDERS, **{"$filter": "Id gt 999990 and Id le 999995", "$select": "Id"}).json()
    assert [r["Id"] for r in ids["value"]] == [999991, 999992, 999993, 999994, 999995]


def test_orders_window_is_configurable(make_sim):
    _, client = make_sim(orders=10, orders_start="2025-01-01T00:00:00Z", orders_end="2025-01-02T00:00:00Z")
    rows, _ = client.all_pages(ORDERS)
    assert rows[0]["Updated"] == "2025-01-01T00:00:00Z"
    assert rows[-1]["Updated"].startswith("2025-01-01T21:36")


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "Updated ge"},
        {"$filter": "Nope eq 1"},
        {"$select": "Id,Nope"},
        {"$orderby": "Nope"},
        {"$orderby": "Id sideways"},
        {"$top": "-1"},
        {"$skip": "x"},
        {"$count": "maybe"},
        {"$apply": "groupby((StatusId))"},
        {"$expand": "Nope"},
        {"$format": "xml"},
    ],
)
def test_bad_query_options_are_400_with_odata_envelope(make_sim, params):
    _, client = make_sim(orders=10)
    response = client.query(ORDERS, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"]
    assert error["message"]


def test_unknown_entity_set_or_key_is_404(make_sim):
    _, client = make_sim(orders=10)
    missing = client.query("Orders/Nothing")
    assert missing.status_code == 404
    assert "Orders/Orders" in missing.json()["error"]["message"]
    assert client.query(ORDERS + "(11)").status_code == 404
    assert client.query("Products/ProductSkus('nope')").status_code == 404


def test_query_is_read_only(make_sim):
    sim, client = make_sim(orders=10)
    response = client.session.post(
        sim.base_url + "/commerce/query/2.0/Orders/Orders", headers=client.headers()
    )
    assert response.status_code == 405


def test_catalog_entity_sets_and_expand(make_sim):
    _, client = make_sim(products=20, customers=5)
    products = client.query("Products/Products").json()["value"]
    assert len(products) == 20
    assert {"Id", "ManufacturerPartNo", "Name", "IsActive"} <= set(products[0])
    skus = client.query("Products/ProductSkus").json()["value"]
    assert skus and "OnHand" not in skus[0] and "PriceLists" not in skus[0], "navigation needs $expand"
    expanded = client.query(
        "Products/ProductSkus", **{"$expand": "OnHand,PriceLists($select=PriceListCode,PriceSale)"}
    )
    first = expanded.json()["value"][0]
    assert first["OnHand"][0]["WarehouseCode"] == "MAIN"
    assert set(first["PriceLists"][0]) == {"PriceListCode", "PriceSale"}
    one = client.query(
        f"Products/ProductSkus('{first['PartNo']}')", **{"$expand": "PriceLists($filter=IsActive eq false)"}
    )
    assert one.json()["PartNo"] == first["PartNo"]
    assert one.json()["PriceLists"] == []
    assert len(client.query("Customers/Customers").json()["value"]) == 5
    assert client.query("Customers/Companies").json()["value"] == []
    assert client.query("Products/PriceLists").json()["value"][0]["Code"] == "DEFAULT"
    assert client.query("Products/ProductSkus", **{"$filter": "startswith(PartNo,'1000')"}).status_code == 200


def test_metadata_document(make_sim):
    _, client = make_sim(orders=1)
    response = client.query("Orders/$metadata")
    assert response.status_code == 200
    assert "application/xml" in response.headers["Content-Type"]
    assert 'Name="Updated" Type="Edm.DateTimeOffset"' in response.text


def test_query_rate_limit_answers_429(make_sim, clock):
    sim, client = make_sim(orders=10, query_rate_limit=(1, 3))
    statuses = [client.query(ORDERS).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.query(ORDERS)
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["error"]["code"] == "TooManyRequests"
    clock.advance(1)
    assert client.query(ORDERS).status_code == 200
    assert sim.counters()["api_429"] == 2
    assert client.get("/commerce/metadata/1.1/GetApplication").status_code == 200, "only Query is limited"


def test_fast_order_encoding_matches_the_row_dicts(make_sim):
    sim, client = make_sim(orders=1500, seed=3)
    for index in (0, 1, 2, 777, 1499):
        assert json.loads(sim.orders.row_json(index)) == sim.orders.row(index)
    fast = client.query(ORDERS, **{"$skip": "500"}).json()
    all_fields = "Id,OrderNo,Created,Updated,StatusId,CustomerId,Currency,TotalAmount,Items"
    projected = client.query(ORDERS, **{"$skip": "500", "$select": all_fields}).json()
    assert fast["value"] == projected["value"]
    assert fast["@odata.nextLink"].endswith("$skip=1000")
