"""Retries: the one request retry policy (:mod:`.policy`) and Airflow task retries that know Norce's errors
(:mod:`.task_policy`). Import-free on purpose."""
