"""issued_tokens() / GET /_sim/tokens (the secrets audit's list) and expire_tokens() / POST /_sim/expire."""

from __future__ import annotations

import requests

PATH = "/commerce/metadata/1.1/GetApplication"
ITEMS = [{"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 5}]


def _new_token(client) -> str:
    response = client.token_response()
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_issued_tokens_lists_every_token_in_order_and_never_forgets(make_sim, clock):
    sim, client = make_sim(expires_in=5)
    assert sim.issued_tokens() == []
    first = _new_token(client)
    clock.advance(10)  # first is expired now
    second = _new_token(client)
    sim.revoke_tokens()  # both are forgotten by the identity service
    third = _new_token(client)
    sim.identity._tokens.clear()  # as the periodic prune of a long-running simulator would
    assert sim.issued_tokens() == [first, second, third]
    assert len(set(sim.issued_tokens())) == 3
    over_http = requests.get(sim.base_url + "/_sim/tokens", timeout=5)
    assert over_http.status_code == 200
    assert over_http.json() == {"tokens": [first, second, third]}
    requests.post(sim.base_url + "/_sim/reset?rate_limits=true", timeout=5)
    assert sim.issued_tokens() == [first, second, third], "a counter reset keeps the audit list"


def test_issued_tokens_is_a_copy(make_sim):
    sim, client = make_sim()
    _new_token(client)
    sim.issued_tokens().clear()
    assert len(sim.issued_tokens()) == 1


def test_expire_tokens_makes_every_issued_token_expired_without_moving_the_clock(make_sim, clock):
    sim, client = make_sim(expires_in=600, job_duration=10)
    old = _new_token(client)
    other = _new_token(client)
    headers = {"Authorization": f"Bearer {old}", "ApplicationId": str(sim.application_id)}
    job_id = client.import_("Product/ImportOnhands", ITEMS).json()["JobId"]  # a job in progress
    status_before = client.job(job_id)["StatusId"]
    before = clock()
    sim.expire_tokens()
    assert clock() == before, "the simulator clock did not move"
    for token in (old, other):
        answer = requests.get(
            sim.base_url + PATH,
            headers={**headers, "Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert answer.status_code == 401
        assert "The access token expired." in answer.json()["Message"]
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    fresh = _new_token(client)
    fresh_headers = {**headers, "Authorization": f"Bearer {fresh}"}
    assert requests.get(sim.base_url + PATH, headers=fresh_headers, timeout=5).status_code == 200
    job = requests.get(
        f"{sim.base_url}/commerce/connect/4.0/Job/Get?id={job_id}", headers=fresh_headers, timeout=5
    ).json()
    assert job["StatusId"] == status_before, "jobs did not advance"
    assert sim.counters()["api_401"] == 2


def test_expire_over_http_and_tokens_issued_afterwards_live_their_full_lifetime(make_sim, clock):
    sim, client = make_sim(expires_in=60)
    assert client.get(PATH).status_code == 200
    assert requests.post(sim.base_url + "/_sim/expire", timeout=5).json() == {"ok": True}
    assert client.get(PATH).status_code == 401
    client._token = None
    assert client.get(PATH).status_code == 200
    clock.advance(59)
    assert client.get(PATH).status_code == 200
    clock.advance(1)
    assert client.get(PATH).status_code == 401


def test_expire_tokens_on_a_real_clock(make_sim):
    sim, client = make_sim(clock=None)
    assert client.get(PATH).status_code == 200
    sim.expire_tokens()
    answer = client.get(PATH)
    assert answer.status_code == 401
    assert "expired" in answer.json()["Message"]
