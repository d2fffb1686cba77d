"""One token per machine: task processes share the machine store's token; with ``process`` each fetches one.

Airflow runs every task in a process of its own. This starts three "task processes" at once (fresh Python
processes, as Airflow starts them) against a simulator, first with the connection's default
``auth_cache = "machine"``, then with ``"process"``, and counts the token requests Norce saw.
``tests/docs/test_examples_b.py`` runs :func:`main`; docs/tokens.md shows the part between the markers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from airflow_provider_norce.simulator import NorceSimulator

#: What each task process does: one Norce call through the hook.
TASK = (
    "from airflow_provider_norce.hooks.norce import NorceHook\n"
    "NorceHook('norce_default').run_json('commerce/metadata/1.1/GetApplication')\n"
)


def token_requests(token_cache: str, tasks: int = 3) -> int:
    """Start ``tasks`` task processes together; return how many token requests the simulator received."""
    with NorceSimulator() as sim, tempfile.TemporaryDirectory() as store:
        # [START tok_machine]
        connection = sim.connection_dict()
        connection["extra"]["auth_cache"] = token_cache  # "machine" (the default) or "process"
        env = {
            **os.environ,
            "AIRFLOW_CONN_NORCE_DEFAULT": json.dumps(connection),
            # The same private directory for every task process of the machine (by default a per-user
            # directory under $XDG_RUNTIME_DIR, ~/.cache or /tmp).
            "NORCE_TOKEN_CACHE_DIR": os.path.join(store, "tokens"),
        }
        processes = [subprocess.Popen([sys.executable, "-c", TASK], env=env) for _ in range(tasks)]
        assert all(process.wait(timeout=120) == 0 for process in processes)
        print(token_cache, sim.counters()["token_requests"])  # machine 1, process 3
        # [END tok_machine]
        return int(sim.counters()["token_requests"])


def main() -> dict[str, int]:
    return {kind: token_requests(kind) for kind in ("machine", "process")}


if __name__ == "__main__":
    print(json.dumps(main()))
