"""``test_connection`` asks the token endpoint afresh, then makes one cheap call; no secret in messages."""

from __future__ import annotations

from norce_wire import BASE, SECRET, TOKEN_URL, token_body

APP = f"{BASE}/commerce/metadata/1.1/GetApplication"


def test_success_fetches_a_fresh_token_even_when_cached(requests_mock, hook_factory):
    token = requests_mock.post(TOKEN_URL, [{"json": token_body("a")}, {"json": token_body("b")}])
    app = requests_mock.get(APP, json={"ApplicationId": 42, "Name": "Acme web"})
    hook = hook_factory()
    hook.get_access_token()
    ok, message = hook.test_connection()
    assert ok, message
    assert token.call_count == 2
    assert app.last_request.qs == {"format": ["json"]}
    assert app.last_request.headers["Authorization"] == "Bearer b"
    assert "Acme web" in message and "client-1" in message


def test_wrong_secret_fails_clearly_without_the_secret(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, status_code=401, json={"error": "invalid_client"})
    ok, message = hook_factory().test_connection()
    assert not ok
    assert "invalid_client" in message and "norce_default" in message
    assert SECRET not in message


def test_malformed_connection_reports_the_field(hook_factory, set_conn):
    set_conn(extra={"environment": "qa"})
    ok, message = hook_factory().test_connection()
    assert not ok and "'environment'" in message
