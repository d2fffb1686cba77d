#!/usr/bin/env bash
# The norce connection as an environment variable (Airflow's JSON form), and Airflow's connection test.
# connection.md includes the parts between the markers; tests/docs/test_examples_a.py sources the first part
# and checks the connection it defines, and runs the second against the local Norce simulator.
set -euo pipefail
if [ "${1:-}" != "--test-only" ]; then
# [START conn_env]
export AIRFLOW_CONN_NORCE_DEFAULT='{"conn_type": "norce", "host": "acme", "login": "my-client-id",
  "password": "my-client-secret", "extra": {"environment": "stage", "application_id": "1234"}}'
# [END conn_env]
fi
# [START conn_test]
AIRFLOW__CORE__TEST_CONNECTION=Enabled airflow connections test norce_default
# [END conn_test]
