"""The order watch in Airflow's own triggerer process, on every Airflow this project supports (3.0.6, 3.3.2).

A lighter process set than ``test_events_cluster.py``: SQLite, the DAG processor (it registers the asset's
trigger) and the triggerer, against a simulator in this process. It checks what only a real triggerer shows:
the position goes through the triggerer's supervisor into an Airflow Variable (``GetVariable``/``PutVariable``
from the trigger's event loop, on 3.0.6 too, where the sync Variable API broke the triggerer's comms), the
events become asset events, and after a SIGKILL the new triggerer resumes from the saved position: the asset
events' ranges are contiguous from the start, a range at most repeated (never skipped).

Waits poll the database with generous bounds; they never decide a pass.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_norce.simulator.server import NorceSimulator

pytestmark = pytest.mark.airflow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "dags_examples" / "norce_order_events.py"
VARIABLE = "norce_order_watch__norce_new_orders_watch"
BOUND = 120.0


class Airflow:
    """An Airflow home on SQLite with the example DAG, and its component processes (each its own group)."""

    def __init__(self, home: Path, sim: NorceSimulator) -> None:
        from cryptography.fernet import Fernet

        self.home = home
        self.fernet_key = Fernet.generate_key().decode()
        (home / "dags").mkdir(parents=True)
        (home / "dags" / EXAMPLE.name).write_text(EXAMPLE.read_text())
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NORCE_"))},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",  # an unpaused DAG's watcher runs
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            "AIRFLOW_CONN_NORCE_DEFAULT": json.dumps(sim.connection_dict()),
            "NORCE_TOKEN_CACHE_DIR": str(home / "tokens"),
            "NORCE_ORDER_POLL_SECONDS": "1",
            "NORCE_EXPORT_DIR": str(home / "exports"),
        }
        self.children: dict[str, subprocess.Popen] = {}
        bin_dir = Path(sys.executable).parent
        self.airflow = str(bin_dir / "airflow")
        subprocess.run(
            [self.airflow, "db", "migrate"], env=self.env, check=True, capture_output=True, timeout=300
        )

    def start(self, name: str, *args: str) -> None:
        log = open(self.home / f"{name}.log", "ab")
        self.children[name] = subprocess.Popen(
            [self.airflow, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def kill(self, name: str, signum: int = signal.SIGKILL) -> None:
        process = self.children.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.children):
            self.kill(name, signal.SIGTERM)

    def query(self, sql: str, *args: Any) -> list[tuple]:
        """Rows of ``sql``; a database the components hold locked is asked again (SQLite has one writer)."""
        for attempt in range(20):
            try:
                with sqlite3.connect(self.home / "airflow.db", timeout=30) as db:
                    return db.execute(sql, args).fetchall()
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == 19:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def saved(self) -> dict | None:
        """The Variable's value as the watch saved it (JSON: position, origin, identity)."""
        from cryptography.fernet import Fernet

        rows = self.query("select val, is_encrypted from variable where key = ?", VARIABLE)
        if not rows:
            return None
        value, encrypted = rows[0]
        text = Fernet(self.fernet_key.encode()).decrypt(value.encode()).decode() if encrypted else value
        return dict(json.loads(text))

    def variable(self) -> int | None:
        """The position the watch saved."""
        saved = self.saved()
        return None if saved is None else int(saved["position"])

    def events(self) -> list[dict]:
        return [
            json.loads(extra)["payload"]
            for (extra,) in self.query("select extra from asset_event order by id")
        ]

    def wait(self, what: str, check: Any) -> Any:
        deadline = time.monotonic() + BOUND
        while True:
            try:
                value = check()
            except sqlite3.OperationalError:  # the table is not there yet, or locked for a moment
                value = None
            if value:
                return value
            for name, process in self.children.items():
                if process.poll() is not None:
                    log = (self.home / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise AssertionError(f"{name} exited while waiting for {what}:\n{log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"still waiting for {what} after {BOUND:.0f} s; logs in {self.home}")
            time.sleep(0.5)


@pytest.fixture
def airflow_home(tmp_path: Path) -> Iterator[tuple[Airflow, NorceSimulator]]:
    sim = NorceSimulator(orders=600).start()
    airflow = Airflow(tmp_path / "airflow", sim)
    try:
        yield airflow, sim
    finally:
        airflow.stop()
        sim.stop()


def newest_app_order(sim: NorceSimulator) -> int:
    orders = sim.orders
    return max(i + 1 for i in range(len(orders)) if orders.scan_row(i)["ApplicationId"] == sim.application_id)


def test_the_triggerer_keeps_the_position_in_a_variable_and_resumes_after_a_kill(airflow_home):
    airflow, sim = airflow_home
    airflow.start("dag-processor", "dag-processor")
    airflow.wait("the asset's trigger to be registered", lambda: airflow.query("select id from trigger"))
    airflow.kill("dag-processor", signal.SIGTERM)  # the trigger row stays; spare the two cores

    airflow.start("triggerer", "triggerer")
    start = airflow.wait("the watch's first position", airflow.variable)
    assert start == newest_app_order(sim)  # no history

    sim.add_orders(8)
    first = newest_app_order(sim)
    airflow.wait(f"the position to reach {first}", lambda: airflow.variable() == first)
    # The triggerer writes the event to its database about a second after the position (the window the
    # export side covers, see order_ranges); kill it once the event is in, so the ranges below are exact.
    airflow.wait(
        f"the asset event through {first}", lambda: first in [e["through"] for e in airflow.events()]
    )

    airflow.kill("triggerer")  # SIGKILL, no clean shutdown
    sim.add_orders(8)
    second = newest_app_order(sim)
    airflow.start("triggerer-2", "triggerer")
    airflow.wait(f"the restarted watch to reach {second}", lambda: airflow.variable() == second)
    airflow.wait(
        f"the asset event through {second}", lambda: second in [e["through"] for e in airflow.events()]
    )

    ranges = [(e["after"], e["through"]) for e in airflow.events()]
    assert ranges[0][0] == start and ranges[-1][1] == second, ranges
    # the first start's position, saved before any event, is in every event (and stays in the Variable)
    assert {e["origin"] for e in airflow.events()} == {start}
    assert airflow.saved() == {
        "position": second,
        "origin": start,
        "identity": {
            "query_url": f"{sim.base_url}/commerce/query/2.0/",
            "environment": "production",
            "application_id": sim.application_id,
        },
    }
    for earlier, later in itertools.pairwise(ranges):
        # contiguous: the next range starts where the last one ended, or it is that range again (a replay)
        assert later[0] == earlier[1] or later == earlier, ranges
    assert {r[1] for r in ranges} >= {first, second}
