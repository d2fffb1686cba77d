"""Deterministic simulator data: lazily computed orders and a small mutable catalog.

Orders are read-only and computed on demand from ``(seed, index)``: a million-order data set costs nothing
until it is read, and order ``i`` is identical in every run with the same seed. ``Updated`` is
non-decreasing in the index across ``[orders_start, orders_end)`` so an ``Updated`` window is found by
bisection; ``Created`` lies 0 to 3 days before ``Updated`` (not monotonic: filters on it scan).

Order row (``Orders/Orders``)::

    {"Id": 1, "OrderNo": "S000000001", "Created": "2026-10-29T17:02:11Z", "Updated": "2026-11-01T00:00:00Z",
     "StatusId": 3, "CustomerId": 17, "Currency": "SEK", "TotalAmount": 1234.5,
     "Items": [{"LineNo": 1, "PartNo": "100003", "Quantity": 2, "UnitPrice": 199.0, "Amount": 398.0}, ...]}

``Items`` (1 to 3 lines) is part of the row. ``Id`` is ``index + 1``; ``StatusId`` is 1..6.

The catalog (products, SKUs, customers, companies, price lists) is generated eagerly (it is small:
``products`` products with 1 to 3 SKUs each) and changed by Connect imports when their jobs succeed.
SKU row (``Products/ProductSkus``; ``OnHand`` and ``PriceLists`` are navigation properties, present only
with ``$expand=OnHand,PriceLists`` as on Norce)::

    {"PartNo": "100001", "ProductId": 1, "ManufacturerPartNo": "MPN-000001", "Name": "Product 1 (1)",
     "IsActive": true, "Created": "...Z", "Updated": "...Z",
     "OnHand": [{"WarehouseCode": "MAIN", "LocationCode": "", "OnhandValue": 12.0, "IncomingValue": 0.0,
                 "NextDeliveryDate": null, "LeadTimeDayCount": null, "IsActive": true, "Updated": "...Z"}],
     "PriceLists": [{"PriceListCode": "DEFAULT", "QuantityBreak": 1, "PriceSale": 199.0,
                     "PriceRecommended": 248.0, "CurrencyCode": "SEK", "IsActive": true, "Updated": "...Z"}]}
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Any

from airflow_provider_norce.testing.odata import parse_datetime

DEFAULT_ORDERS_START = "2026-11-01T00:00:00Z"
DEFAULT_ORDERS_END = "2026-12-01T00:00:00Z"
MAX_ORDERS = 10_000_000
#: Timestamps of the generated catalog (before the order window, so imports visibly change ``Updated``).
CATALOG_EPOCH = int(parse_datetime("2026-10-01T00:00:00Z"))

_M64 = (1 << 64) - 1
_CURRENCIES = ("SEK", "SEK", "SEK", "NOK", "EUR", "DKK", "SEK", "EUR")
_STATUSES = (3, 3, 3, 4, 4, 1, 2, 5, 3, 6, 3, 4, 3, 3, 2, 4)

ORDER_SCHEMA = {
    "Id": "int",
    "OrderNo": "string",
    "Created": "datetime",
    "Updated": "datetime",
    "StatusId": "int",
    "CustomerId": "int",
    "Currency": "string",
    "TotalAmount": "decimal",
}
PRODUCT_SCHEMA = {
    "Id": "int",
    "ManufacturerPartNo": "string",
    "Name": "string",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
SKU_SCHEMA = {
    "PartNo": "string",
    "ProductId": "int",
    "ManufacturerPartNo": "string",
    "Name": "string",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
ONHAND_SCHEMA = {
    "WarehouseCode": "string",
    "LocationCode": "string",
    "OnhandValue": "decimal",
    "IncomingValue": "decimal",
    "NextDeliveryDate": "datetime",
    "LeadTimeDayCount": "int",
    "IsActive": "bool",
    "Updated": "datetime",
}
SKU_PRICE_SCHEMA = {
    "PriceListCode": "string",
    "QuantityBreak": "int",
    "PriceSale": "decimal",
    "PriceRecommended": "decimal",
    "CurrencyCode": "string",
    "IsActive": "bool",
    "Updated": "datetime",
}
CUSTOMER_SCHEMA = {
    "Id": "int",
    "Code": "string",
    "Email": "string",
    "FirstName": "string",
    "LastName": "string",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
COMPANY_SCHEMA = {
    "Id": "int",
    "Code": "string",
    "Name": "string",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
PRICE_LIST_SCHEMA = {
    "Id": "int",
    "Code": "string",
    "Name": "string",
    "CurrencyCode": "string",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}


def mix64(value: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash, so row ``i`` needs no RNG object."""
    value = (value + 0x9E3779B97F4A7C15) & _M64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _M64
    return value ^ (value >> 31)


