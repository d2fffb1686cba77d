"""What a succeeded Connect job writes into the simulator's catalog, per import method.

Rules common to every method (``tests/norce_contracts/connect.json``; inferences marked):

* **Only masked fields are written.** A field is written when the header's ``...FieldsThatAreSet`` lists it;
  a listed field the item lacks is written as .NET deserialisation leaves it (``null``, or ``0``/``false``
  for non-nullable values). Keys (PartNo, WarehouseCode/LocationCode, PriceListCode/QuantityBreak, Code, ...)
  are always used. A nullable ``IsActive`` that is null means active (docs: "default true").
* **Counters are table writes**: each row inserted or changed in a table counts once (a product import that
  writes a product row and a SKU row counts two), not items. A row whose masked fields are all absent from the
  mask is left alone and not counted.
* **Log lines** (``Job/GetLog``): Error (3) = the record was not imported (unknown SKU, price list,
  warehouse/location, customer id, a new SKU without Status and Type, ...); Warning (2) = part of the record
  was skipped. The job still Succeeds.
* **FullFile** deactivates (``IsActive: false``) only within the scope each header note gives: on-hand rows
  at the warehouse locations present in the file; price rows of the price lists present in the file;
  competitor prices of the competitors in the file; every relation not in the file; product rows of the same
  variant cluster (``Code``) that the file does not name (Commerce docs wording; the Storm-era docs say every
  product, which the simulator does not do); supplier: on-hand and price rows of that supplier product at the
  warehouses/price lists present in the file (simplified; the category part is not simulated).

Simplifications: ``Sku.StandardPrice``, images, categories, parametrics, flags, addresses and accounts are
accepted and not stored. ``ImportPriceLists`` creates warehouses/locations named in ``Warehouses`` when
``Warehouses`` is in ``PriceListFieldsThatAreSet``. Supplier products are stored as sent (masked fields only)
in ``Catalog.supplier_products``; no Query set shows them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.simulator import connect_rules as rules

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from airflow_provider_norce.simulator.connect_rules import Header, Schema
    from airflow_provider_norce.simulator.data import Catalog

Item = dict[str, Any]
Rows = list[tuple[int, Item]]
INFO, WARNING, ERROR = 1, 2, 3


class Applied:
    """What applying one job did: table writes, records not imported, and log lines."""

    def __init__(self, stamp: str) -> None:
        self.stamp = stamp
        self.inserts = self.updates = self.failed = 0
        #: (severity, ImportedRow text or None, message)
        self.log: list[tuple[int, str | None, str]] = []

    def not_imported(self, row: int, item: Any, message: str) -> None:
        """Error line: the record was not imported."""
        self.failed += 1
        self.log.append((ERROR, _row_text(item), f"Row {row}: {message}; the record was not imported."))

    def partly(self, row: int, item: Any, message: str) -> None:
        """Warning line: part of the record was skipped."""
        self.log.append((WARNING, _row_text(item), f"Row {row}: {message}; that part was skipped."))

    def wrote(self, inserted: bool, changed: bool = True) -> None:
        if inserted:
            self.inserts += 1
        elif changed:
            self.updates += 1

    def deactivate(self, records: Iterable[dict[str, Any]], *stamps: str) -> None:
        """FullFile: set ``IsActive`` false (and ``Updated`` and the named per-field stamps) where it was true."""
        for record in records:
            if record.get("IsActive"):
                record["IsActive"] = False
                record["Updated"] = self.stamp
                for name in stamps:
                    record[name] = self.stamp
                self.updates += 1


def _row_text(item: Any) -> str:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False)


def write(
    record: dict[str, Any],
    item: Item,
    schema: Schema,
    mask: frozenset[str],
    fields: dict[str, str],
    stamps: dict[str, str] | None = None,
    stamp: str = "",
) -> bool:
    """Copy each masked Connect field (``fields``: Connect name -> Query name) from ``item`` into ``record``;
    a masked field the item lacks is written as its .NET default. Returns whether anything was written."""
    written = False
    for connect_name, query_name in fields.items():
        if connect_name not in mask:
            continue
        value = item.get(connect_name, rules.default(schema, connect_name))
        if connect_name == "IsActive" and value is None:
            value = True
        record[query_name] = value
        if stamps and query_name in stamps:
            record[stamps[query_name]] = stamp
        written = True
    return written


def _touch(record: dict[str, Any], stamp: str) -> None:
    record["Updated"] = stamp


# -- ImportOnhands ----------------------------------------------------------------------------------------
_ONHAND_FIELDS = {
    "OnhandValue": "OnHandValue", "IncomingValue": "IncomingValue", "NextDeliveryDate": "NextDeliveryDate",
    "LeadTimeDayCount": "LeadTimeDayCount", "OnOrderValue": "OnOrderValue", "MinimumValue": "MinimumValue",
    "MaximumValue": "MaximumValue", "IsActive": "IsActive",
}  # fmt: skip
_ONHAND_STAMPS = {
    "OnHandValue": "OnHandLastUpdated", "IncomingValue": "IncomingLastUpdated",
    "NextDeliveryDate": "NextDeliveryLastUpdated", "IsActive": "IsActiveLastUpdated",
}  # fmt: skip


def apply_onhands(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Stock rows per SKU and warehouse location; unknown SKU or location -> not imported."""
    schema, mask, stamp = (
        rules.SCHEMAS["Product/SkuOnhand"],
        header.mask("SkuOnhandFieldsThatAreSet"),
        applied.stamp,
    )
    named: set[tuple[str, int, int]] = set()
    locations: set[tuple[int, int]] = set()
    for row, item in rows:
        location = catalog.warehouses.get((item["WarehouseCode"], item["LocationCode"]))
        if item["PartNo"] not in catalog.skus:
            applied.not_imported(row, item, f"SKU '{item['PartNo']}' does not exist")
            continue
        if location is None:
            applied.not_imported(
                row,
                item,
                f"warehouse '{item['WarehouseCode']}' location '{item['LocationCode']}' does not exist",
            )
            continue
        ids = (location["WarehouseId"], location["LocationId"])
        locations.add(ids)
        key = (item["PartNo"], *ids)
        named.add(key)
        inserted = key not in catalog.onhand
        record = catalog.onhand_row(item["PartNo"], *ids, stamp)
        changed = write(record, item, schema, mask, _ONHAND_FIELDS, _ONHAND_STAMPS, stamp)
        if changed or inserted:
            _touch(record, stamp)
        applied.wrote(inserted, changed)
    if header.full_file:
        applied.deactivate(
            (r for k, r in catalog.onhand.items() if k[1:] in locations and k not in named),
            "IsActiveLastUpdated",
        )


