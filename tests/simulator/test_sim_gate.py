"""The API gate: bearer token and ApplicationId header on every API path."""

from __future__ import annotations

import pytest

PATH = "/commerce/metadata/1.1/GetApplication?format=json"


def test_get_application_answers_for_the_header_id(make_sim):
    _, client = make_sim(application_id=777)
    response = client.get(PATH)
    assert response.status_code == 200
    application = response.json()
    assert application["Id"] == 777 and application["ParentId"] == 777
    assert application["Name"]


@pytest.mark.parametrize("auth", [None, "", "Bearer", "Bearer not-a-token", "Basic abc", "bearer xyz"])
def test_missing_or_unknown_token_is_401_with_www_authenticate(make_sim, auth):
    sim, client = make_sim()
    headers = {"ApplicationId": "1234"}
    if auth is not None:
        headers["Authorization"] = auth
    response = client.get(PATH, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert sim.counters()["api_401"] == 1


def test_bearer_scheme_is_case_insensitive(make_sim):
    _, client = make_sim()
    response = client.get(
        PATH, headers={"authorization": f"bearer {client.token()}", "ApplicationId": "1234"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "name", ["ApplicationId", "applicationid", "APPLICATIONID", "applicationId", "application-id"]
)
def test_application_id_header_names_are_case_insensitive(make_sim, name):
    _, client = make_sim()
    response = client.get(PATH, headers={"Authorization": f"Bearer {client.token()}", name: "1234"})
    assert response.status_code == 200


@pytest.mark.parametrize("value", [None, "", "abc", "12.5"])
def test_missing_or_non_numeric_application_id_is_400(make_sim, value):
    _, client = make_sim()
    headers = {"Authorization": f"Bearer {client.token()}"}
    if value is not None:
        headers["ApplicationId"] = value
    response = client.get(PATH, headers=headers)
    assert response.status_code == 400
    assert "ApplicationId" in response.json()["Message"]


def test_an_application_the_client_was_not_granted_is_403(make_sim):
    _, client = make_sim()
    response = client.get(PATH, headers=client.headers(ApplicationId="99"))
    assert response.status_code == 403


def test_token_is_checked_before_the_application_id(make_sim):
    _, client = make_sim()
    assert client.get(PATH, headers={"ApplicationId": "nope"}).status_code == 401


def test_unknown_api_path_is_404_after_auth(make_sim):
    _, client = make_sim()
    assert client.get("/commerce/nothing/1.0/Here").status_code == 404
    assert client.get("/commerce/nothing/1.0/Here", headers={}).status_code == 401


def test_requests_are_counted_by_method_and_path_without_query(make_sim):
    sim, client = make_sim()
    client.get(PATH)
    client.get(PATH)
    requests_seen = sim.counters()["requests"]
    assert requests_seen["GET /commerce/metadata/1.1/GetApplication"] == 2
    assert requests_seen["POST /identity/1.0/connect/token"] == 1
    sim.reset_counters()
    assert sim.counters()["requests"] == {}
