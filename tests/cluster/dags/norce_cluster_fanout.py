"""Fan-out on the local cluster: many task processes, each a few Norce calls, over the Celery workers.

Why: token sharing only matters when many task processes need a token at once, on several hosts. Each mapped
task is its own task process on whichever Celery worker takes it; it makes ``calls`` GetApplication calls
through :class:`~airflow_provider_norce.hooks.norce.NorceHook` on the connection named by the ``conn_id``
param (``norce_process``, ``norce_machine`` or ``norce_redis``: the same tenant with another ``token_cache``),
and returns where it ran. The cluster tests and ``benchmarks/bench_cluster_fanout.py`` read the simulator's
counters (token requests, 429s) and the task instances (state, hostname) after a run.

Two DAGs from one definition:

* ``norce_cluster_fanout``: every mapped task may run at once (40 processes over the two workers).
* ``norce_cluster_fanout_paced``: at most 4 mapped tasks run at once, so a test can change the world (stop the
  token store's Redis) after some tasks finished and before the others started.

Parsing makes no network call and reads no connection: the provider is imported inside the task.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

#: GetApplication: the cheapest authenticated Norce call (Norce Commerce Metadata 1.1), a JSON object.
ENDPOINT = "commerce/metadata/1.1/GetApplication"


def _hostname() -> str:
    """The host name Airflow records on the task instance (``[core] hostname_callable``): the cluster gives
    each Celery worker its own, standing for a machine of its own."""
    from airflow.sdk.api.client import get_hostname

    return str(get_hostname())


def build(dag_id: str, *, paced: bool) -> DAG:
    """One fan-out DAG: ``plan`` lists ``params.tasks`` indexes, ``call_norce`` is mapped over them."""
    with DAG(
        dag_id=dag_id,
        description="Fan-out of task processes making Norce calls (local cluster tests and benchmark)",
        schedule=None,
        start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        # Every mapped task may run at once (Airflow's default caps a DAG at 16 running tasks).
        max_active_tasks=64,
        # No retries: a failed token request must show as a failed task, which is what is measured.
        default_args={"retries": 0},
        params={
            "conn_id": Param("norce_default", type="string", description="Norce connection the tasks use"),
            "tasks": Param(40, type="integer", minimum=1, maximum=1000, description="Mapped task count"),
            "calls": Param(5, type="integer", minimum=1, maximum=100, description="Norce calls per task"),
        },
        tags=["norce", "cluster-test"],
    ) as dag:

        @task
        def plan(tasks: str) -> list[int]:
            """The indexes to map over (the count is a run param, so it is known only when the run starts)."""
            return list(range(int(tasks)))

        @task(max_active_tis_per_dagrun=4 if paced else None)
        def call_norce(index: int, conn_id: str, calls: str) -> dict[str, Any]:
            """``calls`` GetApplication calls on ``conn_id``; returns where this task process ran."""
            from airflow_provider_norce.hooks.norce import NorceHook

            hook = NorceHook(conn_id)
            for _ in range(int(calls)):
                hook.run_json(ENDPOINT, params={"format": "json"})
            return {"index": index, "hostname": _hostname(), "pid": os.getpid(), "calls": int(calls)}

        # TaskFlow arguments are templated: the connection id and the call count come from the run's params.
        call_norce.partial(conn_id="{{ params.conn_id }}", calls="{{ params.calls }}").expand(
            index=plan(tasks="{{ params.tasks }}")
        )
    return dag


fanout = build("norce_cluster_fanout", paced=False)
fanout_paced = build("norce_cluster_fanout_paced", paced=True)
