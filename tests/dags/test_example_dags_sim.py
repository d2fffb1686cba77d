"""The example DAGs: they parse without network or connections, and run end to end against the simulator."""

from __future__ import annotations

import datetime as dt
import json
import math
import socket

import pytest
from norce_dags_testlib import order_ids_in_window, parse_dagbag, read_jsonl, write_jsonl

UTC = dt.timezone.utc
EXAMPLE_IDS = {"norce_nightly_catalog_sync", "norce_order_export", "norce_product_etl"}


def test_examples_parse_without_network_or_connections(examples_folder, monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("AIRFLOW_CONN_"):
            monkeypatch.delenv(name)  # a connection look-up while parsing would now fail the import
    attempts = []

    def no_network(self, address):
        attempts.append(address)
        raise OSError(f"network access while parsing DAGs: {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    bag = parse_dagbag(examples_folder)
    assert bag.import_errors == {}
    assert EXAMPLE_IDS <= set(bag.dag_ids)
    assert attempts == []
    for dag_id in EXAMPLE_IDS:
        dag = bag.dags[dag_id]
        assert type(dag.timetable).__name__ == "CronTriggerTimetable"  # Airflow 3's cron: empty intervals
        for task in dag.tasks:
            if hasattr(task, "norce_conn_id"):
                assert "norce_conn_id" in task.template_fields


_TOKENS: dict[str, str] = {}


def query(sim, path, **params):
    """A direct Query call with a token from the simulator, independent of the provider's code (one token
    per simulator: Norce's token limit applies to tests too)."""
    import requests

    if sim.base_url not in _TOKENS:
        _TOKENS[sim.base_url] = requests.post(
            sim.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": sim.client_id,
                "client_secret": sim.client_secret,
                "scope": "prod",
            },
            timeout=10,
        ).json()["access_token"]
    token = _TOKENS[sim.base_url]
    answer = requests.get(
        f"{sim.base_url}/commerce/query/2.0/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}", "ApplicationId": str(sim.application_id)},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def part_nos(sim, count):
    rows = query(
        sim, "Products/ProductSkus", **{"$select": "PartNo", "$orderby": "PartNo", "$top": str(count)}
    )
    return [row["PartNo"] for row in rows["value"]]


def stock(sim, part_no):
    """OnHandValue per (WarehouseId, LocationId) of a SKU, read back through Query."""
    rows = query(sim, "Products/ProductSkuOnHands", **{"$filter": f"PartNo eq '{part_no}'"})["value"]
    return {(r["WarehouseId"], r["LocationId"]): r for r in rows}


def prices(sim, part_no):
    """Price rows of a SKU on price list DEFAULT (PriceListId from ClientPriceLists), read back through Query."""
    (price_list,) = query(sim, "Application/ClientPriceLists", **{"$filter": "Agreement eq 'DEFAULT'"})[
        "value"
    ]
    flt = f"PartNo eq '{part_no}' and PriceListId eq {price_list['PriceListId']}"
    return query(sim, "Products/ProductSkuPriceLists", **{"$filter": flt})["value"]


def main_location(sim):
    (row,) = query(
        sim, "Application/ClientWarehouses", **{"$filter": "Code eq 'MAIN' and LocationCode eq 'MAIN'"}
    )["value"]
    return row["WarehouseId"], row["LocationId"]


@pytest.mark.norce_simulator(job_duration=0.5)
def test_nightly_catalog_sync_end_to_end(norce_simulator, example_dags, tmp_path):
    """No stock mask in the DAG: the operator derives it, so the stock is written (visible through Query)."""
    sim = norce_simulator.sim
    skus = part_nos(sim, 120)
    onhands = [
        {
            "PartNo": p,
            "WarehouseCode": "MAIN",
            "LocationCode": "MAIN",
            "OnhandValue": 1000 + n,
            "IncomingValue": n,
        }
        for n, p in enumerate(skus)
    ]
    price_items = [  # the fields the DAG's SkuPriceListFieldsThatAreSet names, and a currency
        {
            "PartNo": p,
            "PriceListCode": "DEFAULT",
            "QuantityBreak": 1,
            "PriceSale": 10.0 + n,
            "PriceRecommended": 20.0 + n,
            "IsActive": True,
            "CurrencyCode": "SEK",
        }
        for n, p in enumerate(skus)
    ]
    write_jsonl(tmp_path / "onhands.jsonl", onhands)
    write_jsonl(tmp_path / "prices.jsonl", price_items)
    before = {p: prices(sim, p) for p in skus[:3]}

    run = example_dags["norce_nightly_catalog_sync"].test(
        logical_date=dt.datetime(2026, 11, 20, 2, 30, tzinfo=UTC),
        run_conf={
            "onhands_path": str(tmp_path / "onhands.jsonl"),
            "prices_path": str(tmp_path / "prices.jsonl"),
        },
    )
    assert run.state == "success"
    assert norce_simulator.counters()["jobs_created"] == 2
    location = main_location(sim)
    for n in (0, 57, 119):
        row = stock(sim, skus[n])[location]
        assert (row["OnHandValue"], row["IncomingValue"]) == (1000 + n, n)
        (price,) = prices(sim, skus[n])
        assert (price["PriceSale"], price["PriceRecommended"], price["QtyBreak"]) == (10.0 + n, 20.0 + n, 1)
    for part_no, old in before.items():  # CostPurchase is in neither file nor mask: untouched
        assert [p["CostPurchase"] for p in prices(sim, part_no)] == [p["CostPurchase"] for p in old]


@pytest.mark.norce_simulator(orders=10_000)
def test_order_export_end_to_end(norce_simulator, example_dags, tmp_path):
    """The day's orders of the connection's application, never-updated ones (null Updated) included, with
    their lines; none of the tenant's other application."""
    sim = norce_simulator.sim
    run = example_dags["norce_order_export"].test(
        logical_date=dt.datetime(2026, 11, 20, tzinfo=UTC), run_conf={"output_dir": str(tmp_path)}
    )
    assert run.state == "success"
    rows = read_jsonl(tmp_path / "orders" / "orders_2026-11-19.jsonl")
    expected = order_ids_in_window(
        sim, dt.datetime(2026, 11, 19, tzinfo=UTC), dt.datetime(2026, 11, 20, tzinfo=UTC)
    )
    assert len(expected) > 250
    assert [row["Id"] for row in rows] == expected
    assert {row["ApplicationId"] for row in rows} == {sim.application_id}
    assert any(row["Updated"] is None for row in rows), "never-updated orders are in the window by Created"
    assert all(row["Items"] and "QtyOrdered" in row["Items"][0] for row in rows)
    day = "2026-11-19T00:00:00Z", "2026-11-20T00:00:00Z"
    counted = query(
        sim,
        "Orders/Orders",
        **{
            "$filter": f"ApplicationId eq {sim.application_id} and ((Updated ge {day[0]} and Updated lt {day[1]}) "
            f"or (Updated eq null and Created ge {day[0]} and Created lt {day[1]}))",
            "$count": "true",
            "$top": "0",
        },
    )
    assert counted["@odata.count"] == len(rows)


@pytest.mark.norce_simulator(products=60, job_duration=0.5)
def test_product_etl_end_to_end(norce_simulator, example_dags, tmp_path):
    sim = norce_simulator.sim
    skus = part_nos(sim, 1000)
    before = {p: prices(sim, p) for p in skus[:3]}
    run = example_dags["norce_product_etl"].test(
        logical_date=dt.datetime(2026, 11, 20, 4, tzinfo=UTC),
        run_conf={"work_dir": str(tmp_path), "price_factor": 0.8},
    )
    assert run.state == "success"
    extract = read_jsonl(tmp_path / "2026-11-20" / "sku_prices_in.jsonl")
    assert sorted({row["PartNo"] for row in extract}) == skus
    updates = read_jsonl(tmp_path / "2026-11-20" / "sku_prices_out.jsonl")
    assert len(updates) == len(extract)
    assert set(updates[0]) == {"PartNo", "PriceListCode", "QuantityBreak", "PriceSale"}
    for part_no, old in before.items():
        (old_row,) = old
        (new_row,) = prices(sim, part_no)
        assert new_row["PriceSale"] == float(math.floor(old_row["PriceRecommended"] * 0.8))
        assert new_row["PriceRecommended"] == old_row["PriceRecommended"]  # outside the derived mask
    assert norce_simulator.counters()["jobs_created"] == 1
    json.dumps(updates[0])  # plain JSON objects, as Connect takes them
