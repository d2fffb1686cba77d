"""NorceQueryExportOperator against the local Norce simulator: content, windows, atomicity, object storage."""

from __future__ import annotations

import itertools
import json
import os

import pytest
from norce_airflow_testlib import load_dagbag
from norce_query_testlib import (
    context_for,
    leftovers,
    order_ids_in_window,
    read_csv,
    read_jsonl,
    set_sim_connection,
    utc,
)

from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.operators.query import NorceQueryExportOperator

DAY_START, DAY_END = utc(2026, 11, 19), utc(2026, 11, 20)


def export(op: NorceQueryExportOperator, context: dict) -> dict:
    op.render_template_fields(context)
    return op.execute(context)


def interval_timetable():
    from airflow.timetables.interval import CronDataIntervalTimetable

    return CronDataIntervalTimetable("0 0 * * *", timezone="UTC")


class _Dag:
    def __init__(self, timetable):
        self.timetable = timetable


def trigger_timetables():
    """Every CronTriggerTimetable a task may see: core (3.0 hands it to tasks) and SDK (3.3)."""
    from airflow.timetables.trigger import CronTriggerTimetable

    found = [CronTriggerTimetable("@daily", timezone="UTC")]
    try:
        from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable as SdkCronTrigger
    except ImportError:
        pass
    else:
        found.append(SdkCronTrigger("@daily", timezone="UTC"))
    return found


