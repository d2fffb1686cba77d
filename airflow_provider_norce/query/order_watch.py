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
  Before any export there is no last Id exported: the export then starts at the watch's ``origin``, the
  position of its first start, saved with the position before any event and carried by every event; so a
  lost FIRST event is covered too. Either way an order is exported once; a lost event only delays it until
  the next new order.

The saved value (:class:`SavedPosition`, JSON) holds the position, the origin and the identity of what was
watched (:func:`watch_identity`: Query URL, environment, application; never a secret). A value saved for
another tenant, environment or application is not used: the watch warns and starts afresh, as a new watch.
A value that is not one the watch wrote stops the watch with an error naming the Variable and the way out.
At each start (and after an hour without new orders) one more ``$top=1`` read checks that the position is
not ahead of the newest order (a playground reset, a restored Norce, a ``start_after`` too high), which would
silence the watch: a WARNING names the position, the newest Id and the way out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

    from airflow_provider_norce.connection import NorceConnectionConfig

#: The entity set watched (``query.json entity_sets[Orders/Orders]``).
ORDERS_PATH = "Orders/Orders"
#: Seconds without a new order after which the watch checks again that its position is not ahead of the
#: newest order (one more ``$top=1`` read; the warning repeats at most this often).
AHEAD_RECHECK_SECONDS = 3600.0
#: The way out of a position the watch cannot use, named by its errors and warnings.
_WAY_OUT = (
    "delete the Variable to start after the newest order (or give the trigger start_after=<the last order "
    "Id already handled> and delete it), or set it to the last order Id already handled, e.g. 12345"
)


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
    :param identity: what is watched (:func:`watch_identity`); saved with the position, and a saved position
        of another identity is not used. ``None``: not checked (the tests' watches).
    :param variable: the Airflow Variable holding the position, for messages; default ``name``.
    """

    name: str
    poll_interval: float
    settle_seconds: float = 0.0
    start_after: int | None = None
    application_id: int | None = None
    extra_filter: str | None = None
    identity: Mapping[str, Any] | None = field(default=None, compare=False)
    variable: str | None = None

    @property
    def where(self) -> str:
        """``Norce order watch 'w' (Airflow Variable 'v')``: the start of the watch's messages."""
        variable = self.variable or self.name
        return f"Norce order watch {self.name!r} (Airflow Variable {variable!r})"


def watch_identity(config: NorceConnectionConfig, application_id: int | None) -> dict[str, Any]:
    """What a position is valid for: the Query URL (the tenant and environment of Norce Commerce), the
    environment, the application filtered (``None``: every application) and, on Norce [Storm], whose Query
    host every tenant shares, the OAuth client id (not a secret: the connection's login). Never the
    secret, never the connection id (renaming a connection keeps the position)."""
    identity: dict[str, Any] = {
        "query_url": config.service_url("query"),
        "environment": config.environment,
        "application_id": application_id,
    }
    if config.layout == "storm":
        identity["client_id"] = config.client_id
    return identity


@dataclass(frozen=True)
class SavedPosition:
    """The position Variable's value: JSON ``{"position": P, "origin": O, "identity": {...}}``.

    ``position`` is the last order Id reported; ``origin`` the position of the watch's first start (where
    the export begins before any file exists); ``identity`` what was watched (:func:`watch_identity`), or
    ``None`` for a plain integer (saved by an earlier build of the watch, or by hand: both the origin and the
    position).
    """

    position: int
    origin: int
    identity: Mapping[str, Any] | None = field(default=None, compare=False)

    def to_json(self) -> str:
        value: dict[str, Any] = {"position": self.position, "origin": self.origin}
        if self.identity is not None:
            value["identity"] = dict(self.identity)
        return json.dumps(value, sort_keys=True)

    def same(self, other: SavedPosition | None) -> bool:
        return (
            other is not None
            and (self.position, self.origin) == (other.position, other.origin)
            and _plain(self.identity) == _plain(other.identity)
        )


def _plain(identity: Mapping[str, Any] | None) -> Any:
    return None if identity is None else json.loads(json.dumps(dict(identity), sort_keys=True))


def parse_position(value: Any, settings: WatchSettings) -> SavedPosition:
    """The saved value (the Variable's text; an int from an in-memory store) read into a
    :class:`SavedPosition`; ValueError naming the watch, the Variable and the way out for anything the
    watch did not write: not an integer or a JSON object of whole-number ``position``/``origin``."""

    def bad(why: str) -> ValueError:
        shown = str(value).strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return ValueError(
            f"{settings.where}: the Variable holds {shown!r}, which is not a position the watch saved "
            f"({why}); {_WAY_OUT}"
        )

    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise bad("an order Id is never negative")
        return SavedPosition(value, value, None)
    text = str(value).strip()
    if text.isascii() and text.isdigit():  # a plain integer: the position alone ("²".isdigit() is True too)
        return SavedPosition(int(text), int(text), None)
    try:
        data = json.loads(text)
    except ValueError:
        raise bad("neither a whole number nor JSON") from None
    if not isinstance(data, dict):
        raise bad("neither a whole number nor a JSON object")
    numbers = {}
    for key in ("position", "origin"):
        number = data.get(key, data.get("position") if key == "origin" else None)
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise bad(f"its {key!r} is {number!r}, not an order Id (a whole number, 0 or more)")
        numbers[key] = number
    identity = data.get("identity")
    if identity is not None and not isinstance(identity, dict):
        raise bad(f"its 'identity' is {identity!r}, not a JSON object")
    return SavedPosition(numbers["position"], numbers["origin"], identity)


# -- steps: what the flow needs done (the reply each one expects is in its docstring) ----------------------
@dataclass(frozen=True)
class LoadPosition:
    """Read the saved value; reply: the Variable's text (:func:`parse_position` reads it), or ``None``
    when none was saved yet."""


@dataclass(frozen=True)
class SavePosition:
    """Save ``saved`` durably (the Variable's text: ``saved.to_json()``); reply: ``None`` (or a
    :class:`Failed` when the write failed)."""

    saved: SavedPosition

    @property
    def position(self) -> int:
        return self.saved.position


@dataclass(frozen=True)
class Now:
    """Reply: the current time, epoch seconds (the settle cut-off)."""


@dataclass(frozen=True)
class ReadNewest:
    """GET ``Orders/Orders`` with ``params``; reply: the parsed JSON body, or a :class:`Failed`."""

    params: dict[str, str]


@dataclass(frozen=True)
class Warn:
    """Log ``message`` as a WARNING (something a user must act on); reply: ``None``."""

    message: str


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


Step = LoadPosition | SavePosition | Now | ReadNewest | Emit | Sleep | Warn


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


def ahead_params(settings: WatchSettings) -> dict[str, str]:
    """The start check's read: the newest order of the application, with no other condition (an order the
    caller's filter no longer matches, say one cancelled since, still counts: its Id was reported)."""
    return newest_params(
        WatchSettings(settings.name, settings.poll_interval, application_id=settings.application_id),
        None,
        None,
    )


def watch_flow(settings: WatchSettings) -> Generator[Step, Any, None]:
    """The watch, forever: load (or set) the position, then each round read the newest order and emit
    ``{"after": P, "through": N, "origin": O, ...}`` when ``N > P``, then save ``N``. See the module docs for
    why in this order. A failed read or save is logged through the next :class:`Sleep` and retried next
    round; a failed LOAD, or a saved value the watch did not write, raises (starting afresh would skip
    orders)."""
    where = settings.where
    raw = yield LoadPosition()
    if isinstance(raw, Failed):
        raise RuntimeError(f"{where}: reading its position failed: {raw.message}")
    saved = None if raw is None else parse_position(raw, settings)
    if saved is not None and not _same_identity(saved, settings):
        yield Warn(
            f"{where}: the position saved there ({saved.position}) was saved for "
            f"{_describe(saved.identity)}, but the watch now watches {_describe(settings.identity)}; an order Id "
            "of one is no position in the other, so it is not used: the watch starts afresh, as a new watch "
            "(at start_after, or after the newest order), and overwrites it. Exports of the earlier watch "
            "(the example DAG's files) belong to the other one: move them away"
        )
        saved = None
    if saved is None:
        if settings.start_after is not None:
            position = int(settings.start_after)
            why = f"start_after={position}"
        else:
            position = yield from _first_position(settings)
            why = "the newest order now; earlier orders are not reported"
        origin = position
        answer = yield SavePosition(SavedPosition(position, origin, settings.identity))
        if isinstance(answer, Failed):
            raise RuntimeError(f"{where}: saving its first position {position} failed: {answer.message}")
        yield Sleep(0.0, f"{where}: first start, position {position} ({why})")
    else:
        position = saved.position
        origin = min(saved.origin, position)  # a position set back by hand replays from there
        if (saved.identity is None and settings.identity is not None) or origin != saved.origin:
            # a plain integer (an earlier build of the watch, or set by hand): identity and origin recorded now
            answer = yield SavePosition(SavedPosition(position, origin, settings.identity))
            note = f"{where}: position {position} (origin {origin}) recorded with what the watch watches"
            if isinstance(answer, Failed):
                note += f"; saving it failed, the next save tries again: {answer.message}"
            yield Sleep(0.0, note)
        yield from _check_not_ahead(settings, position)
    idle = 0.0
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
                idle = 0.0
                yield Emit(event_payload(settings, position, newest, origin))
                position = newest.id
                answer = yield SavePosition(SavedPosition(position, origin, settings.identity))
                message = f"Norce order watch {settings.name!r}: new orders through Id {position}"
                if isinstance(answer, Failed):
                    message += (
                        f"; saving the position failed (a restart replays this range): {answer.message}"
                    )
            else:
                idle += settings.poll_interval
                if idle >= AHEAD_RECHECK_SECONDS:  # an hour of silence: is the position ahead of Norce?
                    idle = 0.0
                    yield from _check_not_ahead(settings, position)
        yield Sleep(settings.poll_interval, message)


def _same_identity(saved: SavedPosition, settings: WatchSettings) -> bool:
    """Whether ``saved`` may be used: saved for what the watch watches now (or either side unknown)."""
    if saved.identity is None or settings.identity is None:
        return True
    return _plain(saved.identity) == _plain(settings.identity)


def _describe(identity: Mapping[str, Any] | None) -> str:
    if identity is None:
        return "(unknown)"
    return "{" + ", ".join(f"{k}={v!r}" for k, v in sorted(dict(identity).items())) + "}"


def _check_not_ahead(settings: WatchSettings, position: int) -> Generator[Step, Any, None]:
    """One ``$top=1`` read of the newest order of the application: a WARNING when ``position`` is ahead
    of it, since the watch would then report nothing until Norce's Ids pass it. A failed read is logged
    only (the check runs again after :data:`AHEAD_RECHECK_SECONDS` without a new order)."""
    body = yield ReadNewest(ahead_params(settings))
    if isinstance(body, Failed):
        yield Sleep(
            0.0, f"{settings.where}: checking the position against the newest order failed: {body.message}"
        )
        return
    newest = read_newest(body, settings.name)
    newest_id = 0 if newest is None else newest.id
    if position > newest_id:
        of = "" if settings.application_id is None else f" of application {settings.application_id}"
        yield Warn(
            f"{settings.where}: the position {position} is ahead of the newest order{of} in Norce "
            f"(Id {newest_id}): the watch reports nothing until Norce's order Ids pass {position}, and the "
            "orders below it never. Was the Norce environment reset or restored, the connection changed, or "
            "start_after set too high? To watch from the newest order, delete the Variable (a new watch "
            "starts after the newest order, or at start_after); export the orders you missed with "
            f"norce_order_export. This is checked at each start and after {AHEAD_RECHECK_SECONDS / 3600:g} h "
            "without a new order"
        )


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


def event_payload(
    settings: WatchSettings, after: int, newest: Newest, origin: int | None = None
) -> dict[str, Any]:
    """The event: small, JSON, and the same wherever the trigger runs (Airflow deduplicates on it).
    ``origin`` is the watch's first position (where the export begins before any file: see
    :func:`~airflow_provider_norce.query.order_ranges.plan_range`); default ``after``."""
    return {
        "watch": settings.name,
        "after": after,
        "through": newest.id,
        "origin": after if origin is None else origin,
        "newest_created": newest.created,
        "application_id": settings.application_id,
    }


def _iso_z(epoch: float) -> str:
    """``2026-12-01T10:00:00Z``: Norce's unquoted UTC date-time literal (``query.json
    odata_options.datetime_literals``), whole seconds rounded down."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch // 1)))
