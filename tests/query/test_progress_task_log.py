"""Progress lines in the task's output: a real export (page by page, and by concurrent slices) and a real
import against the Norce simulator, with ``progress_interval=0`` (a line at every page, every batch, every poll).

The lines are read from what the operators' ``self.log`` printed (stdout on Airflow 3.3, the logging handlers on
3.0: :mod:`norce_progress_testlib`), as the UI's task log shows them. The page's sample (``docs/examples/op_progress.log``) is checked here too:
each of its lines must have the shape of a line these runs print (numbers, durations and paths aside), so the
documentation cannot drift from what the operators log.
"""

from __future__ import annotations

import functools
import json
import re
import time
from pathlib import Path

import pytest
from norce_progress_testlib import operator_messages
from norce_query_testlib import read_jsonl, set_sim_connection

from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.operators import query as query_operator
from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator
from airflow_provider_norce.progress import Progress

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "op_progress.log"
PROGRESS = re.compile(r"^(?:Export progress|Import progress|Exported \d|Imported \d)")


def progress_lines(capsys, caplog) -> list[str]:
    """The progress and summary messages the operators logged."""
    return [line for line in operator_messages(capsys, caplog) if PROGRESS.match(line)]


def shape(line: str) -> str:
    """A line with its paths, durations and numbers replaced: what must not change is the wording."""
    line = re.sub(r"\S*/\S*", "P", line)  # paths, entity sets, import methods, rows/s
    line = re.sub(r"\d+ h \d+ min|\d+ min \d+ s|\d+(?:\.\d+)? s\b", "D", line)
    line = re.sub(r"\d(?:[\d,.]*\d)?", "N", line)
    line = line.replace(", about D left", "")  # whether an ETA shows yet depends on the run's timing
    return re.sub(r"N(?:, N)*(?: and N more)?", "N", line)  # lists of job ids, however long


def sample(section: str) -> list[str]:
    text = SAMPLE.read_text(encoding="utf-8")
    found = re.search(rf"# \[START {section}\]\n(.*?)# \[END {section}\]", text, re.S)
    assert found, f"{SAMPLE.name} has no {section} section"
    return [line for line in found.group(1).splitlines() if line.strip()]


def export(destination: Path, **kwargs) -> dict:
    op = NorceQueryExportOperator(
        task_id="export", destination=str(destination), window_field=None, progress_interval=0, **kwargs
    )
    return op.execute({})


@pytest.mark.norce_simulator(orders=1200, page_size=100)
def test_an_export_page_by_page_logs_every_page_and_one_summary(norce_simulator, tmp_path, capsys, caplog):
    destination = tmp_path / "orders.jsonl"
    result = export(destination, max_concurrency=1)

    lines = progress_lines(capsys, caplog)
    rows, pages = result["rows"], result["pages"]
    assert rows == len(read_jsonl(str(destination))) and pages > 3
    progress = [line for line in lines if line.startswith("Export progress: ")]
    assert len(progress) == pages, "interval 0: one line per page"
    assert progress[-1].startswith(f"Export progress: {rows:,} rows, {pages} pages; ")
    assert all(" of " not in line and "left" not in line for line in progress), "no total is invented"
    summaries = [line for line in lines if line.startswith("Exported ")]
    assert len(summaries) == 1
    assert summaries[0].startswith(f"Exported {rows} rows in {pages} pages to {destination} in ")
    assert {shape(line) for line in sample("export_progress")} <= {shape(line) for line in lines}


@pytest.mark.norce_simulator(orders=3000, page_size=100)
def test_a_sliced_export_says_about_how_many_rows_and_how_many_slices(
    norce_simulator, tmp_path, capsys, caplog
):
    destination = tmp_path / "orders.jsonl"
    result = export(destination, max_concurrency=4, slice_rows=300)

    lines = progress_lines(capsys, caplog)
    progress = [line for line in lines if line.startswith("Export progress: ")]
    slices = re.search(r"(\d+) of (\d+) slices", progress[-1])
    assert slices and slices.group(1) == slices.group(2), "the last line has every slice done"
    # a line for every page read (the planning page included) and for every slice done after the first,
    # which is the planning page itself
    assert len(progress) == result["pages"] + int(slices.group(2)) - 1
    assert all(" of about " in line for line in progress[1:]), "the total is the plan's estimate"
    assert any(", about " in line and " left" in line for line in progress), "an ETA while rows remain"
    assert [line for line in lines if line.startswith("Exported ")] == [
        line
        for line in lines
        if line.startswith(f"Exported {result['rows']} rows in {result['pages']} pages ")
    ]
    assert {shape(line) for line in sample("sliced_progress")} <= {shape(line) for line in lines}


