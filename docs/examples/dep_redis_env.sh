#!/usr/bin/env bash
# The environment of every Celery worker (or task pod) and of the triggerer when tokens are shared cluster-wide:
# the Norce connection with auth_cache "redis", and the Airflow Redis connection it names. docs/deployment.md
# shows it; tests/docs/test_examples_d.py sources it and reads both connections as the hook does.

# [START dep_redis_env]
export AIRFLOW_CONN_NORCE_DEFAULT='{"conn_type": "norce", "host": "acme", "login": "my-client-id",
  "password": "my-client-secret",
  "extra": {"application_id": "1234", "auth_cache": "redis", "auth_cache_conn_id": "redis_tokens"}}'
# The Redis every worker reaches (the Celery broker's server will do; a database of its own keeps it tidy)
export AIRFLOW_CONN_REDIS_TOKENS='{"conn_type": "redis", "host": "redis.internal", "port": 6379,
  "password": "redis-password", "extra": {"db": 2}}'
# Where tokens go while Redis cannot be reached (one warning per process; Redis is tried again every 30 s)
export NORCE_TOKEN_CACHE_DIR=/run/airflow/norce-tokens
# [END dep_redis_env]
