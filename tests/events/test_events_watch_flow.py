"""The watch rule (``watch_flow``) driven by the sync hook against requests-mock: the exact requests it
sends, when it fires, what it saves. The same flow runs in the trigger (``test_events_trigger.py``)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from events_support import run_watch, saved

from airflow_provider_norce.query.order_watch import WatchSettings, newest_params, read_newest

BASE = "https://acme.api-se.norce.tech"
TOKEN_URL = f"{BASE}/identity/1.0/connect/token"
ORDERS = f"{BASE}/commerce/query/2.0/Orders/Orders"
WATCH = "norce_order_watch__w"


@pytest.fixture
def mock_hook(requests_mock, monkeypatch):
    """A NorceHook for connection ``acme`` (application 42) whose Norce is requests-mock."""
    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.simulator.clock import FakeClock
    from airflow_provider_norce.tokens.cache import TokenCache

    conn = {
        "conn_type": "norce",
        "host": "acme",
        "login": "client-1",
        "password": "s3cr3t",
        "extra": {"application_id": "42", "auth_cache": "process"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(conn))
    requests_mock.post(TOKEN_URL, json={"access_token": "tok", "token_type": "Bearer", "expires_in": 600})
    clock = FakeClock(start=1_800_000_000.0)
    hook = NorceHook("norce_default", token_cache=TokenCache(clock=clock), sleep=clock.sleep)
    hook.test_clock = clock  # the retry waits are recorded here, not waited through
    return hook


def queries(route) -> list[dict[str, str]]:
    """The query options of every request the route saw, decoded, one value each."""
    return [{k: v[0] for k, v in parse_qs(urlsplit(r.url).query).items()} for r in route.request_history]


def page(*ids: int) -> dict:
    return {"json": {"value": [{"Id": i, "Created": "2026-12-01T10:00:00Z"} for i in ids]}}


def settings(**kw) -> WatchSettings:
    return WatchSettings(name=WATCH, poll_interval=30, application_id=42, **kw)


def test_first_start_begins_after_the_newest_order_then_fires_once_per_new_range(requests_mock, mock_hook):
    route = requests_mock.get(ORDERS, [page(120), page(), page(125), page(), page(131)])
    store: dict[str, int] = {}
    events = run_watch(settings(), lambda p: mock_hook.run_json(ORDERS, params=p), store, rounds=4)

    assert queries(route) == [
        {"$top": "1", "$orderby": "Id desc", "$select": "Id,Created", "$filter": "ApplicationId eq 42"},
        *[
            {
                "$top": "1",
                "$orderby": "Id desc",
                "$select": "Id,Created",
                "$filter": f"ApplicationId eq 42 and Id gt {p}",
            }
            for p in (120, 120, 125, 125)
        ],
    ]
    assert [(e["after"], e["through"]) for e in events] == [(120, 125), (125, 131)]
    assert events[0] == {
        "watch": WATCH,
        "after": 120,
        "through": 125,
        "origin": 120,
        "newest_created": "2026-12-01T10:00:00Z",
        "application_id": 42,
    }
    assert saved(store[WATCH]) == (131, 120)  # (position, origin)
    assert all(r.headers["Authorization"] == "Bearer tok" for r in route.request_history)


def test_a_saved_position_is_kept_and_start_after_only_applies_without_one(requests_mock, mock_hook):
    route = requests_mock.get(ORDERS, [page(5), page(), page(7)])
    store = {WATCH: 5}
    events = run_watch(
        settings(start_after=1), lambda p: mock_hook.run_json(ORDERS, params=p), store, rounds=2
    )
    assert [q["$filter"] for q in queries(route)] == [
        "ApplicationId eq 42",  # the start's check that the position is not ahead of the newest order
        *["ApplicationId eq 42 and Id gt 5"] * 2,
    ]
    assert [(e["after"], e["through"]) for e in events] == [(5, 7)]

    route = requests_mock.get(ORDERS, [page(3)])
    store = {}
    events = run_watch(
        settings(start_after=1), lambda p: mock_hook.run_json(ORDERS, params=p), store, rounds=1
    )
    assert [q["$filter"] for q in queries(route)] == [
        "ApplicationId eq 42 and Id gt 1"
    ]  # no first-start read
    assert [(e["after"], e["through"]) for e in events] == [(1, 3)]


def test_settle_delay_reports_only_orders_created_long_enough_ago(requests_mock, mock_hook):
    route = requests_mock.get(ORDERS, [page(9), page()])
    store = {WATCH: 9}
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    run_watch(
        settings(settle_seconds=120, extra_filter="StatusId ne 6"),
        lambda p: mock_hook.run_json(ORDERS, params=p),
        store,
        rounds=1,
        now=lambda: now,
    )
    assert queries(route)[1]["$filter"] == (
        "ApplicationId eq 42 and Id gt 9 and Created le 2027-01-15T07:58:00Z and (StatusId ne 6)"
    )


def test_429_and_5xx_are_retried_by_the_connections_policy_before_the_flow_sees_an_answer(
    requests_mock, mock_hook
):
    route = requests_mock.get(
        ORDERS,
        [
            page(10),
            {"status_code": 429, "headers": {"Retry-After": "0"}, "json": {}},
            {"status_code": 503, "json": {}},
            page(12),
        ],
    )
    events = run_watch(settings(), lambda p: mock_hook.run_json(ORDERS, params=p), {WATCH: 10}, rounds=1)
    assert len(route.request_history) == 4
    assert len(mock_hook.test_clock.sleeps) == 2  # one wait per retried answer
    assert [(e["after"], e["through"]) for e in events] == [(10, 12)]


def test_a_failed_poll_waits_a_round_and_a_failed_position_read_stops_the_watch():
    from events_support import Stop

    from airflow_provider_norce.flows import drive
    from airflow_provider_norce.query.order_watch import Failed, LoadPosition, ReadNewest, Sleep, watch_flow

    answers = iter([{"value": [{"Id": 2}]}, Failed("NorceAPIError: 500"), {"value": [{"Id": 4}]}])
    seen: list[object] = []

    def do(step):
        seen.append(step)
        if isinstance(step, LoadPosition):
            return 2
        if isinstance(step, ReadNewest):
            return next(answers)
        if isinstance(step, Sleep) and len([s for s in seen if isinstance(s, Sleep)]) == 2:
            raise Stop
        return None

    with pytest.raises(Stop):
        drive(watch_flow(settings()), do)
    sleeps = [s for s in seen if isinstance(s, Sleep)]
    assert "polling failed, trying again: NorceAPIError: 500" in sleeps[0].message
    assert "new orders through Id 4" in sleeps[1].message

    with pytest.raises(RuntimeError, match="reading its position failed: Variable store down"):
        drive(watch_flow(settings()), lambda step: Failed("Variable store down"))


@pytest.mark.parametrize(
    ("body", "expected"),
    [({"value": []}, None), ({"value": [{"Id": "17"}]}, 17), ({"value": [{"Id": 17, "Created": "x"}]}, 17)],
)
def test_read_newest_accepts_pages(body, expected):
    newest = read_newest(body, "w")
    assert (newest.id if newest else None) == expected


@pytest.mark.parametrize("body", [[], {"error": {}}, {"value": [{"Id": None}]}, {"value": [{"Id": True}]}])
def test_read_newest_refuses_what_is_not_a_page_of_orders(body):
    with pytest.raises(ValueError, match="Norce order watch 'w'"):
        read_newest(body, "w")


def test_params_without_application_or_position():
    assert newest_params(WatchSettings("w", 1), None, None) == {
        "$top": "1",
        "$orderby": "Id desc",
        "$select": "Id,Created",
    }
