"""The simulator's own encoding of Norce's published Connect 4.0 contracts: headers, items and enums.

Why hand-written here: the operator side has its own model of the same contracts. The simulator must not
import it (nor generate anything from it), so a mistake on one side shows up as a disagreement with the
other. The source for everything below is ``tests/norce_contracts/connect.json`` (``x_stormconnect_headers``,
``item_schemas``, ``enums``); where a rule is an inference it says so.

Header (``X-StormConnect-Header``, one line of JSON), as Newtonsoft reads it into the .NET header class:

* ``AccountId`` is a required integer. ``SerializationType`` must mean JSON (``0``/``"Json"``; XML bodies are
  not simulated). ``StorageName`` is a string. Unknown properties are ignored (Newtonsoft ignores unknown
  members), so ``FullFile`` on ``CustomerHeader``/``PriceListHeader`` has no effect.
* ``FullFile`` is required (a boolean) on the on-hand, SKU price, product, relation, competitor and supplier
  headers (``connect.json x_stormconnect_headers.*.FullFile required_per_docs``).
* Every ``...FieldsThatAreSet`` / ``IgnoreSkuPriceListFieldsWhenEmpty`` value is a list of integer codes or
  names (case-insensitive, as Newtonsoft parses enums); an unknown value is a 400 naming it.

Items: per ``item_schemas``. A field type is written as a short code: ``s`` string, ``i``/``n``/``b``
integer/decimal/boolean (a trailing ``?`` = nullable in .NET; without it JSON ``null`` cannot be read),
``d?`` date-time, ``u`` GUID, ``e:Enum`` an enum (code or name), ``o:Schema``/``l:Schema`` a nested object or
list, bare ``o``/``l`` an object/list the simulator does not look into. Unknown item keys are ignored.
Required keys are those with ``required_per_docs: true`` (strings must also be non-blank: a blank key
matches nothing in Norce).

Deliberate strictness (inference, documented): Newtonsoft would convert ``"9"`` into a decimal; the
simulator reports it as a type error so a client that sends numbers as text is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

Item = dict[str, Any]

# -- enums (connect.json enums.*; codes from .NET) -------------------------------------------------------
ENUMS: dict[str, dict[int, str]] = {
    "SerializationType": {0: "Json", 1: "DataContractSerializer"},
    "SkuOnhandField": {3: "OnhandValue", 4: "IncomingValue", 5: "NextDeliveryDate", 6: "LeadTimeDayCount", 7: "OnOrderValue", 8: "MinimumValue", 9: "MaximumValue", 10: "IsActive", 11: "Infos"},
    "SkuPriceListField": {3: "PriceSale", 4: "CostPurchase", 5: "CostUnit", 6: "PriceRecommended", 7: "PricePrevious", 8: "PriceCatalog", 9: "IsPriceDiscountable", 10: "IsActive", 11: "IsPriceDiscountableCreateOnly", 12: "PriceRule", 13: "FullfileResetInheritance"},
    "ProductField": {0: "ManufacturerCode", 1: "ManufacturerName", 2: "Alias", 3: "Code", 4: "Variants", 5: "Cultures", 6: "Categories", 7: "MainImage", 8: "AdditionalImages", 9: "Family", 10: "ProductParametrics", 11: "ProductParametricsCreateOnly", 12: "VariantDefinitionGroup", 13: "VariantDefinitionGroupCreateOnly", 14: "Assortment", 15: "CategoriesCreateOnly", 16: "CategoriesLimitedUpdate", 17: "AdditionalImagesCleanup", 18: "ParametricsCleanup", 19: "ImagesAndFilesCleanup"},
    "ProductCultureField": {0: "Name", 1: "NameCreateOnly", 2: "SubHeader", 3: "SubDescription", 4: "DescriptionHeader", 5: "Description", 6: "DescriptionCreateOnly", 7: "Synonyms", 8: "Title", 9: "Tags", 10: "MetaTags", 11: "MetaDescription", 12: "NameLimitedUpdate", 13: "UniqueUrlName", 14: "IsUniqueUrlNameManuallyMaintained", 15: "UniqueUrlNameCreateOnly"},
    "VariantField": {0: "ManufacturerPartNo", 1: "SortOrderValue", 2: "StockDisplayBreakPoint", 3: "IsDangerousGoods", 4: "Cultures", 5: "Skus", 6: "MainImage", 7: "AdditionalImages", 8: "VariantParametrics", 9: "VariantParametricsCreateOnly", 10: "NonParametricVariantDefinitions", 11: "NonParametricVariantDefinitionsCreateOnly", 12: "DeliveryMethods", 13: "DeliveryMethodsCreateOnly", 14: "AdditionalImagesCleanup", 15: "ParametricsCleanup", 16: "TranslationRequested", 17: "ImagesAndFilesCleanup"},
    "VariantCultureField": {0: "CultureCode", 1: "Name", 2: "NameCreateOnly", 3: "NameLimitedUpdate", 4: "UniqueUrlName", 5: "IsUniqueUrlNameManuallyMaintained", 6: "UniqueUrlNameCreateOnly", 7: "SubHeader", 8: "SubDescription", 9: "DescriptionHeader", 10: "Description", 11: "DescriptionCreateOnly", 12: "Synonyms", 13: "Title", 14: "Tags", 15: "MetaTags", 16: "MetaDescription"},
    "SkuField": {1: "Status", 2: "Type", 3: "IntegrationPartNo", 4: "CommodityCode", 5: "EanCode", 6: "TrackingCode", 7: "UnitOfMeasurementType", 8: "UnitOfMeasurementCount", 9: "IsDropShipOnly", 10: "IsBuyable", 11: "DiscountClass", 12: "RecommendedSalesQty", 13: "IsRecommendedSalesQtyFixed", 14: "ActualWeight", 15: "VolumeWeight", 16: "LogisticWidth", 18: "LogisticHeight", 19: "LogisticDepth", 20: "StandardPrice", 21: "VatRate", 22: "StatusCreateOnly", 23: "StartDate", 24: "StopDate", 25: "StructureItems", 26: "PartNoCreateWhenMissing"},
    "SkuCultureField": {0: "ErpName", 1: "ErpNameCreateOnly", 2: "Comment", 3: "CommentCreateOnly"},
    "SkuStructureItemField": {0: "SortOrder", 1: "StandardStructureItemPrice", 2: "AdditionalInfo"},
    "ImageCultureField": {0: "Name", 1: "Description", 2: "AltText"},
    "PriceListField": {0: "Name", 1: "CurrencyCode", 2: "StartDate", 3: "EndDate", 4: "IsPublic", 5: "IsPrimary", 6: "TypeCode", 7: "Warehouses", 8: "DefaultPriceRule", 9: "Description", 10: "IsErpIntegrated", 11: "DoNotCreateApplicationPriceList", 12: "SalesArea", 13: "DefaultMinMarginPercent", 14: "LimitToRecPrice", 15: "ParentPriceListCode", 16: "DefaultSupplementalChargeFixed", 17: "DefaultSupplementalChargePercent", 18: "PriceRules", 19: "PriceRulesCleanup", 20: "PriceRulesLimitedUpdate", 21: "Population", 22: "PopulationCleanup", 23: "IsFavorite", 24: "InheritStructureCalculationRule"},
    "PriceListPriceRuleField": {0: "Type", 1: "Value", 2: "LimitToRecPrice", 3: "SupplementalChargeFixed", 4: "SupplementalChargePercent"},
    "WarehouseField": {0: "Type", 1: "Name", 2: "LeadTimeDayCount"},
    "WarehouseLocationField": {0: "Name", 1: "LeadTimeDayCount", 2: "IsIncludedInStockCalculation"},
    "RelationField": {1: "IsActive", 2: "IsVariantUnique", 3: "IsVariantUniqueCreateOnly", 4: "IsRelatedVariantUnique", 5: "IsRelatedVariantUniqueCreateOnly", 6: "DefaultName", 7: "DefaultSubHeader", 8: "DefaultSubDescription", 9: "DefaultDescriptionHeader", 10: "DefaultDescription", 11: "Cultures", 12: "SortOrder"},
    "RelationCultureField": {1: "Name", 2: "NameCreateOnly", 3: "SubHeader", 4: "SubDescription", 5: "DescriptionHeader", 6: "Description", 7: "DescriptionCreateOnly"},
    "CompetitorSkuField": {0: "CompetitorName", 1: "ProductName", 2: "VatRate", 3: "ExternalPopularities"},
    "CustomerField": {0: "ApplicationKey", 1: "Id", 2: "Code", 3: "EmailAddress", 4: "SocialSecurityNumber", 5: "Title", 6: "FirstName", 7: "MiddleName", 8: "LastName", 9: "PhoneNumber", 10: "CellPhoneNumber", 11: "IsActive", 12: "InvoiceAddress", 13: "DeliveryAddresses", 14: "Accounts", 15: "AdditionalInfo", 16: "Flags", 17: "PriceLists", 18: "SearchOnlyByCode", 19: "Companies", 20: "CrmId", 21: "PreserveFlags"},
    "CompanyField": {0: "ApplicationKey", 1: "Id", 2: "Code", 3: "OrganizationNo", 4: "Name", 5: "EmailAddress", 6: "PhoneNumber", 7: "LogoImage", 8: "ParentCompanyCode", 9: "IsActive", 10: "InvoiceAddress", 11: "DeliveryAddresses", 12: "AdditionalInfo", 13: "Contacts", 14: "Customers", 15: "DeliveryMethods", 16: "Discounts", 17: "Flags", 18: "PaymentMethods", 19: "PriceLists", 20: "SearchOnlyByCode", 21: "VatNo", 22: "PreserveFlags"},
    "AccountField": {0: "PasswordCreateOnly", 1: "Status", 2: "StatusCreateOnly", 3: "Roles", 4: "RolesCreateOnly"},
    "SupplierProductField": {0: "SupplierPartNo", 1: "ProductName", 2: "CategoryCode", 3: "ProductType", 4: "Manufacturer", 5: "ManufacturerPartNo", 6: "EanCode", 7: "CommodityCode", 8: "GrossWeight", 9: "NetWeight", 10: "UnitOfMeasurementCode", 11: "UnitOfMeasurementCount", 12: "VatCode", 13: "LogisticWidth", 14: "LogisticHeight", 15: "LogisticDepth"},
    "SupplierOnHandField": {0: "Value", 1: "IncomingValue", 2: "NextDeliveryDate", 3: "StoppedDate", 4: "IsReturnable", 5: "LeadTimeDayCount", 6: "ExternalStockValue", 7: "PackageValue", 8: "MinimumOrderValue", 9: "IsActive"},
    "SupplierPriceField": {0: "CostPurchase", 1: "CostPurchaseValidTo", 2: "PriceRecommended", 3: "PriceMax", 4: "PriceDealer", 5: "IsPromotion", 6: "IsFocus", 7: "PriceRanking", 8: "FreightCost", 9: "CostFee", 10: "DiscountPct", 11: "IsActive", 12: "PriceCatalog"},
    "SupplierProductInfoField": {0: "Value"},
    "SkuStatus": {1: "Active", 2: "Coming", 3: "Expiring", 4: "Hidden", 5: "Inactive", 6: "NotActivated"},
    "SkuType": {1: "ErpStandard", 2: "ErpRefurbished", 3: "Freight", 4: "Insurance", 7: "Download", 8: "Structure", 9: "Invoice", 11: "Service", 14: "Standard", 15: "ErpExtended", 16: "ErpStandardNoStock", 17: "ErpPackage", 18: "Donations", 19: "ErpTempOutOfStock", 20: "EnvironmentalFee", 21: "PackingFee", 22: "Configuration", 24: "ErpPackageWithCalc", 25: "DisplayOnly", 26: "ErpDownload", 27: "ErpDownloadNoStock", 28: "ErpDownloadTempNoStock", 29: "ErpStandard2", 30: "Standard2", 31: "ErpStandardNoStock2", 32: "ErpTempOutOfStock2", 33: "License", 34: "CentRounding", 35: "SalesTax", 36: "FreightStructure", 37: "ManagedStructure", 38: "ManagedErpPackage", 39: "ManagedErpPackageWithCalc", 40: "Virtual", 41: "PspGiftCard", 42: "PayLater", 43: "GiftCardPaymentPlaceHolder", 44: "Compensation"},
    "UnitMeasurementType": {1: "Pieces", 2: "Hour", 3: "Kilogram", 4: "Litre", 5: "Pair", 6: "SquareMeter", 7: "Meter", 8: "Boxes", 9: "Rolls"},
    "UnitOfMeasurementType": {0: "Unknown", 1: "Pieces", 2: "Hours", 3: "Kilograms", 4: "Litres"},
    "SalesArea": {1: "Sweden", 2: "Norway", 3: "Denmark", 4: "Finland", 5: "UnitedKingdom", 6: "Estonia", 7: "Greenland", 8: "Germany", 9: "Italy", 10: "Austria", 11: "Spain", 12: "Netherlands", 13: "Belgium", 14: "France", 15: "Switzerland", 17: "USA", 18: "Ireland", 19: "Canada", 20: "Lithuania", 21: "Latvia", 22: "Japan", 23: "SouthKorea", 24: "Australia", 25: "Europe", 26: "Poland", 27: "CzechRepublic", 28: "Russia", 29: "NoVAT", 36: "Bulgaria", 37: "Croatia", 38: "Cyprus", 39: "Greece", 40: "Hungary", 41: "Luxembourg", 42: "Malta", 43: "Portugal", 44: "Romania", 45: "Slovakia", 46: "Slovenia"},
    "CustomerType": {1: "Customer", 2: "CompanyContact"},
    "PriceRule": {1: "CostPlus_PurchaseCost", 2: "FixedPrice", 3: "Margin_PurchaseCost", 4: "UseRecommendedPrice", 5: "CostPlus_UnitCost", 6: "Margin_UnitCost", 7: "UseStandardPrice_PctDiscount", 8: "Competitive_PurchaseCost", 9: "Competitive_UnitCost", 10: "UseStandardPrice_FixedDiscount", 11: "StructureCalculation", 12: "UseCatalogPrice"},
    "AccountStatus": {1: "Active", 2: "Inactive"},
    "InheritStructureCalculationRule": {0: "None", 1: "ItemsUseDefaultPriceRule", 2: "StandardPriceFromInheritedStructureItemSalePrice"},
    "WarehouseType": {1: "Warehouse", 2: "Store", 3: "Transport", 4: "Other"},
}  # fmt: skip
#: name (lower case) -> code, per enum: Newtonsoft matches enum names case-insensitively
_BY_NAME = {enum: {name.lower(): code for code, name in members.items()} for enum, members in ENUMS.items()}
#: docs names for SerializationType ("JSON"/"XML") next to the .NET names
_BY_NAME["SerializationType"].update({"xml": 1})


def enum_code(enum: str, value: Any) -> int | None:
    """The code of ``value`` (an integer code or a name, any case) in ``enum``; None if it is not a member."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in ENUMS[enum] else None
    if isinstance(value, str):
        return _BY_NAME[enum].get(value.strip().lower())
    return None


