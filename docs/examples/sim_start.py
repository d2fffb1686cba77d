"""Start a Norce simulator in Python, point the Airflow connection at it and read orders through NorceHook.

Run it with ``python docs/examples/sim_start.py``; ``tests/docs/test_examples_b.py`` runs it for real.
The part between the ``[START sim_start]`` and ``[END sim_start]`` markers is what docs/simulator.md shows.
"""

from __future__ import annotations

import json
import os
from typing import Any


def main() -> dict[str, Any]:
    """Start a simulator, test the connection, page through one application's orders; return what was seen."""
    # [START sim_start]
    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.simulator import NorceSimulator

    with NorceSimulator(orders=1_000, expires_in=600) as sim:  # port=0 (the default) picks a free port
        print(sim.base_url)  # http://127.0.0.1:PORT
        # The connection in Airflow's JSON form: {"conn_type": "norce", "host": "http://127.0.0.1:PORT",
        # "login": "sim-client", "password": "sim-secret", "extra": {"application_id": "1234"}}
        os.environ["AIRFLOW_CONN_NORCE_DEFAULT"] = json.dumps(sim.connection_dict())

        hook = NorceHook("norce_default")
        ok, message = hook.test_connection()  # a token, then GET .../metadata/1.1/GetApplication
        orders = list(  # follows @odata.nextLink: at most 500 orders a page
            hook.paginate("commerce/query/2.0/Orders/Orders", params={"$filter": "ApplicationId eq 1234"})
        )
        print(len(orders), sim.counters())  # 841 orders; 'token_requests': 1, shared by both calls
    # [END sim_start]
    return {"ok": ok, "message": message, "orders": orders, "counters": sim.counters()}


if __name__ == "__main__":
    result = main()
    print(json.dumps({"ok": result["ok"], "orders": len(result["orders"]), "counters": result["counters"]}))
