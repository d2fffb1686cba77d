"""The hook of the docs page operators.md ("The hook"), as a function a test runs against the simulator.

tests/docs/test_examples_a.py calls :func:`hook_calls` with ``norce_default`` pointing at the local Norce
simulator; operators.md includes the part between the markers.
"""

from __future__ import annotations

from typing import Any


def hook_calls() -> dict[str, Any]:
    """Every call the page shows; returns what each gave, for the test to check."""
    # [START hook]
    from airflow_provider_norce.hooks.norce import NorceHook

    hook = NorceHook(norce_conn_id="norce_default")  # no connection look-up, no network here
    orders = hook.paginate(
        "commerce/query/2.0/Orders/Orders",  # the ApplicationId header does not filter orders
        params={"$filter": "ApplicationId eq 1234 and Updated ge 2026-11-27T00:00:00Z"},
    )
    for order in orders:  # follows @odata.nextLink, one page in memory at a time
        print(order["OrderNo"])
    # The raw hook sends what you give it: name the fields Norce may write (here 3 = OnhandValue), or it
    # writes none. NorceConnectImportOperator checks items and derives this mask for you.
    response = hook.run(
        "commerce/connect/4.0/Product/ImportOnhands",
        method="POST",
        json=[{"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 5}],
        headers={"X-StormConnect-Header": '{"AccountId":1,"FullFile":false,"SkuOnhandFieldsThatAreSet":[3]}'},
    )
    job = hook.run_json("commerce/connect/4.0/Job/Get", params={"id": response.json()["JobId"]})
    session = hook.get_conn()  # a requests.Session that adds the token for the Norce host only
    token = hook.get_access_token()  # cached; renewed ahead of expiry
    ok, message = hook.test_connection()
    # [END hook]
    return {
        "last_order": order,  # the loop ran: the simulator has orders updated in the window
        "job": job,
        "session": session,
        "token": token,
        "ok": ok,
        "message": message,
    }
