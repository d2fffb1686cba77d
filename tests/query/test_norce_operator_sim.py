"""NorceOperator against the local Norce simulator over real HTTP."""

from __future__ import annotations

import json

import pytest
from norce_query_testlib import context_for, order_ids_in_window, set_sim_connection, utc

from airflow_provider_norce.operators.norce import NorceOperator

CONNECT_HEADER = json.dumps({"AccountId": 1, "FullFile": False})


def run(op: NorceOperator, **context_entries):
    context = context_for(None, None, **context_entries)
    op.render_template_fields(context)
    return op.execute(context)


def test_get_returns_parsed_json(norce_simulator):
    op = NorceOperator(
        task_id="app", endpoint="commerce/metadata/1.1/GetApplication", request_params={"format": "json"}
    )
    result = run(op)
    assert result["Id"] == norce_simulator.sim.application_id
    assert norce_simulator.counters()["requests"]["GET /commerce/metadata/1.1/GetApplication"] == 1


def test_post_import_then_get_job(norce_simulator):
    post = NorceOperator(
        task_id="import",
        endpoint="commerce/connect/4.0/Product/ImportOnhands",
        method="POST",
        json=[{"PartNo": "100001", "WarehouseCode": "MAIN", "OnhandValue": 77}],
        headers={"X-StormConnect-Header": CONNECT_HEADER},
    )
    answer = run(post)
    assert answer["ValidationSummary"]["NrOfItemsInTotal"] == 1
    job_id = answer["JobId"]
    assert norce_simulator.counters()["jobs_created"] == 1

    get = NorceOperator(task_id="job", endpoint="commerce/connect/4.0/Job/Get", request_params={"id": job_id})
    job = run(get)
    assert str(job["JobId"]) == str(job_id)
    assert job["StatusId"] in (1, 2, 5, 6)


@pytest.mark.norce_simulator(orders=2000, page_size=100)
def test_paginate_combines_every_page(norce_simulator):
    start, end = utc(2026, 11, 3), utc(2026, 11, 9)
    op = NorceOperator(
        task_id="orders",
        endpoint="commerce/query/2.0/Orders/Orders",
        request_params={
            "$filter": "(Updated ge 2026-11-03T00:00:00Z and Updated lt 2026-11-09T00:00:00Z) or (Updated eq null "
            "and Created ge 2026-11-03T00:00:00Z and Created lt 2026-11-09T00:00:00Z)"
        },
        paginate=True,
    )
    items = run(op)
    expected = order_ids_in_window(norce_simulator.sim, start, end, all_applications=True)
    assert len(expected) > 300  # more than three pages of 100
    assert [item["Id"] for item in items] == expected
    pages = norce_simulator.counters()["requests"]["GET /commerce/query/2.0/Orders/Orders"]
    assert pages == -(-len(expected) // 100)


def test_response_check_failure_is_clear(norce_simulator):
    op = NorceOperator(
        task_id="checked",
        endpoint="commerce/metadata/1.1/GetApplication",
        response_check=lambda app: app["Id"] == -1,
    )
    from airflow.providers.common.compat.sdk import AirflowException

    with pytest.raises(AirflowException, match=r"'checked'.*response_check returned False.*GetApplication"):
        run(op)


def test_response_check_and_filter_get_context_kwargs(norce_simulator):
    seen = {}

    def check(app, ds):
        seen["ds"] = ds
        return app["Id"] == 1234

    op_check = NorceOperator(
        task_id="checked", endpoint="commerce/metadata/1.1/GetApplication", response_check=check
    )
    assert run(op_check, ds="2026-11-20")["Id"] == 1234
    assert seen["ds"] == "2026-11-20"
    op = NorceOperator(
        task_id="filtered",
        endpoint="commerce/query/2.0/Products/Products",
        request_params={"$top": "3"},
        response_filter=lambda page, ds: {"ds": ds, "ids": [p["Id"] for p in page["value"]]},
    )
    assert run(op, ds="2026-11-21") == {"ds": "2026-11-21", "ids": [1, 2, 3]}


def test_conn_id_and_arguments_are_templated(norce_simulator, monkeypatch):
    set_sim_connection(monkeypatch, norce_simulator.sim, conn_id="norce_sim_templated")
    monkeypatch.delenv("AIRFLOW_CONN_NORCE_DEFAULT")  # only the templated id can reach the simulator
    op = NorceOperator(
        task_id="templated",
        endpoint="{{ params.base }}/Products/Products",
        request_params={"$top": "{{ params.top }}"},
        paginate="{{ params.paginate }}",
        norce_conn_id="{{ params.conn }}",
    )
    assert "norce_conn_id" in NorceOperator.template_fields
    params = {"conn": "norce_sim_templated", "base": "commerce/query/2.0", "top": "2", "paginate": "true"}
    items = run(op, params=params)
    assert op.norce_conn_id == "norce_sim_templated"
    assert [item["Id"] for item in items] == [1, 2]


def test_paginate_refuses_post(norce_simulator):
    op = NorceOperator(
        task_id="bad", endpoint="commerce/query/2.0/Orders/Orders", method="POST", paginate=True
    )
    with pytest.raises(ValueError, match=r"'bad'.*GET"):
        run(op)
    assert norce_simulator.counters()["requests"] == {}


def test_odata_options_in_task_params_are_refused():
    with pytest.raises(ValueError, match="request_params"):
        NorceOperator(task_id="wrong", endpoint="x", params={"$top": 1})


def test_init_makes_no_connection_look_up(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NORCE_DEFAULT", raising=False)
    op = NorceOperator(
        task_id="lazy", endpoint="commerce/metadata/1.1/GetApplication", norce_conn_id="missing"
    )
    assert op.norce_conn_id == "missing"
