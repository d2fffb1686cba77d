"""Injected faults: every kind, count and ratio, endpoint scoping and after_processing."""

from __future__ import annotations

import json

import pytest
import requests

PATH = "/commerce/metadata/1.1/GetApplication"
QUERY = "/commerce/query/2.0/Orders/Orders"
#: A hold far longer than any client timeout here, so a client always gives up first however loaded the
#: machine; the simulator ends the hold when it stops, so no test waits for it.
HELD = 60.0


def test_429_fault_with_and_without_retry_after(make_sim):
    sim, client = make_sim(orders=10)
    client.token()
    sim.add_fault("api", "429", count=1, retry_after=7)
    sim.add_fault("api", "429", count=1, retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    sim.add_fault("api", "429", count=1)
    first, second, third = (client.get(PATH) for _ in range(3))
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    assert second.headers["Retry-After"] == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert third.status_code == 429 and "Retry-After" not in third.headers
    assert client.get(PATH).status_code == 200, "count faults are used up"
    assert sim.counters()["api_429"] == 3


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
def test_server_error_kinds(make_sim, kind):
    sim, client = make_sim()
    client.token()
    sim.add_fault("api", kind, count=2)
    assert [client.get(PATH).status_code for _ in range(3)] == [int(kind), int(kind), 200]


def test_gateway_errors_are_html_and_status_can_be_overridden(make_sim):
    sim, client = make_sim()
    client.token()
    sim.add_fault("api", "503", count=1)
    sim.add_fault("api", "500", count=1, status=501)
    gateway = client.get(PATH)
    assert gateway.headers["Content-Type"].startswith("text/html")
    assert client.get(PATH).status_code == 501


def test_token_endpoint_fault_is_counted_as_token_429(make_sim):
    sim, client = make_sim()
    sim.add_fault("token", "429", count=1, retry_after=3)
    response = client.token_response()
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert client.token_response().status_code == 200
    counters = sim.counters()
    assert (counters["token_requests"], counters["token_429"], counters["tokens_issued"]) == (2, 1, 1)


def test_endpoint_scoping(make_sim):
    sim, client = make_sim(orders=10)
    client.token()
    sim.add_fault("query", "500")
    sim.add_fault("/commerce/connect/4.0/job/", "502")
    assert client.get(PATH).status_code == 200
    assert client.get(QUERY).status_code == 500
    assert client.get("/commerce/connect/4.0/Job/Get?id=1").status_code == 502
    assert client.import_("Product/ImportOnhands", []).status_code == 200
    assert client.token_response().status_code == 200
    sim.clear_faults()
    assert client.get(QUERY).status_code == 200


def test_jobs_and_connect_endpoints(make_sim):
    sim, client = make_sim()
    client.token()
    sim.add_fault("jobs", "503", count=1)
    sim.add_fault("connect", "500", count=1)
    assert client.import_("Product/ImportOnhands", []).status_code == 500
    assert client.get("/commerce/connect/4.0/Job/Get?id=1001").status_code == 503
    assert sim.counters()["jobs_created"] == 0, "a fault before processing creates no job"


def test_timeout_holds_then_closes(make_sim):
    sim, client = make_sim()
    client.token()
    sim.add_fault("api", "timeout", count=1, delay=HELD)  # released when the simulator stops
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.get(PATH, timeout=0.1)
    fresh = requests.get(sim.base_url + PATH, headers=client.headers(), timeout=5)
    assert fresh.status_code == 200


def test_timeout_closes_the_connection_without_an_answer(make_sim):
    sim, client = make_sim()
    client.token()
    sim.add_fault("api", "timeout", count=1, delay=0.05)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(sim.base_url + PATH, headers=client.headers(), timeout=5)


def test_drop_cuts_the_body_short(make_sim):
    sim, client = make_sim(orders=50)
    client.token()
    sim.add_fault("query", "drop", count=1)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.get(sim.base_url + QUERY, headers=client.headers(), timeout=5)
    assert client.get(QUERY).status_code == 200


def test_truncated_is_a_complete_200_with_broken_json(make_sim):
    sim, client = make_sim(orders=50)
    client.token()
    sim.add_fault("query", "truncated", count=1)
    response = client.get(QUERY)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_delay_adds_latency_before_the_fault(make_sim):
    sim, client = make_sim()
    client.token()
    sim.add_fault("api", "503", count=1, delay=HELD)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.get(PATH, timeout=0.05)


def test_ratio_faults_are_deterministic_by_seed(make_sim):
    def pattern(seed: int) -> list[int]:
        sim, client = make_sim(seed=seed)
        client.token()
        sim.add_fault("api", "503", ratio=0.5)
        return [client.get(PATH).status_code for _ in range(40)]

    first = pattern(5)
    assert first == pattern(5)
    hits = first.count(503)
    assert 8 <= hits <= 32
    assert set(first) == {200, 503}


def test_ratio_with_count_stops_after_count_hits(make_sim):
    sim, client = make_sim()
    client.token()
    sim.add_fault("api", "500", ratio=0.5, count=3)
    statuses = [client.get(PATH).status_code for _ in range(40)]
    assert statuses.count(500) == 3


def test_after_processing_creates_the_job_then_fails_the_answer(make_sim):
    sim, client = make_sim(job_duration=0)
    client.token()
    sim.add_fault("connect", "503", count=1, after_processing=True)
    items = [{"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 5}]
    assert client.import_("Product/ImportOnhands", items).status_code == 503
    assert sim.counters()["jobs_created"] == 1
    assert client.job(1001)["StatusId"] == 2, "the import was processed although the client saw a 503"


def test_after_processing_drop_and_timeout(make_sim):
    sim, client = make_sim(job_duration=0)
    client.token()
    sim.add_fault("connect", "drop", count=1, after_processing=True)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        client.import_("Product/ImportOnhands", [])
    sim.add_fault("connect", "timeout", count=1, delay=HELD, after_processing=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.session.post(
            sim.base_url + "/commerce/connect/4.0/Product/ImportOnhands",
            data="[]",
            headers={**client.headers(), "X-StormConnect-Header": '{"AccountId":1,"FullFile":false}'},
            timeout=0.1,
        )
    assert sim.counters()["jobs_created"] == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "api", "kind": "418"},
        {"endpoint": "somewhere", "kind": "500"},
        {"endpoint": "api", "kind": "500", "count": 0},
        {"endpoint": "api", "kind": "500", "ratio": 1.5},
        {"endpoint": "api", "kind": "500", "status": 42},
        {"endpoint": "api", "kind": "timeout", "delay": -1},
    ],
)
def test_bad_fault_arguments_are_rejected(make_sim, kwargs):
    sim, _ = make_sim()
    with pytest.raises(ValueError):
        sim.add_fault(**kwargs)
