"""Issue 9, cases 2, 4, 7 (token endpoint) and 8: hostile token answers, TLS settings, masking, on the wire."""

from __future__ import annotations

import base64
import json
import math
import ssl
import uuid
from urllib.parse import quote, quote_plus

import pytest
from norce_wire import BASE, SECRET, TOKEN_URL, async_get_json, token_body

from airflow_provider_norce.exceptions import NorceAuthError, NorceError
from airflow_provider_norce.tokens.cache import DEFAULT_LIFETIME, Token

ORDERS = f"{BASE}/commerce/query/2.0/Orders/Orders"
ORDERS_ENDPOINT = "commerce/query/2.0/Orders/Orders"
#: The longest a token is kept, whatever its answer says (a revoked token must not live for years).
MAX_LIFETIME = 86400.0


def _jwt(claims: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyAiYWxnIjogIm5vbmUiIH0.{body}.sig"


def _unique_token() -> str:
    return f"tok-{uuid.uuid4().hex}"


# -- case 8: token answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": None, "expires_in": 600},
        {"access_token": ["a", "b"], "expires_in": 600},
        {"access_token": {"value": "abc"}, "expires_in": 600},
        {"access_token": 123456, "expires_in": 600},
        {"access_token": True, "expires_in": 600},
        {"access_token": "", "expires_in": 600},
        {"access_token": "   ", "expires_in": 600},
        {"access_token": "tok with spaces", "expires_in": 600},
        {"access_token": "tok\r\nX-Injected: 1", "expires_in": 600},
        {"expires_in": 600},
        ["not", "an", "object"],
        "just a string",
    ],
    ids=[
        "null",
        "list",
        "object",
        "number",
        "bool",
        "empty",
        "blank",
        "inner-space",
        "header-injection",
        "missing",
        "list-body",
        "string-body",
    ],
)
def test_unusable_access_token_is_a_clear_auth_error_and_nothing_is_sent(requests_mock, hook_factory, body):
    token = requests_mock.post(TOKEN_URL, json=body)
    api = requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()

    with pytest.raises(NorceAuthError) as info:
        hook.run(ORDERS_ENDPOINT)

    message = str(info.value)
    assert "norce_default" in message and TOKEN_URL in message and "access_token" in message
    assert "Bearer None" not in message
    assert api.call_count == 0  # never "Bearer None" or "Bearer ['a', 'b']"
    assert token.call_count == 1  # a bad answer is not worth repeating
    assert hook.token_cache.peek(hook._token_key) is None  # nothing stored


def test_null_token_in_the_machine_store_is_never_sent(requests_mock, hook_factory, tmp_path, clock):
    from airflow_provider_norce.tokens.machine_store import FileTokenStore, private_directory

    directory = private_directory(tmp_path / "store")
    assert directory is not None
    store = FileTokenStore(directory, clock=clock)
    hook = hook_factory(shared_store=store)
    # What an earlier release saved for {"access_token": null}.
    store.save(hook._token_key, Token(None, clock.now + 600, clock.now))  # type: ignore[arg-type]
    requests_mock.post(TOKEN_URL, json=token_body("tok-good"))
    api = requests_mock.get(ORDERS, json={"value": []})

    hook.run(ORDERS_ENDPOINT)

    assert api.last_request.headers["Authorization"] == "Bearer tok-good"


