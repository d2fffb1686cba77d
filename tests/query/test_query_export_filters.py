"""The exact ``$filter`` the order export sends: application filter, Created fallback, user filters (requests-mock)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from norce_query_testlib import context_for, read_jsonl, utc

from airflow_provider_norce.operators.query import NorceQueryExportOperator

BASE = "https://acme.api-se.norce.tech"
TOKEN_URL = f"{BASE}/identity/1.0/connect/token"
DAY_START, DAY_END = utc(2026, 11, 19), utc(2026, 11, 20)
WINDOW = "Updated ge 2026-11-19T00:00:00Z and Updated lt 2026-11-20T00:00:00Z"
FALLBACK = "Updated eq null and Created ge 2026-11-19T00:00:00Z and Created lt 2026-11-20T00:00:00Z"


@pytest.fixture
def norce_conn(monkeypatch):
    def define(application_id: str | None = "42") -> None:
        extra = {"token_cache": "process", "max_attempts": 1}
        if application_id is not None:
            extra["application_id"] = application_id
        conn = {"conn_type": "norce", "host": "acme", "login": "client-1", "password": "pw", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(conn))

    return define


def sent_filter(
    requests_mock, tmp_path, entity: str = "Orders/Orders", params=None, **arguments
) -> str | None:
    """Run one export against requests-mock and return the ``$filter`` Norce received."""
    requests_mock.post(TOKEN_URL, json={"access_token": "tok", "expires_in": 600, "token_type": "Bearer"})
    api = requests_mock.get(f"{BASE}/commerce/query/2.0/{entity}", json={"value": [{"Id": 1}]})
    destination = tmp_path / "out.jsonl"
    op = NorceQueryExportOperator(task_id="export", destination=str(destination), entity=entity, **arguments)
    context = context_for(DAY_START, DAY_END, params=params or {})
    op.render_template_fields(context)
    op.execute(context)
    assert read_jsonl(str(destination)) == [{"Id": 1}]
    query = parse_qs(urlsplit(api.last_request.url).query)
    return query["$filter"][0] if "$filter" in query else None


def test_default_order_window_is_restricted_to_the_application_and_falls_back_to_created(
    requests_mock, tmp_path, norce_conn
):
    norce_conn("42")
    assert sent_filter(requests_mock, tmp_path) == f"ApplicationId eq 42 and (({WINDOW}) or ({FALLBACK}))"
    assert requests_mock.last_request.headers["ApplicationId"] == "42"


def test_user_filter_is_parenthesised_after_the_application(requests_mock, tmp_path, norce_conn):
    norce_conn("42")
    text = sent_filter(requests_mock, tmp_path, filter="StatusId eq 5 or StatusId eq 6")
    assert text == "ApplicationId eq 42 and (StatusId eq 5 or StatusId eq 6)"


@pytest.mark.parametrize("flag", [False, "False", "{{ params.flag }}"])
def test_filter_application_off(requests_mock, tmp_path, norce_conn, flag):
    norce_conn("42")
    text = sent_filter(requests_mock, tmp_path, filter_application=flag, params={"flag": "false"})
    assert text == f"({WINDOW}) or ({FALLBACK})"


def test_fallback_off_and_whole_set(requests_mock, tmp_path, norce_conn):
    norce_conn("42")
    assert (
        sent_filter(requests_mock, tmp_path, window_fallback_field=None)
        == f"ApplicationId eq 42 and ({WINDOW})"
    )
    assert sent_filter(requests_mock, tmp_path, window_field=None) == "ApplicationId eq 42"


def test_other_entity_sets_get_no_application_filter(requests_mock, tmp_path, norce_conn):
    norce_conn("42")
    text = sent_filter(requests_mock, tmp_path, entity="Products/ProductSkus", window_fallback_field=None)
    assert text == WINDOW
    assert sent_filter(requests_mock, tmp_path, entity="Products/ProductSkus", window_field=None) is None


def test_no_application_id_on_the_connection_warns_and_exports_every_application(
    requests_mock, tmp_path, norce_conn, capsys
):
    norce_conn(None)
    assert sent_filter(requests_mock, tmp_path) == f"({WINDOW}) or ({FALLBACK})"
    logged = capsys.readouterr().out  # Airflow 3 task loggers write through structlog to stdout
    assert "no application_id" in logged and "'export'" in logged


def test_bad_filter_application_value_is_named(requests_mock, tmp_path, norce_conn):
    norce_conn("42")
    with pytest.raises(ValueError, match=r"'export'.*filter_application 'maybe'"):
        sent_filter(requests_mock, tmp_path, filter_application="maybe")
