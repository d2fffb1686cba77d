#!/usr/bin/env bash
# The environment of every Airflow worker and of the triggerer: the connection (here as an environment
# variable in Airflow's JSON form) and the machine token store's directory. docs/deployment.md shows it;
# tests/docs/test_examples_b.py sources it and reads the connection through NorceHook.

# [START dep_worker_env]
export AIRFLOW_CONN_NORCE_DEFAULT='{"conn_type": "norce", "host": "acme", "login": "my-client-id",
  "password": "my-client-secret", "extra": {"environment": "stage", "application_id": "1234"}}'
# One private directory (0700) for the token store of every task process of this machine; a tmpfs is best
export NORCE_TOKEN_CACHE_DIR=/run/airflow/norce-tokens
# [END dep_worker_env]
