"""The docs' event examples (docs/examples/evt_*) run for real."""

from __future__ import annotations

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_evt_sim_orders_adds_orders_at_run_time():
    runpy.run_path(str(EXAMPLES / "evt_sim_orders.py"), run_name="__main__")


def test_every_evt_example_is_run_here():
    assert sorted(p.name for p in EXAMPLES.glob("evt_*")) == ["evt_sim_orders.py"]