@pytest.mark.parametrize(
    "expires_in",
    [math.nan, math.inf, -math.inf, -600, 0, 1e-9, "soon", "", True, [600], {"s": 600}, None],
    ids=[
        "nan",
        "inf",
        "-inf",
        "negative",
        "zero",
        "1e-9",
        "word",
        "empty",
        "bool",
        "list",
        "object",
        "missing",
    ],
)
def test_unusable_expires_in_falls_back_to_the_default_lifetime(
    requests_mock, hook_factory, clock, expires_in
):
    body = token_body("t1")
    body["expires_in"] = expires_in  # requests-mock encodes NaN and Infinity as Python's json does
    token = requests_mock.post(TOKEN_URL, [{"json": body}, {"json": token_body("t2")}])
    api = requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()

    for _ in range(5):  # NaN used to fetch a token on every call
        hook.run(ORDERS_ENDPOINT)
    clock.advance(DEFAULT_LIFETIME * 0.85)
    hook.run(ORDERS_ENDPOINT)
    assert token.call_count == 1
    assert api.last_request.headers["Authorization"] == "Bearer t1"

    clock.advance(DEFAULT_LIFETIME * 0.15)  # at the default expiry: renewed, never used forever
    hook.run(ORDERS_ENDPOINT)
    assert token.call_count == 2
    assert api.last_request.headers["Authorization"] == "Bearer t2"


def test_numeric_string_expires_in_is_read(requests_mock, hook_factory, clock):
    token = requests_mock.post(TOKEN_URL, json={**token_body("t1"), "expires_in": "1200"})
    requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()
    hook.run(ORDERS_ENDPOINT)
    clock.advance(1000)
    hook.run(ORDERS_ENDPOINT)
    assert token.call_count == 1


@pytest.mark.parametrize("expires_in", [math.nan, "later", -1])
def test_unusable_expires_in_falls_back_to_the_jwt_exp(requests_mock, hook_factory, clock, expires_in):
    jwt = _jwt({"exp": clock.now + 1000})
    token = requests_mock.post(
        TOKEN_URL, [{"json": {**token_body(jwt), "expires_in": expires_in}}, {"json": token_body("t2")}]
    )
    requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()
    hook.run(ORDERS_ENDPOINT)
    clock.advance(900)  # past the 300 s default, inside the JWT's 1000 s
    hook.run(ORDERS_ENDPOINT)
    assert token.call_count == 1
    clock.advance(60)  # inside the last 60 s of the JWT's life: renewed
    hook.run(ORDERS_ENDPOINT)
    assert token.call_count == 2


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "t1", "expires_in": 10 * 365 * 86400},
        {"access_token": "t1", "expires_in": 1e308},
        {"access_token": _jwt({"exp": 1_800_000_000.0 + 10 * 365 * 86400})},
        {"access_token": _jwt({"exp": 1e308})},
    ],
    ids=["ten-years", "1e308", "jwt-ten-years", "jwt-1e308"],
)
def test_absurd_lifetimes_are_capped(requests_mock, hook_factory, clock, body):
    token = requests_mock.post(TOKEN_URL, [{"json": body}, {"json": token_body("t2")}])
    api = requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()
    hook.run(ORDERS_ENDPOINT)
    clock.advance(MAX_LIFETIME)
    hook.run(ORDERS_ENDPOINT)
    assert token.call_count == 2
    assert api.last_request.headers["Authorization"] == "Bearer t2"


def test_an_ordinary_lifetime_is_still_trusted(requests_mock, hook_factory, clock):
    token = requests_mock.post(TOKEN_URL, json=token_body("t1", 3600))
    requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()
    hook.run(ORDERS_ENDPOINT)
    clock.advance(3500)
    hook.run(ORDERS_ENDPOINT)
    assert token.call_count == 1


# -- case 7: the client secret never leaves through a token-endpoint error ---------------------


ODD_SECRET = "p@ss w0rd/+&=x;\"'<>"


def _echoes(secret: str) -> list[tuple[str, dict[str, object]]]:
    form = f"grant_type=client_credentials&client_id=client-1&client_secret={quote_plus(secret)}&scope=prod"
    return [
        (
            "json-description",
            {"json": {"error": "invalid_request", "error_description": f"bad form: {form}"}},
        ),
        (
            "json-raw-secret",
            {"json": {"error": "invalid_client", "error_description": f"secret {secret} wrong"}},
        ),
        ("json-error-code", {"json": {"error": f"client_secret={secret}"}}),
        ("text-form", {"text": f"Bad Request: {form}"}),
        ("text-raw", {"text": f"<html>client_secret: {secret}</html>"}),
        ("text-quoted", {"text": f"client_secret={quote(secret, safe='')}&scope=prod"}),
        ("json-in-text", {"text": json.dumps({"client_secret": secret, "client_id": "client-1"})}),
        ("long-prefix-cut", {"text": "x" * 100 + f" client_secret={secret}"}),
    ]


