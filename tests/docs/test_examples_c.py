"""The Query export examples of docs/operators.md on concurrency, resume and ``lookback``, run for real.

``docs/examples/op_export_lookback.py`` (the DAG the page shows) exports two consecutive days from the local
Norce simulator, with one order updated late in between: Norce writes its ``Updated`` inside the first day
after that day's run. ``docs/examples/op_upsert_by_key.py`` (the consumer's upsert the page shows) then loads
both files. What the page claims is what is asserted: the late order is in the second file, once, only thanks
to ``lookback``; other orders repeat across the two files; the table holds one row per order, the newest.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from docs_examples_testlib import EXAMPLES, load

UTC = dt.timezone.utc
DAY_1 = dt.datetime(2026, 11, 10, tzinfo=UTC)
DAY_2 = DAY_1 + dt.timedelta(days=1)
DAY_3 = DAY_2 + dt.timedelta(days=1)
#: When Norce stamps the late order: inside day 1, within the 6 h the example re-reads, after day 1's run.
LATE_UPDATED = "2026-11-10T21:30:00Z"


def run_day(task: Any, dag: Any, start: dt.datetime, destination: Path) -> list[dict[str, Any]]:
    """Run the example's export task for the day ``[start, start + 1 day)`` into ``destination``; its rows.

    The simulator's small pages make each day several key-range slices, read concurrently as on Norce.
    """
    task.destination = str(destination)  # the example writes under /data/norce/orders
    context = {
        "data_interval_start": start,
        "data_interval_end": start + dt.timedelta(days=1),
        "logical_date": start + dt.timedelta(days=1),
        "dag": dag,
        "params": {},
    }
    result = task.execute(context)
    with open(destination, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    assert result["rows"] == len(rows)
    return rows


def stamp(row: dict[str, Any]) -> dt.datetime:
    """When an order last changed: ``Updated``, else ``Created`` (Norce leaves ``Updated`` null until then)."""
    return dt.datetime.fromisoformat((row.get("Updated") or row["Created"]).replace("Z", "+00:00"))


@pytest.mark.integration
@pytest.mark.norce_simulator(orders=3000, page_size=20)  # about 5 pages a day: several slices
def test_lookback_catches_a_late_update_and_the_upsert_keeps_one_row_per_order(norce_simulator, tmp_path):
    module = load("op_export_lookback.py")
    task = module.dag.get_task("export_orders")
    assert task.lookback == dt.timedelta(hours=6)

    first = run_day(task, module.dag, DAY_1, tmp_path / "2026-11-10.jsonl")
    # An order of day 1's file, updated well before the 6 h the next run re-reads ...
    late = next(row for row in first if row.get("Updated") and stamp(row) < DAY_2 - dt.timedelta(hours=12))
    # ... changes again; Norce stamps the change inside day 1, but only after day 1's run exported.
    norce_simulator.sim.update_order(late["Id"], updated=LATE_UPDATED)

    second = run_day(task, module.dag, DAY_2, tmp_path / "2026-11-11.jsonl")
    ids = [row["Id"] for row in second]
    assert len(ids) == len(set(ids)), "an order twice in one file"
    caught = [row for row in second if row["Id"] == late["Id"]]
    assert len(caught) == 1 and stamp(caught[0]) == stamp({"Updated": LATE_UPDATED})
    repeated = {row["Id"] for row in first} & set(ids)
    assert len(repeated) > 1, "the re-read window should repeat the end of day 1"

    task.lookback = dt.timedelta(0)  # the same run without lookback misses the late order for good
    strict = run_day(task, module.dag, DAY_2, tmp_path / "strict-2026-11-11.jsonl")
    assert late["Id"] not in {row["Id"] for row in strict}
    assert {row["Id"] for row in strict} <= set(ids)

    files = (str(tmp_path / "2026-11-10.jsonl"), str(tmp_path / "2026-11-11.jsonl"))
    upsert = load("op_upsert_by_key.py")
    newest: dict[int, dt.datetime] = {}
    for row in (*first, *second):
        newest[row["Id"]] = max(stamp(row), newest.get(row["Id"], stamp(row)))
    for name, order in (("in-order.sqlite", files), ("reversed.sqlite", files[::-1])):
        database = str(tmp_path / name)
        assert upsert.load_orders(database, *order) == len(newest)
        with sqlite3.connect(database) as db:
            table = {
                key: stamp({"Updated": updated, "Created": created})
                for key, updated, created in db.execute("SELECT Id, Updated, Created FROM orders")
            }
        assert table == newest, f"{name}: not the newest version of every order"
        assert table[late["Id"]] == stamp({"Updated": LATE_UPDATED})


def test_upsert_example_runs_as_a_script(tmp_path):
    """The file's command line (``python op_upsert_by_key.py DB FILE...``) loads and prints the row count."""
    older = tmp_path / "a.jsonl"
    newer = tmp_path / "b.jsonl"
    older.write_text(
        '{"Id": 1, "Updated": "2026-11-10T03:00:00Z", "Created": "2026-11-09T10:00:00Z"}\n'
        '{"Id": 2, "Updated": null, "Created": "2026-11-10T19:00:00Z"}\n'
    )
    newer.write_text(
        '{"Id": 2, "Updated": "2026-11-10T23:00:00.5Z", "Created": "2026-11-10T19:00:00Z"}\n'
        '{"Id": 3, "Updated": "2026-11-11T01:00:00Z", "Created": "2026-11-11T01:00:00Z"}\n'
    )
    database = tmp_path / "orders.sqlite"
    for order in ((newer, older), (older, newer)):  # a re-run of an older day never overwrites a newer row
        database.unlink(missing_ok=True)
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "op_upsert_by_key.py"), str(database), *map(str, order)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "3"
        with sqlite3.connect(database) as db:
            assert db.execute("SELECT Updated FROM orders WHERE Id = 2").fetchone() == (
                "2026-11-10T23:00:00.5Z",
            )