@pytest.mark.norce_simulator(orders=6000, page_size=50)
def test_jsonl_rows_equal_orders_in_data_interval(norce_simulator, tmp_path):
    destination = tmp_path / "orders" / "2026-11-19.jsonl"
    op = NorceQueryExportOperator(task_id="export", destination=str(destination), progress_interval=0)
    summary = export(op, context_for(DAY_START, DAY_END, _Dag(interval_timetable())))

    expected = order_ids_in_window(norce_simulator.sim, DAY_START, DAY_END)
    rows = read_jsonl(str(destination))
    assert [row["Id"] for row in rows] == expected
    assert all("2026-11-19T" in (row["Updated"] or row["Created"]) for row in rows)
    assert any(row["Updated"] is None for row in rows), "never-updated orders are exported by Created"
    assert {row["ApplicationId"] for row in rows} == {norce_simulator.sim.application_id}
    completeness = summary.pop("completeness")
    assert summary == {"path": str(destination), "rows": len(expected), "pages": -(-len(expected) // 50)}
    assert completeness == {
        "rows": len(expected), "pages": summary["pages"], "mode": "key ranges", "key": "Id",
        "first": expected[0], "last": expected[-1], "slices": completeness["slices"], "resumed": 0, "fallback": None,
    }  # fmt: skip
    assert leftovers(str(destination.parent)) == []


@pytest.mark.parametrize("timetable", trigger_timetables(), ids=lambda t: type(t).__module__)
@pytest.mark.norce_simulator(orders=3000)
def test_empty_interval_of_cron_trigger_run_exports_the_previous_period(norce_simulator, tmp_path, timetable):
    destination = tmp_path / "orders.jsonl"
    op = NorceQueryExportOperator(task_id="export", destination=str(destination))
    # A "@daily" (CronTriggerTimetable) run for 2026-11-20: data interval start == end == logical date.
    context = context_for(DAY_END, DAY_END, _Dag(timetable))
    assert op.query_params(context)["$filter"] == (
        "(Updated ge 2026-11-19T00:00:00Z and Updated lt 2026-11-20T00:00:00Z) or (Updated eq null and "
        "Created ge 2026-11-19T00:00:00Z and Created lt 2026-11-20T00:00:00Z)"
    )
    summary = export(op, context)
    assert summary["rows"] == len(order_ids_in_window(norce_simulator.sim, DAY_START, DAY_END)) > 0


@pytest.mark.norce_simulator(orders=3000)
def test_csv_header_from_select_and_first_row(norce_simulator, tmp_path):
    selected = tmp_path / "selected.csv"
    export(
        NorceQueryExportOperator(
            task_id="csv", destination=str(selected), file_format="csv", select="Id,OrderNo,CurrencyId"
        ),
        context_for(DAY_START, DAY_END, _Dag(interval_timetable())),
    )
    rows = read_csv(str(selected))
    expected = order_ids_in_window(norce_simulator.sim, DAY_START, DAY_END)
    assert [int(row["Id"]) for row in rows] == expected
    assert list(rows[0]) == ["Id", "OrderNo", "CurrencyId"]

    full = tmp_path / "full.csv"
    export(
        NorceQueryExportOperator(task_id="csv", destination=str(full), file_format="csv", expand="Items"),
        context_for(DAY_START, DAY_END, _Dag(interval_timetable())),
    )
    rows = read_csv(str(full))
    assert list(rows[0])[:4] == ["Id", "ClientId", "ApplicationId", "OrderNo"]
    items = json.loads(rows[0]["Items"])  # nested values are JSON text
    assert items[0]["LineNumber"] == 1 and items[0]["OrderId"] == int(rows[0]["Id"])
    assert len(rows) == len(expected)


@pytest.mark.norce_simulator(products=20)
def test_csv_with_expand_and_whole_entity_set(norce_simulator, tmp_path):
    destination = tmp_path / "skus.csv"
    summary = export(
        NorceQueryExportOperator(
            task_id="skus",
            entity="Products/ProductSkus",
            destination=str(destination),
            file_format="csv",
            select=["PartNo", "IsDropShipOnly"],
            expand="OnHand($select=WarehouseId,OnHandValue)",
            window_field=None,
        ),
        context_for(None, None),
    )
    rows = read_csv(str(destination))
    assert summary["rows"] == len(rows) == len(norce_simulator.sim.catalog.skus)
    assert list(rows[0]) == ["PartNo", "IsDropShipOnly", "OnHand"]
    assert rows[0]["PartNo"] in norce_simulator.sim.catalog.skus
    on_hand = json.loads(rows[0]["OnHand"])  # nested values are JSON text
    assert on_hand and set(on_hand[0]) == {"WarehouseId", "OnHandValue"}


@pytest.mark.norce_simulator(orders=3000)
def test_rerun_of_the_same_interval_rewrites_the_same_file(norce_simulator, tmp_path):
    destination = tmp_path / "orders.jsonl"
    context = context_for(DAY_START, DAY_END, _Dag(interval_timetable()))
    export(NorceQueryExportOperator(task_id="export", destination=str(destination)), context)
    first = destination.read_bytes()
    destination.write_bytes(b"stale\n")
    export(NorceQueryExportOperator(task_id="export", destination=str(destination)), context)
    assert destination.read_bytes() == first
    assert leftovers(str(tmp_path)) == []


@pytest.mark.norce_simulator(orders=6000, page_size=100)
def test_consecutive_days_export_every_order_of_the_application_exactly_once(norce_simulator, tmp_path):
    sim = norce_simulator.sim
    days = [utc(2026, 11, 19), utc(2026, 11, 20), utc(2026, 11, 21)]
    exported: list[dict] = []
    for start, end in itertools.pairwise(days):
        destination = tmp_path / f"{start:%Y-%m-%d}.jsonl"
        op = NorceQueryExportOperator(task_id="export", destination=str(destination))
        export(op, context_for(start, end, _Dag(interval_timetable())))
        exported += read_jsonl(str(destination))
    ids = [row["Id"] for row in exported]
    assert len(ids) == len(set(ids)), "no order in two consecutive windows"
    assert sorted(ids) == order_ids_in_window(sim, days[0], days[-1]), "none missing"
    assert {row["ApplicationId"] for row in exported} == {sim.application_id}
    never_updated = [row for row in exported if row["Updated"] is None]
    assert never_updated and all(days[0].isoformat()[:10] <= row["Created"][:10] for row in never_updated)
    everyone = order_ids_in_window(sim, days[0], days[-1], all_applications=True)
    assert len(everyone) > len(ids), "other applications' orders exist in the window and were left out"


@pytest.mark.norce_simulator(orders=3000, other_application_id=99)
def test_filter_application_false_exports_every_application(norce_simulator, tmp_path):
    destination = tmp_path / "all.jsonl"
    op = NorceQueryExportOperator(
        task_id="export", destination=str(destination), filter_application="{{ params.only_mine }}"
    )
    export(op, context_for(DAY_START, DAY_END, _Dag(interval_timetable()), params={"only_mine": "false"}))
    rows = read_jsonl(str(destination))
    assert {row["ApplicationId"] for row in rows} == {norce_simulator.sim.application_id, 99}
    assert [row["Id"] for row in rows] == order_ids_in_window(
        norce_simulator.sim, DAY_START, DAY_END, all_applications=True
    )


def _fail_after_two_pages(monkeypatch, sim, kind):
    """Let two pages through, then make Query fail for good (more failures than the retry budget)."""
    real = NorceHook.odata_page

    def odata_page(self, endpoint, params=None):
        page = real(self, endpoint, params)
        self.pages_answered = getattr(self, "pages_answered", 0) + 1  # each export has its own hook
        if self.pages_answered == 2:
            sim.add_fault("query", kind, count=50)
        return page

    monkeypatch.setattr(NorceHook, "odata_page", odata_page)


@pytest.mark.parametrize("concurrency", [1, 8], ids=["sequential", "sliced"])
@pytest.mark.parametrize("kind", ["500", "drop"])
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
@pytest.mark.norce_simulator(orders=6000, page_size=50)
def test_failure_mid_export_leaves_the_destination_untouched(
    norce_simulator, monkeypatch, tmp_path, kind, as_uri, concurrency
):
    """A failure with no retry to follow leaves the previous file and nothing else (no staging folder)."""
    set_sim_connection(monkeypatch, norce_simulator.sim, max_attempts=2, max_retry_wait=5)
    context = context_for(DAY_START, DAY_END, _Dag(interval_timetable()))
    fresh = tmp_path / "fresh.jsonl"
    kept = tmp_path / "kept.jsonl"
    kept.write_text('{"previous": "complete export"}\n')
    _fail_after_two_pages(monkeypatch, norce_simulator.sim, kind)

    from airflow_provider_norce.exceptions import NorceAPIError

    for path in (fresh, kept):
        destination = f"file://{path}" if as_uri else str(path)
        with pytest.raises(NorceAPIError):
            export(
                NorceQueryExportOperator(
                    task_id="export", destination=destination, max_concurrency=concurrency
                ),
                context,
            )
        norce_simulator.sim.clear_faults()
    assert not fresh.exists()
    assert kept.read_text() == '{"previous": "complete export"}\n'
    assert leftovers(str(tmp_path)) == []
    assert norce_simulator.counters()["requests"]["GET /commerce/query/2.0/Orders/Orders"] >= 6


@pytest.mark.norce_simulator(orders=3000)
def test_object_storage_destination(norce_simulator, tmp_path):
    expected = len(order_ids_in_window(norce_simulator.sim, DAY_START, DAY_END))
    context = context_for(DAY_START, DAY_END, _Dag(interval_timetable()))
    uri = f"file://{tmp_path}/bucket/orders/{{{{ ds }}}}.jsonl"
    summary = export(
        NorceQueryExportOperator(task_id="export", destination=uri), {**context, "ds": "2026-11-19"}
    )
    written = tmp_path / "bucket" / "orders" / "2026-11-19.jsonl"
    assert summary["path"] == f"file://{written}"
    assert len(read_jsonl(str(written))) == summary["rows"] == expected

    from airflow.providers.common.compat.sdk import ObjectStoragePath

    try:
        storage_path = ObjectStoragePath(f"file://{tmp_path}/osp/orders.csv")
    except TypeError as err:  # Airflow 3.0 with universal-pathlib >= 0.3 cannot build one at all
        pytest.skip(f"this Airflow cannot build an ObjectStoragePath: {err}")
    summary = export(
        NorceQueryExportOperator(task_id="export", destination=storage_path, file_format="csv"), context
    )
    assert len(read_csv(str(tmp_path / "osp" / "orders.csv"))) == summary["rows"] == expected
    assert leftovers(str(tmp_path / "osp")) == []


def test_run_without_a_period_asks_for_a_filter(tmp_path):
    op = NorceQueryExportOperator(task_id="adhoc", destination=str(tmp_path / "x.jsonl"))
    with pytest.raises(ValueError, match=r"'adhoc'.*empty data interval.*filter"):
        op.query_params(context_for(DAY_END, DAY_END, _Dag(None)))


def test_bad_arguments_are_named(tmp_path):
    context = context_for(DAY_START, DAY_END)
    with pytest.raises(ValueError, match=r"'x'.*file_format 'xml'"):
        export(
            NorceQueryExportOperator(task_id="x", destination=str(tmp_path / "a"), file_format="xml"), context
        )
    with pytest.raises(ValueError, match=r"'x'.*entity 'Orders'"):
        export(
            NorceQueryExportOperator(task_id="x", destination=str(tmp_path / "a"), entity="Orders"), context
        )
    assert os.listdir(tmp_path) == []


def test_every_user_facing_argument_is_templated():
    fields = set(NorceQueryExportOperator.template_fields)
    assert {"entity", "destination", "file_format", "filter", "select", "expand", "orderby"} <= fields
    assert {"window_field", "window_fallback_field", "filter_application", "norce_conn_id"} <= fields


DATA_INTERVAL_DAG = """
from airflow.providers.common.compat.sdk import Asset
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable
import pendulum

from airflow_provider_norce.operators.query import NorceQueryExportOperator

with DAG(
    "norce_test_export_data_interval",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    params={"out": "/nonexistent"},
):
    NorceQueryExportOperator(
        task_id="export",
        destination="{{ params.out }}/{{ data_interval_start | ds }}.jsonl",
        outlets=[Asset("file:///tmp/norce-test-exports")],
    )
"""


@pytest.mark.norce_simulator(orders=3000)
def test_dag_test_with_a_data_interval_timetable(norce_simulator, tmp_path, dags_folder):
    """A real run (dag.test) of a CronDataIntervalTimetable DAG: the context Airflow builds, the file."""
    path = os.path.join(dags_folder, "norce_test_export_data_interval.py")
    with open(path, "w") as handle:
        handle.write(DATA_INTERVAL_DAG)
    dag = load_dagbag(path).get_dag("norce_test_export_data_interval")
    run = dag.test(logical_date=utc(2026, 11, 20), run_conf={"out": str(tmp_path)})
    assert run.state == "success"
    rows = read_jsonl(str(tmp_path / "2026-11-19.jsonl"))
    assert [row["Id"] for row in rows] == order_ids_in_window(norce_simulator.sim, DAY_START, DAY_END)