# -- headers (connect.json x_stormconnect_headers) -------------------------------------------------------
@dataclass(frozen=True)
class HeaderSpec:
    """One header class: its enum lists, whether it has ``FullFile``, and its main (required) masks."""

    name: str
    lists: dict[str, str]  # property -> enum of its members
    full_file: bool
    main_masks: tuple[str, ...]


#: CustomerHeader serves both customer imports; only its main mask differs
_CUSTOMER_LISTS = {"CustomerFieldsThatAreSet": "CustomerField", "CompanyFieldsThatAreSet": "CompanyField", "AccountFieldsThatAreSet": "AccountField"}  # fmt: skip
_SKU_PRICE_LISTS = {"SkuPriceListFieldsThatAreSet": "SkuPriceListField", "IgnoreSkuPriceListFieldsWhenEmpty": "SkuPriceListField"}  # fmt: skip
HEADERS: dict[str, HeaderSpec] = {
    "SkuOnhandHeader": HeaderSpec("SkuOnhandHeader", {"SkuOnhandFieldsThatAreSet": "SkuOnhandField"}, True, ("SkuOnhandFieldsThatAreSet",)),
    # SkuPriceListFieldsThatAreSet: required_per_docs null; treated as the main mask (it is what gets written)
    "SkuPriceListHeader": HeaderSpec("SkuPriceListHeader", _SKU_PRICE_LISTS, True, ("SkuPriceListFieldsThatAreSet",)),
    "ProductHeader": HeaderSpec(
        "ProductHeader",
        {
            "ProductFieldsThatAreSet": "ProductField", "ProductCultureFieldsThatAreSet": "ProductCultureField",
            "VariantFieldsThatAreSet": "VariantField", "VariantCultureFieldsThatAreSet": "VariantCultureField",
            "SkuFieldsThatAreSet": "SkuField", "SkuCultureFieldsThatAreSet": "SkuCultureField",
            "SkuStructureItemFieldsThatAreSet": "SkuStructureItemField", "ImageCultureFieldsThatAreSet": "ImageCultureField",
            **_SKU_PRICE_LISTS,
        },
        True,
        ("ProductFieldsThatAreSet",),
    ),
    "PriceListHeader": HeaderSpec(
        "PriceListHeader",
        {
            "PriceListFieldsThatAreSet": "PriceListField", "PriceListPriceRuleFieldsThatAreSet": "PriceListPriceRuleField",
            "WarehouseFieldsThatAreSet": "WarehouseField", "WarehouseLocationFieldsThatAreSet": "WarehouseLocationField",
        },
        False,
        ("PriceListFieldsThatAreSet",),
    ),
    "RelationHeader": HeaderSpec("RelationHeader", {"RelationFieldsThatAreSet": "RelationField", "RelationCultureFieldsThatAreSet": "RelationCultureField"}, True, ("RelationFieldsThatAreSet",)),
    "CompetitorSkuHeader": HeaderSpec("CompetitorSkuHeader", {"CompetitorSkuFieldsThatAreSet": "CompetitorSkuField"}, True, ("CompetitorSkuFieldsThatAreSet",)),
    "CustomerHeader/Customers": HeaderSpec("CustomerHeader", _CUSTOMER_LISTS, False, ("CustomerFieldsThatAreSet",)),
    "CustomerHeader/Companies": HeaderSpec("CustomerHeader", _CUSTOMER_LISTS, False, ("CompanyFieldsThatAreSet",)),
    "SupplierProductHeader": HeaderSpec(
        "SupplierProductHeader",
        {
            "FieldsThatAreSet": "SupplierProductField", "OnhandFieldsThatAreSet": "SupplierOnHandField",
            "PriceFieldsThatAreSet": "SupplierPriceField", "ContentFieldsThatAreSet": "ProductCultureField",
            "ProductInfoFieldsThatAreSet": "SupplierProductInfoField",
        },
        True,
        ("FieldsThatAreSet",),
    ),
}  # fmt: skip
#: IgnoreSkuPriceListFieldsWhenEmpty accepts only these SkuPriceListField codes (connect.json SkuPriceListHeader)
IGNORE_WHEN_EMPTY_CODES = frozenset({3, 4, 5, 6, 7, 8, 10})
HEADER = "X-StormConnect-Header"


