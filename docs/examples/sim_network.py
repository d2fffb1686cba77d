"""A simulator behind a slow link, and an order that Norce updated late.

Run it with ``python docs/examples/sim_network.py``; ``tests/docs/test_examples_b.py`` runs it for real.
docs/simulator.md shows the parts between the ``[START ...]`` and ``[END ...]`` markers.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.simulator import NorceSimulator


def slow_link() -> dict[str, Any]:
    """Read one page over a 100 ms link, then change the link while the simulator runs."""
    # [START sim_network]
    with NorceSimulator(orders=2_000, latency=0.1, latency_jitter=0.02) as sim:
        os.environ["AIRFLOW_CONN_NORCE_DEFAULT"] = json.dumps(sim.connection_dict())
        hook = NorceHook("norce_default")
        page = hook.run_json("commerce/query/2.0/Orders/Orders")  # the token and the page: 80-120 ms each
        sim.set_network(bandwidth=1_250_000)  # 10 Mbit/s for the whole link, shared by every connection
        sim.set_network(latency=0, latency_jitter=0, bandwidth=None)  # loopback again
        print(sim.network(), sim.counters()["query_rows"])
        # {'latency': 0.0, 'latency_jitter': 0.0, 'bandwidth': None} 500
    # [END sim_network]
    return {"rows": len(page["value"]), "network": sim.network(), "query_rows": sim.counters()["query_rows"]}


def late_update() -> dict[str, Any]:
    """Order 1990 was updated on Nov 30; Norce writes a change dated Nov 10 late, after Nov 10 was exported."""
    with NorceSimulator(orders=2_000) as sim:
        os.environ["AIRFLOW_CONN_NORCE_DEFAULT"] = json.dumps(sim.connection_dict())
        hook = NorceHook("norce_default")
        # [START sim_late_update]
        nov_10 = "Updated ge 2026-11-10T00:00:00Z and Updated lt 2026-11-11T00:00:00Z"

        def ids() -> list[int]:
            rows = hook.paginate("commerce/query/2.0/Orders/Orders", params={"$filter": nov_10})
            return [row["Id"] for row in rows]

        exported = ids()  # the run for Nov 10, on Nov 11
        sim.update_order(1990, "2026-11-10T12:00:00Z")  # a change dated Nov 10, written on Nov 12
        print(1990 in exported, 1990 in ids())  # False True: only a run that reads Nov 10 again sees it
        # [END sim_late_update]
        return {"exported": exported, "again": ids()}


def main() -> dict[str, Any]:
    """Both parts; what each saw."""
    return {"network": slow_link(), "late": late_update()}


if __name__ == "__main__":
    print(json.dumps(main()))
