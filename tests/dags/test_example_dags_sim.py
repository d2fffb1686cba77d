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


def query(sim, path, **params):
    """A direct Query call with a token from the simulator, independent of the provider's code."""
    import requests

    token = requests.post(
        sim.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "scope": "production",
        },
        timeout=10,
    ).json()["access_token"]
    answer = requests.get(
        f"{sim.base_url}/commerce/query/2.0/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}", "ApplicationId": str(sim.application_id)},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def sku(sim, part_no):
    return query(sim, f"Products/ProductSkus('{part_no}')", **{"$expand": "OnHand,PriceLists"})


@pytest.mark.norce_simulator(job_duration=0.5)
def test_nightly_catalog_sync_end_to_end(norce_simulator, example_dags, tmp_path):
    sim = norce_simulator.sim
    part_nos = sorted(sim.catalog.skus)[:120]
    onhands = [
        {"PartNo": p, "WarehouseCode": "MAIN", "LocationCode": "", "OnhandValue": 1000 + n}
        for n, p in enumerate(part_nos)
    ]
    prices = [
        {
            "PartNo": p,
            "PriceListCode": "DEFAULT",
            "QuantityBreak": 1,
            "PriceSale": 10.0 + n,
            "CurrencyCode": "SEK",
        }
        for n, p in enumerate(part_nos)
    ]
    write_jsonl(tmp_path / "onhands.jsonl", onhands)
    write_jsonl(tmp_path / "prices.jsonl", prices)

    run = example_dags["norce_nightly_catalog_sync"].test(
        logical_date=dt.datetime(2026, 11, 20, 2, 30, tzinfo=UTC),
        run_conf={
            "onhands_path": str(tmp_path / "onhands.jsonl"),
            "prices_path": str(tmp_path / "prices.jsonl"),
        },
    )
    assert run.state == "success"
    assert norce_simulator.counters()["jobs_created"] == 2
    for n in (0, 57, 119):
        row = sku(sim, part_nos[n])
        assert [o["OnhandValue"] for o in row["OnHand"] if o["WarehouseCode"] == "MAIN"] == [1000 + n]
        assert [p["PriceSale"] for p in row["PriceLists"] if p["PriceListCode"] == "DEFAULT"] == [10.0 + n]


@pytest.mark.norce_simulator(orders=10_000)
def test_order_export_end_to_end(norce_simulator, example_dags, tmp_path):
    run = example_dags["norce_order_export"].test(
        logical_date=dt.datetime(2026, 11, 20, tzinfo=UTC), run_conf={"output_dir": str(tmp_path)}
    )
    assert run.state == "success"
    rows = read_jsonl(tmp_path / "orders" / "orders_2026-11-19.jsonl")
    expected = order_ids_in_window(
        norce_simulator.sim, dt.datetime(2026, 11, 19, tzinfo=UTC), dt.datetime(2026, 11, 20, tzinfo=UTC)
    )
    assert len(expected) > 300
    assert [row["Id"] for row in rows] == expected
    counted = query(
        norce_simulator.sim,
        "Orders/Orders",
        **{
            "$filter": "Updated ge 2026-11-19T00:00:00Z and Updated lt 2026-11-20T00:00:00Z",
            "$count": "true",
            "$top": "0",
        },
    )
    assert counted["@odata.count"] == len(rows)


@pytest.mark.norce_simulator(products=60, job_duration=0.5)
def test_product_etl_end_to_end(norce_simulator, example_dags, tmp_path):
    sim = norce_simulator.sim
    before = {p: sku(sim, p) for p in sorted(sim.catalog.skus)[:3]}
    run = example_dags["norce_product_etl"].test(
        logical_date=dt.datetime(2026, 11, 20, 4, tzinfo=UTC),
        run_conf={"work_dir": str(tmp_path), "price_factor": 0.8},
    )
    assert run.state == "success"
    extract = read_jsonl(tmp_path / "2026-11-20" / "skus.jsonl")
    assert len(extract) == len(sim.catalog.skus)
    updates = read_jsonl(tmp_path / "2026-11-20" / "sku_prices.jsonl")
    assert len(updates) == len(extract)
    for part_no, old in before.items():
        recommended = next(
            p["PriceRecommended"] for p in old["PriceLists"] if p["PriceListCode"] == "DEFAULT"
        )
        now = sku(sim, part_no)
        assert [p["PriceSale"] for p in now["PriceLists"] if p["PriceListCode"] == "DEFAULT"] == [
            float(math.floor(recommended * 0.8))
        ]
    assert norce_simulator.counters()["jobs_created"] == 1
    json.dumps(updates[0])  # plain JSON objects, as Connect takes them