@dataclass(frozen=True)
class Header:
    """A parsed header: the account, FullFile (False where the header class has none) and every mask as a set
    of field NAMES (absent list = empty set: Norce then writes none of those fields)."""

    account_id: int
    full_file: bool
    storage_name: str | None
    supplier_id: int | None
    masks: dict[str, frozenset[str]]

    def mask(self, prop: str) -> frozenset[str]:
        return self.masks.get(prop, frozenset())


def parse_header(spec: HeaderSpec, value: Any, require_masks: bool) -> Header | str:
    """Read a decoded header object like Newtonsoft into ``spec``; a message naming the problem on failure."""
    example = (
        '{"AccountId":1'
        + (',"FullFile":false' if spec.full_file else "")
        + f',"{spec.main_masks[0]}":[...]}}'
    )
    if not isinstance(value, dict):
        return f"The {HEADER} header must be a one-line JSON object ({spec.name}), such as {example}."
    account = value.get("AccountId")
    if not isinstance(account, int) or isinstance(account, bool):
        return f"AccountId in the {HEADER} header ({spec.name}) is required and must be an integer, as in {example}."
    full_file = False
    if spec.full_file:
        if not isinstance(value.get("FullFile"), bool):
            return f"FullFile in the {HEADER} header ({spec.name}) is required and must be true or false."
        full_file = value["FullFile"]
    serialization = value.get("SerializationType", 0)
    if serialization is not None and enum_code("SerializationType", serialization) != 0:
        return f"SerializationType {serialization!r} in the {HEADER} header does not match the JSON body; send 0 (Json)."
    supplier = value.get("SupplierId")
    if supplier is not None and (not isinstance(supplier, int) or isinstance(supplier, bool)):
        return f"SupplierId in the {HEADER} header must be an integer."
    storage = value.get("StorageName")
    if storage is not None and not isinstance(storage, str):
        return f"StorageName in the {HEADER} header must be a string."
    masks: dict[str, frozenset[str]] = {}
    for prop, enum in spec.lists.items():
        raw = value.get(prop)
        if raw is None:
            continue
        if not isinstance(raw, list):
            return f"{prop} in the {HEADER} header must be a list of {enum} codes or names."
        codes = [enum_code(enum, member) for member in raw]
        unknown = [member for member, code in zip(raw, codes, strict=True) if code is None]
        if unknown:
            known = ", ".join(f"{code} {name}" for code, name in ENUMS[enum].items())
            return f"{prop} in the {HEADER} header has values that are not {enum} members: {unknown!r}; known: {known}."
        masks[prop] = frozenset(ENUMS[enum][code] for code in codes if code is not None)
    ignore = value.get("IgnoreSkuPriceListFieldsWhenEmpty")
    if "IgnoreSkuPriceListFieldsWhenEmpty" in spec.lists and ignore:
        ignore_codes = {enum_code("SkuPriceListField", m) for m in ignore}
        names = {ENUMS["SkuPriceListField"][c] for c in ignore_codes if c is not None}
        if not ignore_codes <= IGNORE_WHEN_EMPTY_CODES or not names <= masks.get(
            "SkuPriceListFieldsThatAreSet", frozenset()
        ):
            return (
                f"IgnoreSkuPriceListFieldsWhenEmpty in the {HEADER} header may only hold PriceSale, CostPurchase, "
                "CostUnit, PriceRecommended, PricePrevious, PriceCatalog or IsActive, each also listed in "
                "SkuPriceListFieldsThatAreSet."
            )
    if require_masks:
        missing = [m for m in spec.main_masks if m not in masks]
        if missing:
            return (
                f"{' and '.join(missing)} missing from the {HEADER} header ({spec.name}). Norce would accept this "
                "and write no field but the keys; this simulator was started with require_field_masks=True."
            )
    return Header(account, full_file, storage, supplier, masks)


