"""The example DAGs of ``dags_examples/`` on a real cluster: triggered through the REST API as a user would,
run by the scheduler on two Celery workers, their Connect imports waiting in the triggerer.

The three runs start together (one module fixture) and every test reads their outcome; what Norce saw is then
read back through Query in this process (a connection of its own, after the counters were taken).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_cluster import DEMO_DATES, EVENT_DRIVEN_EXAMPLES, EXAMPLES, LocalCluster, example_dag_ids

pytestmark = pytest.mark.cluster

CATALOG, ORDERS, ETL = "norce_nightly_catalog_sync", "norce_order_export", "norce_product_etl"
#: The Connect imports of the examples: they wait for their jobs, in the triggerer on this cluster.
IMPORTS = {CATALOG: ("import_stock", "import_prices"), ETL: ("load_prices",)}
CHECK_CONN = "norce_cluster_check"


@dataclass
class ExampleRuns:
    """The finished runs of the example DAGs: dag id -> run id / state / task instances, and the counters."""

    run_ids: dict[str, str]
    states: dict[str, str]
    tasks: dict[str, list[dict[str, Any]]]
    counters: dict[str, Any]

    def describe(self) -> str:
        return json.dumps(
            {
                dag: [(t["task_id"], t["state"], t["hostname"], t["try_number"]) for t in tis]
                for dag, tis in self.tasks.items()
            }
        )


@pytest.fixture(scope="module")
def example_runs(cluster: LocalCluster) -> ExampleRuns:
    """Every example DAG triggered at once through the REST API (each with the logical date its checks
    assume), waited for; the simulator's counters cover exactly these runs."""
    cluster.sim_reset()
    run_ids = {
        dag_id: cluster.trigger(dag_id, {}, logical_date=DEMO_DATES[dag_id]) for dag_id in example_dag_ids()
    }
    states = {dag_id: cluster.wait(dag_id, run_id, timeout=900) for dag_id, run_id in run_ids.items()}
    counters = cluster.sim_counters()
    tasks = {dag_id: cluster.task_instances(dag_id, run_id) for dag_id, run_id in run_ids.items()}
    return ExampleRuns(run_ids, states, tasks, counters)


