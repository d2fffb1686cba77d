"""Deterministic simulator data: the small mutable catalog that Connect imports change and Query reads.

Orders live in :mod:`.orders` (lazily computed, read-only).

The catalog (see :class:`Catalog`) is generated eagerly (it is small: ``products`` Connect products with 1 to
3 variants, one SKU per variant) and changed by Connect imports when their jobs succeed. Its rows have the
Query 2.0 shapes of ``tests/norce_contracts/query.json`` (PascalCase); the ``*_SCHEMA`` constants below list
them and say which set names and fields are guesses. A SKU (``Products/ProductSkus``; ``PriceLists`` and
``OnHand`` are navigation properties, present only with ``$expand``)::

    {"PartNo": "100001", "ProductId": 1, "StatusId": 1, "TypeId": 1, "ErpName": "Product 1 (1)", ...,
     "Created": "2026-10-01T00:00:00Z", "Updated": "2026-10-01T00:00:00Z",
     "PriceLists": [{"PartNo": "100001", "PriceListId": 1, "QtyBreak": 1, "CurrencyId": 1, "PriceSale": 199.0,
                     "PriceSaleLastUpdated": "...Z", ..., "IsActive": true, "Created": "...Z", "Updated": "...Z"}],
     "OnHand": [{"PartNo": "100001", "WarehouseId": 1, "LocationId": 1, "OnHandValue": 12.0, ...}]}
"""

from __future__ import annotations

import threading
import time
from typing import Any

from airflow_provider_norce.simulator.odata import parse_datetime

#: Timestamps of the generated catalog (before the order window, so imports visibly change ``Updated``).
CATALOG_EPOCH = int(parse_datetime("2026-10-01T00:00:00Z"))

_M64 = (1 << 64) - 1

