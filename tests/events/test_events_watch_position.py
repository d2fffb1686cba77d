"""The watch's saved position (``watch_flow`` driven by the sync hook against the simulator): the durable
origin that covers a lost first event, the identity that keeps a position from another tenant, environment
or application out, the check that the position is not ahead of Norce's newest order, and saved values the
watch did not write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from events_support import run_watch, saved

from airflow_provider_norce.query.order_ranges import (
    OrderRange,
    event_origin,
    event_ranges,
    plan_range,
)
from airflow_provider_norce.query.order_watch import (
    SavedPosition,
    WatchSettings,
    parse_position,
    watch_identity,
)

WATCH = "shop_orders"
VAR = "norce_order_watch__shop_orders"


def settings(hook: Any, **kw: Any) -> WatchSettings:
    """The settings the trigger builds for the simulator's connection (application filter on)."""
    app = hook.config.application_id
    kw.setdefault("poll_interval", 30)
    return WatchSettings(
        name=WATCH, application_id=app, identity=watch_identity(hook.config, app), variable=VAR, **kw
    )


def newest_app_order(sim: Any) -> int:
    orders = sim.orders
    return max(i + 1 for i in range(len(orders)) if orders.scan_row(i)["ApplicationId"] == sim.application_id)


def app_orders(sim: Any, after: int, through: int) -> list[int]:
    orders = sim.orders
    return [
        i + 1
        for i in range(after, min(through, len(orders)))
        if orders.scan_row(i)["ApplicationId"] == sim.application_id
    ]


@pytest.mark.norce_simulator(orders=300)
def test_the_origin_is_saved_before_any_event_so_a_lost_first_event_is_still_exported(
    norce_simulator, hook, orders_url
):
    sim = norce_simulator.sim
    st = settings(hook)
    store: dict[str, Any] = {}
    read = lambda p: hook.run_json(orders_url, params=p)  # noqa: E731

    assert run_watch(st, read, store, rounds=1) == []  # first start: no event yet
    origin = newest_app_order(sim)
    assert saved(store[WATCH]) == (origin, origin)
    assert json.loads(store[WATCH])["identity"] == watch_identity(hook.config, sim.application_id)

    sim.add_orders(9)
    first = run_watch(st, read, store, rounds=1)  # the triggerer dies before writing this event: lost
    sim.add_orders(9)
    second = run_watch(st, read, store, rounds=1)
    assert [e["origin"] for e in first + second] == [origin, origin]
    assert first[0]["after"] == origin and second[0]["after"] == first[0]["through"]
    assert saved(store[WATCH]) == (second[0]["through"], origin)

    # The export's first run sees only the second event; it starts at the durable origin, not its ``after``.
    planned = plan_range(event_ranges(second), [], origin=event_origin(second))
    assert planned == OrderRange(origin, second[0]["through"])
    lost = app_orders(sim, origin, first[0]["through"])
    assert lost and all(planned.after < i <= planned.through for i in lost)


def test_plan_range_with_no_file_starts_at_the_origin_and_keeps_events_without_one():
    lost_first = {"after": 100, "through": 120, "origin": 100}
    second = {"after": 120, "through": 130, "origin": 100}
    assert plan_range(event_ranges([second]), [], origin=event_origin([second])) == OrderRange(100, 130)
    assert event_origin([lost_first, second, {"after": 1}, "manual"]) == 100
    # Events without an origin (an earlier build of the watch): the lowest ``after``, as before.
    old = [{"after": 120, "through": 130}]
    assert event_origin(old) is None
    assert plan_range(event_ranges(old), [], origin=event_origin(old)) == OrderRange(120, 130)
    # A file exists: the origin does not matter, the highest exported ``through`` does.
    assert plan_range(event_ranges([second]), [OrderRange(100, 125)], origin=100) == OrderRange(125, 130)


@pytest.mark.parametrize(
    "other",
    [
        {"query_url": "https://other.api-se.norce.tech/commerce/query/2.0/"},
        {"environment": "stage"},
        {"application_id": 999},
    ],
    ids=["tenant", "environment", "application"],
)
@pytest.mark.norce_simulator(orders=300)
def test_a_position_saved_for_another_tenant_environment_or_application_is_not_used(
    norce_simulator, hook, orders_url, other
):
    sim = norce_simulator.sim
    st = settings(hook)
    theirs = {**watch_identity(hook.config, sim.application_id), **other}
    store: dict[str, Any] = {WATCH: SavedPosition(40, 10, theirs).to_json()}
    warnings: list[str] = []
    events = run_watch(st, lambda p: hook.run_json(orders_url, params=p), store, rounds=2, warnings=warnings)

    newest = newest_app_order(sim)
    assert events == []  # not (40, newest]: Id 40 of the other one is no position here
    assert saved(store[WATCH]) == (newest, newest)  # afresh, as a new watch: after the newest order
    assert json.loads(store[WATCH])["identity"] == st.identity
    assert len(warnings) == 1
    message = warnings[0]
    assert f"Norce order watch {WATCH!r} (Airflow Variable {VAR!r})" in message
    (key, value) = next(iter(other.items()))
    assert f"{key}={value!r}" in message  # the saved identity
    assert f"{key}={st.identity[key]!r}" in message  # and the identity now
    assert "starts afresh" in message
    assert hook.config.client_secret not in store[WATCH]


