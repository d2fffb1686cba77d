#!/usr/bin/env bash
# After installing the provider on a worker, the triggerer or the scheduler/DAG processor host: Airflow
# must list it. docs/deployment.md shows this; tests/docs/test_examples_b.py runs it in the test virtualenv.
set -euo pipefail

# [START dep_check_install]
airflow providers list | grep norce     # airflow-provider-norce | Norce Commerce ... | 0.1.0
airflow providers hooks | grep norce    # norce | airflow_provider_norce.hooks.norce.NorceHook ...
# [END dep_check_install]
