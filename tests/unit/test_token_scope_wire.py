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
