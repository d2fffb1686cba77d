"""Issue 9, connection faults: every bad connection is refused before any request, with one error naming
the connection and the field, and never echoing a secret (cases 5, 7 host half, 9 connection part)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from airflow_provider_norce.connection import NorceConnectionConfig
from airflow_provider_norce.exceptions import NorceConnectionConfigError

SECRET = "s3cr3t-client-secret"
QUERY = "commerce/query/2.0/Orders/Orders"


def conn(host="acme", login="cid", password=SECRET, extra_text=None, **extra):
    """A connection as Airflow hands it out: ``extra`` is the raw text, ``extra_dejson`` its parse or {}."""
    if extra_text is None:
        extra_text = json.dumps(extra) if extra else ""
    return SimpleNamespace(
        conn_id="norce_x", host=host, login=login, password=password, extra=extra_text, extra_dejson=extra
    )


def refused(field, **kwargs) -> str:
    with pytest.raises(NorceConnectionConfigError) as info:
        NorceConnectionConfig.from_connection(conn(**kwargs))
    message = str(info.value)
    assert info.value.field == field, message
    assert "'norce_x'" in message and f"'{field}'" in message
    assert SECRET not in message
    return message


def set_env_conn(monkeypatch, conn_id, extra, host="acme", login="client-1"):
    fields = {"conn_type": "norce", "host": host, "login": login, "password": SECRET, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


# -- case 5: extra that is not JSON -----------------------------------------------------------------

BROKEN_EXTRA = '{"environment": "stage", "application_id": 12, "note": "hunter2-private"'


def test_extra_not_json_is_refused_with_its_position_never_its_text():
    message = refused("extra", extra_text=BROKEN_EXTRA)
    assert "not valid JSON" in message and "line 1 column" in message
    assert "hunter2" not in message and 'application_id": 12' not in message


@pytest.mark.parametrize(("text", "words"), [("[1, 2]", "JSON object"), ('"stage"', "JSON object")])
def test_extra_json_that_is_not_an_object_is_refused(text, words):
    assert words in refused("extra", extra_text=text)


def test_valid_extra_text_and_empty_extra_still_accepted():
    assert NorceConnectionConfig.from_connection(conn(extra_text="{}")).environment == "production"
    assert NorceConnectionConfig.from_connection(conn(extra_text="  ")).environment == "production"
    assert NorceConnectionConfig.from_connection(conn(environment="stage")).environment == "stage"


def _airflow_refused_it(err: BaseException) -> bool:
    """Airflow 3.0 validates ``extra`` on load and reports such a connection as not defined (which the hook
    words as "no usable connection with this id", field ``conn_id``)."""
    if isinstance(err, NorceConnectionConfigError) and err.field == "conn_id":
        return True
    return type(err).__name__ == "AirflowNotFoundException"


def test_extra_not_json_fails_the_hook_before_any_request(requests_mock, monkeypatch):
    from airflow_provider_norce.hooks.norce import NorceHook

    set_env_conn(monkeypatch, "norce_badjson", BROKEN_EXTRA)
    with pytest.raises(Exception) as info:
        NorceHook("norce_badjson").run(QUERY)
    assert requests_mock.call_count == 0
    if _airflow_refused_it(info.value):
        pytest.skip("this Airflow refuses the connection itself before the provider reads it")
    assert isinstance(info.value, NorceConnectionConfigError)
    assert info.value.field == "extra" and "not valid JSON" in str(info.value)
    assert "hunter2" not in str(info.value) and SECRET not in str(info.value)


def test_extra_not_json_fails_the_trigger_config_too(monkeypatch):
    """The triggerer reads the connection asynchronously; the same check applies there."""
    from airflow_provider_norce.triggers.norce import read_config

    set_env_conn(monkeypatch, "norce_trig", BROKEN_EXTRA)
    with pytest.raises(Exception) as info:
        asyncio.run(read_config("norce_trig"))
    if _airflow_refused_it(info.value):
        pytest.skip("this Airflow refuses the connection itself before the provider reads it")
    assert isinstance(info.value, NorceConnectionConfigError)
    assert info.value.field == "extra" and "not valid JSON" in str(info.value)
    assert "hunter2" not in str(info.value) and SECRET not in str(info.value)


# -- case 7, host half: credentials in a URL are never echoed ---------------------------------------


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("host", {"host": "ftp://id:topsecretpw@acme.example.com/x"}),
        ("host", {"host": "https://id:topsecretpw@acme.example.com"}),
        ("host", {"host": "id:topsecretpw@acme.example.com"}),
        ("base_url", {"base_url": "ftp://id:topsecretpw@acme.example.com"}),
        ("token_url", {"token_url": "https://id:topsecretpw@id.example.com/t"}),
        ("token_url", {"token_url": "gopher://id:topsecretpw@id.example.com:99999/t"}),
    ],
)
def test_url_with_userinfo_is_refused_without_echoing_it(field, kwargs):
    message = refused(field, **kwargs)
    assert "topsecretpw" not in message and "id:" not in message
    assert "credentials" in message or "client name" in message


def test_url_with_userinfo_names_scheme_and_host():
    message = refused("host", host="ftp://id:topsecretpw@acme.example.com/x")
    assert "ftp://***@acme.example.com" in message


# -- case 9, connection part ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "١٢", "12\u00a03", "1 2", "-3", "12.0", True, str(2**31)])
def test_application_id_must_be_ascii_digits_of_an_int32(value):
    message = refused("application_id", application_id=value)
    assert "application id" in message


def test_application_id_plain_numbers_accepted():
    assert NorceConnectionConfig.from_connection(conn(application_id=" 0042 ")).application_id == 42
    assert NorceConnectionConfig.from_connection(conn(application_id=7)).application_id == 7


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "0.5", 0.5, "2.5", True, "0", "-1", "x", [3]])
def test_max_attempts_must_be_a_whole_number_of_at_least_one(value):
    refused("max_attempts", max_attempts=value)


@pytest.mark.parametrize(("value", "expected"), [("3", 3), (3, 3), ("3.0", 3), (4.0, 4), (" 2 ", 2)])
def test_max_attempts_whole_numbers_accepted(value, expected):
    assert NorceConnectionConfig.from_connection(conn(max_attempts=value)).max_attempts == expected


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", 0, "-1", True, "1e400"])
def test_timeout_must_be_finite_and_positive(value):
    refused("timeout", timeout=value)


@pytest.mark.parametrize("value", ["nan", "inf", "-5"])
def test_max_retry_wait_must_be_finite(value):
    refused("max_retry_wait", max_retry_wait=value)


@pytest.mark.parametrize("value", ["maybe", "/nonexistent/ca-bundle.pem", "yes please"])
def test_verify_must_be_a_flag_or_an_existing_ca_bundle(value):
    message = refused("verify", verify=value)
    assert "true, false or the path of a CA bundle" in message


def test_verify_accepts_an_existing_ca_bundle_file_or_directory(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert NorceConnectionConfig.from_connection(conn(verify=str(bundle))).verify == str(bundle)
    assert NorceConnectionConfig.from_connection(conn(verify=str(tmp_path))).verify == str(tmp_path)
    assert NorceConnectionConfig.from_connection(conn(verify="false")).verify is False


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("host", {"host": "https://acme.example.com:99999"}),
        ("host", {"host": "https://acme.example.com:abc"}),
        ("host", {"host": "https://acme.example.com:0"}),
        ("base_url", {"base_url": "https://acme.example.com:70000/"}),
        ("token_url", {"token_url": "https://id.example.com:abc/connect/token"}),
        ("host", {"host": "https://ac me.example.com"}),
        ("host", {"host": "https://acmé.example.com"}),
        ("host", {"host": "acme:8443"}),
        ("host", {"host": "acme/commerce"}),
        ("base_url", {"base_url": "https://acme.example.com?tenant=1"}),
        ("host", {"host": "https://acme.example.com/#x"}),
    ],
)
def test_bad_port_or_host_in_a_url_is_refused_at_config_time(field, kwargs):
    assert "host" in refused(field, **kwargs)


def test_bad_port_fails_the_hook_before_any_request(requests_mock, set_conn, hook_factory, clock):
    set_conn("norce_port", host="https://acme.example.com:99999")
    with pytest.raises(NorceConnectionConfigError, match=r"'host'.*port"):
        hook_factory(norce_conn_id="norce_port").run(QUERY)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    "name", ["scope", "environment", "base_url", "token_url", "application_id", "verify"]
)
def test_an_extra_of_only_whitespace_is_refused_not_defaulted(name):
    assert "only whitespace" in refused(name, **{name: "   "})


def test_scope_with_control_characters_is_refused():
    refused("scope", scope="prod\x00")


@pytest.mark.parametrize("login", ["client id", "client\tid", "clïent", "client\u200bid", "cid\x7f"])
def test_client_id_with_whitespace_or_unicode_is_refused(login):
    message = refused("login", login=login)
    assert "Client ID" in message


def test_client_id_surrounding_whitespace_is_forgiven():
    assert NorceConnectionConfig.from_connection(conn(login="  client-1\n")).client_id == "client-1"


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("base_url", "http://acme.example.com"),
        ("base_url", "http://10.0.0.5:8080"),
        ("host", "http://127.0.0.1.nip.io"),
        ("host", "http://localhost.example.com"),
        ("token_url", "http://192.168.1.1/t"),
    ],
)
def test_plain_http_to_a_non_loopback_host_is_refused(field, url):
    kwargs = {"host": url} if field == "host" else {field: url}
    assert "https" in refused(field, **kwargs)


@pytest.mark.parametrize(
    ("base_url", "same", "other"),
    [
        ("https://acme.example.com", "https://acme.example.com:443", "https://acme.example.com:8443"),
        ("https://acme.example.com:443", "https://ACME.example.com", "http://acme.example.com"),
        ("http://127.0.0.1:80", "http://127.0.0.1", "http://127.0.0.1:8080"),
        ("https://[::1]:443", "https://[::1]", "https://[::1]:8443"),
    ],
)
def test_default_port_spellings_are_one_origin(base_url, same, other):
    hosts = NorceConnectionConfig.from_connection(conn(base_url=base_url)).api_hosts
    assert same in hosts and base_url.lower() in hosts
    assert other not in hosts
    assert "https://evil.example.com" not in hosts and "https://x@acme.example.com" not in hosts


def test_storm_origins_are_canonical():
    from airflow_provider_norce.connection import canonical_origin

    hosts = NorceConnectionConfig.from_connection(conn(platform="storm", environment="stage")).api_hosts
    assert "https://query.storm.io:443" in hosts and "https://connect.lab.storm.io" in hosts
    assert canonical_origin("https://query.storm.io:443/Query/2.0/") == "https://query.storm.io"


def test_hook_accepts_a_url_of_the_same_origin_spelled_with_the_default_port(monkeypatch):
    from airflow_provider_norce.hooks.norce import NorceHook

    set_env_conn(monkeypatch, "norce_port443", {"base_url": "https://acme.example.com:443"})
    hook = NorceHook("norce_port443")
    url = "https://acme.example.com/commerce/query/2.0/Orders?$skip=500"
    assert hook.url_for(url) == url
    assert hook.url_for(QUERY).startswith("https://acme.example.com:443/")
