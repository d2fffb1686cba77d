"""The example DAGs' OpenLineage events, as the provider's file transport writes them, name the Norce
datasets and the files: run against the simulator, in a process with OpenLineage configured."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

RUNNER = os.path.join(os.path.dirname(__file__), "lineage_dag_run.py")
#: The sample event of docs/lineage.md, checked against the event this test reads.
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples")
SAMPLE = os.path.join(EXAMPLES, "lin_event_excerpt.json")
#: How docs/lineage.md turns OpenLineage on; the tests run with these settings.
SETTINGS = os.path.join(EXAMPLES, "lin_enable_env.sh")
#: The simulator's connection has ``http://127.0.0.1:<port>`` in its host field: tenant 127.0.0.1.
SIM_NAMESPACE = "norce://127.0.0.1.production"
EXPORT = "norce_order_export.export_orders"
ETL_TASKS = {
    "norce_product_etl.find_price_list",
    "norce_product_etl.extract_prices",
    "norce_product_etl.load_prices",
}


def documented_settings(events_file: str) -> dict[str, str]:
    """The ``export NAME='value'`` lines of docs/examples/lin_enable_env.sh, the events going to
    ``events_file``: the test runs with what the page tells users to set."""
    settings = {}
    with open(SETTINGS, encoding="utf-8") as lines:
        for line in lines:
            match = re.match(r"export (\w+)='(.*)'$", line.strip())
            if match:
                settings[match.group(1)] = match.group(2)
    transport = json.loads(settings["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport["type"] == "file"
    transport["log_file_path"] = events_file
    return {**settings, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)}


def run_examples(folder: str, tmp_path, runs: list[list[object]], *, in_thread: bool) -> str:
    """Run the DAGs in a fresh process whose OpenLineage writes to a file; the file's path."""
    events_file = str(tmp_path / "openlineage.jsonl")
    env = {
        **os.environ,
        **documented_settings(events_file),
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": str(in_thread),
    }
    done = subprocess.run(
        [sys.executable, RUNNER, folder, json.dumps(runs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return events_file


def complete_events(path: str, jobs: set[str], deadline_s: float = 60.0) -> dict[str, dict]:
    """The COMPLETE event of each job, read from the transport's file until all are there or the deadline
    passes (the provider emits from a forked child or a thread; the caller asserts on what was found)."""
    found: dict[str, dict] = {}
    deadline = time.monotonic() + deadline_s
    while True:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    event = json.loads(line)
                    if event.get("eventType") == "COMPLETE" and event["job"]["name"] in jobs:
                        found[event["job"]["name"]] = event
        if set(found) >= jobs or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def datasets(items: list[dict]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in items]


def excerpt(event: dict, folder: str) -> dict:
    """What docs/lineage.md shows of an event: job, datasets and their facets, the test's folder as ``/data``
    and without what changes from run to run (times, run ids, producer URLs)."""

    def facets(found: dict) -> dict:
        return {
            name: {k: v for k, v in facet.items() if not k.startswith("_")} for name, facet in found.items()
        }

    def dataset(d: dict) -> dict:
        shown = {"namespace": d["namespace"], "name": d["name"].replace(folder, "/data")}
        for key in ("facets", "outputFacets"):
            if d.get(key):
                shown[key] = facets(d[key])
        return shown

    return {
        "eventType": event["eventType"],
        "job": {"namespace": event["job"]["namespace"], "name": event["job"]["name"]},
        "inputs": [dataset(d) for d in event["inputs"]],
        "outputs": [dataset(d) for d in event["outputs"]],
        "run": {"facets": facets({k: v for k, v in event["run"]["facets"].items() if k == "externalQuery"})},
    }


@pytest.mark.norce_simulator(orders=500, products=20, job_duration=0.2)
def test_example_dags_report_norce_datasets_and_files(norce_simulator, examples_in_dags_folder, tmp_path):
    """Extraction in a thread (``[openlineage] execute_in_thread``): every dataset and statistic is there."""
    exports, work = tmp_path / "exports", tmp_path / "etl"
    runs = [
        ["norce_order_export", "2026-11-20T00:00:00+00:00", {"output_dir": str(exports)}],
        ["norce_product_etl", "2026-11-20T04:00:00+00:00", {"work_dir": str(work), "price_factor": 0.8}],
    ]
    events_file = run_examples(examples_in_dags_folder, tmp_path, runs, in_thread=True)
    events = complete_events(events_file, {EXPORT} | ETL_TASKS)
    assert set(events) == {EXPORT} | ETL_TASKS, f"COMPLETE events found for {sorted(events)} only"

    orders_file = str(exports / "orders" / "orders_2026-11-19.jsonl")
    export = events[EXPORT]
    assert datasets(export["inputs"]) == [(SIM_NAMESPACE, "query/Orders/Orders")]
    assert datasets(export["outputs"]) == [("file", orders_file)]
    with open(orders_file, encoding="utf-8") as rows:
        row_count = sum(1 for _ in rows)
    statistics = export["outputs"][0]["outputFacets"]["outputStatistics"]
    assert (statistics["rowCount"], statistics["size"]) == (row_count, os.path.getsize(orders_file))
    assert row_count > 0

    find = events["norce_product_etl.find_price_list"]
    assert datasets(find["inputs"]) == [(SIM_NAMESPACE, "query/Application/ClientPriceLists")]
    assert find["outputs"] == []

    extract = events["norce_product_etl.extract_prices"]
    extract_file = str(work / "2026-11-20" / "sku_prices_in.jsonl")
    assert datasets(extract["inputs"]) == [(SIM_NAMESPACE, "query/Products/ProductSkuPriceLists")]
    assert datasets(extract["outputs"]) == [("file", extract_file)]
    fields = [f["name"] for f in extract["inputs"][0]["facets"]["schema"]["fields"]]
    assert fields == ["PartNo", "PriceListId", "QtyBreak", "PriceSale", "PriceRecommended"]

    load = events["norce_product_etl.load_prices"]
    assert datasets(load["inputs"]) == [("file", str(work / "2026-11-20" / "sku_prices_out.jsonl"))]
    assert datasets(load["outputs"]) == [(SIM_NAMESPACE, "connect/Product/ImportSkuPriceLists")]
    jobs = load["run"]["facets"]["externalQuery"]
    assert jobs["source"] == SIM_NAMESPACE and jobs["externalQueryId"]
    assert load["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] > 0

    with open(events_file, encoding="utf-8") as text:
        assert norce_simulator.sim.client_secret not in text.read()
    with open(SAMPLE, encoding="utf-8") as sample:
        shown = [excerpt(events[EXPORT], str(tmp_path)), excerpt(load, str(tmp_path))]
        assert json.load(sample) == shown, json.dumps(shown, indent=2)


@pytest.mark.norce_simulator(orders=300)
def test_forked_extraction_under_dag_test_keeps_the_statistics(
    norce_simulator, examples_in_dags_folder, tmp_path
):
    """The provider's default, extraction in a forked child: the statistics come from the operator the
    child inherited, not from an XCom read (which hangs in a fork of ``dag.test()``'s in-process
    supervisor until the provider kills the child and drops the event)."""
    runs = [["norce_order_export", "2026-11-20T00:00:00+00:00", {"output_dir": str(tmp_path / "exports")}]]
    events_file = run_examples(examples_in_dags_folder, tmp_path, runs, in_thread=False)
    export = complete_events(events_file, {EXPORT}).get(EXPORT)
    assert export is not None, "no COMPLETE event of the export"
    orders_file = tmp_path / "exports" / "orders" / "orders_2026-11-19.jsonl"
    assert datasets(export["inputs"]) == [(SIM_NAMESPACE, "query/Orders/Orders")]
    assert datasets(export["outputs"]) == [("file", str(orders_file))]
    rows = len(orders_file.read_text(encoding="utf-8").splitlines())
    assert rows > 0
    assert export["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == rows
