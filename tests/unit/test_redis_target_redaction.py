"""A Redis password in a URL (the host field, or the connection's URI) never reaches a warning or an error text,
and is registered with Airflow's masker (no Redis server needed: the client fails at once)."""

from __future__ import annotations

import json
import logging

import pytest
from norce_wire import TOKEN_URL, token_body

from airflow_provider_norce.exceptions import NorceConnectionConfigError
from airflow_provider_norce.redaction import strip_userinfo, userinfo_secrets
from airflow_provider_norce.tokens.redis_connection import RedisTarget

PW = "Redis-pa55word-Xq7"
#: The Airflow Redis connection, JSON form: a URL typed into the host field (the password field left empty).
HOST_FIELD = [
    f"redis://:{PW}@127.0.0.1:6399/0",
    f"redis://user:{PW}@127.0.0.1",
    f"rediss://user:{PW}@127.0.0.1:6399/0",
    f"rediss://:{PW.replace('-', '%2D')}/x@127.0.0.1:6399",  # percent-encoded, and a '/' in it
    f":{PW}@127.0.0.1",
]
#: The same as Airflow connection URIs (the password lands in the password field).
URI_FORM = [
    f"redis://:{PW}@127.0.0.1:6399/0",
    f"redis://user:{PW}@127.0.0.1:6399",
    f"rediss://user:{PW}@127.0.0.1:6399/0",
]


@pytest.fixture
def redis_state(monkeypatch, tmp_path):
    """No Redis store or warning of an earlier test; the machine store (the fallback) in a private directory."""
    from airflow_provider_norce.tokens import fallback, store

    machine = tmp_path / "machine"
    machine.mkdir(mode=0o700)
    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(machine))
    monkeypatch.setenv("NORCE_TOKEN_REDIS_TIMEOUT", "1")
    store._redis_stores.clear()
    fallback._warned.clear()
    masked: list[str] = []
    monkeypatch.setattr("airflow_provider_norce.hooks.norce._mask", masked.append)
    yield masked
    store._redis_stores.clear()
    fallback._warned.clear()


def _no_password_in(text: str) -> None:
    for spelling in (PW, PW.replace("-", "%2D")):
        assert spelling not in text


def _fallback_warning(requests_mock, hook_factory, set_conn, caplog) -> str:
    set_conn(extra={"token_cache": "redis", "auth_cache_conn_id": "redis_tokens"})
    requests_mock.post(TOKEN_URL, json=token_body("tok-1"))
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_norce"):
        assert hook_factory().get_access_token() == "tok-1"  # Redis unusable: the machine store stands in
    warnings = [
        r.getMessage() for r in caplog.records if "falling back to the machine store" in r.getMessage()
    ]
    assert len(warnings) == 1
    return caplog.text + "\n".join(warnings)


@pytest.mark.parametrize("host", HOST_FIELD)
def test_a_url_in_the_redis_host_field_shows_no_password(
    host, redis_state, monkeypatch, requests_mock, hook_factory, set_conn, caplog
):
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_TOKENS", json.dumps({"conn_type": "redis", "host": host}))
    text = _fallback_warning(requests_mock, hook_factory, set_conn, caplog)
    _no_password_in(text)
    assert "'redis_tokens'" in text and "127.0.0.1" in text
    assert any(secret.startswith(PW) for secret in redis_state)  # the masker was told (decoded)


@pytest.mark.parametrize("uri", URI_FORM)
def test_a_redis_connection_uri_shows_no_password(
    uri, redis_state, monkeypatch, requests_mock, hook_factory, set_conn, caplog
):
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_TOKENS", uri)
    _no_password_in(_fallback_warning(requests_mock, hook_factory, set_conn, caplog))


@pytest.mark.parametrize("host", HOST_FIELD)
def test_errors_naming_the_redis_connection_show_no_password(
    host, redis_state, monkeypatch, hook_factory, set_conn
):
    conn = {"conn_type": "redis", "host": host, "extra": {"db": host}}  # a URL pasted into 'db' as well
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_TOKENS", json.dumps(conn))
    set_conn(extra={"token_cache": "redis", "auth_cache_conn_id": "redis_tokens"})
    with pytest.raises(NorceConnectionConfigError) as info:
        hook_factory().get_access_token()
    assert "'redis_tokens'" in str(info.value) and "db" in str(info.value)
    _no_password_in(str(info.value))
    _no_password_in(str(RedisTarget("redis_tokens", host, 6379, 0)))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            f"Error -2 connecting to redis://:{PW}@h:6379/0:6379.",
            "Error -2 connecting to redis://***@h:6379/0:6379.",
        ),
        (f"connecting to :{PW}@h:6379.", "connecting to ***@h:6379."),
        (f"rediss://u:{PW}/x@y@h", "rediss://***@h"),
        ("mail ops@example.com, redis://h:6379/0", "mail ops@example.com, redis://h:6379/0"),
    ],
)
def test_strip_userinfo(text, shown):
    assert strip_userinfo(text) == shown
    assert PW not in strip_userinfo(text)
    if PW in text:
        assert any(PW in secret for secret in userinfo_secrets(text))
