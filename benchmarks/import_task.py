"""One Connect import, in a fresh process (run as a script by bench_import.py); prints one JSON line.

``norce FILE``: ``NorceConnectImportOperator`` imports the JSON-lines or JSON-array file (validation scan,
then batches read and encoded one ahead of the POSTs), without waiting for the jobs. ``raw FILE``: the
baseline, a JSON-lines file whose lines are already compact JSON posted as they are: each batch's lines
joined into an array (the very bytes the operator posts) and sent with plain ``requests.post`` on one
session, same batch size, same header; no validation, no parsing, no ledger.
"""

from __future__ import annotations

import itertools
import json
import os
import sys

from bench_common import print_measured

METHOD = "Product/ImportOnhands"
BATCH_SIZE = 1000
#: Both routes send this header (the operator completes it with FullFile: false itself).
HEADER = {
    "AccountId": 1,
    "FullFile": False,
    "SkuOnhandFieldsThatAreSet": [
        "OnhandValue", "IncomingValue", "NextDeliveryDate", "LeadTimeDayCount", "IsActive",
    ],
}  # fmt: skip


def norce(path: str) -> int:
    from airflow_provider_norce.operators.connect import NorceConnectImportOperator

    op = NorceConnectImportOperator(
        task_id="import",
        import_method=METHOD,
        items_path=path,
        connect_header=HEADER,
        batch_size=BATCH_SIZE,
        wait_for_completion=False,
    )
    jobs = op.execute({"params": {}})
    return len(jobs)


def raw(path: str) -> int:
    import requests
    from bench_common import token_by_hand

    conn = json.loads(os.environ["AIRFLOW_CONN_NORCE_DEFAULT"])
    token = token_by_hand(conn).json()["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "ApplicationId": conn["extra"]["application_id"],
        "X-StormConnect-Header": json.dumps(HEADER),
        "Content-Type": "application/json; charset=utf-8",
    }
    url = conn["host"] + "/commerce/connect/4.0/" + METHOD
    jobs = 0
    with requests.Session() as session, open(path, "rb") as handle:
        while lines := list(itertools.islice(handle, BATCH_SIZE)):
            body = b"[" + b",".join(line.rstrip(b"\n") for line in lines) + b"]"
            response = session.post(url, data=body, headers=headers, timeout=300)
            response.raise_for_status()
            jobs += 1
    return jobs


def main() -> None:
    route, path = sys.argv[1], sys.argv[2]
    # Imports are the same for any item count: start the clock at the import.
    if route == "norce":
        import airflow_provider_norce.operators.connect  # noqa: F401
    else:
        import requests  # noqa: F401
    print_measured(lambda: {"jobs": norce(path) if route == "norce" else raw(path)})


if __name__ == "__main__":
    main()
