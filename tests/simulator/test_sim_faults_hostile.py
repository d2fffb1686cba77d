"""The hostile fault kinds: 401/403, reset, 200s that are not what they claim, HTML pages, redirects,
foreign nextLinks, and the token endpoint's refusals and malformed answers. Real sockets, plain requests."""

from __future__ import annotations

import json
import socket

import pytest
import requests

PATH = "/commerce/metadata/1.1/GetApplication"
QUERY = "/commerce/query/2.0/Orders/Orders"
IMPORT = "/commerce/connect/4.0/Product/ImportOnhands"
ITEMS = [{"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 5}]
FOREIGN = "https://evil.example:8443/commerce/query/2.0/Orders/Orders?$skip=500"


# -- 401 / 403 -----------------------------------------------------------------------------------------------
def test_401_twice_then_through_with_the_gates_body(make_sim):
    sim, client = make_sim()
    client.token()
    sim.add_fault("api", "401", count=2)
    answers = [client.get(PATH) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 200]
    assert answers[0].headers["WWW-Authenticate"].startswith("Bearer")
    assert answers[0].json()["Message"].startswith("Authorization has been denied for this request.")
    assert sim.counters()["api_401"] == 2


def test_403_and_status_override(make_sim):
    sim, client = make_sim()
    client.token()
    sim.add_fault("query", "403", count=1)
    sim.add_fault("query", "401", count=1, status=419)
    forbidden = client.get(QUERY)
    assert forbidden.status_code == 403
    assert forbidden.headers["WWW-Authenticate"].startswith("Bearer")
    assert "no access to application" in forbidden.json()["Message"]
    assert client.get(QUERY).status_code == 419
    assert client.get(QUERY).status_code == 200


def test_401_on_the_token_endpoint_is_an_oauth_error(make_sim):
    sim, client = make_sim()
    sim.add_fault("token", "401", count=1)
    answer = client.token_response()
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert sim.counters()["tokens_issued"] == 0


# -- reset ---------------------------------------------------------------------------------------------------
def test_reset_is_a_tcp_rst_without_an_answer(make_sim):
    sim, client = make_sim()
    token = client.token()
    sim.add_fault("api", "reset", count=1)
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: {sim.host}:{sim.port}\r\nAuthorization: Bearer {token}\r\n"
        f"ApplicationId: {sim.application_id}\r\n\r\n"
    ).encode()
    with socket.create_connection((sim.host, sim.port), timeout=5) as raw:
        raw.sendall(request)
        try:
            data = raw.recv(4096)
        except ConnectionResetError:
            data = None
    assert data is None, f"expected a TCP RST, got {data!r} (b'' is a FIN: a graceful close)"
    assert client.get(PATH).status_code == 200, "the next connection is served"


def test_reset_before_processing_creates_no_job(make_sim):
    sim, client = make_sim(job_duration=0)
    client.token()
    sim.add_fault("connect", "reset", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.import_("Product/ImportOnhands", ITEMS)
    assert sim.counters()["jobs_created"] == 0
    assert sim.counters()["requests"][f"POST {IMPORT}"] == 1


def test_reset_after_processing_creates_the_job_then_hangs_up(make_sim):
    sim, client = make_sim(job_duration=0)
    client.token()
    sim.add_fault("connect", "reset", count=1, after_processing=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.import_("Product/ImportOnhands", ITEMS)
    assert sim.counters()["jobs_created"] == 1
    assert client.job(1001)["StatusId"] == 2, "the import was processed although the client saw nothing"


def test_reset_on_the_token_endpoint_issues_nothing(make_sim):
    sim, client = make_sim()
    sim.add_fault("token", "reset", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.token_response()
    counters = sim.counters()
    assert (counters["token_requests"], counters["tokens_issued"]) == (1, 0)
    assert sim.issued_tokens() == []


# -- 200s that are not a success -----------------------------------------------------------------------------
def test_odata_error_envelope_in_a_200_is_not_processed(make_sim):
    sim, client = make_sim(job_duration=0)
    client.token()
    sim.add_fault("connect", "odata_error_200", count=1)
    answer = client.import_("Product/ImportOnhands", ITEMS)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json; odata.metadata=minimal"
    assert answer.json() == {
        "error": {"code": "InternalServerError", "message": "Simulated error envelope in a 200."}
    }
    assert sim.counters()["jobs_created"] == 0


def test_not_json_200(make_sim):
    sim, client = make_sim(orders=10)
    client.token()
    sim.add_fault("query", "not_json", count=1)
    answer = client.get(QUERY)
    assert (answer.status_code, answer.headers["Content-Type"]) == (200, "text/plain")
    assert answer.text == "Service temporarily unavailable"
    with pytest.raises(ValueError):
        answer.json()
    assert client.get(QUERY).status_code == 200


def test_html_proxy_page_200_by_default_or_a_given_status(make_sim):
    sim, client = make_sim(job_duration=0)
    client.token()
    sim.add_fault("api", "html", count=1)
    sim.add_fault("connect", "html", count=1, status=502)
    page = client.get(PATH)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 700 <= len(page.content) <= 2000
    assert "<title>" in page.text and "</html>" in page.text
    gateway = client.import_("Product/ImportOnhands", ITEMS)
    assert gateway.status_code == 502
    assert "502 Bad Gateway" in gateway.text
    assert sim.counters()["jobs_created"] == 0


# -- redirects and foreign nextLinks ------------------------------------------------------------------------
def test_redirect_to_another_host_is_not_processed(make_sim):
    sim, client = make_sim(job_duration=0)
    client.token()
    sim.add_fault("connect", "redirect", count=1, location="https://other.example/steal")
    answer = client.import_("Product/ImportOnhands", ITEMS, allow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["Location"] == "https://other.example/steal"
    assert sim.counters()["jobs_created"] == 0


@pytest.mark.parametrize("status", [301, 302, 303, 308])
def test_redirect_status_can_be_chosen(make_sim, status):
    sim, client = make_sim()
    client.token()
    target = f"http://127.0.0.1:1/elsewhere{status}"
    sim.add_fault("api", "redirect", count=1, status=status, location=target)
    answer = client.get(PATH, allow_redirects=False)
    assert (answer.status_code, answer.headers["Location"]) == (status, target)


def test_next_link_replaces_the_pages_link_and_is_query_only(make_sim):
    sim, client = make_sim(orders=1200, page_size=500)
    client.token()
    sim.add_fault("api", "next_link", count=1, location=FOREIGN)
    assert client.get(PATH).status_code == 200, "not a Query call: the fault does not fire"
    assert sim.counters()["requests"] == {
        "POST /identity/1.0/connect/token": 1,
        f"GET {PATH}": 1,
    }
    assert len(requests.get(sim.base_url + "/_sim/faults", timeout=5).json()) == 1
    page = client.get(QUERY).json()
    assert page["@odata.nextLink"] == FOREIGN
    assert len(page["value"]) == 500, "the request was processed normally"
    assert "@odata.nextLink" in client.get(QUERY).json(), "count=1: used up"
    assert client.get(QUERY).json()["@odata.nextLink"] != FOREIGN


def test_next_link_is_added_to_a_last_page(make_sim):
    sim, client = make_sim(orders=10)
    client.token()
    assert "@odata.nextLink" not in client.get(QUERY).json()
    sim.add_fault("query", "next_link", count=1, location="http://127.0.0.1:9/other-port")
    page = client.get(QUERY)
    assert page.headers["Content-Type"].startswith("application/json")
    assert page.json()["@odata.nextLink"] == "http://127.0.0.1:9/other-port"


# -- token endpoint only ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "status"), [("invalid_client", 401), ("invalid_scope", 400), ("unauthorized_client", 400)]
)
def test_token_refusals_are_rfc6749_and_take_no_rate_limit_slot(make_sim, kind, status):
    sim, client = make_sim(token_burst=1)
    sim.add_fault("token", kind, count=1)
    refused = client.token_response()
    assert refused.status_code == status
    body = refused.json()
    assert body["error"] == kind and body["error_description"]
    assert refused.headers["Cache-Control"] == "no-store"
    assert client.token_response().status_code == 200, "the only limiter slot was still free"
    assert sim.counters()["tokens_issued"] == 1


@pytest.mark.parametrize("kind", ["invalid_client", "invalid_scope", "unauthorized_client", "token_answer"])
@pytest.mark.parametrize("endpoint", ["api", "query", "connect", "jobs", "/commerce/"])
def test_token_only_kinds_are_refused_elsewhere(make_sim, kind, endpoint):
    sim, _ = make_sim()
    variant = "expires_in_0" if kind == "token_answer" else None
    with pytest.raises(ValueError, match="token endpoint only"):
        sim.add_fault(endpoint, kind, variant=variant)


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("expires_in_0", 0),
        ("expires_in_negative", -60),
        ("expires_in_string", "soon"),
        ("expires_in_ten_years", 315_360_000),
        ("expires_in_missing", None),
    ],
)
def test_token_answer_variants_issue_a_real_token_with_a_rewritten_expires_in(
    make_sim, clock, variant, expected
):
    sim, client = make_sim(expires_in=60, token_burst=1)
    sim.add_fault("token", "token_answer", count=1, variant=variant)
    answer = client.token_response()
    assert answer.status_code == 200
    body = answer.json()
    assert body.get("expires_in") == expected
    assert ("expires_in" in body) is (variant != "expires_in_missing")
    token = body["access_token"]
    assert sim.issued_tokens() == [token]
    assert sim.counters()["tokens_issued"] == 1
    headers = {"Authorization": f"Bearer {token}", "ApplicationId": str(sim.application_id)}
    clock.advance(59)
    assert requests.get(sim.base_url + PATH, headers=headers, timeout=5).status_code == 200
    clock.advance(1)
    expired = requests.get(sim.base_url + PATH, headers=headers, timeout=5)
    assert expired.status_code == 401, "valid for the simulator's own expires_in, whatever the answer said"
    assert client.token_response().status_code == 200, "the fault took no rate-limit slot"


def test_token_answer_refuses_wrong_credentials_as_usual(make_sim):
    sim, client = make_sim()
    sim.add_fault("token", "token_answer", count=1, variant="expires_in_0")
    answer = client.token_response(client_secret="wrong")
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    assert sim.issued_tokens() == []


def test_token_answer_without_access_token_and_not_json_issue_nothing(make_sim):
    sim, client = make_sim()
    sim.add_fault("token", "token_answer", count=1, variant="no_access_token")
    sim.add_fault("token", "token_answer", count=1, variant="not_json")
    missing = client.token_response()
    assert missing.status_code == 200
    assert "access_token" not in missing.json() and missing.json()["token_type"] == "Bearer"
    page = client.token_response()
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        json.loads(page.text)
    assert sim.issued_tokens() == [] and sim.counters()["tokens_issued"] == 0
    assert client.token_response().status_code == 200


# -- the API -----------------------------------------------------------------------------------------------
def test_variant_and_location_over_http(make_sim):
    sim, client = make_sim()
    specs = [
        {"endpoint": "token", "kind": "token_answer", "variant": "expires_in_string", "count": 1},
        {"endpoint": "api", "kind": "redirect", "location": "https://x.example/", "status": 308},
    ]
    for spec in specs:
        assert requests.post(sim.base_url + "/_sim/faults", json=spec, timeout=5).status_code == 201
    listed = requests.get(sim.base_url + "/_sim/faults", timeout=5).json()
    assert [(f["kind"], f["variant"], f["location"]) for f in listed] == [
        ("token_answer", "expires_in_string", None),
        ("redirect", None, "https://x.example/"),
    ]
    assert client.token_response().json()["expires_in"] == "soon"
    bad = requests.post(
        sim.base_url + "/_sim/faults", json={"endpoint": "api", "kind": "redirect"}, timeout=5
    )
    assert bad.status_code == 400 and "location" in bad.json()["error"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "api", "kind": "redirect"},
        {"endpoint": "api", "kind": "redirect", "location": " "},
        {"endpoint": "api", "kind": "redirect", "location": "http://a/\r\nX-Evil: 1"},
        {"endpoint": "api", "kind": "redirect", "location": "http://a/", "status": 200},
        {"endpoint": "query", "kind": "next_link"},
        {"endpoint": "connect", "kind": "next_link", "location": "http://a/"},
        {"endpoint": "token", "kind": "next_link", "location": "http://a/"},
        {"endpoint": "api", "kind": "500", "location": "http://a/"},
        {"endpoint": "token", "kind": "token_answer"},
        {"endpoint": "token", "kind": "token_answer", "variant": "nope"},
        {"endpoint": "token", "kind": "invalid_client", "variant": "expires_in_0"},
    ],
)
def test_bad_new_fault_arguments_are_rejected(make_sim, kwargs):
    sim, _ = make_sim()
    with pytest.raises(ValueError):
        sim.add_fault(**kwargs)
