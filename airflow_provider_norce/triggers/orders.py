"""``NorceNewOrdersTrigger``: an ``AssetWatcher`` trigger that fires when new Norce orders arrive.

Airflow 3 runs an asset watcher's trigger in the triggerer for as long as a DAG scheduled on the asset is
active and unpaused; every event it yields becomes an asset event (``extra = {"from_trigger": True,
"payload": <the event payload>}``) and so a run of that DAG, and the trigger keeps running after each event
(``TriggerRunner.run_trigger`` iterates ``run()`` to its end; 3.0.6 and 3.3.2). The rule of each round is
:func:`~airflow_provider_norce.query.order_watch.watch_flow`; this class only does its I/O: Query reads with
:class:`~airflow_provider_norce.hooks.async_client.NorceAsyncClient` (the token through the triggerer's
token cache, 429/5xx through the connection's retry policy), the position in an Airflow Variable.

The position survives a triggerer restart: it is an Airflow Variable (``position_variable``), read and
written through the triggerer's supervisor (``GetVariable``/``PutVariable``, handled by the triggerer of
3.0.6 and 3.3.2) with the comms' async ``asend`` on the trigger's own loop (see :func:`_supervisor_call`
for why not the sync ``Variable`` API). The kwargs never hold the position:
Airflow identifies an asset trigger by its kwargs (``BaseEventTrigger.hash``), so they must not change.
The Variable holds JSON (:class:`~airflow_provider_norce.query.order_watch.SavedPosition`): the position,
the watch's origin and what it watches (Query URL, environment, application; never a secret); a plain
integer (an earlier build of the watch, or set by hand) is read as both origin and position.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_norce.flows import advance
from airflow_provider_norce.query.order_watch import (
    ORDERS_PATH,
    Emit,
    Failed,
    LoadPosition,
    Now,
    ReadNewest,
    SavedPosition,
    SavePosition,
    Sleep,
    Warn,
    WatchSettings,
    parse_position,
    watch_flow,
    watch_identity,
)
from airflow_provider_norce.triggers.norce import read_config

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.hooks.async_client import NorceAsyncClient

#: The prefix of the default position Variable: ``norce_order_watch__<watch name>``.
POSITION_PREFIX = "norce_order_watch__"


def position_variable_for(name: str) -> str:
    """The position Variable of the watch ``name`` (an AssetWatcher's name)."""
    return POSITION_PREFIX + name


class NorceNewOrdersTrigger(BaseEventTrigger):
    """Watches Norce Query for orders with an Id above the last one reported; one event per batch.

    The event payload: ``{"watch", "after", "through", "origin", "newest_created", "application_id"}``: the
    new orders are ``Id gt after and Id le through`` (of the application); ``origin`` is the watch's first
    position (where an export with no file yet starts, so a lost first event is covered). Use :func:`order_watcher` to build the
    ``AssetWatcher`` (it names the position Variable after the watcher).

    :param norce_conn_id: the Airflow connection (type ``norce``).
    :param position_variable: the Airflow Variable holding the last Id reported (created at the first start,
        JSON with the watch's origin and what it watches). Two watchers must not share one. A value saved for
        another tenant, environment or application is not used (a WARNING, then a fresh start); a value the
        watch did not write stops it with an error naming the Variable.
    :param poll_interval: seconds between two polls (one ``$top=1`` request each).
    :param settle_seconds: report only orders ``Created`` at least this long ago (see
        :class:`~airflow_provider_norce.query.order_watch.WatchSettings`: Id visibility order is not
        published). Default 0.
    :param start_after: the position to start from when the Variable does not exist yet; default: the
        newest order at the first start (no history).
    :param filter_application: ``ApplicationId eq <the connection's application_id>`` on every poll, as the
        export operator does for ``Orders/Orders`` (the header does not filter orders).
    :param filter: an extra OData condition and-ed to the poll's (say ``StatusId ne 6``).
    """

    def __init__(
        self,
        norce_conn_id: str,
        position_variable: str,
        poll_interval: float = 60.0,
        settle_seconds: float = 0.0,
        start_after: int | None = None,
        filter_application: bool = True,
        filter: str | None = None,
    ) -> None:
        super().__init__()
        if not str(position_variable or "").strip():
            raise ValueError(
                f"NorceNewOrdersTrigger on connection {norce_conn_id!r}: position_variable is empty; name "
                "the Airflow Variable that keeps the watch's position (order_watcher() names it for you)"
            )
        if float(poll_interval) <= 0:
            raise ValueError(
                f"NorceNewOrdersTrigger {position_variable!r}: poll_interval must be more than 0 s, got "
                f"{poll_interval!r}"
            )
        if float(settle_seconds) < 0:
            raise ValueError(
                f"NorceNewOrdersTrigger {position_variable!r}: settle_seconds must be 0 or more, got "
                f"{settle_seconds!r}"
            )
        self.norce_conn_id = norce_conn_id
        self.position_variable = str(position_variable)
        self.poll_interval = float(poll_interval)
        self.settle_seconds = float(settle_seconds)
        self.start_after = None if start_after is None else int(start_after)
        self.filter_application = bool(filter_application)
        self.filter = filter or None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "norce_conn_id": self.norce_conn_id,
                "position_variable": self.position_variable,
                "poll_interval": self.poll_interval,
                "settle_seconds": self.settle_seconds,
                "start_after": self.start_after,
                "filter_application": self.filter_application,
                "filter": self.filter,
            },
        )

    def settings(self, config: NorceConnectionConfig) -> WatchSettings:
        """The flow's settings for this trigger on the connection ``config``."""
        application_id = config.application_id if self.filter_application else None
        return WatchSettings(
            name=self.position_variable,
            poll_interval=self.poll_interval,
            settle_seconds=self.settle_seconds,
            start_after=self.start_after,
            application_id=application_id,
            extra_filter=self.filter,
            identity=watch_identity(config, application_id),
            variable=self.position_variable,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        config = await read_config(self.norce_conn_id)
        if self.filter_application and config.application_id is None:
            self.log.warning(
                "Norce order watch %r: the connection %r has no application_id, so orders of every "
                "application are reported (the applicationId header does not filter orders); set the "
                "extra 'application_id' or filter_application=False to silence this",
                self.position_variable,
                self.norce_conn_id,
            )
        async with self._client(config) as client:
            url = client.hook.service_url("query") + ORDERS_PATH
            settings = self.settings(config)
            self._settings = settings
            flow = watch_flow(settings)
            done, step = advance(flow, None)
            while not done:
                if isinstance(step, Emit):
                    self.log.info(
                        "Norce order watch %r: new orders after Id %s through Id %s",
                        self.position_variable,
                        step.payload["after"],
                        step.payload["through"],
                    )
                    yield TriggerEvent(step.payload)
                    reply: Any = None
                else:
                    reply = await self._do(client, url, step)
                done, step = advance(flow, reply)

    async def _do(self, client: NorceAsyncClient, url: str, step: Any) -> Any:
        """The I/O of one step of the watch flow."""
        if isinstance(step, ReadNewest):
            try:
                return await client.get_json(url, params=step.params)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # after the retry policy: the watch waits a round, never dies
                return Failed(f"{type(err).__name__}: {err}")
        if isinstance(step, Sleep):
            if step.message:
                self.log.info(step.message)
            if step.seconds > 0:
                await asyncio.sleep(step.seconds)
            return None
        if isinstance(step, Warn):
            self.log.warning(step.message)
            return None
        if isinstance(step, Now):
            return time.time()
        if isinstance(step, LoadPosition):
            return await self._read_variable(self.position_variable)
        if isinstance(step, SavePosition):
            try:
                await self.save_position(step.saved)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                return Failed(f"{type(err).__name__}: {err}")
            return None
        raise TypeError(f"Norce order watch {self.position_variable!r}: unknown step {step!r}")

    # -- position ----------------------------------------------------------------------------------------
    async def load_position(self) -> SavedPosition | None:
        """The saved position, None when the Variable does not exist; ValueError, naming the watch, the
        Variable and the way out, for a value the watch did not write."""
        value = await self._read_variable(self.position_variable)
        if value is None:
            return None
        return parse_position(value, self._message_settings())

    async def save_position(self, saved: SavedPosition | int) -> None:
        """Write the position and read it back, so a write that did not happen never passes as saved."""
        if not isinstance(saved, SavedPosition):
            saved = SavedPosition(int(saved), int(saved), None)
        await self._write_variable(self.position_variable, saved.to_json())
        try:
            back = await self.load_position()
        except ValueError:
            back = None
        if not saved.same(back):
            raise RuntimeError(
                f"the Airflow Variable {self.position_variable!r} did not take the position {saved.position}; "
                "check that Variables are writable (a secrets backend may shadow it)"
            )

    def _message_settings(self) -> WatchSettings:
        """The watch's settings for messages: those of ``run`` once it has read the connection."""
        settings = getattr(self, "_settings", None)
        if isinstance(settings, WatchSettings):
            return settings
        return WatchSettings(self.position_variable, self.poll_interval, variable=self.position_variable)

    async def _read_variable(self, key: str) -> str | None:
        """Airflow Variable ``key`` through the triggerer's supervisor; None when it does not exist."""
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable

        answer = await _supervisor_call(GetVariable(key=key))
        if isinstance(answer, ErrorResponse):
            if answer.error == ErrorType.VARIABLE_NOT_FOUND:
                return None
            raise RuntimeError(f"reading the Airflow Variable {key!r} failed: {answer.error} {answer.detail}")
        value = getattr(answer, "value", None)
        return None if value is None else str(value)

    async def _write_variable(self, key: str, value: str) -> None:
        """Set Airflow Variable ``key`` through the triggerer's supervisor."""
        from airflow.sdk.execution_time.comms import ErrorResponse, PutVariable

        answer = await _supervisor_call(
            PutVariable(key=key, value=value, description="Last Norce order Id reported by the order watch")
        )
        if isinstance(answer, ErrorResponse):
            raise RuntimeError(f"writing the Airflow Variable {key!r} failed: {answer.error} {answer.detail}")

    # -- connection --------------------------------------------------------------------------------------
    def _client(self, config: NorceConnectionConfig) -> NorceAsyncClient:
        from airflow_provider_norce.hooks.async_client import NorceAsyncClient

        return NorceAsyncClient(config)


async def _supervisor_call(message: Any) -> Any:
    """Send ``message`` (``GetVariable``/``PutVariable``) to the triggerer's supervisor and await its answer.

    Why not ``Variable.get``/``set``: those are sync; on Airflow 3.0.6 a sync call from the trigger's loop
    raises (``AsyncToSync`` in the loop's thread), and from a worker thread (``sync_to_async``) the
    triggerer's 3.0.6 comms lost track of the answers ("Response read out of order!", seen under a real
    3.0.6 triggerer), killing every trigger of the triggerer. ``asend`` on the loop itself takes the comms'
    own lock (3.0.6) or its per-request futures (3.3.2). It is shielded: a trigger cancelled mid-call
    (a triggerer shutdown) must not leave an answer unread for the next caller.
    """
    from airflow.sdk.execution_time import task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None or not hasattr(comms, "asend"):
        raise RuntimeError(
            "no triggerer supervisor to keep the watch's position in an Airflow Variable: "
            "NorceNewOrdersTrigger runs in Airflow's triggerer (as an AssetWatcher's trigger)"
        )
    return await asyncio.shield(comms.asend(message))


def order_watcher(
    name: str,
    norce_conn_id: str = "norce_default",
    *,
    position_variable: str | None = None,
    **trigger_kwargs: Any,
) -> Any:
    """An ``AssetWatcher`` named ``name`` on a :class:`NorceNewOrdersTrigger` whose position Variable is
    named after the watcher (``norce_order_watch__<name>``) unless ``position_variable`` is given."""
    try:
        from airflow.sdk import AssetWatcher
    except ImportError:  # pragma: no cover - Airflow 3.0 exposes it here too
        from airflow.sdk.definitions.asset import AssetWatcher

    trigger = NorceNewOrdersTrigger(
        norce_conn_id, position_variable or position_variable_for(name), **trigger_kwargs
    )
    return AssetWatcher(name=name, trigger=trigger)