def _forms(secret: str) -> set[str]:
    return {secret, quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1]}


@pytest.mark.parametrize("secret", [SECRET, ODD_SECRET], ids=["plain", "odd"])
@pytest.mark.parametrize("status", [400, 401, 403])
@pytest.mark.parametrize("case", range(8))
def test_token_endpoint_echo_never_puts_the_secret_in_the_error(
    requests_mock, hook_factory, set_conn, secret, status, case
):
    set_conn(password=secret)
    name, answer = _echoes(secret)[case]
    requests_mock.post(TOKEN_URL, status_code=status, **answer)  # type: ignore[arg-type]
    hook = hook_factory()

    with pytest.raises(NorceAuthError) as info:
        hook.get_access_token()
    ok, text = hook_factory().test_connection()

    assert not ok
    for shown in (str(info.value), repr(info.value), text, repr(info.value.args)):
        for form in _forms(secret):
            assert form not in shown, name
        assert secret[:12] not in shown, name  # not even the start of it, cut by an excerpt
    assert "norce_default" in text and "client-1" in text


@pytest.mark.parametrize("status", [500, 503])
def test_token_endpoint_5xx_echo_never_puts_the_secret_in_the_error(requests_mock, hook_factory, status):
    requests_mock.post(TOKEN_URL, status_code=status, text=f"upstream failed for client_secret={SECRET}")
    hook = hook_factory(max_attempts=2)

    with pytest.raises(NorceError) as info:
        hook.get_access_token()
    ok, text = hook_factory(max_attempts=1).test_connection()

    assert not ok
    for shown in (str(info.value), repr(info.value), text):
        assert SECRET not in shown
        assert SECRET[:10] not in shown
    assert str(status) in str(info.value)


def test_secret_free_error_bodies_are_still_quoted(requests_mock, hook_factory):
    requests_mock.post(
        TOKEN_URL, status_code=400, json={"error": "invalid_request", "error_description": "scope missing"}
    )
    with pytest.raises(NorceAuthError, match="invalid_request: scope missing"):
        hook_factory().get_access_token()


# -- case 2: the connection's verify wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE --------------