# -- ImportSkuPriceLists ------------------------------------------------------------------------------------
_PRICE_FIELDS = {
    "PriceSale": "PriceSale", "CostPurchase": "CostPurchase", "CostUnit": "CostUnit",
    "PriceRecommended": "PriceRecommended", "PricePrevious": "PricePrevious", "PriceCatalog": "PriceCatalog",
}  # fmt: skip
_PRICE_STAMPS = {name: f"{name}LastUpdated" for name in _PRICE_FIELDS}


def write_price(record: dict[str, Any], item: Item, mask: frozenset[str], inserted: bool, stamp: str) -> bool:
    """The masked price fields of one row; null or 0 prices are ignored (docs), IsActive null means true."""
    written = False
    for name in _PRICE_FIELDS:
        value = item.get(name)
        if name in mask and value not in (None, 0):
            record[name] = float(value)
            record[_PRICE_STAMPS[name]] = stamp
            written = True
    if "IsPriceDiscountable" in mask or ("IsPriceDiscountableCreateOnly" in mask and inserted):
        record["IsPriceDiscountable"] = bool(item.get("IsPriceDiscountable", False))
        written = True
    if "IsActive" in mask:
        record["IsActive"] = item.get("IsActive") is not False
        written = True
    if "PriceRule" in mask:
        rule = item.get("PriceRule")
        record["PriceRuleId"] = None if rule is None else rules.enum_code("PriceRule", rule)
        record["PriceRuleValue"] = item.get("PriceRuleValue")
        written = True
    return written