# -- catalog: Query 2.0 shapes (tests/norce_contracts/query.json entity_sets) ------------------------------
#: ``Products/Products``: one row per Connect variant (a Connect product with two variants is two rows sharing
#: ``Code``, the variant-cluster key). Field names from the documented 2.0 field list; a subset.
PRODUCT_SCHEMA = {
    "Id": "int",
    "ManufacturerId": "int",
    "ManufacturerPartNo": "string",
    "Code": "string",
    "DefaultName": "string",
    "DefaultDescription": "string",
    "Alias": "string",
    "IsVariant": "bool",
    "SortOrderValue": "int",
    "StockDisplayBreakPoint": "int",
    "IsDangerousGoods": "bool",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
#: ``Products/ProductSkus`` (documented 2.0 list; ``Created``/``Updated`` from the 3.0 equivalent). No IsActive:
#: a SKU's state is ``StatusId`` (SkuStatus, 1 Active ... 5 Inactive).
SKU_SCHEMA = {
    "PartNo": "string",
    "ProductId": "int",
    "StatusId": "int",
    "TypeId": "int",
    "IntegrationPartNo": "string",
    "ErpName": "string",
    "DefaultComment": "string",
    "CommodityCode": "string",
    "EanCode": "string",
    "TrackingCode": "string",
    "UnitOfMeasurementId": "int",
    "UnitOfMeasurementCount": "decimal",
    "IsDropShipOnly": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
#: ``Products/ProductSkuPriceLists`` (type documented; set name third-party). Keys PartNo, PriceListId, QtyBreak.
SKU_PRICE_SCHEMA = {
    "PartNo": "string",
    "PriceListId": "int",
    "QtyBreak": "int",
    "CurrencyId": "int",
    "PriceSale": "decimal",
    "PriceSaleLastUpdated": "datetime",
    "CostPurchase": "decimal",
    "CostPurchaseLastUpdated": "datetime",
    "CostUnit": "decimal",
    "CostUnitLastUpdated": "datetime",
    "PriceRecommended": "decimal",
    "PriceRecommendedLastUpdated": "datetime",
    "PricePrevious": "decimal",
    "PricePreviousLastUpdated": "datetime",
    "PriceCatalog": "decimal",
    "PriceCatalogLastUpdated": "datetime",
    "PriceRuleId": "int",
    "PriceRuleValue": "decimal",
    "IsPriceDiscountable": "bool",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
#: the client on-hand set: its 2.0 name is NOT published (a guess; ``NorceSimulator(onhand_set=...)`` changes it); fields are the 3.0 ClientProductSkuOnHand in PascalCase.
DEFAULT_ONHAND_SET = "Products/ProductSkuOnHands"
ONHAND_SCHEMA = {
    "PartNo": "string",
    "WarehouseId": "int",
    "LocationId": "int",
    "OnHandValue": "decimal",
    "OnHandLastUpdated": "datetime",
    "IncomingValue": "decimal",
    "IncomingLastUpdated": "datetime",
    "NextDeliveryDate": "datetime",
    "NextDeliveryLastUpdated": "datetime",
    "LeadTimeDayCount": "int",
    "OnOrderValue": "decimal",
    "MinimumValue": "decimal",
    "MaximumValue": "decimal",
    "IsActive": "bool",
    "IsActiveLastUpdated": "datetime",
    "Created": "datetime",
    "Updated": "datetime",
}
#: ``Application/ClientPriceLists``: ``Agreement`` is the Connect ``PriceListCode``.
PRICE_LIST_SCHEMA = {
    "PriceListId": "int",
    "Name": "string",
    "Description": "string",
    "Agreement": "string",
    "StartDate": "datetime",
    "EndDate": "datetime",
    "CurrencyId": "int",
    "IsPrimary": "bool",
    "IsPublic": "bool",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
#: ``Application/ClientWarehouses``: the set exists (third-party), its fields are NOT published. Minimal guess:
#: one row per warehouse location, enough to map WarehouseCode/LocationCode to WarehouseId/LocationId.
WAREHOUSE_SCHEMA = {
    "WarehouseId": "int",
    "LocationId": "int",
    "Code": "string",
    "LocationCode": "string",
    "Name": "string",
    "IsActive": "bool",
}
#: ``Core/Currencies`` (fields seen in third-party code).
CURRENCY_SCHEMA = {"Id": "int", "Code": "string", "ExchangeRate": "decimal"}
#: ``Customers/Customers``: 2.0 set name NOT confirmed; fields are the 3.0 ClientCustomer in PascalCase.
CUSTOMER_SCHEMA = {
    "Id": "int",
    "CustomerCode": "string",
    "TypeId": "int",
    "EmailAddress": "string",
    "FirstName": "string",
    "MiddleName": "string",
    "LastName": "string",
    "PhoneNumber": "string",
    "CellPhoneNumber": "string",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
#: ``Customers/Companies``: 2.0 set name NOT confirmed; fields from the documented Company type.
COMPANY_SCHEMA = {
    "Id": "int",
    "CompanyCode": "string",
    "OrganizationNo": "string",
    "Name": "string",
    "EmailAddress": "string",
    "PhoneNumber": "string",
    "VatNo": "string",
    "IsActive": "bool",
    "Created": "datetime",
    "Updated": "datetime",
}
#: seed currencies (Id, Code, EUR-based rate); the Ids are the simulator's own
SEED_CURRENCIES = (("SEK", 0.087), ("EUR", 1.0), ("NOK", 0.085), ("DKK", 0.134), ("USD", 0.92))


def mix64(value: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash, so row ``i`` needs no RNG object."""
    value = (value + 0x9E3779B97F4A7C15) & _M64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _M64
    return value ^ (value >> 31)


#: Minutes whose text :class:`IsoFormatter` keeps (a month of orders touches about 50,000).
_MINUTES_CACHED = 200_000


class IsoFormatter:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ``, the text up to the minute cached (bounded).

    Why: formatting two timestamps per row was a quarter of the order paging time.
    """

    def __init__(self) -> None:
        self._minutes: dict[int, str] = {}

    def __call__(self, epoch: int) -> str:
        minute, second = divmod(epoch, 60)
        prefix = self._minutes.get(minute)
        if prefix is None:
            if len(self._minutes) >= _MINUTES_CACHED:
                self._minutes.clear()
            prefix = self._minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return f"{prefix}{second:02d}Z"


class Catalog:
    """Products (one row per variant), SKUs, stock, prices, price lists, warehouses, currencies, customers,
    companies, relations, competitor prices and supplier products; generated, then changed by Connect imports.

    All access goes through :attr:`lock`; Query takes a snapshot of rows under it, and Connect applies a
    finished job under it, so a reader never sees half an import. Tables hold Query-shaped rows:

    * ``skus`` by PartNo; ``onhand`` by ``(PartNo, WarehouseId, LocationId)``; ``prices`` by
      ``(PartNo, PriceListId, QtyBreak)``; ``products`` by Id (``product_ids`` maps ManufacturerPartNo -> Id);
    * ``price_lists`` by Agreement (the Connect PriceListCode); ``warehouses`` by ``(Code, LocationCode)``;
      ``currencies`` by Code; ``customers``/``companies`` by Id;
    * ``relations``, ``competitor_skus`` and ``supplier_products`` (no Query set was confirmed for them) by their
      Connect keys, holding the written Connect fields plus ``IsActive``/``Updated``.

    Seed: price list ``DEFAULT`` (PriceListId 1, SEK), currencies SEK=1, EUR=2, NOK=3, DKK=4, USD=5, warehouse
    ``MAIN`` with location ``MAIN`` (WarehouseId 1, LocationId 1), manufacturer ``SIM``, SKUs ``100001``... with
    one stock row at MAIN/MAIN and one DEFAULT price each. Generated products, SKUs and customers whose number
    is a multiple of 4 have ``Updated: null`` (never updated since creation, as on Norce).
    """

    def __init__(
        self, products: int, customers: int, seed: int, onhand_set: str = DEFAULT_ONHAND_SET
    ) -> None:
        if onhand_set.count("/") != 1 or not all(onhand_set.split("/")):
            raise ValueError(f"onhand_set must be 'Namespace/EntitySet', not {onhand_set!r}")
        self.onhand_set = onhand_set
        self.lock = threading.RLock()
        iso = IsoFormatter()
        base = mix64(seed & _M64 ^ 0x5EED)
        self._next_id: dict[str, int] = {}
        self.currencies: dict[str, dict[str, Any]] = {}
        self.warehouses: dict[tuple[str, str], dict[str, Any]] = {}
        self.manufacturers: dict[str, int] = {}
        self.price_lists: dict[str, dict[str, Any]] = {}
        self.products: dict[int, dict[str, Any]] = {}
        self.product_ids: dict[str, int] = {}
        self.skus: dict[str, dict[str, Any]] = {}
        self.onhand: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.prices: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.customers: dict[int, dict[str, Any]] = {}
        self.companies: dict[int, dict[str, Any]] = {}
        self.relations: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.competitor_skus: dict[tuple[str, str], dict[str, Any]] = {}
        self.supplier_products: dict[tuple[int | None, str], dict[str, Any]] = {}
        stamp = iso(CATALOG_EPOCH)
        for code, rate in SEED_CURRENCIES:
            self.currencies[code] = {"Id": self.new_id("currency"), "Code": code, "ExchangeRate": rate}
        self.add_warehouse("MAIN", "MAIN", "Main warehouse")
        self.add_price_list("DEFAULT", stamp, Name="Default", CurrencyId=self.currencies["SEK"]["Id"])
        self.manufacturer_id("SIM")
        default_list = self.price_lists["DEFAULT"]["PriceListId"]
        sku_no = 100_000
        for number in range(1, products + 1):
            h = mix64(base ^ number)
            updated = None if number % 4 == 0 else stamp
            variants = 1 + h % 3
            for variant in range(variants):
                sku_no += 1
                g = mix64(h ^ variant)
                product = self.add_product(
                    f"MPN-{number:06d}" + (f"-{variant + 1}" if variants > 1 else ""),
                    stamp,
                    Code=f"P{number:06d}",
                    DefaultName=f"Product {number}" + (f" ({variant + 1})" if variants > 1 else ""),
                    IsVariant=variants > 1,
                    Updated=updated,
                )
                part_no = str(sku_no)
                self.add_sku(part_no, product["Id"], stamp, ErpName=product["DefaultName"], Updated=updated)
                self.onhand_row(part_no, 1, 1, stamp).update(
                    OnHandValue=float(g % 100), OnHandLastUpdated=stamp
                )
                price = 49 + (g >> 8) % 950
                self.price_row(part_no, default_list, 1, self.currencies["SEK"]["Id"], stamp).update(
                    PriceSale=float(price),
                    PriceSaleLastUpdated=stamp,
                    PriceRecommended=float(price + price // 4),
                    PriceRecommendedLastUpdated=stamp,
                )
        for number in range(1, customers + 1):
            self.add_customer(
                stamp,
                CustomerCode=f"C{number:06d}",
                EmailAddress=f"customer{number}@example.com",
                FirstName=f"First{number}",
                LastName=f"Last{number}",
                Updated=None if number % 4 == 0 else stamp,
            )
        self.initial_part_nos = sorted(self.skus)

    # -- creation (caller holds the lock) ----------------------------------------------------------------
    def new_id(self, kind: str) -> int:
        """The next id of ``kind`` (1, 2, ...)."""
        value = self._next_id.get(kind, 1)
        self._next_id[kind] = value + 1
        return value

    def manufacturer_id(self, code: str) -> int:
        """The id of manufacturer ``code``, created when unknown."""
        if code not in self.manufacturers:
            self.manufacturers[code] = self.new_id("manufacturer")
        return self.manufacturers[code]

    def add_warehouse(self, code: str, location: str, name: str | None = None) -> dict[str, Any]:
        """A warehouse location; a new warehouse code gets a new WarehouseId, each location a LocationId."""
        warehouse_id = next(
            (row["WarehouseId"] for (c, _), row in self.warehouses.items() if c == code), None
        ) or self.new_id("warehouse")
        row = {
            "WarehouseId": warehouse_id,
            "LocationId": self.new_id("location"),
            "Code": code,
            "LocationCode": location,
            "Name": name or code,
            "IsActive": True,
        }
        self.warehouses[(code, location)] = row
        return row

    def add_price_list(self, agreement: str, stamp: str, **fields: Any) -> dict[str, Any]:
        """A price list row (``Application/ClientPriceLists`` shape)."""
        row: dict[str, Any] = {
            "PriceListId": self.new_id("price_list"),
            "Name": agreement,
            "Description": None,
            "Agreement": agreement,
            "StartDate": None,
            "EndDate": None,
            "CurrencyId": None,
            "IsPrimary": False,
            "IsPublic": False,
            "IsActive": True,
            "Created": stamp,
            "Updated": stamp,
        }
        row.update(fields)
        self.price_lists[agreement] = row
        return row

    def add_product(self, mpn: str, stamp: str, **fields: Any) -> dict[str, Any]:
        """A ``Products/Products`` row (one Connect variant)."""
        row: dict[str, Any] = dict.fromkeys(PRODUCT_SCHEMA)
        row.update(
            Id=self.new_id("product"),
            ManufacturerId=self.manufacturers.get("SIM"),
            ManufacturerPartNo=mpn,
            IsVariant=False,
            IsDangerousGoods=False,
            IsActive=True,
            Created=stamp,
            Updated=stamp,
        )
        row.update(fields)
        self.products[row["Id"]] = row
        self.product_ids[mpn] = row["Id"]
        return row

    def add_sku(self, part_no: str, product_id: int, stamp: str, **fields: Any) -> dict[str, Any]:
        """A ``Products/ProductSkus`` row."""
        row: dict[str, Any] = dict.fromkeys(SKU_SCHEMA)
        row.update(
            PartNo=part_no,
            ProductId=product_id,
            StatusId=1,
            TypeId=1,
            UnitOfMeasurementId=1,
            UnitOfMeasurementCount=1.0,
            Created=stamp,
            Updated=stamp,
        )
        row.update(fields)
        self.skus[part_no] = row
        return row

    def onhand_row(self, part_no: str, warehouse_id: int, location_id: int, stamp: str) -> dict[str, Any]:
        """The stock row of a SKU at a location, created empty (OnHandValue 0, active) when missing."""
        key = (part_no, warehouse_id, location_id)
        row = self.onhand.get(key)
        if row is None:
            row = self.onhand[key] = dict.fromkeys(ONHAND_SCHEMA)
            row.update(
                PartNo=part_no, WarehouseId=warehouse_id, LocationId=location_id, OnHandValue=0.0, IsActive=True,
                Created=stamp, Updated=stamp,
            )  # fmt: skip
        return row

    def price_row(
        self, part_no: str, price_list_id: int, qty: int, currency_id: Any, stamp: str
    ) -> dict[str, Any]:
        """The price row of a SKU in a price list at a quantity break, created empty when missing."""
        key = (part_no, price_list_id, qty)
        row = self.prices.get(key)
        if row is None:
            row = self.prices[key] = dict.fromkeys(SKU_PRICE_SCHEMA)
            row.update(
                PartNo=part_no, PriceListId=price_list_id, QtyBreak=qty, CurrencyId=currency_id, PriceSale=0.0,
                CostPurchase=0.0, CostUnit=0.0, IsPriceDiscountable=True, IsActive=True, Created=stamp,
                Updated=stamp,
            )  # fmt: skip
        return row

    def add_customer(self, stamp: str, **fields: Any) -> dict[str, Any]:
        """A ``Customers/Customers`` row."""
        row: dict[str, Any] = dict.fromkeys(CUSTOMER_SCHEMA)
        row.update(Id=self.new_id("customer"), TypeId=1, IsActive=True, Created=stamp, Updated=stamp)
        row.update(fields)
        self.customers[row["Id"]] = row
        return row

    def add_company(self, stamp: str, **fields: Any) -> dict[str, Any]:
        """A ``Customers/Companies`` row."""
        row: dict[str, Any] = dict.fromkeys(COMPANY_SCHEMA)
        row.update(Id=self.new_id("company"), IsActive=True, Created=stamp, Updated=stamp)
        row.update(fields)
        self.companies[row["Id"]] = row
        return row

    # -- snapshots for Query --------------------------------------------------------------------------
    @staticmethod
    def _copies(rows: Any, key: str) -> list[dict[str, Any]]:
        return sorted((dict(row) for row in rows), key=lambda row: row[key])

    def product_rows(self) -> list[dict[str, Any]]:
        """Products in Id order (copies)."""
        with self.lock:
            return self._copies(self.products.values(), "Id")

    def sku_rows(self) -> list[dict[str, Any]]:
        """SKUs in PartNo order, with the navigation lists ``PriceLists`` and ``OnHand`` (copies)."""
        with self.lock:
            prices: dict[str, list[dict[str, Any]]] = {}
            for row in self.prices.values():
                prices.setdefault(row["PartNo"], []).append(dict(row))
            stock: dict[str, list[dict[str, Any]]] = {}
            for row in self.onhand.values():
                stock.setdefault(row["PartNo"], []).append(dict(row))
            return [
                {**self.skus[p], "PriceLists": prices.get(p, []), "OnHand": stock.get(p, [])}
                for p in sorted(self.skus)
            ]

    def price_rows(self) -> list[dict[str, Any]]:
        """SKU prices ordered by PartNo, PriceListId, QtyBreak (copies)."""
        with self.lock:
            return [dict(self.prices[key]) for key in sorted(self.prices)]

    def onhand_rows(self) -> list[dict[str, Any]]:
        """Stock rows ordered by PartNo, WarehouseId, LocationId (copies)."""
        with self.lock:
            return [dict(self.onhand[key]) for key in sorted(self.onhand)]

    def price_list_rows(self) -> list[dict[str, Any]]:
        """Price lists in PriceListId order (copies)."""
        with self.lock:
            return self._copies(self.price_lists.values(), "PriceListId")

    def warehouse_rows(self) -> list[dict[str, Any]]:
        """Warehouse locations in LocationId order (copies)."""
        with self.lock:
            return self._copies(self.warehouses.values(), "LocationId")

    def currency_rows(self) -> list[dict[str, Any]]:
        """Currencies in Id order (copies)."""
        with self.lock:
            return self._copies(self.currencies.values(), "Id")

    def customer_rows(self) -> list[dict[str, Any]]:
        """Customers in Id order (copies)."""
        with self.lock:
            return self._copies(self.customers.values(), "Id")

    def company_rows(self) -> list[dict[str, Any]]:
        """Companies in Id order (copies)."""
        with self.lock:
            return self._copies(self.companies.values(), "Id")
