"""Query (OData v4): filters, select, order, top/skip, server-driven paging, errors, lazy big data."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_norce.simulator import NorceSimulator

ORDERS = "Orders/Orders"
CONTRACTS = Path(__file__).resolve().parents[1] / "norce_contracts"
#: A subset of the documented 2.0 Order fields (tests/norce_contracts/query.json), in the simulator's order.
ORDER_FIELDS = (
    "Id", "ClientId", "ApplicationId", "OrderNo", "OrderDate", "BuyerCustomerId", "BuyerCompanyId", "StatusId",
    "CurrencyId", "VatRate", "FreightCost", "PaymentMethodId", "DeliveryCountryId", "DeliveryZipCode",
    "IsForgotten", "Created", "Updated",
)  # fmt: skip
ITEM_FIELDS = (
    "Id", "OrderId", "LineNumber", "StatusId", "PartNo", "ProductName", "QtyOrdered", "CurrencyId", "VatRate",
    "PriceSale", "LineAmount", "ClientId", "Created", "Updated",
)  # fmt: skip
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
    expected = [row["Id"] for row in everything if row["Updated"] and low <= _ts(row["Updated"]) < high]
    assert expected
    rows, _ = client.all_pages(ORDERS, **{"$filter": WINDOW})
    assert [row["Id"] for row in rows] == expected
    counted = client.query(ORDERS, **{"$filter": WINDOW, "$count": "true", "$top": "1"}).json()
    assert counted["@odata.count"] == len(expected)


def test_scanned_filter_matches_brute_force_across_pages(make_sim):
    _, client = make_sim(orders=2500)
    everything, _ = client.all_pages(ORDERS)
    expected = [
        r["Id"] for r in everything if r["StatusId"] == 5 and (r["CurrencyId"] == 3 or r["FreightCost"] > 0)
    ]
    rows, pages = client.all_pages(
        ORDERS, **{"$filter": "StatusId eq 5 and (CurrencyId eq 3 or FreightCost gt 0)"}
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
    page = client.query(ORDERS, **{"$orderby": "Id desc", "$skip": "5", "$top": "3"}).json()
    assert [r["Id"] for r in page["value"]] == [95, 94, 93]
    by_date = client.query(ORDERS, **{"$orderby": "OrderDate desc,Id", "$select": "Id,OrderDate"}).json()
    dates = [_ts(r["OrderDate"]) for r in by_date["value"]]
    assert dates == sorted(dates, reverse=True)
    by_updated = client.query(ORDERS, **{"$orderby": "Updated", "$select": "Id,Updated"}).json()["value"]
    nulls = [r for r in by_updated if r["Updated"] is None]
    assert nulls and by_updated[: len(nulls)] == nulls, "null sorts first in ascending order"
    by_customer = client.query(ORDERS, **{"$orderby": "BuyerCustomerId asc, Id desc"}).json()["value"]
    keys = [(r["BuyerCustomerId"], -r["Id"]) for r in by_customer]
    assert keys == sorted(keys)
    beyond = client.query(ORDERS, **{"$skip": "1000"}).json()
    assert beyond["value"] == []


def test_orders_have_documented_fields_and_updated_is_monotonic_or_null(make_sim):
    _, client = make_sim(orders=600)
    rows, _ = client.all_pages(ORDERS)
    assert set(rows[0]) == set(ORDER_FIELDS), "PascalCase 2.0 fields; Items only with $expand"
    assert all(isinstance(r["Id"], int) for r in rows), "Id is an integer (3.0 docs, third-party INT64)"
    updated = [_ts(r["Updated"]) for r in rows if r["Updated"] is not None]
    never_updated = [r for r in rows if r["Updated"] is None]
    assert updated == sorted(updated)
    assert updated[0] >= datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert updated[-1] < datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert 0 < len(never_updated) < len(rows) // 4, "some orders were never updated (Updated null)"
    assert all(_ts(r["Created"]) <= _ts(r["Updated"]) for r in rows if r["Updated"] is not None)
    assert all(r["OrderDate"] == r["Created"] for r in rows)


def test_order_items_come_only_through_expand(make_sim):
    _, client = make_sim(orders=50)
    expanded = client.query(ORDERS, **{"$expand": "Items", "$top": "20"}).json()["value"]
    for order in expanded:
        assert 1 <= len(order["Items"]) <= 3
        assert [item["LineNumber"] for item in order["Items"]] == list(range(1, len(order["Items"]) + 1))
        for item in order["Items"]:
            assert set(item) == set(ITEM_FIELDS)
            assert item["OrderId"] == order["Id"]
            assert item["LineAmount"] == pytest.approx(item["QtyOrdered"] * item["PriceSale"])
    narrowed = client.query(
        ORDERS, **{"$expand": "Items($select=PartNo,QtyOrdered;$filter=LineNumber eq 1)", "$top": "3"}
    ).json()["value"]
    assert [len(order["Items"]) for order in narrowed] == [1, 1, 1]
    assert all(set(order["Items"][0]) == {"PartNo", "QtyOrdered"} for order in narrowed)
    selected = client.query(ORDERS, **{"$select": "Id", "$expand": "Items", "$top": "2"}).json()["value"]
    assert set(selected[0]) == {"Id", "Items"}
    assert client.query("Orders/OrderItems").status_code == 404, "no standalone OrderItem set (third-party)"
    assert client.query(ORDERS, **{"$filter": "Items eq null"}).status_code == 400


def test_application_header_does_not_filter_orders_but_a_filter_does(make_sim):
    _, client = make_sim(orders=1200, application_id=55, other_application_id=66)
    everything, _ = client.all_pages(ORDERS)
    apps = {r["ApplicationId"] for r in everything}
    assert apps == {55, 66}, "the applicationId header only sets context (third-party observation)"
    mine, _ = client.all_pages(ORDERS, **{"$filter": "ApplicationId eq 55"})
    assert [r["Id"] for r in mine] == [r["Id"] for r in everything if r["ApplicationId"] == 55]
    assert len(mine) > len(everything) // 2


def test_updated_with_created_fallback_matches_brute_force(make_sim):
    sim, client = make_sim(orders=3000)
    everything, _ = client.all_pages(ORDERS)
    low = datetime(2026, 11, 10, tzinfo=timezone.utc)
    high = datetime(2026, 11, 12, tzinfo=timezone.utc)

    def in_window(row: dict) -> bool:
        stamp = row["Updated"] if row["Updated"] is not None else row["Created"]
        return row["ApplicationId"] == sim.application_id and low <= _ts(stamp) < high

    expected = [r["Id"] for r in everything if in_window(r)]
    assert any(r["Updated"] is None for r in everything if r["Id"] in set(expected))
    text = (
        f"ApplicationId eq {sim.application_id} and ((Updated ge 2026-11-10T00:00:00Z and Updated lt "
        "2026-11-12T00:00:00Z) or (Updated eq null and Created ge 2026-11-10T00:00:00Z and Created lt "
        "2026-11-12T00:00:00Z))"
    )
    rows, _ = client.all_pages(ORDERS, **{"$filter": text})
    assert [r["Id"] for r in rows] == expected
    nulls, _ = client.all_pages(ORDERS, **{"$filter": "Updated eq null", "$select": "Id"})
    assert [r["Id"] for r in nulls] == [r["Id"] for r in everything if r["Updated"] is None]
    either, _ = client.all_pages(ORDERS, **{"$filter": "Updated ge 2026-11-29T00:00:00Z or Id le 3"})
    expected_either = [
        r["Id"] for r in everything if r["Id"] <= 3 or (r["Updated"] or "") >= "2026-11-29T00:00:00Z"
    ]
    assert [r["Id"] for r in either] == expected_either


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
    last_hour = [sim.orders.scan_row(i)["Updated"] for i in range(1_000_000 - 1500, 1_000_000)]
    expected = sum(1 for stamp in last_hour if stamp is not None and stamp >= "2026-11-30T23:00:00Z")
    assert window["@odata.count"] == expected
    assert expected == pytest.approx(
        1_000_000 / 720 * 7 / 8, rel=0.1
    )  # an hour of 30 days; 1/8 never updated
    assert window["value"][0]["Updated"] >= "2026-11-30T23:00:00Z"
    ids = client.query(ORDERS, **{"$filter": "Id gt 999990 and Id le 999995", "$select": "Id"}).json()
    assert [r["Id"] for r in ids["value"]] == [999991, 999992, 999993, 999994, 999995]


def test_orders_window_is_configurable(make_sim):
    sim, client = make_sim(orders=10, orders_start="2025-01-01T00:00:00Z", orders_end="2025-01-02T00:00:00Z")
    rows, _ = client.all_pages(ORDERS)
    changed = [r["Updated"] or r["Created"] for r in rows]
    assert all("2024-12-29T00:00:00Z" <= r["Created"] < "2025-01-02T00:00:00Z" for r in rows)
    assert all("2025-01-01T00:00:00Z" <= stamp < "2025-01-02T00:00:00Z" for stamp in changed)
    assert sim.orders.slot_epoch(9) - sim.orders.slot_epoch(0) == 9 * 8640


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
    sim, client = make_sim(products=20, customers=5)
    products = client.query("Products/Products").json()["value"]
    assert len(products) == len({sku["ProductId"] for sku in sim.catalog.skus.values()}), (
        "one row per variant"
    )
    assert {"Id", "ManufacturerPartNo", "Code", "DefaultName", "IsActive", "Created", "Updated"} <= set(
        products[0]
    )
    skus = client.query("Products/ProductSkus").json()["value"]
    assert skus and "OnHand" not in skus[0] and "PriceLists" not in skus[0], "navigation needs $expand"
    expanded = client.query(
        "Products/ProductSkus", **{"$expand": "OnHand,PriceLists($select=PriceListId,PriceSale)"}
    )
    first = expanded.json()["value"][0]
    assert (first["OnHand"][0]["WarehouseId"], first["OnHand"][0]["LocationId"]) == (1, 1)
    assert set(first["PriceLists"][0]) == {"PriceListId", "PriceSale"}
    one = client.query(
        f"Products/ProductSkus('{first['PartNo']}')", **{"$expand": "PriceLists($filter=IsActive eq false)"}
    )
    assert one.json()["PartNo"] == first["PartNo"]
    assert one.json()["PriceLists"] == []
    assert len(client.query("Customers/Customers").json()["value"]) == 5
    assert client.query("Customers/Companies").json()["value"] == []
    price_lists = client.query("Application/ClientPriceLists").json()["value"]
    assert [(p["Agreement"], p["PriceListId"]) for p in price_lists] == [("DEFAULT", 1)]
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
    for index in range(0, 1500, 7):
        row = sim.orders.row(index)
        assert json.loads(sim.orders.row_json(index, ("Items",))) == row
        del row["Items"]
        assert json.loads(sim.orders.row_json(index)) == row
    fast = client.query(ORDERS, **{"$skip": "500"}).json()
    projected = client.query(ORDERS, **{"$skip": "500", "$select": ",".join(ORDER_FIELDS)}).json()
    assert fast["value"] == projected["value"]
    assert fast["@odata.nextLink"].endswith("$skip=1000")
    fast_items = client.query(ORDERS, **{"$skip": "500", "$expand": "Items"}).json()
    slow_items = client.query(
        ORDERS, **{"$skip": "500", "$expand": "Items", "$select": ",".join(ORDER_FIELDS)}
    ).json()
    assert fast_items["value"] == slow_items["value"]


def test_order_fields_are_named_as_norce_publishes_them():
    contracts = json.loads((CONTRACTS / "query.json").read_text())
    sets = {
        entry["entity_set"]: entry for entry in contracts["entity_sets"] if entry["namespace"] == "Orders"
    }
    orders = sets["Orders"]
    documented = {f["name"] for f in orders["fields_from_docs_2_0"] + orders["fields_seen_elsewhere"]}
    assert set(ORDER_FIELDS) <= documented
    item_names = {text.split()[0] for text in sets["(OrderItem, via $expand=Items only)"]["fields"]}
    assert set(ITEM_FIELDS) <= item_names


def test_changed_ids_helper_agrees_with_the_rows(make_sim):
    """The data-model helper the export tests compare with must equal a brute force over the OData rows."""
    sim, client = make_sim(orders=2000)
    everything, _ = client.all_pages(ORDERS)
    low, high = "2026-11-05T00:00:00Z", "2026-11-08T00:00:00Z"
    start, end = _ts(low).timestamp(), _ts(high).timestamp()
    for app in (None, sim.application_id):
        expected = [
            r["Id"]
            for r in everything
            if low <= (r["Updated"] or r["Created"]) < high and app in (None, r["ApplicationId"])
        ]
        assert sim.orders.changed_ids(start, end, app) == expected
