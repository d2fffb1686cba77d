"""Connection parsing and URL derivation: every platform x environment, every malformed case."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_provider_norce.connection import NorceConnectionConfig
from airflow_provider_norce.exceptions import NorceConnectionConfigError


def conn(host="acme", login="cid", password="secret-123", **extra):
    return SimpleNamespace(conn_id="norce_x", host=host, login=login, password=password, extra_dejson=extra)


def cfg(**kwargs) -> NorceConnectionConfig:
    return NorceConnectionConfig.from_connection(conn(**kwargs))


@pytest.mark.parametrize(
    ("platform", "environment", "token_url", "base_url", "scope", "connect", "query"),
    [
        (
            "commerce",
            "production",
            "https://acme.api-se.norce.tech/identity/1.0/connect/token",
            "https://acme.api-se.norce.tech",
            "prod",
            "https://acme.api-se.norce.tech/commerce/connect/4.0/",
            "https://acme.api-se.norce.tech/commerce/query/2.0/",
        ),
        (
            "commerce",
            "stage",
            "https://acme.api-se.stage.norce.tech/identity/1.0/connect/token",
            "https://acme.api-se.stage.norce.tech",
            "stage",
            "https://acme.api-se.stage.norce.tech/commerce/connect/4.0/",
            "https://acme.api-se.stage.norce.tech/commerce/query/2.0/",
        ),
        (
            "commerce",
            "playground",
            "https://acme.api-se.playground.norce.tech/identity/1.0/connect/token",
            "https://acme.api-se.playground.norce.tech",
            "playground",
            "https://acme.api-se.playground.norce.tech/commerce/connect/4.0/",
            "https://acme.api-se.playground.norce.tech/commerce/query/2.0/",
        ),
        (
            "storm",
            "production",
            "https://identity.storm.io/1.0/connect/token",
            "https://connect.storm.io",
            "production",
            "https://connect.storm.io/4.0/api/",
            "https://query.storm.io/Query/2.0/",
        ),
        (
            "storm",
            "stage",
            "https://identity.storm.io/1.0/connect/token",
            "https://connect.lab.storm.io",
            "lab",
            "https://connect.lab.storm.io/4.0/api/",
            "https://query.storm.io/Query/2.0/",
        ),
        (
            "storm",
            "playground",
            "https://identity.storm.io/1.0/connect/token",
            "https://connect.lab.storm.io",
            "lab",
            "https://connect.lab.storm.io/4.0/api/",
            "https://query.storm.io/Query/2.0/",
        ),
    ],
)
def test_url_table(platform, environment, token_url, base_url, scope, connect, query):
    c = cfg(platform=platform, environment=environment)
    assert (c.token_url, c.base_url, c.scope) == (token_url, base_url, scope)
    assert c.service_url("connect") == connect
    assert c.service_url("query") == query


def test_region_and_metadata_service():
    c = cfg(region="no", environment="stage")
    assert c.base_url == "https://acme.api-no.stage.norce.tech"
    assert c.service_url("metadata") == "https://acme.api-no.stage.norce.tech/commerce/metadata/1.1/"


def test_overrides_and_full_url_host():
    c = cfg(host="https://custom.example.com/", scope="prod", auth_url="https://id.example.com/t")
    assert c.base_url == "https://custom.example.com"
    assert c.token_url == "https://id.example.com/t"
    assert c.scope == "prod"
    assert c.api_hosts == frozenset({"https://custom.example.com"})


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "http://127.1.2.3"]
)
def test_http_allowed_to_loopback_only(host):
    assert cfg(host=host).base_url == host


def test_legacy_prefixed_extras_and_string_values():
    c = NorceConnectionConfig.from_connection(
        conn(
            **{
                "extra__norce__environment": "stage",
                "timeout": "12.5",
                "max_attempts": "3",
                "verify": "false",
            }
        )
    )
    assert (c.environment, c.timeout, c.max_attempts, c.verify) == ("stage", 12.5, 3, False)


def test_secret_not_in_repr():
    c = cfg(password="very-secret-value")
    assert "very-secret-value" not in repr(c)
    assert "very-secret-value" not in str(c)


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"login": ""}, "login", "client id"),
        ({"login": None}, "login", "client id"),
        ({"password": ""}, "password", "client secret"),
        ({"application_id": "12ab"}, "application_id", "not numeric"),
        ({"environment": "prodution"}, "environment", "production, stage, playground"),
        ({"platform": "shopify"}, "platform", "commerce, storm"),
        ({"host": "http://acme.api-se.norce.tech"}, "host", "https"),
        ({"base_url": "http://10.0.0.5"}, "base_url", "https"),
        ({"auth_url": "http://example.com/t"}, "auth_url", "https"),
        ({"token_url": "http://example.com/t"}, "token_url", "https"),  # a former name: named as given
        ({"host": ""}, "host", "client name"),
        ({"host": "acme corp"}, "host", "neither a client name"),
        ({"host": "https://user:pw@acme.example.com"}, "host", "credentials"),
        ({"timeout": "soon"}, "timeout", "not a number"),
        ({"timeout": "0"}, "timeout", "greater than 0"),
        ({"max_attempts": "0"}, "max_attempts", "greater than 0"),
        ({"auth_cache": "memcached"}, "auth_cache", "process, machine, redis"),
        ({"token_cache": "memcached"}, "token_cache", "process, machine, redis"),
        ({"auth_cache_conn_id": "redis tokens"}, "auth_cache_conn_id", "not an Airflow connection id"),
        ({"token_cache_conn_id": 6379}, "token_cache_conn_id", "not a number"),
        ({"region": "se west"}, "region", "region"),
    ],
)
def test_malformed_connection_names_conn_and_field(kwargs, field, words):
    with pytest.raises(NorceConnectionConfigError) as info:
        cfg(**kwargs)
    message = str(info.value)
    assert "'norce_x'" in message and f"'{field}'" in message and words in message
    assert info.value.field == field
    assert "secret-123" not in message


def test_malformed_connection_fails_before_any_request(requests_mock, monkeypatch):
    from airflow_provider_norce.hooks.norce import NorceHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_NORCE_BAD",
        '{"conn_type": "norce", "host": "acme", "login": "c", "password": "s-123456", '
        '"extra": {"application_id": "x1"}}',
    )
    with pytest.raises(NorceConnectionConfigError, match="application_id"):
        NorceHook("norce_bad").run("commerce/query/2.0/Orders/Orders")
    assert requests_mock.call_count == 0


def test_a_registered_token_store_kind_is_a_valid_token_cache():
    from airflow_provider_norce.tokens.store import register_token_store

    register_token_store("unit-cluster", lambda: None)
    assert cfg(auth_cache="unit-cluster").token_cache == "unit-cluster"
