"""The production-scope rule on the wire: ``prod`` by default, ``production`` once on invalid_scope, never for
an explicit scope (requests-mock; the exact form bodies sent)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import pytest
from norce_wire import BASE, SECRET, TOKEN_URL, token_body

from airflow_provider_norce.exceptions import NorceAuthError
from airflow_provider_norce.tokens.cache import WORKING_SCOPES, TokenCache

ORDERS = f"{BASE}/commerce/query/2.0/Orders/Orders"


def accept_only(requests_mock, accepted: str):
    """A token endpoint that grants ``accepted`` and answers invalid_scope to anything else."""

    def answer(request, context):
        scope = parse_qs(request.text).get("scope", [""])[0]
        if scope == accepted:
            return token_body(f"tok-{scope}")
        context.status_code = 400
        return {"error": "invalid_scope", "error_description": f"Scope {scope} is not allowed"}

    return requests_mock.post(TOKEN_URL, json=answer)


def scopes_sent(endpoint) -> list[str]:
    return [parse_qs(request.text)["scope"][0] for request in endpoint.request_history]


def test_default_scope_is_prod_and_needs_one_request(requests_mock, hook_factory):
    token = accept_only(requests_mock, "prod")
    requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()
    hook.run("commerce/query/2.0/Orders/Orders")
    assert scopes_sent(token) == ["prod"]
    assert parse_qs(token.last_request.text) == {
        "grant_type": ["client_credentials"],
        "client_id": ["client-1"],
        "client_secret": [SECRET],
        "scope": ["prod"],
    }


def test_default_scope_falls_back_to_production_once_and_remembers_it(
    requests_mock, hook_factory, clock, caplog
):
    token = accept_only(requests_mock, "production")
    api = requests_mock.get(ORDERS, json={"value": []})
    with caplog.at_level(logging.WARNING, logger="airflow_provider_norce.hooks.norce"):
        hook_factory().run("commerce/query/2.0/Orders/Orders")
    assert scopes_sent(token) == ["prod", "production"]
    assert api.last_request.headers["Authorization"] == "Bearer tok-production"
    assert "extra 'scope'" in caplog.text and "'production'" in caplog.text and "norce_default" in caplog.text
    assert SECRET not in caplog.text and "tok-production" not in caplog.text

    clock.advance(3600)  # the token expired: a renewal asks with the spelling that worked, directly
    other = hook_factory()
    other.run("commerce/query/2.0/Orders/Orders")
    assert scopes_sent(token) == ["prod", "production", "production"]
    assert other.scope == "production"


def test_a_token_cached_under_the_other_spelling_costs_no_request(requests_mock, hook_factory, clock):
    token = accept_only(requests_mock, "production")
    cache = TokenCache(clock=clock)
    hook_factory(token_cache=cache).get_access_token()
    assert scopes_sent(token) == ["prod", "production"]
    WORKING_SCOPES.clear()  # a new process: it forgot the spelling, the (shared) cache did not
    assert hook_factory(token_cache=cache).get_access_token() == "tok-production"
    assert token.call_count == 2


def test_explicit_scope_is_never_changed(requests_mock, hook_factory, set_conn):
    set_conn(extra={"scope": "prod"})
    token = accept_only(requests_mock, "production")
    with pytest.raises(NorceAuthError, match=r"'prod'.*also spells it 'production'") as info:
        hook_factory().get_access_token()
    assert scopes_sent(token) == ["prod"]
    assert info.value.error == "invalid_scope"
    assert SECRET not in str(info.value)


def test_both_spellings_refused_names_both_and_what_to_do(requests_mock, hook_factory):
    token = accept_only(requests_mock, "stage")
    with pytest.raises(NorceAuthError, match=r"'prod' and 'production'.*extra 'scope'") as info:
        hook_factory().get_access_token()
    assert scopes_sent(token) == ["prod", "production"]
    assert "norce_default" in str(info.value)


def test_other_errors_are_not_retried_with_another_scope(requests_mock, hook_factory):
    token = requests_mock.post(TOKEN_URL, status_code=400, json={"error": "invalid_client"})
    with pytest.raises(NorceAuthError, match="invalid_client"):
        hook_factory().get_access_token()
    assert token.call_count == 1


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({"environment": "stage"}, ["stage"]), ({"platform": "storm", "host": ""}, ["production"])],
)
def test_stage_and_storm_have_no_fallback(requests_mock, hook_factory, set_conn, extra, expected):
    set_conn(extra=extra, host=extra.get("host", "acme"))
    url = "https://identity.storm.io/1.0/connect/token" if "platform" in extra else None
    token = requests_mock.post(url or TOKEN_URL.replace("api-se.", "api-se.stage."), status_code=400,
                               json={"error": "invalid_scope"})  # fmt: skip
    with pytest.raises(NorceAuthError):
        hook_factory().get_access_token()
    assert scopes_sent(token) == expected


STORM_TOKEN_URL = "https://identity.storm.io/1.0/connect/token"


def granting(requests_mock, url: str, accepted: tuple[str, ...]):
    """A token endpoint that grants each scope of ``accepted`` its own token (``tok-<scope>``)."""

    def answer(request, context):
        scope = parse_qs(request.text).get("scope", [""])[0]
        if scope in accepted:
            return token_body(f"tok-{scope}")
        context.status_code = 400
        return {"error": "invalid_scope"}

    return requests_mock.post(url, json=answer)


def test_storm_stage_after_production_asks_for_and_sends_its_own_token(requests_mock, hook_factory, set_conn):
    """Storm has one token URL for every environment: production's scope is never handed to stage."""
    storm = {"platform": "storm", "application_id": "42", "token_cache": "process"}
    set_conn("storm_prod", host="", extra={**storm, "environment": "production"})
    set_conn("storm_stage", host="", extra={**storm, "environment": "stage"})
    token = granting(requests_mock, STORM_TOKEN_URL, ("production", "lab"))
    prod_api = requests_mock.get("https://connect.storm.io/4.0/api/Products/ListProducts", json={})
    stage_api = requests_mock.get("https://connect.lab.storm.io/4.0/api/Products/ListProducts", json={})

    hook_factory(norce_conn_id="storm_prod").run("https://connect.storm.io/4.0/api/Products/ListProducts")
    stage = hook_factory(norce_conn_id="storm_stage")
    stage.run("https://connect.lab.storm.io/4.0/api/Products/ListProducts")

    assert scopes_sent(token) == ["production", "lab"]
    assert stage.scope == "lab"
    assert prod_api.last_request.headers["Authorization"] == "Bearer tok-production"
    assert stage_api.last_request.headers["Authorization"] == "Bearer tok-lab"