def apply_sku_prices(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Price rows per SKU, price list and quantity break; unknown SKU or price list -> not imported."""
    mask, stamp = header.mask("SkuPriceListFieldsThatAreSet"), applied.stamp
    ignore_empty = header.mask("IgnoreSkuPriceListFieldsWhenEmpty")
    named: set[tuple[str, int, int]] = set()
    lists: set[int] = set()
    for row, item in rows:
        price_list = catalog.price_lists.get(item["PriceListCode"])
        if item["PartNo"] not in catalog.skus:
            applied.not_imported(row, item, f"SKU '{item['PartNo']}' does not exist")
            continue
        if price_list is None:
            applied.not_imported(row, item, f"price list '{item['PriceListCode']}' does not exist")
            continue
        empty = sorted(name for name in ignore_empty if item.get(name) in (None, 0))
        if empty:
            applied.not_imported(row, item, f"{', '.join(empty)} empty (IgnoreSkuPriceListFieldsWhenEmpty)")
            continue
        list_id = price_list["PriceListId"]
        lists.add(list_id)
        key = (item["PartNo"], list_id, item.get("QuantityBreak") or 1)
        named.add(key)
        inserted = key not in catalog.prices
        currency = catalog.currencies.get(item.get("CurrencyCode") or "")
        currency_id = currency["Id"] if currency else price_list["CurrencyId"]
        record = catalog.price_row(*key, currency_id, stamp)
        changed = write_price(record, item, mask, inserted, stamp)
        if changed or inserted:
            _touch(record, stamp)
        applied.wrote(inserted, changed)
    if header.full_file:
        applied.deactivate((r for k, r in catalog.prices.items() if k[1] in lists and k not in named))


# -- ImportPriceLists ---------------------------------------------------------------------------------------
_PRICE_LIST_FIELDS = {
    "Name": "Name", "StartDate": "StartDate", "EndDate": "EndDate", "IsPublic": "IsPublic",
    "IsPrimary": "IsPrimary", "Description": "Description",
}  # fmt: skip


def apply_price_lists(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Price lists by Code (= ``Agreement``); unknown ones are created (docs)."""
    schema, mask, stamp = (
        rules.SCHEMAS["Product/PriceList"],
        header.mask("PriceListFieldsThatAreSet"),
        applied.stamp,
    )
    for row, item in rows:
        record = catalog.price_lists.get(item["Code"])
        inserted = record is None
        if record is None:
            record = catalog.add_price_list(item["Code"], stamp, CurrencyId=catalog.currencies["SEK"]["Id"])
        changed = write(record, item, schema, mask, _PRICE_LIST_FIELDS)
        if "CurrencyCode" in mask:
            currency = catalog.currencies.get(item.get("CurrencyCode") or "")
            if currency is None:
                applied.partly(row, item, f"currency '{item.get('CurrencyCode')}' does not exist")
            else:
                record["CurrencyId"] = currency["Id"]
                changed = True
        if "Warehouses" in mask:
            for warehouse in item.get("Warehouses") or []:
                for location in warehouse["Locations"]:
                    if (warehouse["Code"], location["Code"]) not in catalog.warehouses:
                        catalog.add_warehouse(warehouse["Code"], location["Code"], warehouse.get("Name"))
                        applied.wrote(True)
        if changed and not inserted:
            _touch(record, stamp)
        applied.wrote(inserted, changed)


# -- ImportProducts -----------------------------------------------------------------------------------------
_PRODUCT_FIELDS = {"Alias": "Alias", "Code": "Code"}
_VARIANT_FIELDS = {
    "ManufacturerPartNo": "ManufacturerPartNo", "SortOrderValue": "SortOrderValue",
    "StockDisplayBreakPoint": "StockDisplayBreakPoint", "IsDangerousGoods": "IsDangerousGoods",
}  # fmt: skip
_SKU_FIELDS = {
    "IntegrationPartNo": "IntegrationPartNo", "CommodityCode": "CommodityCode", "EanCode": "EanCode",
    "TrackingCode": "TrackingCode", "UnitOfMeasurementCount": "UnitOfMeasurementCount",
    "IsDropShipOnly": "IsDropShipOnly",
}  # fmt: skip


def _culture_text(cultures: Any, name: str) -> Any:
    """The first culture's ``name`` (the simulator keeps one default text per row)."""
    return cultures[0].get(name) if cultures else None


def _write_texts(record: dict[str, Any], cultures: Any, mask: frozenset[str], inserted: bool) -> bool:
    written = False
    if "Name" in mask or ("NameCreateOnly" in mask and inserted):
        record["DefaultName"] = _culture_text(cultures, "Name")
        written = True
    if "Description" in mask or ("DescriptionCreateOnly" in mask and inserted):
        record["DefaultDescription"] = _culture_text(cultures, "Description")
        written = True
    return written


def _write_sku(
    catalog: Catalog, row: int, item: Item, sku: Item, product_id: int, header: Header, applied: Applied
) -> None:
    schema, mask, stamp = rules.SCHEMAS["Product/Sku"], header.mask("SkuFieldsThatAreSet"), applied.stamp
    record = catalog.skus.get(sku["PartNo"])
    inserted = record is None
    status_masked = "Status" in mask or ("StatusCreateOnly" in mask and inserted)
    if record is None:
        if not (
            status_masked and "Type" in mask and sku.get("Status") is not None and sku.get("Type") is not None
        ):
            applied.partly(
                row, item, f"new SKU '{sku['PartNo']}' needs Status and Type (both in SkuFieldsThatAreSet)"
            )
            return
        record = catalog.add_sku(sku["PartNo"], product_id, stamp)
    changed = write(record, sku, schema, mask, _SKU_FIELDS)
    if status_masked and sku.get("Status") is not None:
        record["StatusId"] = rules.enum_code("SkuStatus", sku["Status"])
        changed = True
    if "Type" in mask and sku.get("Type") is not None:
        record["TypeId"] = rules.enum_code("SkuType", sku["Type"])
        changed = True
    if "UnitOfMeasurementType" in mask and sku.get("UnitOfMeasurementType") is not None:
        record["UnitOfMeasurementId"] = rules.enum_code("UnitMeasurementType", sku["UnitOfMeasurementType"])
        changed = True
    culture_mask = header.mask("SkuCultureFieldsThatAreSet")
    cultures = sku.get("Cultures")
    if cultures and ("ErpName" in culture_mask or ("ErpNameCreateOnly" in culture_mask and inserted)):
        record["ErpName"] = _culture_text(cultures, "ErpName")
        changed = True
    if cultures and ("Comment" in culture_mask or ("CommentCreateOnly" in culture_mask and inserted)):
        record["DefaultComment"] = _culture_text(cultures, "Comment")
        changed = True
    if record["ProductId"] != product_id:
        record["ProductId"] = product_id
        changed = True
    if changed and not inserted:
        _touch(record, stamp)
    applied.wrote(inserted, changed)


def apply_products(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Product -> Variants[] -> Skus[]: each variant is a ``Products/Products`` row, each SKU a ProductSkus row."""
    stamp = applied.stamp
    pmask, vmask = header.mask("ProductFieldsThatAreSet"), header.mask("VariantFieldsThatAreSet")
    pschema, vschema = rules.SCHEMAS["Product/Product"], rules.SCHEMAS["Product/Variant"]
    named: set[int] = set()
    clusters: set[str] = set()
    for row, item in rows:
        variants = item.get("Variants") or []
        if variants and "Variants" not in pmask:
            applied.partly(row, item, "Variants is not in ProductFieldsThatAreSet, so variants and SKUs")
            variants = []
        if item.get("Code"):
            clusters.add(item["Code"])
        if not variants and not item.get("Variants"):
            applied.partly(row, item, "the product has no Variants, so it names no product row")
        for variant in variants:
            mpn = variant.get("ManufacturerPartNo")
            product_id = catalog.product_ids.get(mpn) if mpn else None
            if product_id is None:
                known = [
                    catalog.skus[s["PartNo"]]
                    for s in variant.get("Skus") or []
                    if s["PartNo"] in catalog.skus
                ]
                product_id = known[0]["ProductId"] if known else None
            inserted = product_id is None
            if product_id is None:
                if not (mpn and item.get("ManufacturerCode")):
                    applied.not_imported(
                        row,
                        item,
                        "a new product needs ManufacturerCode and each variant's ManufacturerPartNo",
                    )
                    continue
                record = catalog.add_product(
                    mpn, stamp, ManufacturerId=catalog.manufacturer_id(item["ManufacturerCode"])
                )
            else:
                record = catalog.products[product_id]
            named.add(record["Id"])
            changed = write(record, item, pschema, pmask, _PRODUCT_FIELDS)
            if "ManufacturerCode" in pmask and item.get("ManufacturerCode"):
                record["ManufacturerId"] = catalog.manufacturer_id(item["ManufacturerCode"])
                changed = True
            if "Cultures" in pmask:
                changed |= _write_texts(
                    record, item.get("Cultures"), header.mask("ProductCultureFieldsThatAreSet"), inserted
                )
            changed |= write(record, variant, vschema, vmask, _VARIANT_FIELDS)
            if "Cultures" in vmask and variant.get("Cultures"):
                changed |= _write_texts(
                    record, variant["Cultures"], header.mask("VariantCultureFieldsThatAreSet"), inserted
                )
            record["IsVariant"] = len(variants) > 1 or record["IsVariant"]
            if inserted:
                record["Code"] = item.get("Code")
            if changed or inserted:
                record["IsActive"] = True
            if changed and not inserted:
                _touch(record, stamp)
            if record["ManufacturerPartNo"]:
                catalog.product_ids[record["ManufacturerPartNo"]] = record["Id"]
            applied.wrote(inserted, changed)
            if "Skus" in vmask:
                for sku in variant.get("Skus") or []:
                    _write_sku(catalog, row, item, sku, record["Id"], header, applied)
            elif variant.get("Skus"):
                applied.partly(row, item, "Skus is not in VariantFieldsThatAreSet, so the SKUs")
    if header.full_file:
        applied.deactivate(
            r for r in catalog.products.values() if r["Code"] in clusters and r["Id"] not in named
        )


# -- ImportRelations ----------------------------------------------------------------------------------------
_RELATION_FIELDS = {
    name: name
    for name in ("IsActive", "IsVariantUnique", "IsRelatedVariantUnique", "DefaultName", "DefaultSubHeader",
                 "DefaultSubDescription", "DefaultDescriptionHeader", "DefaultDescription", "Cultures", "SortOrder")
}  # fmt: skip


def apply_relations(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Relations by (PartNo, RelatedPartNo, RelationTypeCode); both SKUs must exist."""
    schema, mask, stamp = (
        rules.SCHEMAS["Product/Relation"],
        header.mask("RelationFieldsThatAreSet"),
        applied.stamp,
    )
    named: set[tuple[str, str, str]] = set()
    for row, item in rows:
        missing = [p for p in (item["PartNo"], item["RelatedPartNo"]) if p not in catalog.skus]
        if missing:
            applied.not_imported(row, item, f"SKU '{missing[0]}' does not exist")
            continue
        key = (item["PartNo"], item["RelatedPartNo"], item["RelationTypeCode"])
        named.add(key)
        record = catalog.relations.get(key)
        inserted = record is None
        if record is None:
            record = catalog.relations[key] = {
                "PartNo": key[0], "RelatedPartNo": key[1], "RelationTypeCode": key[2], "IsActive": True,
                "Created": stamp, "Updated": stamp,
            }  # fmt: skip
        changed = write(record, item, schema, mask, _RELATION_FIELDS)
        if changed:
            _touch(record, stamp)
        applied.wrote(inserted, changed)
    if header.full_file:
        applied.deactivate(r for k, r in catalog.relations.items() if k not in named)


# -- ImportCompetitorSkus -----------------------------------------------------------------------------------
_COMPETITOR_ALWAYS = ("Source", "CompetitorPartNo", "CurrencyCode", "PriceSale", "PriceSaleInclFreight",
                      "IsPricesInclVat", "SalesArea", "IsInStock")  # fmt: skip
_COMPETITOR_FIELDS = {"CompetitorName": "CompetitorName", "ProductName": "ProductName", "VatRate": "VatRate"}


def apply_competitor_skus(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Competitor prices by (CompetitorCode, PartNo): the required fields are always written, the rest by mask."""
    schema, mask, stamp = (
        rules.SCHEMAS["Product/CompetitorSku"],
        header.mask("CompetitorSkuFieldsThatAreSet"),
        applied.stamp,
    )
    named: set[tuple[str, str]] = set()
    competitors: set[str] = set()
    for row, item in rows:
        if item["PartNo"] not in catalog.skus:
            applied.not_imported(row, item, f"SKU '{item['PartNo']}' does not exist")
            continue
        key = (item["CompetitorCode"], item["PartNo"])
        named.add(key)
        competitors.add(key[0])
        record = catalog.competitor_skus.get(key)
        inserted = record is None
        if record is None:
            record = catalog.competitor_skus[key] = {
                "CompetitorCode": key[0],
                "PartNo": key[1],
                "Created": stamp,
            }
        record.update({name: item.get(name, rules.default(schema, name)) for name in _COMPETITOR_ALWAYS})
        record["SalesArea"] = (
            rules.enum_code("SalesArea", record["SalesArea"]) if record["SalesArea"] is not None else None
        )
        write(record, item, schema, mask, _COMPETITOR_FIELDS)
        record.update(IsActive=True, Updated=stamp)
        applied.wrote(inserted)
    if header.full_file:
        applied.deactivate(
            r for k, r in catalog.competitor_skus.items() if k[0] in competitors and k not in named
        )


# -- ImportCustomers / ImportCompanies ----------------------------------------------------------------------
_CUSTOMER_FIELDS = {
    "Code": "CustomerCode", "EmailAddress": "EmailAddress", "FirstName": "FirstName", "MiddleName": "MiddleName",
    "LastName": "LastName", "PhoneNumber": "PhoneNumber", "CellPhoneNumber": "CellPhoneNumber", "IsActive": "IsActive",
}  # fmt: skip
_COMPANY_FIELDS = {
    "Code": "CompanyCode", "OrganizationNo": "OrganizationNo", "Name": "Name", "EmailAddress": "EmailAddress",
    "PhoneNumber": "PhoneNumber", "VatNo": "VatNo", "IsActive": "IsActive",
}  # fmt: skip


def _match(
    table: dict[int, dict[str, Any]], item: Item, keys: tuple[tuple[str, str], ...]
) -> dict[str, Any] | None:
    """The first record matching the item's identifiers, tried in the documented order."""
    for connect_name, query_name in keys:
        value = item.get(connect_name)
        if value is not None:
            return next((r for r in table.values() if r[query_name] == value), None)
    return None


def _apply_parties(
    table: dict[int, dict[str, Any]], create: Any, rows: Rows, applied: Applied, schema: Schema,
    mask: frozenset[str], fields: dict[str, str], keys: tuple[tuple[str, str], ...], kind: str,
) -> None:  # fmt: skip
    stamp = applied.stamp
    for row, item in rows:
        if item.get("Id") is not None and item["Id"] not in table:
            applied.not_imported(row, item, f"{kind} Id {item['Id']} does not exist")
            continue
        record = table.get(item["Id"]) if item.get("Id") is not None else _match(table, item, keys)
        inserted = record is None
        if record is None:
            record = create(stamp, **{q: item.get(c) for c, q in keys if c != "Id"})
        changed = write(record, item, schema, mask, fields)
        if changed and not inserted:
            _touch(record, stamp)
        applied.wrote(inserted, changed)


def _party_keys(mask: frozenset[str], code_column: str, third: str) -> tuple[tuple[str, str], ...]:
    """(Connect key, Query column) pairs in match order: Id, Code, then ``third``; ``SearchOnlyByCode``
    in the mask stops at Code (connect.json CustomerField/CompanyField)."""
    keys = (("Id", "Id"), ("Code", code_column))
    return keys if "SearchOnlyByCode" in mask else (*keys, (third, third))


def apply_customers(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Customers matched by Id, then Code, then EmailAddress (only Code with SearchOnlyByCode); else created."""
    mask = header.mask("CustomerFieldsThatAreSet")
    keys = _party_keys(mask, "CustomerCode", "EmailAddress")
    _apply_parties(
        catalog.customers, catalog.add_customer, rows, applied, rules.SCHEMAS["Customer/Customer"], mask,
        _CUSTOMER_FIELDS, keys, "customer",
    )  # fmt: skip


def apply_companies(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Companies matched by Id, then Code, then OrganizationNo; else created."""
    mask = header.mask("CompanyFieldsThatAreSet")
    keys = _party_keys(mask, "CompanyCode", "OrganizationNo")
    _apply_parties(
        catalog.companies, catalog.add_company, rows, applied, rules.SCHEMAS["Customer/Company"], mask,
        _COMPANY_FIELDS, keys, "company",
    )  # fmt: skip


# -- Supplier/ImportProducts ---------------------------------------------------------------------------------
def apply_supplier_products(catalog: Catalog, rows: Rows, header: Header, applied: Applied) -> None:
    """Supplier products by (SupplierId, SupplierPartNo) with their on-hand and price rows, masked fields only."""
    stamp = applied.stamp
    fields = {name: name for name in rules.ENUMS["SupplierProductField"].values()}
    onhand_fields = {name: name for name in rules.ENUMS["SupplierOnHandField"].values()}
    price_fields = {name: name for name in rules.ENUMS["SupplierPriceField"].values()}
    for _row, item in rows:
        key = (header.supplier_id, item["SupplierPartNo"])
        record = catalog.supplier_products.get(key)
        inserted = record is None
        if record is None:
            record = catalog.supplier_products[key] = {
                "SupplierId": key[0], "SupplierPartNo": key[1], "OnHand": {}, "PriceList": {}, "Created": stamp,
            }  # fmt: skip
        write(
            record, item, rules.SCHEMAS["Supplier/SupplierProduct"], header.mask("FieldsThatAreSet"), fields
        )
        stock_keys = _write_children(
            record["OnHand"], item.get("OnHand"), rules.SCHEMAS["Supplier/SupplierOnHand"],
            header.mask("OnhandFieldsThatAreSet"), onhand_fields,
            lambda stock: (stock.get("WarehouseCode"), stock.get("LocationCode")),
        )  # fmt: skip
        price_keys = _write_children(
            record["PriceList"], item.get("PriceList"), rules.SCHEMAS["Supplier/SupplierPrice"],
            header.mask("PriceFieldsThatAreSet"), price_fields,
            lambda price: (price.get("PriceListCode"), price.get("QtyBreak") or 1),
        )  # fmt: skip
        if header.full_file:
            _deactivate_missing(record["OnHand"], stock_keys)
            _deactivate_missing(record["PriceList"], price_keys)
        record.update(IsActive=True, Updated=stamp)
        applied.wrote(inserted)


def _write_children(
    targets: dict[Any, dict[str, Any]], children: Any, schema: Schema, mask: frozenset[str],
    fields: dict[str, str], key_of: Callable[[Item], Any],
) -> set[Any]:  # fmt: skip
    """Write a supplier product's on-hand or price rows into ``targets`` (by ``key_of``); the keys written."""
    keys: set[Any] = set()
    for child in children or []:
        key = key_of(child)
        keys.add(key)
        write(targets.setdefault(key, {"IsActive": True}), child, schema, mask, fields)
    return keys


def _deactivate_missing(targets: dict[Any, dict[str, Any]], kept: set[Any]) -> None:
    """FullFile: rows of a warehouse (or price list) the file names, but that the file left out, go inactive."""
    groups = {key[0] for key in kept}
    for key, target in targets.items():
        if key[0] in groups and key not in kept:
            target["IsActive"] = False
