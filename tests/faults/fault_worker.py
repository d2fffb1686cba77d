"""A worker to kill, and the scheduler's retry after it died (tests/faults/test_fault_killed_worker.py).

:func:`fork_worker` starts a worker: a child process, leader of its own process group, that runs
``dag.test()`` of a DAG (tasks in that process, the metadata database of ``AIRFLOW_HOME``), for the test to
SIGKILL at the right moment. It is forked from the test process, as Airflow's executors fork task
processes: a fresh interpreter needs some 25 s to import Airflow and start the in-process execution API
on a busy 2-core machine, a fork of a process that already did is ready at once. :func:`retry_killed_run`
is what the scheduler does next: the task instance of the dead worker fails its try, and its retry runs in
the SAME DAG run (so it sees the durable state the first try left, e.g. the Connect import ledger).
``dag.test()`` cannot do that itself: it deletes an existing run of the same logical date and starts anew.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import os
import time
import traceback
from typing import Any


def fork_worker(dag: Any, logical_date: dt.datetime, conf: dict[str, Any], log_path: str) -> int:
    """Fork a worker running ``dag.test(logical_date=..., run_conf=conf)``; returns its pid (= its group).

    The child writes what reaches its file descriptors 1 and 2 to ``log_path`` and leaves with ``os._exit``
    (never back into the test runner)."""
    _warm_up()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        os.setsid()  # its own process group: killpg() reaches everything it starts
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        started = time.monotonic()
        _fresh_after_fork()
        os.write(1, f"worker: ready after {time.monotonic() - started:.1f} s\n".encode())
        dag.test(logical_date=logical_date, run_conf=conf)
        os.write(1, f"worker: dag.test() returned after {time.monotonic() - started:.1f} s\n".encode())
        code = 0
    except BaseException:
        os.write(2, traceback.format_exc().encode())  # fd 2: sys.stderr may be the test runner's capture
    finally:
        os._exit(code)


def _warm_up() -> None:
    """What every in-process task run needs, done once in the parent, so that no forked child (nor the
    retry after it) pays for it: the task runner's imports and the in-process execution API's app."""
    import airflow.sdk.execution_time.task_runner  # noqa: F401
    from airflow.sdk.execution_time import supervisor

    # One in-process API per process: Airflow 3.1+ builds it once itself, on 3.0 the ``dags_folder`` fixture
    # of tests/conftest.py (which every fault DAG run needs) makes it so.
    assert hasattr(supervisor.in_process_api_server, "cache_info"), "the execution API is not shared"
    _ = supervisor.in_process_api_server().transport  # builds the app and starts its loop


def _fresh_after_fork() -> None:
    """Nothing of the parent's database connections or in-process API threads is used by the child."""
    from airflow import settings
    from airflow.sdk.execution_time import supervisor

    if settings.engine is not None:
        settings.engine.dispose(close=False)  # forget the parent's pooled connections, never close them
    settings.configure_orm()
    # One in-process API per process (see _warm_up), served by an event loop thread the fork
    # did not copy: keep its app (built once, slow), give it a new transport (loop thread) on first use.
    api = supervisor.in_process_api_server()
    with contextlib.suppress(AttributeError):  # never used by the parent: nothing to forget
        del api.transport


def retry_killed_run(dag: Any, logical_date: dt.datetime, *, max_loops: int = 200) -> Any:
    """Fail the dead worker's running tries (as the scheduler does once their heartbeat stops), then run
    their retries and everything after them in the same DAG run, the way ``dag.test()`` runs tasks.
    Returns the DAG run (finished)."""
    import airflow.sdk.definitions.dag as sdk_dag
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    session = settings.Session()
    session.expire_all()
    run = session.scalar(
        select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.logical_date == logical_date)
    )
    assert run is not None, f"no run of {dag.dag_id} at {logical_date}"
    now = dt.datetime.now(dt.timezone.utc)
    for ti in run.get_task_instances(session=session):
        if ti.state in (TaskInstanceState.RUNNING, TaskInstanceState.QUEUED):
            assert ti.try_number <= ti.max_tries, f"{ti.task_id} has no retry left"
            ti.state = TaskInstanceState.UP_FOR_RETRY
            ti.end_date = now
    session.commit()
    takes_task = "task" in inspect.signature(sdk_dag._run_task).parameters  # Airflow 3.1+
    if takes_task:
        from airflow.serialization.serialized_objects import DagSerialization

        run.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    else:  # Airflow 3.0
        run.dag = dag
    for _ in range(max_loops):
        if run.state != DagRunState.RUNNING:
            break
        session.expire_all()
        schedulable, _ = run.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        scheduled = [
            t for t in run.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED
        ]
        if not scheduled:
            time.sleep(0.1)
        for ti in scheduled:
            task = dag.task_dict[ti.task_id]
            try:
                if takes_task:
                    sdk_dag._run_task(ti=ti, task=task, run_triggerer=True)
                else:
                    ti.task = task
                    sdk_dag._run_task(ti=ti, run_triggerer=True)
            except Exception:
                sdk_dag.log.exception("Task failed; ti=%s", ti)
    return run