class IsoFormatter:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` with the date part cached (orders share ~30 dates)."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, epoch: int) -> str:
        day, second = divmod(epoch, 86_400)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = time.strftime("%Y-%m-%dT", time.gmtime(day * 86_400))
            self._days[day] = prefix
        hour, rest = divmod(second, 3600)
        minute, sec = divmod(rest, 60)
        return f"{prefix}{hour:02d}:{minute:02d}:{sec:02d}Z"


class OrderSource:
    """``count`` orders computed on demand; :meth:`index_range` answers monotonic-field bounds by bisection."""

    schema = ORDER_SCHEMA
    key = "Id"

    def __init__(
        self,
        count: int,
        seed: int,
        part_nos: list[str],
        customers: int,
        start: str = DEFAULT_ORDERS_START,
        end: str = DEFAULT_ORDERS_END,
    ) -> None:
        if not 0 <= count <= MAX_ORDERS:
            raise ValueError(f"orders must be between 0 and {MAX_ORDERS}")
        self.count = count
        self.start = int(parse_datetime(start))
        self.span = int(parse_datetime(end)) - self.start
        if self.span <= 0:
            raise ValueError("orders_end must be after orders_start")
        self._seed = mix64(seed & _M64)
        self._part_nos = part_nos or ["100001"]
        self._customers = max(1, customers)
        self._iso = IsoFormatter()
        #: fields whose value never decreases with the index, as index -> comparable value
        self.monotonic = {"Id": lambda i: i + 1, "Updated": self.updated_epoch}

    def __len__(self) -> int:
        return self.count

    def updated_epoch(self, index: int) -> int:
        """``Updated`` of order ``index`` as epoch seconds: spread evenly, non-decreasing."""
        return self.start + (index * self.span) // max(1, self.count)

    def row(self, index: int) -> dict[str, Any]:
        """Order ``index`` (0-based) as the Query API returns it."""
        h = mix64(self._seed ^ index)
        updated = self.updated_epoch(index)
        parts = self._part_nos
        n_parts = len(parts)
        items = []
        total = 0
        g = h
        for line in range(1 + (h >> 40) % 3):
            g = mix64(g)
            quantity = 1 + (g & 3)
            cents = 4_900 + (g >> 8) % 95_000
            amount = quantity * cents
            total += amount
            items.append(
                {
                    "LineNo": line + 1,
                    "PartNo": parts[(g >> 32) % n_parts],
                    "Quantity": quantity,
                    "UnitPrice": cents / 100,
                    "Amount": amount / 100,
                }
            )
        iso = self._iso
        return {
            "Id": index + 1,
            "OrderNo": f"S{index + 1:09d}",
            "Created": iso(updated - (h & 0x3FFFF) % 259_200),
            "Updated": iso(updated),
            "StatusId": _STATUSES[(h >> 20) & 15],
            "CustomerId": 1 + (h >> 24) % self._customers,
            "Currency": _CURRENCIES[(h >> 56) & 7],
            "TotalAmount": total / 100,
            "Items": items,
        }

    def row_json(self, index: int) -> str:
        """Order ``index`` as compact JSON text, equal to ``json.dumps(row(index))`` but about twice as fast.

        Why: paging throughput is bound by building and encoding rows; every value here is a number or a
        string without characters JSON escapes (digits, ISO timestamps, currency codes, generated part numbers).
        """
        h = mix64(self._seed ^ index)
        updated = self.updated_epoch(index)
        parts = self._part_nos
        n_parts = len(parts)
        items = []
        total = 0
        g = h
        for line in range(1 + (h >> 40) % 3):
            g = mix64(g)
            quantity = 1 + (g & 3)
            cents = 4_900 + (g >> 8) % 95_000
            amount = quantity * cents
            total += amount
            items.append(
                f'{{"LineNo":{line + 1},"PartNo":"{parts[(g >> 32) % n_parts]}","Quantity":{quantity},'
                f'"UnitPrice":{cents / 100!r},"Amount":{amount / 100!r}}}'
            )
        iso = self._iso
        return (
            f'{{"Id":{index + 1},"OrderNo":"S{index + 1:09d}","Created":"{iso(updated - (h & 0x3FFFF) % 259_200)}",'
            f'"Updated":"{iso(updated)}","StatusId":{_STATUSES[(h >> 20) & 15]},'
            f'"CustomerId":{1 + (h >> 24) % self._customers},"Currency":"{_CURRENCIES[(h >> 56) & 7]}",'
            f'"TotalAmount":{total / 100!r},"Items":[{",".join(items)}]}}'
        )

    def index_range(self, field: str, op: str, value: float) -> range | None:
        """Indices whose ``field`` satisfies ``field op value``, for a monotonic field; None if not answerable."""
        key = self.monotonic.get(field)
        if key is None or op not in ("eq", "gt", "ge", "lt", "le"):
            return None
        indices = range(self.count)
        low = bisect.bisect_left(indices, value, key=key)
        high = bisect.bisect_right(indices, value, key=key)
        if op == "eq":
            return range(low, high)
        if op == "ge":
            return range(low, self.count)
        if op == "gt":
            return range(high, self.count)
        if op == "lt":
            return range(0, low)
        return range(0, high)  # le


class Catalog:
    """Products, SKUs (with stock and prices), customers, companies and price lists; mutated by imports.

    All access goes through :attr:`lock`; Query takes a snapshot of rows under it, and Connect applies a
    finished job under it, so a reader never sees half an import.
    """

    def __init__(self, products: int, customers: int, seed: int) -> None:
        self.lock = threading.RLock()
        iso = IsoFormatter()
        base = mix64(seed & _M64 ^ 0x5EED)
        self.products: dict[str, dict[str, Any]] = {}  # by ManufacturerPartNo
        self.skus: dict[str, dict[str, Any]] = {}  # by PartNo; "OnHand"/"PriceLists" dicts keyed internally
        self.customers: dict[str, dict[str, Any]] = {}  # by Code
        self.companies: dict[str, dict[str, Any]] = {}  # by Code
        self.price_lists: dict[str, dict[str, Any]] = {}  # by Code
        self.relations: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.competitor_skus: dict[tuple[str, str], dict[str, Any]] = {}
        self._next_id = {"product": 1, "customer": 1, "company": 1, "price_list": 1}
        stamp = iso(CATALOG_EPOCH)
        self.add_price_list("DEFAULT", "Default", "SEK", stamp)
        sku_no = 100_000
        for number in range(1, products + 1):
            h = mix64(base ^ number)
            mpn = f"MPN-{number:06d}"
            product = self.add_product(mpn, f"Product {number}", stamp)
            for variant in range(1 + h % 3):
                sku_no += 1
                g = mix64(h ^ variant)
                sku = self.add_sku(str(sku_no), product, f"Product {number} ({variant + 1})", stamp)
                sku["OnHand"][("MAIN", "")] = onhand_row("MAIN", "", float(g % 100), stamp)
                price = 49 + (g >> 8) % 950
                sku["PriceLists"][("DEFAULT", 1)] = {
                    "PriceListCode": "DEFAULT",
                    "QuantityBreak": 1,
                    "PriceSale": float(price),
                    "PriceRecommended": float(price + price // 4),
                    "CurrencyCode": "SEK",
                    "IsActive": True,
                    "Updated": stamp,
                }
        for number in range(1, customers + 1):
            self.add_customer(f"C{number:06d}", stamp, Email=f"customer{number}@example.com")
            self.customers[f"C{number:06d}"].update(FirstName=f"First{number}", LastName=f"Last{number}")
        self.initial_part_nos = sorted(self.skus)

    def _new_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] = value + 1
        return value

    def add_product(self, mpn: str, name: str, stamp: str) -> dict[str, Any]:
        """Create a product row (caller holds the lock)."""
        row = {
            "Id": self._new_id("product"),
            "ManufacturerPartNo": mpn,
            "Name": name,
            "IsActive": True,
            "Created": stamp,
            "Updated": stamp,
        }
        self.products[mpn] = row
        return row

    def add_sku(self, part_no: str, product: dict[str, Any], name: str, stamp: str) -> dict[str, Any]:
        """Create a SKU row under ``product`` (caller holds the lock)."""
        row: dict[str, Any] = {
            "PartNo": part_no,
            "ProductId": product["Id"],
            "ManufacturerPartNo": product["ManufacturerPartNo"],
            "Name": name,
            "IsActive": True,
            "Created": stamp,
            "Updated": stamp,
            "OnHand": {},
            "PriceLists": {},
        }
        self.skus[part_no] = row
        return row

    def add_customer(self, code: str, stamp: str, **fields: Any) -> dict[str, Any]:
        """Create a customer row (caller holds the lock)."""
        row = {
            "Id": self._new_id("customer"),
            "Code": code,
            "Email": None,
            "FirstName": None,
            "LastName": None,
        }
        row.update(IsActive=True, Created=stamp, Updated=stamp)
        row.update(fields)
        self.customers[code] = row
        return row

    def add_company(self, code: str, stamp: str, **fields: Any) -> dict[str, Any]:
        """Create a company row (caller holds the lock)."""
        row = {"Id": self._new_id("company"), "Code": code, "Name": None, "IsActive": True}
        row.update(Created=stamp, Updated=stamp)
        row.update(fields)
        self.companies[code] = row
        return row

    def add_price_list(self, code: str, name: str | None, currency: str | None, stamp: str) -> dict[str, Any]:
        """Create a price list row (caller holds the lock)."""
        row = {"Id": self._new_id("price_list"), "Code": code, "Name": name, "CurrencyCode": currency}
        row.update(IsActive=True, Created=stamp, Updated=stamp)
        self.price_lists[code] = row
        return row

    # -- snapshots for Query --------------------------------------------------------------------------
    def product_rows(self) -> list[dict[str, Any]]:
        """Products in Id order (copies)."""
        with self.lock:
            return sorted((dict(row) for row in self.products.values()), key=lambda row: row["Id"])

    def sku_rows(self) -> list[dict[str, Any]]:
        """SKUs in PartNo order, with ``OnHand``/``PriceLists`` as lists (copies)."""
        with self.lock:
            rows = []
            for part_no in sorted(self.skus):
                sku = self.skus[part_no]
                row = dict(sku)
                row["OnHand"] = [dict(item) for item in sku["OnHand"].values()]
                row["PriceLists"] = [dict(item) for item in sku["PriceLists"].values()]
                rows.append(row)
            return rows

    def customer_rows(self) -> list[dict[str, Any]]:
        """Customers in Id order (copies)."""
        with self.lock:
            return sorted((dict(row) for row in self.customers.values()), key=lambda row: row["Id"])

    def company_rows(self) -> list[dict[str, Any]]:
        """Companies in Id order (copies)."""
        with self.lock:
            return sorted((dict(row) for row in self.companies.values()), key=lambda row: row["Id"])

    def price_list_rows(self) -> list[dict[str, Any]]:
        """Price lists in Id order (copies)."""
        with self.lock:
            return sorted((dict(row) for row in self.price_lists.values()), key=lambda row: row["Id"])


def onhand_row(warehouse: str, location: str, value: float, stamp: str, **fields: Any) -> dict[str, Any]:
    """A stock row for one warehouse/location of a SKU."""
    row: dict[str, Any] = {
        "WarehouseCode": warehouse,
        "LocationCode": location,
        "OnhandValue": value,
        "IncomingValue": 0.0,
        "NextDeliveryDate": None,
        "LeadTimeDayCount": None,
        "IsActive": True,
        "Updated": stamp,
    }
    row.update(fields)
    return row