@pytest.mark.norce_simulator(orders=300)
def test_a_plain_integer_position_is_both_origin_and_position_and_gets_its_identity(
    norce_simulator, hook, orders_url
):
    sim = norce_simulator.sim
    st = settings(hook)
    start = newest_app_order(sim)
    store: dict[str, Any] = {WATCH: f" {start}\n"}
    sim.add_orders(6)
    events = run_watch(st, lambda p: hook.run_json(orders_url, params=p), store, rounds=1)
    assert [(e["after"], e["through"], e["origin"]) for e in events] == [
        (start, newest_app_order(sim), start)
    ]
    assert saved(store[WATCH]) == (newest_app_order(sim), start)
    assert json.loads(store[WATCH])["identity"] == st.identity


@pytest.mark.norce_simulator(orders=300)
def test_a_position_ahead_of_the_newest_order_warns_once_per_start_naming_the_way_out(
    norce_simulator, hook, orders_url
):
    sim = norce_simulator.sim
    st = settings(hook)
    newest = newest_app_order(sim)
    store: dict[str, Any] = {WATCH: SavedPosition(newest + 5000, 10, st.identity).to_json()}
    read_params: list[dict[str, str]] = []

    def read(params: dict[str, str]) -> Any:
        read_params.append(params)
        return hook.run_json(orders_url, params=params)

    warnings: list[str] = []
    assert run_watch(st, read, store, rounds=5, warnings=warnings) == []
    assert len(warnings) == 1, warnings  # once at the start, not once per poll
    message = warnings[0]
    assert f"Norce order watch {WATCH!r} (Airflow Variable {VAR!r})" in message
    assert f"position {newest + 5000} is ahead of the newest order" in message
    assert f"(Id {newest})" in message
    assert "delete the Variable" in message and "start_after" in message
    checks = [p for p in read_params if "Id gt" not in p.get("$filter", "")]
    assert len(checks) == 1 and len(read_params) == 6  # one check, then one read per poll

    # A long silence checks again, at most once an hour (here: every second poll of 30 min).
    warnings.clear()
    run_watch(settings(hook, poll_interval=1800), read, store, rounds=5, warnings=warnings)
    assert len(warnings) == 3  # the start, then after 1 h and 2 h without a new order

    # A position behind or at the newest order is no warning.
    warnings.clear()
    store[WATCH] = SavedPosition(newest, 10, st.identity).to_json()
    run_watch(st, read, store, rounds=3, warnings=warnings)
    assert warnings == []


@pytest.mark.parametrize(
    "value",
    [
        "--5",
        "²",
        "abc",
        "-5",
        "1.5",
        "",
        "true",
        "{garbage",
        "[12]",
        '{"position": "12"}',
        '{"position": true}',
        '{"origin": 3}',
        '{"position": 5, "origin": -1}',
        '{"position": 5, "identity": "acme"}',
    ],
)
@pytest.mark.norce_simulator(orders=20)
def test_a_saved_value_the_watch_did_not_write_stops_it_naming_the_watch_the_variable_and_the_fix(
    norce_simulator, hook, orders_url, value
):
    before = norce_simulator.counters()["requests"]
    with pytest.raises(ValueError) as raised:
        run_watch(settings(hook), lambda p: hook.run_json(orders_url, params=p), {WATCH: value}, rounds=1)
    message = str(raised.value)
    assert f"Norce order watch {WATCH!r} (Airflow Variable {VAR!r})" in message
    assert "not a position the watch saved" in message
    assert "delete the Variable" in message and "last order Id already handled" in message
    assert "invalid literal" not in message
    assert norce_simulator.counters()["requests"] == before  # stopped before asking Norce anything


def test_parse_position_reads_what_the_watch_writes():
    st = WatchSettings("w", 1)
    value = SavedPosition(12, 3, {"query_url": "https://x/", "application_id": None})
    assert parse_position(value.to_json(), st) == value
    assert parse_position(value.to_json(), st).identity == value.identity
    assert parse_position("7", st) == SavedPosition(7, 7) and parse_position(7, st) == SavedPosition(7, 7)
    assert parse_position('{"position": 9}', st) == SavedPosition(9, 9)
