"""One token for the whole cluster: ``auth_cache = "redis"`` shares it between machines.

Two "machines" (each its own home and machine-store directory) start two task processes each against a
simulator, first with ``auth_cache = "machine"`` (one token per machine), then with ``"redis"`` (one token
for all of them, through the Redis server every worker reaches). ``tests/docs/test_examples_d.py`` runs
:func:`main` with a ``redis-server`` it starts; docs/tokens.md shows the part between the markers.
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


def token_requests(token_cache: str, redis_url: str, machines: int = 2, tasks: int = 2) -> int:
    """``tasks`` task processes on each of ``machines`` machines; the token requests the simulator received."""
    with NorceSimulator() as sim, tempfile.TemporaryDirectory() as root:
        # [START tok_redis]
        connection = sim.connection_dict()
        connection["extra"]["auth_cache"] = token_cache  # "machine" (the default) or "redis"
        connection["extra"]["auth_cache_conn_id"] = "redis_tokens"  # an Airflow connection of type redis
        processes = []
        for machine in range(machines):
            env = {
                **os.environ,
                "AIRFLOW_CONN_NORCE_DEFAULT": json.dumps(connection),
                "AIRFLOW_CONN_REDIS_TOKENS": redis_url,  # e.g. redis://:password@redis.internal:6379/2
                # Each machine has its own home and its own machine store.
                "HOME": os.path.join(root, f"machine-{machine}"),
                "NORCE_TOKEN_CACHE_DIR": os.path.join(root, f"machine-{machine}", "tokens"),
            }
            processes += [subprocess.Popen([sys.executable, "-c", TASK], env=env) for _ in range(tasks)]
        assert all(process.wait(timeout=120) == 0 for process in processes)
        print(token_cache, sim.counters()["token_requests"])  # machine 2, redis 1
        # [END tok_redis]
        return int(sim.counters()["token_requests"])


def main(redis_url: str) -> dict[str, int]:
    return {kind: token_requests(kind, redis_url) for kind in ("machine", "redis")}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
