"""The /_sim/ HTTP control API, for tests that steer a simulator running in another process."""

from __future__ import annotations

import requests

PATH = "/commerce/metadata/1.1/GetApplication"


def test_counters_reset_and_not_counted_as_api_traffic(make_sim):
    sim, client = make_sim()
    client.get(PATH)
    counters = requests.get(sim.base_url + "/_sim/counters", timeout=5).json()
    assert counters["tokens_issued"] == 1
    assert counters["requests"] == {"POST /identity/1.0/connect/token": 1, f"GET {PATH}": 1}
    assert requests.post(sim.base_url + "/_sim/reset", timeout=5).json() == {"ok": True}
    after = sim.counters()
    assert after["tokens_issued"] == 0
    assert after["requests"] == {}, "/_sim/ calls are never counted"


def test_faults_over_http(make_sim):
    sim, client = make_sim()
    client.token()
    spec = {"endpoint": "api", "kind": "503", "count": 2, "retry_after": 4}
    assert requests.post(sim.base_url + "/_sim/faults", json=spec, timeout=5).status_code == 201
    listed = requests.get(sim.base_url + "/_sim/faults", timeout=5).json()
    assert listed[0]["kind"] == "503" and listed[0]["count"] == 2
    response = client.get(PATH)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "4")
    assert requests.delete(sim.base_url + "/_sim/faults", timeout=5).status_code == 200
    assert client.get(PATH).status_code == 200


def test_bad_fault_spec_is_400(make_sim):
    sim, _ = make_sim()
    for body in (
        {"endpoint": "api", "kind": "nope"},
        {"kind": "500"},
        {"endpoint": "api", "kind": "500", "x": 1},
    ):
        response = requests.post(sim.base_url + "/_sim/faults", json=body, timeout=5)
        assert response.status_code == 400
        assert response.json()["error"]
    assert requests.post(sim.base_url + "/_sim/faults", data="[1]", timeout=5).status_code == 400


def test_revoke_over_http(make_sim):
    sim, client = make_sim()
    assert client.get(PATH).status_code == 200
    requests.post(sim.base_url + "/_sim/revoke", timeout=5)
    assert client.get(PATH).status_code == 401


def test_reset_can_refill_rate_limits(make_sim):
    sim, client = make_sim(token_burst=1)
    assert client.token_response().status_code == 200
    assert client.token_response().status_code == 429
    requests.post(sim.base_url + "/_sim/reset", timeout=5)
    assert client.token_response().status_code == 429, "a plain reset keeps the limiter state"
    requests.post(sim.base_url + "/_sim/reset?rate_limits=true", timeout=5)
    assert client.token_response().status_code == 200


def test_info_and_unknown_control(make_sim):
    sim, _ = make_sim()
    info = requests.get(sim.base_url + "/_sim/info", timeout=5).json()
    assert info["token_url"] == sim.token_url
    assert info["connection"] == sim.connection_dict()
    assert requests.get(sim.base_url + "/_sim/nothing", timeout=5).status_code == 404
