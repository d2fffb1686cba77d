"""Run example DAGs with ``dag.test()`` in a process of their own, for the lineage tests.

Why a process of its own: the OpenLineage provider reads its configuration (the transport) once, when
Airflow loads its plugin; a test session's Airflow has long loaded it without one. The caller sets
``AIRFLOW__OPENLINEAGE__TRANSPORT`` and the connection in the environment, and names the runs::

    python lineage_dag_run.py DAGS_FOLDER '[["norce_order_export", "2026-11-20T00:00:00+00:00", {...}]]'

Prints one ``dag_id state`` line per run; exits 1 unless every run succeeded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(folder: str, runs: list[list[object]]) -> int:
    sys.path.insert(0, TESTS)
    # not conftest: importing it here would point AIRFLOW_HOME at a new, empty folder under pytest-xdist
    from norce_airflow_testlib import load_dagbag, share_the_execution_api

    share_the_execution_api()  # Airflow 3.0: one in-process execution API for all tasks, as 3.1+ does
    bag = load_dagbag(folder)
    if bag.import_errors:
        print(f"import errors: {bag.import_errors}")
        return 1
    failed = 0
    for dag_id, logical_date, run_conf in runs:
        run = bag.dags[dag_id].test(
            logical_date=dt.datetime.fromisoformat(str(logical_date)), run_conf=run_conf
        )
        print(f"{dag_id} {run.state}")
        failed += run.state != "success"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], json.loads(sys.argv[2])))
