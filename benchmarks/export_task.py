"""One export, in a fresh process (run as a script by bench_export.py); prints one JSON line.

``norce OUT``: ``NorceQueryExportOperator`` to a JSON-lines file. ``http OUT``: the stock ``HttpOperator``
with a ``pagination_function`` following ``@odata.nextLink`` and a token fetched by hand (what users build
today), its rows then written to the same kind of file. Both read every order of November 2026.
"""

from __future__ import annotations

import json
import os
import sys

from bench_common import print_measured

WINDOW = "Updated ge 2026-11-01T00:00:00Z and Updated lt 2026-12-01T00:00:00Z"


def norce(out: str) -> int:
    from airflow_provider_norce.operators.query import NorceQueryExportOperator

    # Every application's orders, as the HttpOperator baseline reads them: the same rows on both routes.
    op = NorceQueryExportOperator(
        task_id="export", destination=out, filter=WINDOW, filter_application=False, progress_interval=3600
    )
    return int(op.execute({"params": {}})["rows"])


def http(out: str) -> int:
    from urllib.parse import quote

    from airflow.providers.http.operators.http import HttpOperator
    from bench_common import token_by_hand

    conn = json.loads(os.environ["AIRFLOW_CONN_NORCE_DEFAULT"])
    base = conn["host"]
    token = token_by_hand(conn).json()["access_token"]

    def next_page(response):
        link = response.json().get("@odata.nextLink")
        return {"endpoint": link[len(base) + 1 :]} if link else None

    op = HttpOperator(
        task_id="export",
        http_conn_id="norce_http",
        method="GET",
        endpoint="commerce/query/2.0/Orders/Orders?$filter=" + quote(WINDOW),
        headers={"Authorization": f"Bearer {token}", "ApplicationId": conn["extra"]["application_id"]},
        pagination_function=next_page,
        response_filter=lambda responses: [row for r in responses for row in r.json()["value"]],
        log_response=False,
    )
    rows = op.execute({"params": {}})
    with open(out, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return len(rows)


def main() -> None:
    route, out = sys.argv[1], sys.argv[2]
    # Imports and connection set-up are the same for any row count: start the clock at the export.
    if route == "norce":
        import airflow_provider_norce.operators.query  # noqa: F401
    else:
        import airflow.providers.http.operators.http  # noqa: F401
    print_measured(lambda: {"rows": norce(out) if route == "norce" else http(out)})


if __name__ == "__main__":
    main()
