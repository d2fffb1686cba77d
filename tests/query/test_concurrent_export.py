"""The concurrent (sliced) Query export against the running simulator: same bytes, resumable, AIMD, lookback."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest
from norce_query_testlib import context_for, order_ids_in_window, read_jsonl, set_sim_connection, utc

from airflow_provider_norce.exceptions import NorceAPIError
from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.operators.query import NorceQueryExportOperator

MONTH = "Updated ge 2026-11-01T00:00:00Z and Updated lt 2026-12-01T00:00:00Z"
QUERY = "GET /commerce/query/2.0/Orders/Orders"


def export(path, context=None, **kwargs) -> dict:
    kwargs.setdefault("filter", MONTH)
    kwargs.setdefault("filter_application", False)
    op = NorceQueryExportOperator(task_id="export_orders", destination=str(path), **kwargs)
    return op.execute(context or {"params": {}})


def digest(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def query_requests(sim) -> int:
    return sim.counters()["requests"].get(QUERY, 0)


class _Ti:
    """What the operator reads of a task instance to know a retry follows (try 1 of 2)."""

    try_number = 1
    max_tries = 1


@pytest.mark.parametrize(
    ("file_format", "select", "expand"),
    [
        ("jsonl", None, None),
        ("csv", None, None),
        ("jsonl", "OrderNo,Updated", None),  # the key is asked for, then left out of the rows
        ("csv", "Id,OrderNo,StatusId", "Items"),
    ],
)
@pytest.mark.norce_simulator(orders=12_000, page_size=100)
def test_sliced_export_writes_the_bytes_of_the_sequential_one(
    norce_simulator, tmp_path, file_format, select, expand
):
    options = {"file_format": file_format, "select": select, "expand": expand}
    sequential = export(tmp_path / f"seq.{file_format}", max_concurrency=1, **options)
    sliced = export(tmp_path / f"par.{file_format}", max_concurrency=6, slice_rows=700, **options)
    assert digest(tmp_path / f"seq.{file_format}") == digest(tmp_path / f"par.{file_format}")
    assert sliced["rows"] == sequential["rows"] > 10_000
    assert sorted(os.listdir(tmp_path)) == [f"par.{file_format}", f"seq.{file_format}"], "staging removed"
    if select and "Id" not in select:
        assert "Id" not in read_jsonl(str(tmp_path / f"par.{file_format}"))[0]


@pytest.mark.norce_simulator(orders=300, page_size=500)
def test_a_window_of_one_page_is_one_request_and_no_staging(norce_simulator, tmp_path):
    result = export(tmp_path / "small.jsonl")
    assert result["pages"] == 1 and result["rows"] > 0
    assert query_requests(norce_simulator.sim) == 1
    assert os.listdir(tmp_path) == ["small.jsonl"]
    empty = export(tmp_path / "none.jsonl", filter="Updated ge 2030-01-01T00:00:00Z")
    assert empty["rows"] == 0 and (tmp_path / "none.jsonl").read_bytes() == b""


@pytest.mark.norce_simulator(orders=8_000, page_size=100)
def test_a_failed_try_is_resumed_from_its_finished_slices(norce_simulator, monkeypatch, tmp_path):
    """Try 1 fails after some slices; try 2 reads only what has no part yet; the file is exact."""
    sim = norce_simulator.sim
    set_sim_connection(monkeypatch, sim, max_attempts=1)
    reference = tmp_path / "reference.jsonl"
    export(reference, max_concurrency=1)
    real = NorceHook.odata_page

    def failing_after_twenty_pages(self, endpoint, params=None):
        self.answered = getattr(self, "answered", 0) + 1
        if self.answered > 20:
            raise NorceAPIError("simulated lost worker", status_code=503)
        return real(self, endpoint, params)

    monkeypatch.setattr(NorceHook, "odata_page", failing_after_twenty_pages)
    destination = tmp_path / "orders.jsonl"
    options = {"max_concurrency": 4, "slice_rows": 500, "context": {"params": {}, "ti": _Ti()}}
    sim.reset_counters()
    with pytest.raises(NorceAPIError, match="simulated lost worker"):
        export(destination, **options)
    read_by_first_try = sim.counters()["query_rows"]
    assert not destination.exists()
    staging = [name for name in os.listdir(tmp_path) if ".norce-slices-" in name]
    assert len(staging) == 1, "kept for the retry"
    folder = tmp_path / staging[0]
    parts = sorted(name for name in os.listdir(folder) if name.startswith("slice-"))
    assert parts and "plan.json" in os.listdir(folder)
    kept_rows = sum(len(read_jsonl(str(folder / part))) for part in parts)

    monkeypatch.setattr(NorceHook, "odata_page", real)
    sim.reset_counters()
    result = export(destination, **options)
    assert digest(destination) == digest(reference)
    assert sim.counters()["query_rows"] == result["rows"] - kept_rows, "only slices without a part"
    lost = read_by_first_try - kept_rows - 1  # the last-key probe reads one row
    assert 0 <= lost <= 4 * 500, "at most one slice per worker in flight is read again"
    assert sorted(os.listdir(tmp_path)) == ["orders.jsonl", "reference.jsonl"]


@pytest.mark.norce_simulator(orders=6_000, page_size=100, query_rate_limit=(20.0, 6))
def test_429s_narrow_the_requests_in_flight_and_the_file_stays_exact(
    norce_simulator, monkeypatch, tmp_path, capsys
):
    sim = norce_simulator.sim
    reference = tmp_path / "reference.jsonl"
    set_sim_connection(monkeypatch, sim, max_attempts=12, max_retry_wait=120)
    export(reference, max_concurrency=1)
    sim.reset_rate_limits()
    sim.reset_counters()
    export(tmp_path / "orders.jsonl", max_concurrency=8, slice_rows=300)
    assert digest(tmp_path / "orders.jsonl") == digest(reference)
    assert sim.counters()["api_429"] > 0
    assert "Norce Query answered 429 (rate limit): 8 -> 4 requests in flight" in capsys.readouterr().out


@pytest.mark.norce_simulator(orders=3_000, page_size=100)
def test_an_orderby_other_than_the_key_reads_sequentially(norce_simulator, tmp_path, capsys):
    result = export(tmp_path / "orders.jsonl", orderby="Updated desc")
    rows = read_jsonl(str(tmp_path / "orders.jsonl"))
    assert len(rows) == result["rows"] and rows[0]["Updated"] >= rows[-1]["Updated"]
    assert (
        "is not the key 'Id', so the export follows Norce's nextLink one page at a time"
        in capsys.readouterr().out
    )


@pytest.mark.norce_simulator(orders=100)
def test_sets_without_an_integer_key_are_read_sequentially_unless_told(norce_simulator, tmp_path, capsys):
    skus = export(tmp_path / "skus.jsonl", entity="Products/ProductSkus", filter=None, window_field=None)
    assert skus["rows"] > 0 and skus["completeness"]["mode"] == "nextLink pages"
    told = export(
        tmp_path / "told.jsonl",
        entity="Products/ProductSkus",
        filter=None,
        window_field=None,
        slice_key="PartNo",
        max_concurrency=2,
    )
    assert digest(tmp_path / "told.jsonl") == digest(tmp_path / "skus.jsonl"), "fell back, same file"
    assert told["completeness"]["fallback"] == "a PartNo that is not an integer"
    assert "slice_key 'PartNo' is '" in capsys.readouterr().out


# -- lookback ----------------------------------------------------------------------------------------

DAY1, DAY2, DAY3 = utc(2026, 11, 18), utc(2026, 11, 19), utc(2026, 11, 20)


def _daily(start, end, lookback=None, path=None) -> list[dict]:
    from airflow.timetables.interval import CronDataIntervalTimetable

    class _Dag:
        timetable = CronDataIntervalTimetable("0 0 * * *", timezone="UTC")

    op = NorceQueryExportOperator(
        task_id="export_orders", destination=str(path), lookback=lookback, slice_rows=400, max_concurrency=4
    )
    op.execute(context_for(start, end, _Dag()))
    return read_jsonl(str(path))


@pytest.mark.norce_simulator(orders=20_000, page_size=100)
def test_an_order_updated_late_is_caught_by_the_next_run_with_lookback(norce_simulator, tmp_path):
    sim = norce_simulator.sim
    first = _daily(DAY1, DAY2, path=tmp_path / "day1.jsonl")
    earlier = order_ids_in_window(sim, utc(2026, 11, 10), utc(2026, 11, 11))
    late = earlier[len(earlier) // 2]
    assert late not in {row["Id"] for row in first}
    # after the day-1 run, Norce writes the order's Updated late: inside day 1's window
    sim.update_order(late, "2026-11-18T22:30:00Z")

    without = _daily(DAY2, DAY3, path=tmp_path / "day2-plain.jsonl")
    assert late not in {row["Id"] for row in without}, "a strict window misses it for good"

    caught = _daily(DAY2, DAY3, lookback=dt.timedelta(hours=6), path=tmp_path / "day2.jsonl")
    ids = [row["Id"] for row in caught]
    assert ids.count(late) == 1
    assert len(ids) == len(set(ids)), "each key once in a file"
    assert next(row for row in caught if row["Id"] == late)["Updated"].startswith("2026-11-18T22:30")
    assert set(ids) >= {row["Id"] for row in without}


def test_lookback_with_an_explicit_filter_is_refused(tmp_path):
    op = NorceQueryExportOperator(
        task_id="export_orders", destination=str(tmp_path / "x.jsonl"), filter="Id gt 1", lookback=60
    )
    with pytest.raises(ValueError, match=r"'export_orders': lookback widens the default window"):
        op.query_params({})


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("max_concurrency", 0, r"max_concurrency"),
        ("max_concurrency", "eight", r"max_concurrency"),
        ("slice_rows", -5, r"slice_rows"),
        ("lookback", -60, r"lookback"),
        ("lookback", "soon", r"lookback"),
    ],
)
def test_bad_concurrency_arguments_are_named_before_any_request(tmp_path, argument, value, message):
    op = NorceQueryExportOperator(
        task_id="export_orders",
        destination=str(tmp_path / "x.jsonl"),
        filter=None if argument == "lookback" else MONTH,
        **{argument: value},
    )
    with pytest.raises(ValueError, match=rf"'export_orders'.*{message}"):
        op.execute(
            {"params": {}, "data_interval_start": utc(2026, 11, 1), "data_interval_end": utc(2026, 11, 2)}
        )
    assert os.listdir(tmp_path) == []