# -- items (connect.json item_schemas) --------------------------------------------------------------------
@dataclass(frozen=True)
class Schema:
    """An item class: field -> type code (see the module docstring) and its required fields."""

    name: str
    fields: dict[str, str]
    required: tuple[str, ...] = ()


def _schema(name: str, required: tuple[str, ...] = (), **fields: str) -> Schema:
    return Schema(name, fields, required)


_CULTURE_TEXT = dict.fromkeys(
    ("Name", "SubHeader", "SubDescription", "DescriptionHeader", "Description", "Synonyms", "Title", "Tags",
     "MetaTags", "MetaDescription", "UniqueUrlName"), "s"
)  # fmt: skip
SCHEMAS: dict[str, Schema] = {
    s.name: s
    for s in (
        _schema("Product/Info", ("Code", "Value"), Code="s", Value="s"),
        _schema(
            "Product/SkuOnhand", ("PartNo", "LocationCode", "WarehouseCode"),
            PartNo="s", LocationCode="s", WarehouseCode="s", OnhandValue="n", IncomingValue="n?",
            NextDeliveryDate="d?", LeadTimeDayCount="i?", OnOrderValue="n?", MinimumValue="n?", MaximumValue="n?",
            IsActive="b?", Infos="l:Product/Info",
        ),
        _schema(
            "Product/SkuPriceList", ("PartNo", "PriceListCode"),
            PartNo="s", PriceListCode="s", QuantityBreak="i", PriceSale="n", CostPurchase="n", CostUnit="n",
            PriceRecommended="n?", PricePrevious="n?", PriceCatalog="n?", IsPriceDiscountable="b", CurrencyCode="s",
            IsActive="b?", PriceRule="e?:PriceRule", PriceRuleValue="n?",
        ),
        # Sku.StandardPrice: the SKU and its standard price list are implied, so no key is required (inference)
        _schema(
            "Product/StandardPrice", (),
            PriceListCode="s", QuantityBreak="i", PriceSale="n", CostPurchase="n", CostUnit="n", PriceRecommended="n?",
            PricePrevious="n?", PriceCatalog="n?", IsPriceDiscountable="b", CurrencyCode="s", IsActive="b?",
        ),
        _schema("Product/VatRate", ("SalesArea",), SalesArea="e?:SalesArea", Rate="n?"),
        _schema("Product/SkuCulture", ("CultureCode",), CultureCode="s", ErpName="s", Comment="s"),
        _schema("Product/ProductCulture", (), CultureCode="s", IsUniqueUrlNameManuallyMaintained="b", **_CULTURE_TEXT),
        _schema("Product/VariantCulture", (), CultureCode="s", IsUniqueUrlNameManuallyMaintained="b", **_CULTURE_TEXT),
        _schema(
            "Product/Sku", ("PartNo",),
            PartNo="s", Status="e:SkuStatus", Type="e:SkuType", IntegrationPartNo="s", CommodityCode="s", EanCode="s",
            TrackingCode="s", UnitOfMeasurementType="e:UnitMeasurementType", UnitOfMeasurementCount="n",
            IsDropShipOnly="b?", IsBuyable="b", DiscountClass="s", RecommendedSalesQty="n?",
            IsRecommendedSalesQtyFixed="b?", ActualWeight="n?", VolumeWeight="n?", LogisticWidth="n?",
            LogisticHeight="n?", LogisticDepth="n?", StandardPrice="o:Product/StandardPrice",
            VatRates="l:Product/VatRate", Cultures="l:Product/SkuCulture", StartDate="d?", StopDate="d?",
            StructureItems="l",
        ),
        _schema(
            "Product/Variant", (),
            ManufacturerPartNo="s", SortOrderValue="i?", StockDisplayBreakPoint="i?", IsDangerousGoods="b",
            TranslationRequested="d?", Cultures="l:Product/VariantCulture", Skus="l:Product/Sku", MainImage="o",
            AdditionalImages="l", VariantFlags="l", VariantParametrics="l", NonParametricVariantDefinitions="l",
            DeliveryMethods="l",
        ),
        _schema(
            "Product/Product", (),
            ManufacturerCode="s", ManufacturerName="s", Alias="s", Code="s", Variants="l:Product/Variant",
            Cultures="l:Product/ProductCulture", Categories="l", MainImage="o", AdditionalImages="l", Family="o",
            ProductFlags="l", ProductParametrics="l", VariantDefinitionGroup="o", AssortmentCode="s",
        ),
        _schema(
            "Product/PriceList", ("Code",),
            Code="s", Name="s", CurrencyCode="s", StartDate="d?", EndDate="d?", IsPrimary="b", IsPublic="b",
            IsFavorite="b", TypeCode="s", Warehouses="l:Product/Warehouse", DefaultPriceRuleCode="s", DefaultPriceRule="e?:PriceRule",
            DefaultPriceRuleValue="n?", Description="s", IsErpIntegrated="b", SalesArea="e?:SalesArea",
            DefaultMinMarginPercent="n?", LimitToRecPrice="b?", ParentPriceListCode="s",
            DefaultSupplementalChargeFixed="n?", DefaultSupplementalChargePercent="n?", PriceRules="l",
            Population="o", InheritStructureCalculationRule="e:InheritStructureCalculationRule",
        ),
        _schema("Product/WarehouseLocation", ("Code",), Code="s", Name="s", IsIncludedInStockCalculation="b?", LeadTimeDayCount="i?"),
        _schema("Product/Warehouse", ("Code", "Locations"), Code="s", Type="e:WarehouseType", Name="s", LeadTimeDayCount="i?", Locations="l:Product/WarehouseLocation"),
        _schema("Product/RelationCulture", ("CultureCode",), CultureCode="s", Name="s", SubHeader="s", SubDescription="s", DescriptionHeader="s", Description="s"),
        _schema(
            "Product/Relation", ("PartNo", "RelatedPartNo", "RelationTypeCode"),
            PartNo="s", IsVariantUnique="b", RelatedPartNo="s", IsRelatedVariantUnique="b", IsActive="b",
            RelationTypeCode="s", DefaultName="s", DefaultSubHeader="s", DefaultSubDescription="s",
            DefaultDescriptionHeader="s", DefaultDescription="s", Cultures="l:Product/RelationCulture",
            SortOrder="i?",
        ),
        _schema(
            "Product/CompetitorSku",
            ("PartNo", "Source", "CompetitorCode", "CompetitorPartNo", "PriceSale", "PriceSaleInclFreight",
             "IsPricesInclVat", "IsInStock"),
            PartNo="s", Source="s", CompetitorCode="s", CompetitorName="s", CompetitorPartNo="s", ProductName="s",
            CurrencyCode="s", PriceSale="n", PriceSaleInclFreight="n", IsPricesInclVat="b",
            SalesArea="e:SalesArea", VatRate="n?", IsInStock="b", ExternalPopularities="l",
        ),
        _schema(
            "Customer/Address", (),
            CareOf="s", AddressLine1="s", AddressLine2="s", ZipCode="s", City="s", Region="s", CountryCode="s",
            Gln="s", ShippingPhoneNumber="s", IsPrimary="b?", Code="s", IsValidated="b?",
        ),
        _schema("Customer/Info", ("Code", "Value"), Code="s", Value="s"),
        _schema("Customer/Account", ("ApplicationKey", "LoginName"), ApplicationKey="u", LoginName="s", Password="s", Status="e:AccountStatus", Roles="l"),
        _schema("Customer/CompanyIdentifier", (), Id="i?", Code="s", OrganizationNo="s", Name="s", IsPrimary="b?"),
        _schema(
            "Customer/Customer", (),
            Type="e:CustomerType", ApplicationKey="u", Id="i?", Code="s", EmailAddress="s",
            SocialSecurityNumber="s", Title="s", FirstName="s", MiddleName="s", LastName="s", PhoneNumber="s",
            CellPhoneNumber="s", IsActive="b?", InvoiceAddress="o:Customer/Address",
            DeliveryAddresses="l:Customer/Address", Accounts="l:Customer/Account", AdditionalInfo="l:Customer/Info",
            Flags="l", PriceLists="l", IsCompanyListDelta="b?", Companies="l:Customer/CompanyIdentifier", CrmId="s",
        ),
        _schema(
            "Customer/Company", ("ApplicationKey",),
            ApplicationKey="u", Id="i?", Code="s", OrganizationNo="s", Name="s", EmailAddress="s", PhoneNumber="s",
            LogoImage="o", ParentCompanyCode="s", IsActive="b?", InvoiceAddress="o:Customer/Address",
            IsCustomerListDelta="b?", DeliveryAddresses="l:Customer/Address", AdditionalInfo="l:Customer/Info",
            Contacts="l", Customers="l", DeliveryMethods="l", Discounts="l", Flags="l", PaymentMethods="l",
            PriceLists="l", VatNo="s", UseInvoiceAddressAsDeliveryAddress="b?",
        ),
        _schema(
            "Supplier/SupplierOnHand", (),
            Name="s", WarehouseCode="s", LocationCode="s", Value="n", IncomingValue="n?", NextDeliveryDate="d?",
            StoppedDate="d?", IsReturnable="b?", LeadTimeDayCount="i?", ExternalStockValue="n?", PackageValue="n",
            MinimumOrderValue="n", IsActive="b",
        ),
        _schema(
            "Supplier/SupplierPrice", (),
            PriceListCode="s", QtyBreak="i", CurrencyCode="s", CostPurchase="n", CostPurchaseValidTo="d?",
            PriceRecommended="n?", PriceMax="n?", PriceDealer="n?", IsPromotion="b?", IsFocus="b?",
            PriceRanking="i?", FreightCost="n?", CostFee="n?", DiscountPct="n?", IsActive="b", PriceCatalog="n?",
        ),
        _schema(
            "Supplier/SupplierProduct", ("SupplierPartNo",),
            SupplierPartNo="s", ProductName="s", CategoryCode="s", ProductType="s", Manufacturer="s",
            ManufacturerPartNo="s", EanCode="s", CommodityCode="s", GrossWeight="n", NetWeight="n",
            UnitOfMeasurementCode="e:UnitOfMeasurementType", UnitOfMeasurementCount="i", VatCode="i",
            MainImage="o", OnHand="l:Supplier/SupplierOnHand", PriceList="l:Supplier/SupplierPrice", Images="l",
            ContentList="l", Parametrics="l", LogisticWidth="n?", LogisticHeight="n?", LogisticDepth="n?",
            ProductInfo="l",
        ),
    )
}  # fmt: skip


