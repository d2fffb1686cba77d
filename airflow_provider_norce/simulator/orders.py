"""The simulator's orders, shaped like Norce Query 2.0 ``Orders/Orders`` (``tests/norce_contracts/query.json``).

Orders are read-only and computed on demand from ``(seed, index)``: a million-order data set costs nothing
until it is read, and order ``i`` is identical in every run with the same seed.

What the rows copy from Norce's published contract (``query.json entity_sets[Orders/Orders]``):

* PascalCase fields, a subset of the documented 2.0 list (``Id, ClientId, ApplicationId, OrderNo, OrderDate,
  BuyerCustomerId, BuyerCompanyId, StatusId, CurrencyId, VatRate, FreightCost``) plus fields only third-party
  code uses (``PaymentMethodId, DeliveryCountryId, DeliveryZipCode, IsForgotten, Created, Updated``). Kept
  small on purpose: paging speed is bound by the bytes of a row.
* ``Id`` is an integer. The 2.0 docs type it "string (Key)"; Query 3.0 documents int64 and the third-party
  loader stores INT64, so the simulator follows the latter (``query.json entity_sets[Orders].fields_from_docs_2_0
  Id``).
* Order lines are the ``Items`` navigation property, present only with ``$expand=Items``; there is no
  standalone OrderItem set (third-party: it answers 404). Item fields follow ``query.json
  entity_sets[(OrderItem, via $expand=Items only)].fields``.
* Orders belong to more than one application: most to the simulator's ``application_id``, about one in six
  to ``other_application_id``. The ``applicationId`` header does NOT filter Orders (third-party observation,
  ``query.json request_headers.application_id.third_party``); ``$filter=ApplicationId eq N`` does.
* ``Updated`` is null on never-updated orders (about one in eight; third-party observation,
  ``query.json incremental_sync``), so incremental filters must fall back to ``Created``.

Speed: every order has a "slot" time, spread evenly over ``[start, end)`` and non-decreasing with the index.
``Updated`` is the slot (or null); ``Created`` lies 0 to 3 days before it (exactly the slot when ``Updated``
is null). So an ``Id`` bound is answered exactly by arithmetic, and ``Updated``/``Created`` bounds give a
candidate index range by bisection on the slot, which the Query service then scans with the full filter.
:meth:`OrderSource.row_json` encodes a page row without building dicts.

New orders (:meth:`OrderSource.append`): a test adds orders while a trigger watches, as shops do. They take the
next Ids and a ``Created`` (= ``Updated``) the caller gives (the simulator passes its clock's now). The slots of
the first ``count`` orders stay spread over ``[start, end)`` by the ORIGINAL count, so an append never moves an
existing order's values; an appended order's slot is its ``Created``, and appended instants never go back
(a given instant before the newest slot is refused; "now" before it is raised to it), so the slot stays
non-decreasing with the index and every bisection above holds.

Late updates (:meth:`OrderSource.set_updated`): Norce writes ``Updated`` late and out of order under load
(third-party observation: ``query.json entity_sets[Orders/Orders].fields_seen_elsewhere[Updated].note`` and
``query.json incremental_sync.recommended_by_third_party``), so a test may set one order's ``Updated`` to any
instant, in the past too. Such an order no longer follows the slot rule; :attr:`OrderSource.overridden` lists
them (sorted indices) and :attr:`OrderSource.version` counts the updates, so the Query service evaluates them on
their own and keys its caches on the version. Every row reader honours the override; with none, the fast path
pays one empty-dict test per row. The simulator does not require ``Updated >= Created`` (Norce publishes no
such rule), so a test may move ``Updated`` anywhere.
"""

from __future__ import annotations

import bisect
import re
import threading
from datetime import datetime
from typing import Any

from airflow_provider_norce.simulator.data import _M64, IsoFormatter, mix64
from airflow_provider_norce.simulator.odata import parse_datetime