@pytest.fixture
def norce_check(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A hook of this test process on the cluster's simulator (its own process token cache), to read back
    through Query what the runs wrote."""
    from airflow_provider_norce.hooks.norce import NorceHook

    monkeypatch.setenv(f"AIRFLOW_CONN_{CHECK_CONN.upper()}", json.dumps(cluster.norce_connection("process")))
    return NorceHook(CHECK_CONN)


def calls(counters: dict[str, Any], method: str, path_end: str) -> int:
    """How many requests the simulator served with ``method`` on a path ending in ``path_end``."""
    return sum(
        n
        for key, n in counters["requests"].items()
        if key.startswith(method + " ") and key.endswith(path_end)
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_every_example_dag_is_run(example_runs: ExampleRuns) -> None:
    """The examples folder holds the three DAGs these tests check, and the event-driven ones that
    tests/events/test_events_cluster.py checks on a cluster of its own; a new example needs its checks."""
    assert sorted(example_runs.run_ids) == sorted([CATALOG, ORDERS, ETL])
    assert {p.stem for p in EXAMPLES.glob("*.py")} == {CATALOG, ORDERS, ETL} | EVENT_DRIVEN_EXAMPLES


def test_example_dags_succeed_with_tasks_on_both_workers(
    cluster: LocalCluster, example_runs: ExampleRuns
) -> None:
    assert example_runs.states == dict.fromkeys(example_runs.run_ids, "success"), example_runs.describe()
    every_task = [ti for tis in example_runs.tasks.values() for ti in tis]
    assert {ti["state"] for ti in every_task} == {"success"}, example_runs.describe()
    # Each task ran on one of the two "machines", and both did some of the work.
    assert {ti["hostname"] for ti in every_task} == set(cluster.worker_hostnames), example_runs.describe()
    assert not cluster.import_errors, cluster.import_errors


def test_connect_imports_wait_in_the_triggerer(cluster: LocalCluster, example_runs: ExampleRuns) -> None:
    """``[operators] default_deferrable`` is on in the cluster: each import posts its job on a worker, defers,
    the triggerer polls the job until it ends and fires the event that resumes the task, on its first try."""
    for dag_id, task_ids in IMPORTS.items():
        run_id = example_runs.run_ids[dag_id]
        deferrals = cluster.deferrals(dag_id, run_id)
        tis = {ti["task_id"]: ti for ti in example_runs.tasks[dag_id]}
        for task_id in task_ids:
            assert deferrals.get(task_id, 0) >= 1, (dag_id, task_id, deferrals)
            assert (tis[task_id]["state"], tis[task_id]["try_number"]) == ("success", 1), tis[task_id]
            log = cluster.task_log(dag_id, run_id, task_id, 1)
            assert "Pausing task as DEFERRED" in log, log[-3000:]
            assert "job(s) succeeded" in log, log[-3000:]
    # Tasks that never defer are not counted.
    assert "find_price_list" not in cluster.deferrals(ETL, example_runs.run_ids[ETL])


def test_simulator_saw_the_connect_jobs_and_query_reads(example_runs: ExampleRuns) -> None:
    counters = example_runs.counters
    # One job per import: stock and prices of the catalog sync, the ETL's price load (each file < one batch).
    assert counters["jobs_created"] == 3, counters
    assert calls(counters, "POST", "/Product/ImportOnhands") == 1, counters["requests"]
    assert calls(counters, "POST", "/Product/ImportSkuPriceLists") == 2, counters["requests"]
    assert calls(counters, "GET", "/Application/ClientPriceLists") == 1, counters["requests"]
    assert calls(counters, "GET", "/Orders/Orders") >= 1, counters["requests"]
    assert calls(counters, "GET", "/Products/ProductSkuPriceLists") >= 1, counters["requests"]
    assert counters["query_rows"] > 0 and counters["token_429"] == 0 and counters["api_429"] == 0, counters


def test_catalog_sync_stock_is_in_query(example_runs: ExampleRuns, norce_check: Any) -> None:
    """The bundled stock file, read back through Query: every SKU shows the OnhandValue the file gave."""
    assert example_runs.states[CATALOG] == "success"
    (main,) = norce_check.run_json(
        "commerce/query/2.0/Application/ClientWarehouses",
        params={"$filter": "Code eq 'MAIN' and LocationCode eq 'MAIN'"},
    )["value"]
    for item in read_jsonl(EXAMPLES / "data" / "onhands.jsonl"):
        rows = norce_check.run_json(
            "commerce/query/2.0/Products/ProductSkuOnHands",
            params={
                "$filter": f"PartNo eq '{item['PartNo']}' and WarehouseId eq {main['WarehouseId']} "
                f"and LocationId eq {main['LocationId']}"
            },
        )["value"]
        assert [row["OnHandValue"] for row in rows] == [item["OnhandValue"]], item


def test_order_export_holds_exactly_the_days_orders(cluster: LocalCluster, norce_check: Any) -> None:
    """The run of 2026-11-20 exported 2026-11-19's orders of application 1234, each once, with lines; Query's
    own $count for that window agrees."""
    day = DEMO_DATES[ORDERS] - dt.timedelta(days=1)
    rows = read_jsonl(cluster.output_dir / "exports" / "orders" / f"orders_{day:%Y-%m-%d}.jsonl")
    start, end = f"{day:%Y-%m-%d}T00:00:00Z", f"{DEMO_DATES[ORDERS]:%Y-%m-%d}T00:00:00Z"
    window = (
        f"ApplicationId eq 1234 and ((Updated ge {start} and Updated lt {end}) or "
        f"(Updated eq null and Created ge {start} and Created lt {end}))"
    )
    counted = norce_check.run_json(
        "commerce/query/2.0/Orders/Orders", params={"$filter": window, "$count": "true", "$top": "0"}
    )["@odata.count"]
    assert len(rows) == counted == len({row["Id"] for row in rows}) and counted > 0
    assert {row["ApplicationId"] for row in rows} == {1234}
    assert all((row["Updated"] or row["Created"]).startswith(f"{day:%Y-%m-%d}T") for row in rows)
    assert any(row["Items"] for row in rows)


def test_product_etl_sets_the_sale_prices_it_computed(cluster: LocalCluster, norce_check: Any) -> None:
    """Every price row the ETL extracted got a sale price of floor(recommended x 0.9), visible in Query for
    the SKUs the catalog sync's price file (imported at the same time) does not touch."""
    folder = cluster.output_dir / "etl" / f"{DEMO_DATES[ETL]:%Y-%m-%d}"
    extract = read_jsonl(folder / "sku_prices_in.jsonl")
    updates = {row["PartNo"]: row for row in read_jsonl(folder / "sku_prices_out.jsonl")}
    assert extract and len(updates) == len({row["PartNo"] for row in extract if row.get("PriceRecommended")})
    catalog_skus = {row["PartNo"] for row in read_jsonl(EXAMPLES / "data" / "sku_prices.jsonl")}
    sample = [row for row in extract if row["PartNo"] not in catalog_skus][:: max(1, len(extract) // 20)]
    for row in sample:
        expected = float(math.floor(row["PriceRecommended"] * 0.9))
        assert updates[row["PartNo"]]["PriceSale"] == expected, row
        (price,) = norce_check.run_json(
            "commerce/query/2.0/Products/ProductSkuPriceLists",
            params={"$filter": f"PartNo eq '{row['PartNo']}' and PriceListId eq {row['PriceListId']}"},
        )["value"]
        assert price["PriceSale"] == expected, (row, price)
