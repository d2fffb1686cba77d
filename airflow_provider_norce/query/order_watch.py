"""The new-orders watch, written once as an I/O-free flow (see :mod:`airflow_provider_norce.flows`).

:func:`watch_flow` is the whole rule of :class:`~airflow_provider_norce.triggers.orders.NorceNewOrdersTrigger`:
where to start, what to ask Norce each round, when an event is due and when the position is saved. It
yields steps and a driver does their I/O: the trigger with the async client and an Airflow Variable, the
tests with the sync hook against requests-mock or the simulator. So the rule is tested without an event
loop and runs unchanged in the triggerer.

One round is ONE cheap Query read of ``Orders/Orders``: ``$top=1``, ``$orderby=Id desc``,
``$select=Id,Created`` and ``$filter=ApplicationId eq A and Id gt P`` (``P`` the position; plus ``Created le
<now - settle>`` with a settle delay and the caller's own filter). ``$top``, ``$orderby`` and ``$select`` on
Orders are third-party observations (``query.json odata_options``); ``$count`` is not documented at all
(``query.json odata_options.$count``), so events carry the Id range, not a count.

Crash windows (the position is an Airflow Variable, see the trigger):

* the event is yielded BEFORE the position is saved, so a crash between the two replays the event on
  restart (at least once); the example DAG's export skips a range already exported;
* the triggerer keeps a yielded event in memory for up to about a second before it writes it to the
  database, so a crash in that second loses it while the saved position has moved on: the NEXT event's
  export starts from the last Id exported (not from the event's ``after``) and so covers the lost range.
  Either way an order is exported once; a lost event only delays it until the next new order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Generator

#: The entity set watched (``query.json entity_sets[Orders/Orders]``).
ORDERS_PATH = "Orders/Orders"


@dataclass(frozen=True)
class WatchSettings:
    """What one watch is: where it stores its position and which orders it reports.

    :param name: the watch's name in messages and events (the position Variable's key).
    :param poll_interval: seconds between two rounds.
    :param settle_seconds: only orders ``Created`` at least this long ago are reported. Why: nobody
        published whether Norce makes order Ids visible in Id order; if a lower Id could appear after a
        higher one, a delay longer than that lag keeps the range complete. 0 (default) trusts Id order.
        The cut-off is the triggerer's clock; Norce's ``Created`` is the server's, so add the clock skew.
    :param start_after: the position of a watch that has none saved yet; ``None`` starts after the newest
        order at the first round (no history is reported).
    :param application_id: ``ApplicationId eq N`` is and-ed in front (the ``applicationId`` header does not
        filter orders: ``query.json request_headers.application_id.third_party``); ``None``: every application.
    :param extra_filter: an OData condition and-ed to the watch's (e.g. ``StatusId ne 6``).
    """

    name: str
    poll_interval: float
    settle_seconds: float = 0.0
    start_after: int | None = None
    application_id: int | None = None
    extra_filter: str | None = None


# -- steps: what the flow needs done (the reply each one expects is in its docstring) ----------------------
@dataclass(frozen=True)
class LoadPosition:
    """Read the saved position; reply: the int, or ``None`` when none was saved yet."""


@dataclass(frozen=True)
class SavePosition:
    """Save ``position`` durably; reply: ``None`` (or a :class:`Failed` when the write failed)."""

    position: int


@dataclass(frozen=True)
class Now:
    """Reply: the current time, epoch seconds (the settle cut-off)."""


@dataclass(frozen=True)
class ReadNewest:
    """GET ``Orders/Orders`` with ``params``; reply: the parsed JSON body, or a :class:`Failed`."""

    params: dict[str, str]


@dataclass(frozen=True)
class Emit:
    """Fire an event with ``payload``; reply: ``None``."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds``; ``message`` says why (the driver logs it); reply: ``None``."""

    seconds: float
    message: str


@dataclass(frozen=True)
class Failed:
    """A reply saying the step's I/O failed (after the connection's retries): ``message`` says how."""

    message: str


Step = LoadPosition | SavePosition | Now | ReadNewest | Emit | Sleep


@dataclass(frozen=True)
class Newest:
    """The newest matching order: its ``Id`` and ``Created`` (as Norce wrote it)."""

    id: int
    created: str | None


def newest_params(settings: WatchSettings, after: int | None, cutoff: float | None) -> dict[str, str]:
    """The Query options of one round: the newest order with ``Id gt after`` (and settled by ``cutoff``)."""
    conditions = []
    if settings.application_id is not None:
        conditions.append(f"ApplicationId eq {int(settings.application_id)}")
    if after is not None:
        conditions.append(f"Id gt {int(after)}")
    if cutoff is not None:
        conditions.append(f"Created le {_iso_z(cutoff)}")
    if settings.extra_filter:
        conditions.append(f"({settings.extra_filter})")
    params = {"$top": "1", "$orderby": "Id desc", "$select": "Id,Created"}
    if conditions:
        params["$filter"] = " and ".join(conditions)
    return params