@pytest.mark.norce_simulator(job_duration=0.2)
def test_an_import_logs_items_checked_batches_posted_the_wait_and_one_summary(
    norce_simulator, tmp_path, capsys, caplog
):
    items = [
        {"PartNo": str(100001 + i), "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 7 + i}
        for i in range(25)
    ]
    items_path = tmp_path / "stock.jsonl"
    items_path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    op = NorceConnectImportOperator(
        task_id="import_stock",
        import_method="Product/ImportOnhands",
        connect_header={"AccountId": 1},
        items_path=str(items_path),
        batch_size=10,
        poll_interval=0.05,
        progress_interval=0,
        deferrable=False,
    )
    job_ids = op.execute({})

    messages = operator_messages(capsys, caplog)
    lines = [line for line in messages if PROGRESS.match(line)]
    assert [line.split(";")[0] for line in lines if "checking items" in line] == [
        "Import progress, checking items: 25 items"  # a file's total is not known before it is read
    ]
    posting = [line.split(";")[0] for line in lines if "posting" in line]
    assert posting == [
        "Import progress, posting: 10 of 25 items (40 %), 1 of 3 batches",
        "Import progress, posting: 20 of 25 items (80 %), 2 of 3 batches",
        "Import progress, posting: 25 of 25 items (100 %), 3 of 3 batches",
    ]
    waiting = [line for line in lines if "waiting for jobs" in line]
    assert waiting and waiting[0].startswith(
        "Import progress, waiting for jobs: 0 of 3 jobs finished (0 %); "
    )
    assert "still running in Norce, checked every 0.1 s" in waiting[0]
    summaries = [line for line in lines if line.startswith("Imported ")]
    assert len(summaries) == 1 and summaries[0].startswith(
        "Imported 25 items in 3 batches to Product/ImportOnhands in "
    )
    assert summaries[0].endswith(f"; job ids: {', '.join(job_ids)}; every job finished")
    assert not any(norce_simulator.connection["password"] in line for line in messages), "never a secret"
    assert not any(item["PartNo"] in line for item in items for line in lines), "never an item's content"
    assert {shape(line) for line in sample("import_progress")} <= {shape(line) for line in lines}


@pytest.mark.parametrize("concurrency", [1, 8])
@pytest.mark.norce_simulator(orders=3_000, page_size=100, query_rate_limit=(20.0, 6))
def test_a_429_being_waited_out_is_named_in_the_progress_line(
    norce_simulator, monkeypatch, tmp_path, concurrency
):
    """While the hook waits out a 429, the export's progress line (what the heartbeat logs) says so."""
    reporters: list[Progress] = []
    seen: list[str] = []

    class Recorded(Progress):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            reporters.append(self)

    def sleep(seconds: float) -> None:  # the hook's wait before a retry: read the line, then wait
        seen.append(reporters[-1].line())
        time.sleep(seconds)

    monkeypatch.setattr(query_operator, "Progress", Recorded)
    monkeypatch.setattr(NorceHook, "__init__", functools.partialmethod(NorceHook.__init__, sleep=sleep))
    set_sim_connection(monkeypatch, norce_simulator.sim, max_attempts=12, max_retry_wait=120)
    export(tmp_path / "o.jsonl", max_concurrency=concurrency)

    assert norce_simulator.sim.counters()["api_429"] > 0
    assert seen, "no retry was waited for"
    assert all(
        re.search(r"; (waiting .* more to retry|retrying) after HTTP 429 \(rate limit\)$", line)
        for line in seen
    )
