#!/usr/bin/env bash
# The Norce simulator in a process of its own, for DAGs run by `airflow dags test` or `airflow standalone`:
# start it, point the connection at it, steer it over HTTP, stop it. tests/docs/test_examples_b.py runs this
# script (with NORCE_SIM_PORT set to a free port); docs/simulator.md shows the parts between the markers.
set -euo pipefail

# [START sim_cli_serve]
PORT="${NORCE_SIM_PORT:-8765}"
python -m airflow_provider_norce.simulator serve --port "$PORT" \
  --client-id sim-client --client-secret sim-secret --application-id 1234 &
SIM_PID=$!
# prints: Norce simulator listening on http://127.0.0.1:8765
export AIRFLOW_CONN_NORCE_DEFAULT='{"conn_type": "norce", "host": "http://127.0.0.1:'"$PORT"'",
  "login": "sim-client", "password": "sim-secret", "extra": {"application_id": "1234"}}'
# [END sim_cli_serve]
trap 'kill "$SIM_PID" 2>/dev/null || true' EXIT
for _ in $(seq 150); do  # wait until it listens (at most 30 s)
  curl --silent --fail "http://127.0.0.1:$PORT/_sim/info" > /dev/null && break
  sleep 0.2
done

# [START sim_cli_use]
python -c 'from airflow_provider_norce.hooks.norce import NorceHook; print(NorceHook().test_connection())'
# (True, "Norce issued a token to client 'sim-client' (scope 'prod') and GetApplication answered ...")
# [END sim_cli_use]

# [START sim_cli_steer]
SIM="http://127.0.0.1:$PORT/_sim"                   # no auth, not counted
curl -sw '\n' "$SIM/info"                           # base URL, token URL and the connection
curl -sw '\n' -X POST "$SIM/faults" -d '{"endpoint": "query", "kind": "503", "count": 2}'
curl -sw '\n' "$SIM/faults"                         # the faults waiting to fire
curl -sw '\n' "$SIM/counters"                       # token_requests, tokens_issued, token_429, api_429, ...
curl -sw '\n' -X POST "$SIM/expire"                 # every token issued so far has expired
curl -sw '\n' -X DELETE "$SIM/faults"
curl -sw '\n' -X POST "$SIM/reset?rate_limits=true" # zero the counters, refill the rate-limit buckets
# [END sim_cli_steer]

# [START sim_cli_stop]
kill "$SIM_PID" && wait "$SIM_PID"       # SIGTERM: it stops serving and exits 0
# [END sim_cli_stop]
trap - EXIT
