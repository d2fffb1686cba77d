"""Identity: token success, RFC 6749 errors, JWT claims and the per-IP rate limit on a fake clock."""

from __future__ import annotations

import base64
import json

import pytest
import requests


def _segment(token: str, index: int) -> dict:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_token_success_returns_bearer_jwt_with_claims(make_sim, clock):
    sim, client = make_sim(expires_in=600)
    response = client.token_response()
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "production"
    token = body["access_token"]
    assert token.startswith("eyAi"), "default tokens must dodge Airflow's eyJ masking"
    header, claims = _segment(token, 0), _segment(token, 1)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert claims["client_id"] == "sim-client"
    assert claims["scope"] == ["production"]
    assert claims["exp"] - claims["iat"] == 600
    assert claims["jti"]
    assert sim.identity.verify_signature(token)
    assert not sim.identity.verify_signature(token[:-2] + "xx")
    assert sim.counters()["tokens_issued"] == 1


def test_standard_jwt_option_gives_eyj_tokens(make_sim):
    _, client = make_sim(standard_jwt=True)
    token = client.token()
    assert token.startswith("eyJ")
    assert _segment(token, 0)["alg"] == "HS256"


def test_jwt_exp_follows_the_simulator_clock(make_sim, clock):
    _, client = make_sim(expires_in=100)
    first = _segment(client.token_response().json()["access_token"], 1)
    clock.advance(50)
    second = _segment(client.token_response().json()["access_token"], 1)
    assert second["iat"] - first["iat"] == 50


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "invalid_request"),
        ({"client_secret": None}, 400, "invalid_request"),
        ({"scope": None}, 400, "invalid_request"),
        ({"scope": "staging"}, 400, "invalid_scope"),
    ],
)
def test_token_errors_follow_rfc6749(make_sim, form, status, error):
    _, client = make_sim()
    response = client.token_response(**form)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_invalid_scope_names_the_allowed_scopes_and_can_be_narrowed(make_sim):
    _, client = make_sim(allowed_scopes={"stage"})
    response = client.token_response(scope="production")
    assert response.status_code == 400
    assert "stage" in response.json()["error_description"]
    assert client.token_response(scope="stage").status_code == 200


def test_every_default_scope_spelling_is_accepted(make_sim):
    _, client = make_sim()
    for scope in ("playground", "stage", "production", "prod", "lab", "stage lab"):
        assert client.token_response(scope=scope).status_code == 200, scope


def test_json_body_or_basic_auth_is_not_accepted(make_sim):
    sim, _ = make_sim()
    form = {"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "sim-secret"}
    as_json = requests.post(sim.token_url, json={**form, "scope": "production"}, timeout=5)
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
    basic = requests.post(
        sim.token_url,
        data={"grant_type": "client_credentials", "scope": "production"},
        auth=("sim-client", "sim-secret"),
        timeout=5,
    )
    assert basic.status_code == 400
    assert basic.json()["error"] == "invalid_request"


def test_repeated_parameters_are_rejected(make_sim):
    sim, _ = make_sim()
    body = (
        "grant_type=client_credentials&client_id=sim-client&client_secret=sim-secret&scope=prod&scope=stage"
    )
    response = requests.post(
        sim.token_url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=5
    )
    assert response.status_code == 400
    assert "scope" in response.json()["error_description"]


def test_get_on_token_endpoint_is_405(make_sim):
    sim, _ = make_sim()
    assert requests.get(sim.token_url, timeout=5).status_code == 405


def test_burst_of_20_then_one_slot_every_20_seconds(make_sim, clock):
    sim, client = make_sim()
    for _ in range(20):
        assert client.token_response().status_code == 200
    limited = client.token_response()
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert limited.headers["Retry-After"] == "20"
    clock.advance(19)
    again = client.token_response()
    assert again.status_code == 429, "a 429 must not consume or reset the slot"
    assert again.headers["Retry-After"] == "1"
    clock.advance(1)
    assert client.token_response().status_code == 200
    assert client.token_response().headers["Retry-After"] == "20"
    clock.advance(60)  # three slots
    assert [client.token_response().status_code for _ in range(4)] == [200, 200, 200, 429]
    counters = sim.counters()
    assert counters["tokens_issued"] == 24
    assert counters["token_429"] == 4
    assert counters["token_requests"] == 28


def test_bad_credentials_also_consume_rate_limit_slots(make_sim):
    _, client = make_sim(token_burst=2)
    assert client.token_response(client_secret="bad").status_code == 401
    assert client.token_response(client_secret="bad").status_code == 401
    assert client.token_response().status_code == 429


def test_retry_after_can_be_switched_off(make_sim):
    _, client = make_sim(token_burst=1, retry_after=False)
    assert client.token_response().status_code == 200
    limited = client.token_response()
    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers


def test_refill_rate_is_configurable(make_sim, clock):
    _, client = make_sim(token_burst=1, token_rate_per_minute=60)
    assert client.token_response().status_code == 200
    assert client.token_response().headers["Retry-After"] == "1"
    clock.advance(1)
    assert client.token_response().status_code == 200


def test_token_expires_by_the_simulator_clock(make_sim, clock):
    sim, client = make_sim(expires_in=30)
    path = "/commerce/metadata/1.1/GetApplication?format=json"
    assert client.get(path).status_code == 200
    clock.advance(29.9)
    assert client.get(path).status_code == 200
    clock.advance(0.1)
    expired = client.get(path)
    assert expired.status_code == 401
    assert "expired" in expired.json()["Message"]
    assert sim.counters()["api_401"] == 1


def test_revoked_tokens_answer_401(make_sim):
    sim, client = make_sim()
    path = "/commerce/metadata/1.1/GetApplication"
    assert client.get(path).status_code == 200
    sim.revoke_tokens()
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_extra_clients_can_be_configured(make_sim):
    _, client = make_sim(clients={"second": "s2"})
    assert client.token_response(client_id="second", client_secret="s2").status_code == 200
    assert client.token_response(client_id="second", client_secret="sim-secret").status_code == 401