DEFAULT_ORDERS_START = "2026-11-01T00:00:00Z"
DEFAULT_ORDERS_END = "2026-12-01T00:00:00Z"
MAX_ORDERS = 10_000_000
#: a date-time with a zone: a late ``Updated`` without one would be a guess
_ZONED = re.compile(r"T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
#: Norce's Orders entity type name (``query.json entity_sets[Orders/Orders].entity_type``).
ORDER_TYPE = "Enferno.Storm.Query.Api.DataContexts.OrderModel.Order"
#: ``Created`` lies up to this many seconds before ``Updated`` (the slot).
CREATED_SPREAD = 259_200
#: The client every order belongs to (``ClientId``).
CLIENT_ID = 1001

#: Currencies, countries and payment methods the simulator's application offers (see GetApplication).
CURRENCIES: tuple[tuple[int, str], ...] = ((1, "SEK"), (2, "NOK"), (3, "EUR"), (4, "DKK"))
COUNTRIES: tuple[tuple[int, str, str], ...] = ((1, "SE", "Sweden"), (2, "NO", "Norway"))
COUNTRIES += ((3, "FI", "Finland"), (4, "DK", "Denmark"))
_CURRENCY_PICK = (1, 1, 1, 2, 3, 4, 1, 3)
_COUNTRY_BY_CURRENCY = {1: 1, 2: 2, 3: 3, 4: 4}
#: 3.0 docs: Created 0, Allocation 1, Confirmed 2, Delivered 4, Invoiced 5, Cancelled 6, Partly delivered 8.
_STATUSES = (2, 2, 4, 4, 5, 5, 5, 1, 0, 6, 8, 4, 5, 2, 5, 4)
_VAT_RATE = 0.25

ORDER_SCHEMA: dict[str, str] = {
    "Id": "int",
    "ClientId": "int",
    "ApplicationId": "int",
    "OrderNo": "string",
    "OrderDate": "datetime",
    "BuyerCustomerId": "int",
    "BuyerCompanyId": "int",
    "StatusId": "int",
    "CurrencyId": "int",
    "VatRate": "decimal",
    "FreightCost": "decimal",
    "PaymentMethodId": "int",
    "DeliveryCountryId": "int",
    "DeliveryZipCode": "string",
    "IsForgotten": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
ORDER_ITEM_SCHEMA: dict[str, str] = {
    "Id": "int",
    "OrderId": "int",
    "LineNumber": "int",
    "StatusId": "int",
    "PartNo": "string",
    "ProductName": "string",
    "QtyOrdered": "decimal",
    "CurrencyId": "int",
    "VatRate": "decimal",
    "PriceSale": "decimal",
    "LineAmount": "decimal",
    "ClientId": "int",
    "Created": "datetime",
    "Updated": "datetime",
}


class OrderSource:
    """``count`` Norce orders computed on demand (see the module docs for the shape and the speed rules)."""

    schema = ORDER_SCHEMA
    key = "Id"

    def __init__(
        self,
        count: int,
        seed: int,
        part_nos: list[str],
        customers: int,
        application_id: int,
        other_application_id: int | None = None,
        start: str = DEFAULT_ORDERS_START,
        end: str = DEFAULT_ORDERS_END,
    ) -> None:
        if not 0 <= count <= MAX_ORDERS:
            raise ValueError(f"orders must be between 0 and {MAX_ORDERS}")
        self.count = count
        #: the orders whose slots are spread over [start, end); the rest were appended (:meth:`append`)
        self.base_count = count
        #: slot (= Created = Updated) of each appended order, non-decreasing
        self._appended: list[int] = []
        self.start = int(parse_datetime(start))
        self.span = int(parse_datetime(end)) - self.start
        if self.span <= 0:
            raise ValueError("orders_end must be after orders_start")
        self.application_id = int(application_id)
        self.other_application_id = (
            self.application_id + 1 if other_application_id is None else int(other_application_id)
        )
        self._seed = mix64(seed & _M64 ^ 0x0DE5)
        self._part_nos = part_nos or ["100001"]
        self._customers = max(1, customers)
        self._iso = IsoFormatter()
        #: fields whose value never decreases with the index (``$orderby`` on them needs no sort)
        self.monotonic = {"Id": lambda i: i + 1}
        #: field -> index test: within :meth:`candidate_range` of a non-null bound on the field, the bound
        #: holds exactly for the indices passing the test (``Updated`` is the slot unless it is null) -- for
        #: every index NOT in :attr:`overridden`
        self.null_tests = {"Updated": self.has_updated}
        #: index -> late ``Updated`` (epoch seconds), see :meth:`set_updated`
        self._overrides: dict[int, int] = {}
        self._overrides_lock = threading.Lock()
        #: how many late updates were made (cache keys include it, so no stale answer survives an update)
        self.version = 0
        #: indices with a late ``Updated``, sorted: they escape the slot rule, so filters test them one by one
        self.overridden: tuple[int, ...] = ()

    def __len__(self) -> int:
        return self.count

    # -- values ---------------------------------------------------------------------------------------------
    def slot_epoch(self, index: int) -> int:
        """The order's slot as epoch seconds: spread evenly, non-decreasing with the index (an appended
        order's slot is its ``Created``)."""
        base = self.base_count
        if index >= base:
            return self._appended[index - base]
        return self.start + (index * self.span) // max(1, base)

    def append(self, count: int, created: int) -> range:
        """Add ``count`` orders created at ``created`` (epoch seconds); the new Ids (``range``).

        They get the next Ids, ``Created`` = ``Updated`` = ``created`` and the usual seeded values. Raises
        ValueError when ``count`` is not 1 or more, the total would pass ``MAX_ORDERS``, or ``created``
        lies before the newest order's slot (Ids and slots must both grow: see the module docs).
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a whole number of orders, 1 or more, got {count!r}")
        if isinstance(created, bool) or not isinstance(created, int):
            raise ValueError(f"created must be whole epoch seconds, got {created!r}")
        with self._overrides_lock:
            if self.count + count > MAX_ORDERS:
                raise ValueError(f"the simulator holds at most {MAX_ORDERS} orders; add fewer")
            newest = self.slot_epoch(self.count - 1) if self.count else created
            if created < newest:
                raise ValueError(
                    f"created {created} lies before the newest order's Created/Updated ({newest}); "
                    "new orders must not go back in time: pass a later instant or none (now)"
                )
            first = self.count + 1
            self._appended.extend([created] * count)
            self.count += count  # after the slots exist: a reader never sees an Id without its slot
            self.version += 1
        return range(first, first + count)

    def newest_slot(self) -> int | None:
        """The newest order's slot (epoch seconds), None without orders."""
        return self.slot_epoch(self.count - 1) if self.count else None

    def has_updated(self, index: int) -> bool:
        """Whether order ``index`` has an ``Updated`` by the slot rule (cheap: no row is built; an
        overridden order has one whatever this says)."""
        return index >= self.base_count or (mix64(self._seed ^ index) >> 44) & 7 != 0

    def set_updated(self, order_id: int, updated: int) -> None:
        """Give order ``order_id`` the ``Updated`` ``updated`` (epoch seconds); the last call wins.

        ``Created`` stays. Raises ValueError for an order id outside ``1..count``.
        """
        if isinstance(order_id, bool) or not isinstance(order_id, int) or not 1 <= order_id <= self.count:
            raise ValueError(
                f"order id {order_id!r} does not exist: the simulator has orders 1 to {self.count}; "
                "pass one of those ids"
            )
        if isinstance(updated, bool) or not isinstance(updated, int):
            raise ValueError(f"updated must be whole epoch seconds, got {updated!r}")
        with self._overrides_lock:
            self._overrides[order_id - 1] = updated
            self.overridden = tuple(sorted(self._overrides))
            self.version += 1

    def _values(self, index: int) -> tuple[int, int, int | None, int]:
        """``(hash, created, updated or None, application id)`` of order ``index``."""
        h = mix64(self._seed ^ index)
        slot = self.slot_epoch(index)
        if index >= self.base_count:  # appended: just created, Created = Updated = its slot
            created, updated = slot, slot
        elif (h >> 44) & 7 == 0:  # never updated: Updated is null, Created is the slot
            created, updated = slot, None
        else:
            created, updated = slot - (h & 0x3FFFF) % CREATED_SPREAD, slot
        if self._overrides and index in self._overrides:
            updated = self._overrides[index]
        app = self.other_application_id if (h >> 12) % 6 == 0 else self.application_id
        return h, created, updated, app

    def _lines(self, h: int) -> list[tuple[int, str, int, int]]:
        """``(line number, PartNo, quantity, unit price in cents)`` per order line (1 to 3 lines)."""
        parts = self._part_nos
        lines = []
        g = h
        for line in range(1 + (h >> 40) % 3):
            g = mix64(g)
            lines.append((line + 1, parts[(g >> 32) % len(parts)], 1 + (g & 3), 4_900 + (g >> 8) % 95_000))
        return lines

    def row(self, index: int) -> dict[str, Any]:
        """Order ``index`` (0-based) with its ``Items`` (the Query service drops them unless expanded)."""
        row = self.scan_row(index)
        h = mix64(self._seed ^ index)
        order_id = index + 1
        row["Items"] = [
            {
                "Id": order_id * 4 + line,
                "OrderId": order_id,
                "LineNumber": line,
                "StatusId": row["StatusId"],
                "PartNo": part_no,
                "ProductName": f"Product {part_no}",
                "QtyOrdered": float(quantity),
                "CurrencyId": row["CurrencyId"],
                "VatRate": _VAT_RATE,
                "PriceSale": cents / 100,
                "LineAmount": quantity * cents / 100,
                "ClientId": CLIENT_ID,
                "Created": row["Created"],
                "Updated": row["Updated"],
            }
            for line, part_no, quantity, cents in self._lines(h)
        ]
        return row

    def scan_row(self, index: int) -> dict[str, Any]:
        """Order ``index`` without ``Items``: what a ``$filter`` is evaluated on (filters never see lines)."""
        h, created, updated, app = self._values(index)
        iso = self._iso
        currency = _CURRENCY_PICK[(h >> 56) & 7]
        company = 1 + (h >> 28) % 20 if (h >> 50) & 3 == 0 else None
        customer = 1 + (h >> 24) % self._customers
        stamp = iso(created)
        return {
            "Id": index + 1,
            "ClientId": CLIENT_ID,
            "ApplicationId": app,
            "OrderNo": f"S{index + 1:09d}",
            "OrderDate": stamp,
            "BuyerCustomerId": customer,
            "BuyerCompanyId": company,
            "StatusId": _STATUSES[(h >> 20) & 15],
            "CurrencyId": currency,
            "VatRate": _VAT_RATE,
            "FreightCost": 49.0 if (h >> 52) & 1 else 0.0,
            "PaymentMethodId": 1 + (h >> 32) % 4,
            "DeliveryCountryId": _COUNTRY_BY_CURRENCY[currency],
            "DeliveryZipCode": f"{10000 + (h >> 36) % 89999}",
            "IsForgotten": False,
            "Created": stamp,
            "Updated": None if updated is None else iso(updated),
        }

    def row_json(self, index: int, expand: tuple[str, ...] = ()) -> str:
        """Order ``index`` as compact JSON, equal to ``json.dumps`` of the projected row but much faster.

        Why: paging throughput is bound by building and encoding rows; every value here is a number, a
        boolean, null or a string without characters JSON escapes. ``expand`` may hold ``"Items"``.
        """
        h, created, updated, app = self._values(index)
        iso = self._iso
        currency = _CURRENCY_PICK[(h >> 56) & 7]
        company = 1 + (h >> 28) % 20 if (h >> 50) & 3 == 0 else "null"
        customer = 1 + (h >> 24) % self._customers
        stamp = iso(created)
        updated_text = "null" if updated is None else f'"{iso(updated)}"'
        status = _STATUSES[(h >> 20) & 15]
        order_id = index + 1
        text = (
            f'{{"Id":{order_id},"ClientId":{CLIENT_ID},"ApplicationId":{app},"OrderNo":"S{order_id:09d}",'
            f'"OrderDate":"{stamp}","BuyerCustomerId":{customer},"BuyerCompanyId":{company},"StatusId":{status},'
            f'"CurrencyId":{currency},"VatRate":{_VAT_RATE!r},"FreightCost":{49.0 if (h >> 52) & 1 else 0.0!r},'
            f'"PaymentMethodId":{1 + (h >> 32) % 4},"DeliveryCountryId":{_COUNTRY_BY_CURRENCY[currency]},'
            f'"DeliveryZipCode":"{10000 + (h >> 36) % 89999}","IsForgotten":false,"Created":"{stamp}",'
            f'"Updated":{updated_text}'
        )
        if "Items" in expand:
            items = [
                f'{{"Id":{order_id * 4 + line},"OrderId":{order_id},"LineNumber":{line},"StatusId":{status},'
                f'"PartNo":"{part_no}","ProductName":"Product {part_no}","QtyOrdered":{float(quantity)!r},'
                f'"CurrencyId":{currency},"VatRate":{_VAT_RATE!r},"PriceSale":{cents / 100!r},'
                f'"LineAmount":{quantity * cents / 100!r},"ClientId":{CLIENT_ID},"Created":"{stamp}",'
                f'"Updated":{updated_text}}}'
                for line, part_no, quantity, cents in self._lines(h)
            ]
            text += ',"Items":[' + ",".join(items) + "]"
        return text + "}"

    def changed_ids(self, start: float, end: float, application_id: int | None = None) -> list[int]:
        """Ids of the orders last changed in ``[start, end)`` (epoch seconds), read from the data model.

        "Last changed" is ``Updated``, or ``Created`` for never-updated orders: both equal the slot (unless a
        late update moved ``Updated``), so this is what an ``Updated``-with-``Created``-fallback window must
        return. For tests (no OData involved).
        """
        window = range(self.count)
        low = bisect.bisect_left(window, start, key=self.slot_epoch)
        high = bisect.bisect_left(window, end, key=self.slot_epoch)
        overrides = dict(self._overrides)
        indices = [i for i in range(low, high) if i not in overrides]
        indices += [i for i, updated in overrides.items() if start <= updated < end]
        return [
            i + 1 for i in sorted(indices) if application_id is None or self._values(i)[3] == application_id
        ]

    # -- index ranges ---------------------------------------------------------------------------------------
    def index_range(self, field: str, op: str, value: float) -> range | None:
        """Indices whose ``field op value`` holds EXACTLY (only ``Id``); None when not answerable so."""
        if field != "Id" or op not in ("eq", "gt", "ge", "lt", "le"):
            return None
        return _bounds(range(self.count), lambda i: i + 1, op, value)

    def candidate_range(self, field: str, op: str, value: float) -> range | None:
        """A range holding every index whose ``field op value`` may hold (a superset; the caller filters).

        ``Updated`` is the slot or null and ``Created`` lies in ``[slot - CREATED_SPREAD, slot]``, so both
        bounds become slot bounds found by bisection.
        """
        if op not in ("eq", "gt", "ge", "lt", "le"):
            return None
        if field == "Id":
            return self.index_range(field, op, value)
        indices = range(self.count)
        if field == "Updated":
            return _bounds(indices, self.slot_epoch, op, value)
        if field in ("Created", "OrderDate"):
            spread = CREATED_SPREAD
            if op in ("ge", "gt"):
                return _bounds(indices, self.slot_epoch, op, value)
            if op in ("lt", "le"):
                return _bounds(indices, self.slot_epoch, op, value + spread)
            low = _bounds(indices, self.slot_epoch, "ge", value)
            high = _bounds(indices, self.slot_epoch, "le", value + spread)
            return range(low.start, max(low.start, high.stop))
        return None


def _bounds(indices: range, key: Any, op: str, value: float) -> range:
    """The part of ``indices`` where ``key(i) op value``, for a non-decreasing ``key``."""
    low = bisect.bisect_left(indices, value, key=key)
    high = bisect.bisect_right(indices, value, key=key)
    if op == "eq":
        return range(low, high)
    if op == "ge":
        return range(low, len(indices))
    if op == "gt":
        return range(high, len(indices))
    if op == "lt":
        return range(0, low)
    return range(0, high)  # le


def updated_epoch(value: Any) -> int:
    """Whole epoch seconds of a late ``Updated``: an ISO-8601 string (``Z`` or an offset) or an aware datetime.

    ValueError (naming the value and the fix) for anything else: a naive datetime (its zone is a guess), a
    fraction of a second (order rows carry whole seconds), or text that is not an instant.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"updated {value!r} has no time zone; pass an aware datetime (tzinfo=timezone.utc)"
            )
        epoch = value.timestamp()
    elif isinstance(value, str):
        text = value.strip()
        try:
            if not _ZONED.search(text):
                raise ValueError("no zone")
            epoch = parse_datetime(text)
        except ValueError:
            raise ValueError(
                f'updated {value!r} is not an ISO-8601 instant with a zone; send e.g. "2026-11-20T10:00:00Z"'
            ) from None
    else:
        raise ValueError(f"updated must be an ISO-8601 string or an aware datetime, got {value!r}")
    if epoch != int(epoch):
        raise ValueError(f"updated {value!r} has a fraction of a second; order rows carry whole seconds")
    return int(epoch)