@pytest.mark.parametrize("env", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
@pytest.mark.parametrize("verify", [False, "private-ca.pem"], ids=["false", "ca-bundle"])
def test_connection_verify_wins_over_the_ca_bundle_environment(
    requests_mock, hook_factory, set_conn, monkeypatch, tmp_path, env, verify
):
    if verify:
        bundle = tmp_path / verify
        bundle.write_text("-----BEGIN CERTIFICATE-----\n")  # only its path reaches requests here
        verify = str(bundle)
    monkeypatch.setenv(env, "/etc/ssl/environment-bundle.pem")
    set_conn(extra={"verify": verify})
    requests_mock.post(TOKEN_URL, json=token_body("t1"))
    api = requests_mock.get(ORDERS, json={"value": []})
    hook = hook_factory()

    hook.run(ORDERS_ENDPOINT)
    hook.get_conn().get(ORDERS)  # the session get_conn hands out, used directly

    assert [r.verify for r in requests_mock.request_history] == [verify] * 3
    assert api.call_count == 2


def test_default_verify_still_takes_the_environment_bundle(requests_mock, hook_factory, monkeypatch):
    """With verify left at true the connection says nothing more: the worker's CA bundle applies."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/environment-bundle.pem")
    requests_mock.post(TOKEN_URL, json=token_body("t1"))
    requests_mock.get(ORDERS, json={"value": []})
    hook_factory().run(ORDERS_ENDPOINT)
    assert {r.verify for r in requests_mock.request_history} == {"/etc/ssl/environment-bundle.pem"}


def test_connection_proxies_win_over_the_proxy_environment(
    requests_mock, hook_factory, set_conn, monkeypatch
):
    monkeypatch.setenv("HTTPS_PROXY", "http://environment-proxy:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/environment-bundle.pem")
    set_conn(extra={"proxies": {"https": "http://conn-proxy:8080"}, "verify": False})
    requests_mock.post(TOKEN_URL, json=token_body("t1"))
    requests_mock.get(ORDERS, json={"value": []})
    hook_factory().run(ORDERS_ENDPOINT)
    for request in requests_mock.request_history:
        assert request.proxies["https"] == "http://conn-proxy:8080"
        assert request.verify is False


def test_proxy_environment_still_applies_without_a_proxies_extra(requests_mock, hook_factory, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://environment-proxy:3128")
    requests_mock.post(TOKEN_URL, json=token_body("t1"))
    requests_mock.get(ORDERS, json={"value": []})
    hook_factory().run(ORDERS_ENDPOINT)
    assert {r.proxies.get("https") for r in requests_mock.request_history} == {
        "http://environment-proxy:3128"
    }


def _ssl_context(client) -> ssl.SSLContext:
    pool = client._transport._pool
    return pool._ssl_context


@pytest.mark.parametrize("env", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_async_client_honours_verify_false_despite_the_environment(monkeypatch, tmp_path, env):
    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.hooks.async_client import _build_client

    monkeypatch.setenv(env, str(tmp_path / "missing-bundle.pem"))
    config = _config({"verify": False})
    assert isinstance(config, NorceConnectionConfig)
    client = _build_client(config)
    assert _ssl_context(client).verify_mode == ssl.CERT_NONE


def test_async_client_loads_the_connections_ca_bundle(monkeypatch, tmp_path, recwarn):
    import certifi

    from airflow_provider_norce.hooks.async_client import _build_client

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing-bundle.pem"))
    client = _build_client(_config({"verify": certifi.where()}))
    context = _ssl_context(client)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()  # the connection's bundle, not the (missing) environment one
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_async_client_proxy_mounts_keep_the_connections_verify(monkeypatch):
    from airflow_provider_norce.hooks.async_client import _build_client

    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/bundle.pem")
    client = _build_client(_config({"verify": False, "proxies": {"https": "http://conn-proxy:8080"}}))
    proxied = [t for pattern, t in client._mounts.items() if t is not None]
    assert proxied
    for transport in proxied:
        assert transport._pool._ssl_context.verify_mode == ssl.CERT_NONE


def _config(extra: dict[str, object]):
    from airflow.models.connection import Connection

    from airflow_provider_norce.connection import NorceConnectionConfig

    conn = Connection(
        conn_id="norce_default",
        conn_type="norce",
        host="acme",
        login="client-1",
        password=SECRET,
        extra=json.dumps({"application_id": "42", **extra}),
    )
    return NorceConnectionConfig.from_connection(conn, "norce_default")


# -- case 4: every token handed out is registered with the masker, once per process --------------


class _Comms:
    """Stands in for the task runner's channel to the supervisor; records what it is told."""

    def __init__(self) -> None:
        self.masked: list[object] = []

    def send(self, msg: object) -> None:
        value = getattr(msg, "value", None)
        if value is not None:
            self.masked.append(value)


@pytest.fixture
def comms(monkeypatch) -> _Comms:
    from airflow.sdk.execution_time import task_runner

    recorder = _Comms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", recorder, raising=False)
    return recorder


@pytest.mark.parametrize("explicit_scope", [True, False], ids=["explicit-scope", "default-scope"])
def test_a_token_from_the_machine_store_is_masked_once(
    requests_mock, hook_factory, set_conn, tmp_path, clock, comms, explicit_scope
):
    from airflow_provider_norce.tokens.cache import TokenCache
    from airflow_provider_norce.tokens.machine_store import FileTokenStore, private_directory

    if explicit_scope:
        set_conn(extra={"scope": "prod"})
    directory = private_directory(tmp_path / "store")
    assert directory is not None
    store = FileTokenStore(directory, clock=clock)
    stored = _unique_token()
    # Another task (another process) fetched it and saved it in the machine store.
    store.save(hook_factory(shared_store=store)._key_for("prod"), Token(stored, clock.now + 600, clock.now))
    token = requests_mock.post(TOKEN_URL, json=token_body(_unique_token()))
    api = requests_mock.get(ORDERS, json={"value": []})

    for _ in range(3):  # three hooks of this task, as operators make them
        hook = hook_factory(shared_store=store, token_cache=TokenCache(clock=clock))
        hook.run(ORDERS_ENDPOINT)
        hook.get_access_token()

    assert token.call_count == 0
    assert api.last_request.headers["Authorization"] == f"Bearer {stored}"
    assert comms.masked.count(stored) == 1


def test_a_fetched_token_is_masked_once_however_often_it_is_used(requests_mock, hook_factory, comms, clock):
    first, second = _unique_token(), _unique_token()
    requests_mock.post(TOKEN_URL, [{"json": token_body(first)}, {"json": token_body(second)}])
    requests_mock.get(ORDERS, json={"value": []})
    for _ in range(4):
        hook_factory().run(ORDERS_ENDPOINT)
    clock.advance(600)
    hook_factory().run(ORDERS_ENDPOINT)
    assert comms.masked.count(first) == 1
    assert comms.masked.count(second) == 1


# -- an API that echoes the request's Authorization header in its answer ---------------------------

ECHOED_TOKEN = "tok-echoed-3f9a"  # short: an excerpt of the body would hold it whole


def _echo(kind: str) -> dict[str, object]:
    header = f"Authorization: Bearer {ECHOED_TOKEN}"
    if kind == "400-text":
        return {"status_code": 400, "text": f"Bad request. Headers: {header}"}
    if kind == "400-json":
        return {"status_code": 400, "json": {"Message": "Bad request", "Headers": {"Authorization": header}}}
    if kind == "200-envelope":
        return {"status_code": 200, "json": {"error": {"code": "Unauthorized", "message": header}}}
    return {"status_code": 200, "text": f"Gateway notice; your request carried {header}"}  # 200-text


@pytest.mark.parametrize("kind", ["400-text", "400-json", "200-envelope", "200-text"])
def test_an_api_answer_that_echoes_the_token_never_puts_it_in_the_error(requests_mock, hook_factory, kind):
    requests_mock.post(TOKEN_URL, json=token_body(ECHOED_TOKEN))
    requests_mock.get(ORDERS, **_echo(kind))  # type: ignore[arg-type]
    with pytest.raises(NorceError) as info:
        hook_factory().run_json(ORDERS_ENDPOINT)
    shown = f"{info.value} {info.value!r} {getattr(info.value, 'body_excerpt', '')}"
    assert ECHOED_TOKEN not in shown
    assert "***" in shown  # the echo is shown, without the token: the message still says what came back


@pytest.mark.parametrize("kind", ["400-text", "200-envelope", "200-text"])
def test_the_async_client_hides_an_echoed_token_alike(requests_mock, hook_factory, kind, async_sleeps):
    import httpx

    requests_mock.post(TOKEN_URL, json=token_body(ECHOED_TOKEN))
    echo = _echo(kind)

    def answer(request: httpx.Request) -> httpx.Response:
        if "json" in echo:
            return httpx.Response(int(echo["status_code"]), json=echo["json"])  # type: ignore[arg-type]
        return httpx.Response(int(echo["status_code"]), text=str(echo["text"]))  # type: ignore[arg-type]

    with pytest.raises(NorceError) as info:
        async_get_json(hook_factory(), answer, ORDERS)
    shown = f"{info.value} {info.value!r} {getattr(info.value, 'body_excerpt', '')}"
    assert ECHOED_TOKEN not in shown
    assert "***" in shown
