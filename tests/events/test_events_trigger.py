"""NorceNewOrdersTrigger in a real event loop against the simulator: serialization, first start, new orders,
a restart that neither replays nor loses, 429s through the retry policy, a bad saved position."""

from __future__ import annotations

import asyncio
import json

import pytest
from events_support import MemoryVariables, StoredTrigger, next_event, rebuild, saved

from airflow_provider_norce.triggers.orders import NorceNewOrdersTrigger, order_watcher, position_variable_for

VAR = "norce_order_watch__test"


def test_serialize_round_trip_keeps_kwargs_the_asset_hash_and_no_secret(norce_simulator):
    from airflow.triggers.base import BaseEventTrigger

    trigger = NorceNewOrdersTrigger(
        "norce_default", VAR, poll_interval=5, settle_seconds=30, start_after=7, filter="StatusId ne 6"
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_norce.triggers.orders.NorceNewOrdersTrigger"
    assert norce_simulator.sim.client_secret not in json.dumps(kwargs)
    rebuilt = rebuild(trigger)
    assert rebuilt.serialize() == trigger.serialize()
    # Airflow identifies an asset trigger by classpath and kwargs: a rebuilt one is the same trigger
    assert BaseEventTrigger.hash(*rebuilt.serialize()) == BaseEventTrigger.hash(classpath, kwargs)


def test_order_watcher_names_the_position_variable_after_the_watcher():
    watcher = order_watcher("shop_orders", poll_interval=10)
    assert watcher.name == "shop_orders"
    assert (
        watcher.trigger.position_variable
        == position_variable_for("shop_orders")
        == "norce_order_watch__shop_orders"
    )
    assert order_watcher("x", position_variable="mine").trigger.position_variable == "mine"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"position_variable": " "}, "position_variable is empty"),
        ({"poll_interval": 0}, "poll_interval must be more than 0"),
        ({"settle_seconds": -1}, "settle_seconds must be 0 or more"),
    ],
)
def test_bad_arguments_name_the_watch_and_the_fix(kwargs, message):
    args = {"norce_conn_id": "norce_default", "position_variable": VAR, **kwargs}
    with pytest.raises(ValueError, match=message):
        NorceNewOrdersTrigger(**args)


@pytest.mark.norce_simulator(orders=2000)
def test_new_orders_fire_once_and_a_restart_resumes_from_the_saved_position(norce_simulator, fresh_store):
    sim = norce_simulator.sim
    app = sim.application_id
    mine = [i + 1 for i in range(len(sim.orders)) if sim.orders.scan_row(i)["ApplicationId"] == app]

    async def scenario() -> list[dict]:
        payloads = []
        trigger = rebuild(StoredTrigger("norce_default", VAR, poll_interval=0.01))
        events = trigger.run()
        first = asyncio.ensure_future(next_event(events))
        while VAR not in fresh_store.values:  # the first start saves the newest order as the position
            await asyncio.sleep(0.01)
        assert saved(fresh_store.values[VAR]) == (mine[-1], mine[-1])  # (position, origin)
        added = sim.add_orders(12)
        payloads.append((await first).payload)
        # The triggerer asks for the next event at once, which saves the position; then it is restarted.
        pending = asyncio.ensure_future(next_event(events))
        while saved(fresh_store.values[VAR])[0] != payloads[0]["through"]:
            await asyncio.sleep(0.01)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await events.aclose()

        added_later = sim.add_orders(12)
        restarted = rebuild(StoredTrigger("norce_default", VAR, poll_interval=0.01)).run()
        payloads.append((await next_event(restarted)).payload)
        await restarted.aclose()
        return [payloads, added, added_later]

    payloads, added, added_later = asyncio.run(scenario())
    new_mine = [i for i in [*added, *added_later] if sim.orders.scan_row(i - 1)["ApplicationId"] == app]
    assert payloads[0]["after"] == mine[-1]
    assert payloads[0]["through"] == max(i for i in new_mine if i in added)
    assert payloads[1]["after"] == payloads[0]["through"]  # no replay after the restart
    assert payloads[1]["through"] == max(new_mine)
    assert payloads[0]["origin"] == payloads[1]["origin"] == mine[-1]  # the first start's, in every event
    # the second trigger was stopped right after its event, before saving: a restart would replay that range
    assert [saved(w[1]) for w in fresh_store.writes] == [
        (mine[-1], mine[-1]),
        (payloads[0]["through"], mine[-1]),
    ]


@pytest.mark.norce_simulator(orders=50)
def test_a_stop_between_the_event_and_the_save_replays_the_range_never_skips_it(norce_simulator, fresh_store):
    """The crash window the watch chose: the event goes out before the position is saved."""
    sim = norce_simulator.sim
    fresh_store.values[VAR] = "50"
    sim.add_orders(3)

    async def event_then_stop() -> dict:
        events = StoredTrigger("norce_default", VAR, poll_interval=0.01, filter_application=False).run()
        payload = (await next_event(events)).payload
        await events.aclose()  # stopped before it could save
        return payload

    first = asyncio.run(event_then_stop())
    assert saved(fresh_store.values[VAR]) == (50, 50)  # a plain integer: upgraded, not moved on
    again = asyncio.run(event_then_stop())
    assert (first["after"], first["through"]) == (again["after"], again["through"]) == (50, 53)


