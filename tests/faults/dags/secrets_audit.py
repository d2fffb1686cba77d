"""DAGs of the DEBUG-level secrets audit (tests/faults/test_secrets_audit.py).

``secrets_audit_echo``: Norce calls whose error answers are hostile: a token refused with ``invalid_client``
(``norce_default``, the audit's fault), then an API that echoes the request's ``Authorization`` header in its 400
body (connection ``norce_echo``) and a token endpoint that echoes the form it was sent, ``client_secret``
included (connection ``norce_echo_form``). Every task fails; the audit then searches what the failures left.

``secrets_audit_call``: one Query call on ``norce_default`` (no retries): a token revoked mid-run (401 twice).

``secrets_audit_canary``: plants one access token (passed in ``dag_run.conf``, fetched by the audit outside the
provider, so never registered with the masker) in every channel the audit searches: the task log (raw), a file
under ``$AIRFLOW_HOME/logs`` (raw), an exception (base64), the XCom (URL-encoded) and a rendered template field.
If the audit's search were broken, it would miss this token and the audit test fails.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_norce.operators.norce import NorceOperator

#: What the audit's DAGs have in common: run by hand only, no task retries.
AUDIT_DAG: dict[str, Any] = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 11, 1, tz="UTC"),
    "catchup": False,
    "default_args": {"retries": 0},
    "tags": ["norce", "audit"],
}

with DAG(dag_id="secrets_audit_echo", **AUDIT_DAG):
    # First, while the token endpoint answers invalid_client once (the audit's fault): fails.
    refused = NorceOperator(
        task_id="invalid_client",
        endpoint="commerce/query/2.0/Orders/Orders",
        request_params={"$top": "3", "$select": "Id"},
    )
    # Then the hostile servers, whatever became of the first task.
    refused >> NorceOperator(
        task_id="echo_authorization",
        norce_conn_id="norce_echo",
        endpoint="commerce/query/2.0/Orders/Orders",
        request_params={"$top": "1"},
        trigger_rule="all_done",
    )
    refused >> NorceOperator(
        task_id="echo_token_form",
        norce_conn_id="norce_echo_form",
        endpoint="commerce/query/2.0/Orders/Orders",
        trigger_rule="all_done",
    )


with DAG(dag_id="secrets_audit_call", **AUDIT_DAG):
    NorceOperator(
        task_id="list_orders",
        endpoint="commerce/query/2.0/Orders/Orders",
        request_params={"$top": "3", "$select": "Id"},
    )


with DAG(dag_id="secrets_audit_canary", **AUDIT_DAG):

    @task
    def plant(token: str) -> str:
        import base64
        import os
        from urllib.parse import quote

        from airflow_provider_norce.exceptions import NorceError

        print(f"secrets-audit canary (raw, on purpose): {token}")
        folder = os.path.join(os.environ["AIRFLOW_HOME"], "logs", "secrets_audit_canary")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "canary.log"), "w", encoding="utf-8") as handle:
            handle.write(f"canary {token}\n")
        try:
            raise NorceError("canary " + base64.b64encode(token.encode()).decode())
        except NorceError:
            pass
        return quote(token, safe="")

    plant("{{ dag_run.conf['canary'] }}")
