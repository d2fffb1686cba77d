"""Orders arriving while a watch runs: the simulator adds them at run time (run by tests/events)."""

from __future__ import annotations

import requests

from airflow_provider_norce.simulator.server import NorceSimulator

# [START evt_sim_orders]
with NorceSimulator(orders=1000) as sim:
    ids = sim.add_orders(5)  # Ids 1001..1005, Created = Updated = the simulator clock's now
    assert list(ids) == [1001, 1002, 1003, 1004, 1005]
    # From another process (a test driving a real triggerer), through the steering API:
    answer = requests.post(f"{sim.base_url}/_sim/orders/add", json={"count": 3}, timeout=10).json()
    assert (answer["first_id"], answer["last_id"]) == (1006, 1008)
# [END evt_sim_orders]