def _type_problem(kind: str, value: Any) -> str | None:
    """What is wrong with a non-null ``value`` for type code ``kind`` (without ``?``), or None."""
    if kind == "s":
        return None if isinstance(value, str) else "must be a string"
    if kind == "i":
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if kind == "n":
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    if kind == "b":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "u":
        return None if isinstance(value, str) and _is_guid(value) else "must be a GUID"
    if kind == "d":
        return None if isinstance(value, str) and _is_datetime(value) else "must be an ISO-8601 date-time"
    if kind.startswith("e:"):
        enum = kind[2:]
        return None if enum_code(enum, value) is not None else f"must be a {enum} code or name"
    if kind == "o" or kind.startswith("o:"):
        return None if isinstance(value, dict) else "must be an object"
    if kind == "l" or kind.startswith("l:"):
        return None if isinstance(value, list) else "must be a list"
    return None


def default(schema: Schema, name: str) -> Any:
    """What .NET deserialisation leaves in a field the JSON did not carry: 0/false for non-nullable values."""
    code = schema.fields.get(name, "s")
    if "?" in code:
        return None
    return {"i": 0, "n": 0.0, "b": False}.get(code[0])


def _is_guid(text: str) -> bool:
    digits = text.strip("{}").replace("-", "")
    return len(digits) == 32 and all(c in "0123456789abcdefABCDEF" for c in digits)


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validate(schema: Schema, item: Any, where: str = "") -> list[str]:
    """Problems of one item (and its nested items), each naming the field path; empty when the item is valid."""
    if not isinstance(item, dict):
        return [f"{where or 'the item'} is not a JSON object."]
    problems = []
    for name in schema.required:
        value = item.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(f"{where}{name} is required ({schema.name}).")
    for name, code in schema.fields.items():
        value = item.get(name)
        nullable = "?" in code or code[0] in "sudol"
        kind = code.replace("?", "")
        if value is None:
            if name in item and not nullable:
                problems.append(f"{where}{name} cannot be null (a non-nullable .NET value).")
            continue
        problem = _type_problem(kind, value)
        if problem:
            problems.append(f"{where}{name} {problem}.")
        elif kind.startswith("o:"):
            problems += validate(SCHEMAS[kind[2:]], value, f"{where}{name}.")
        elif kind.startswith("l:"):
            for index, child in enumerate(value):
                problems += validate(SCHEMAS[kind[2:]], child, f"{where}{name}[{index}].")
    return problems