def watch_flow(settings: WatchSettings) -> Generator[Step, Any, None]:
    """The watch, forever: load (or set) the position, then each round read the newest order and emit
    ``{"after": P, "through": N, ...}`` when ``N > P``, then save ``N``. See the module docs for why in this
    order. A failed read or save is logged through the next :class:`Sleep` and retried next round; a
    failed LOAD raises (starting afresh would skip orders)."""
    saved = yield LoadPosition()
    if isinstance(saved, Failed):
        raise RuntimeError(
            f"Norce order watch {settings.name!r}: reading its position failed: {saved.message}"
        )
    position: int
    if saved is not None:
        position = int(saved)
    else:
        if settings.start_after is not None:
            position = int(settings.start_after)
            why = f"start_after={position}"
        else:
            position = yield from _first_position(settings)
            why = "the newest order now; earlier orders are not reported"
        answer = yield SavePosition(position)
        if isinstance(answer, Failed):
            raise RuntimeError(
                f"Norce order watch {settings.name!r}: saving its first position {position} failed: "
                f"{answer.message}"
            )
        yield Sleep(0.0, f"Norce order watch {settings.name!r}: first start, position {position} ({why})")
    while True:
        cutoff = None
        if settings.settle_seconds > 0:
            now = yield Now()
            cutoff = float(now) - settings.settle_seconds
        body = yield ReadNewest(newest_params(settings, position, cutoff))
        message = f"Norce order watch {settings.name!r}: no order after Id {position}"
        if isinstance(body, Failed):
            message = f"Norce order watch {settings.name!r}: polling failed, trying again: {body.message}"
        else:
            newest = read_newest(body, settings.name)
            if newest is not None and newest.id > position:
                yield Emit(event_payload(settings, position, newest))
                position = newest.id
                answer = yield SavePosition(position)
                message = f"Norce order watch {settings.name!r}: new orders through Id {position}"
                if isinstance(answer, Failed):
                    message += (
                        f"; saving the position failed (a restart replays this range): {answer.message}"
                    )
        yield Sleep(settings.poll_interval, message)


def _first_position(settings: WatchSettings) -> Generator[Step, Any, int]:
    """The newest order's Id (0 with none): a new watch starts after it."""
    while True:
        body = yield ReadNewest(newest_params(settings, None, None))
        if not isinstance(body, Failed):
            newest = read_newest(body, settings.name)
            return 0 if newest is None else newest.id
        yield Sleep(
            settings.poll_interval,
            f"Norce order watch {settings.name!r}: reading the newest order failed, trying again: {body.message}",
        )


def read_newest(body: Any, name: str) -> Newest | None:
    """The one row of a ``$top=1`` answer, or None for an empty page. ValueError for anything that is not
    an OData page of rows with an integer ``Id`` (an order Id is int64: ``query.json
    entity_sets[Orders/Orders].fields_from_docs_2_0 Id``)."""
    rows = body.get("value") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise ValueError(
            f"Norce order watch {name!r}: {ORDERS_PATH} answered something other than an OData page "
            f"({type(body).__name__}); check the connection's host and base_url"
        )
    if not rows:
        return None
    row = rows[0]
    order_id = row.get("Id") if isinstance(row, dict) else None
    if isinstance(order_id, str) and order_id.isdigit():  # the 2.0 docs type the key "string"
        order_id = int(order_id)
    if isinstance(order_id, bool) or not isinstance(order_id, int):
        raise ValueError(
            f"Norce order watch {name!r}: the newest order's Id is {order_id!r}, not an integer; the "
            "watch needs integer order Ids"
        )
    created = row.get("Created")
    return Newest(order_id, created if isinstance(created, str) else None)


def event_payload(settings: WatchSettings, after: int, newest: Newest) -> dict[str, Any]:
    """The event: small, JSON, and the same wherever the trigger runs (Airflow deduplicates on it)."""
    return {
        "watch": settings.name,
        "after": after,
        "through": newest.id,
        "newest_created": newest.created,
        "application_id": settings.application_id,
    }


def _iso_z(epoch: float) -> str:
    """``2026-12-01T10:00:00Z``: Norce's unquoted UTC date-time literal (``query.json
    odata_options.datetime_literals``), whole seconds rounded down."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch // 1)))