@pytest.mark.norce_simulator(orders=100, query_rate_limit=None)
def test_429_from_query_is_retried_through_the_connections_policy(norce_simulator, fresh_store, monkeypatch):
    sim = norce_simulator.sim
    fresh_store.values[VAR] = "0"
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(seconds: float, *args, **kwargs) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    sim.add_fault("query", "429", count=2, retry_after=1)

    async def one() -> dict:
        events = StoredTrigger("norce_default", VAR, poll_interval=5, filter_application=False).run()
        try:
            return (await next_event(events)).payload
        finally:
            await events.aclose()

    payload = asyncio.run(one())
    assert (payload["after"], payload["through"]) == (0, 100)
    assert sim.counters()["api_429"] == 2
    assert waits[:2] == [1, 1]  # the Retry-After of each 429, through the retry policy


@pytest.mark.norce_simulator(orders=10)
def test_a_saved_position_that_is_not_an_id_stops_with_the_variable_named(norce_simulator, fresh_store):
    fresh_store.values[VAR] = "yesterday"

    async def one() -> None:
        events = StoredTrigger("norce_default", VAR, poll_interval=1).run()
        await next_event(events)

    with pytest.raises(
        ValueError,
        match=r"Norce order watch 'norce_order_watch__test' \(Airflow Variable 'norce_order_watch__test'\): "
        r"the Variable holds 'yesterday', which is not a position the watch saved .*delete the Variable",
    ):
        asyncio.run(one())


@pytest.mark.norce_simulator(orders=30)
def test_the_variable_records_what_is_watched_and_another_tenants_position_is_not_used(
    norce_simulator, fresh_store, capsys, caplog
):
    """The trigger's identity (from the connection as the triggerer reads it), saved with the position and
    no secret; a saved identity that differs is warned about (naming the Variable and both) and replaced."""
    sim = norce_simulator.sim
    app = sim.application_id
    newest = max(i + 1 for i in range(len(sim.orders)) if sim.orders.scan_row(i)["ApplicationId"] == app)
    theirs = {"query_url": "https://other.api-se.norce.tech/commerce/query/2.0/", "application_id": app}
    fresh_store.values[VAR] = json.dumps({"position": 3, "origin": 1, "identity": theirs})

    async def until_saved() -> None:
        events = StoredTrigger("norce_default", VAR, poll_interval=0.01).run()
        pending = asyncio.ensure_future(next_event(events))
        while not fresh_store.writes:
            await asyncio.sleep(0.01)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await events.aclose()

    asyncio.run(until_saved())
    value = json.loads(fresh_store.values[VAR])
    assert (value["position"], value["origin"]) == (newest, newest)
    assert value["identity"] == {
        "query_url": f"{sim.base_url}/commerce/query/2.0/",
        "environment": "production",
        "application_id": app,
    }
    assert sim.client_secret not in fresh_store.values[VAR]
    # the trigger's WARNING line: printed by structlog (Airflow 3.3) or a logging record
    printed = capsys.readouterr()
    warned = [line for line in (printed.out + printed.err).splitlines() if "warning" in line.lower()]
    warned += [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        VAR in m and "other.api-se.norce.tech" in m and sim.base_url in m and "starts afresh" in m
        for m in warned
    ), warned


@pytest.mark.norce_simulator(orders=10)
def test_a_write_that_does_not_stick_is_reported_not_taken_as_saved(norce_simulator):
    class Shadowed(MemoryVariables):
        def set(self, key, value, description=None):  # a secrets backend shadows the Variable
            self.writes.append((key, str(value)))

    StoredTrigger.store = Shadowed()

    async def one() -> None:
        events = StoredTrigger("norce_default", VAR, poll_interval=1).run()
        await next_event(events)

    with pytest.raises(RuntimeError, match=r"saving its first position .* did not take the position"):
        asyncio.run(one())


class FakeSupervisor:
    """The triggerer supervisor's side of the comms (``asend``), answering Variable requests from a dict the way
    Airflow's supervisor answers them: a ``VariableResult``, an ``ErrorResponse`` VARIABLE_NOT_FOUND, or None."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.sent: list[object] = []

    async def asend(self, message):
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable, PutVariable, VariableResult

        self.sent.append(message)
        if isinstance(message, PutVariable):
            self.values[message.key] = message.value
            return None
        assert isinstance(message, GetVariable)
        if message.key not in self.values:
            return ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND, detail={"key": message.key})
        return VariableResult(key=message.key, value=self.values[message.key])


def test_the_position_goes_through_the_supervisors_variable_messages(monkeypatch):
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import GetVariable, PutVariable

    supervisor = FakeSupervisor()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", supervisor, raising=False)
    trigger = NorceNewOrdersTrigger("norce_default", VAR)

    async def save_and_load() -> tuple:
        before = await trigger.load_position()
        await trigger.save_position(42)
        return before, await trigger.load_position()

    before, after = asyncio.run(save_and_load())
    assert before is None and (after.position, after.origin) == (42, 42)
    assert saved(supervisor.values[VAR]) == (42, 42)
    assert [type(m) for m in supervisor.sent] == [GetVariable, PutVariable, GetVariable, GetVariable]


def test_outside_a_triggerer_the_position_store_says_where_the_trigger_runs(monkeypatch):
    from airflow.sdk.execution_time import task_runner

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", None, raising=False)
    with pytest.raises(RuntimeError, match="runs in Airflow's triggerer"):
        asyncio.run(NorceNewOrdersTrigger("norce_default", VAR).load_position())