def test_commerce_connections_sharing_an_auth_url_keep_their_own_scope(requests_mock, hook_factory, set_conn):
    """One client id, one ``auth_url``: the production spelling found by fallback stays production's."""
    shared = {
        "auth_url": "https://auth.example.com/connect/token",
        "application_id": "42",
        "token_cache": "process",
    }
    set_conn("acme_prod", extra={**shared, "environment": "production"})
    set_conn("acme_stage", extra={**shared, "environment": "stage"})
    token = granting(requests_mock, "https://auth.example.com/connect/token", ("production", "stage"))
    prod_orders = f"{BASE}/commerce/query/2.0/Orders/Orders"
    stage_orders = "https://acme.api-se.stage.norce.tech/commerce/query/2.0/Orders/Orders"
    prod_api = requests_mock.get(prod_orders, json={"value": []})
    stage_api = requests_mock.get(stage_orders, json={"value": []})

    prod = hook_factory(norce_conn_id="acme_prod")
    prod.run("commerce/query/2.0/Orders/Orders")
    stage = hook_factory(norce_conn_id="acme_stage")
    stage.run("commerce/query/2.0/Orders/Orders")
    prod.run("commerce/query/2.0/Orders/Orders")  # and the stage token never reaches production either

    assert scopes_sent(token) == ["prod", "production", "stage"]
    assert (prod.scope, stage.scope) == ("production", "stage")
    assert stage_api.last_request.headers["Authorization"] == "Bearer tok-stage"
    assert [r.headers["Authorization"] for r in prod_api.request_history] == ["Bearer tok-production"] * 2
