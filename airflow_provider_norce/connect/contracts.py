"""One typed model of Norce's Connect import contracts: methods, headers, item schemas, enums and masks.

Why it exists: Norce writes ONLY the fields an import's ``...FieldsThatAreSet`` lists, refuses or ignores
what does not fit its contracts, and answers a wrong import with a job that "succeeds" and changes
nothing. The operator checks headers and items against this model before anything is posted.

The tables come from :mod:`airflow_provider_norce.connect.contract_data`, generated from Norce's published
contracts (``tests/norce_contracts/connect.json``); this module adds types, plus the few facts the
contracts only imply (each marked *inferred* below, with its source). It is standard library only, but
it is still imported lazily (inside ``execute``): operator modules are imported on every DAG parse.

This is the operator side only: the simulator (``airflow_provider_norce.simulator``) follows the same
contracts in its own code, so that a mistake on one side is caught by the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeVar

from airflow_provider_norce.connect import contract_data as data

#: Mask values that are options, not item fields (``...CreateOnly``, ``...Cleanup``, ``...LimitedUpdate``
#: and these): never derived from items, only kept when the user gives them.
#: Source: ``connect.json enums`` (ProductField, CustomerField, CompanyField, SkuField, SkuPriceListField,
#: PriceListField) and the notes of ``enums.CustomerField.docs`` / ``enums.SkuPriceListField.docs``.
PSEUDO_VALUES = frozenset(
    {
        "SearchOnlyByCode",
        "PreserveFlags",
        "FullfileResetInheritance",
        "PartNoCreateWhenMissing",
        "DoNotCreateApplicationPriceList",
    }
)
PSEUDO_SUFFIXES = ("CreateOnly", "Cleanup", "LimitedUpdate")

#: Item keys whose mask value is spelled differently (enum -> {item key: enum value name}). *Inferred*
#: by comparing every mask enum with its item schema (``test_connect_contracts`` re-checks that these are
#: the only item fields that match no value by name): ``enums.SkuField`` 21 ``VatRate`` vs
#: ``item_schemas.Product/Sku`` ``VatRates``; ``enums.ProductField`` 14 ``Assortment`` vs
#: ``item_schemas.Product/Product`` ``AssortmentCode``.
MASK_ALIASES: dict[str, dict[str, str]] = {
    "SkuField": {"VatRates": "VatRate"},
    "ProductField": {"AssortmentCode": "Assortment"},
}

#: ``FullFile`` fields that the docs show only in an example, while the docs spec and the .NET header do
#: not have them (``connect.json x_stormconnect_headers.PriceListHeader`` FullFile note): treated as absent.
EXAMPLE_ONLY_HEADER_FIELDS = frozenset({("PriceListHeader", "FullFile")})

#: Mask values that Norce requires on EVERY object once they are in the mask (not just written empty where
#: missing): ``connect.json item_schemas.Product/Product`` Code note, "required ... when Code is in
#: ProductFieldsThatAreSet / FullFile=true". A derived mask that lists it while some items lack it is refused.
REQUIRED_WHEN_MASKED = frozenset({("ProductFieldsThatAreSet", "Code")})

#: The only values ``IgnoreSkuPriceListFieldsWhenEmpty`` accepts
#: (``connect.json x_stormconnect_headers.SkuPriceListHeader`` and ``enums.SkuPriceListField.docs``).
IGNORE_WHEN_EMPTY_CODES = frozenset({3, 4, 5, 6, 7, 8, 10})
IGNORE_WHEN_EMPTY = "IgnoreSkuPriceListFieldsWhenEmpty"


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_F = TypeVar("_F", bound=_Named)


@dataclass(frozen=True)
class EnumType:
    """A Connect enum: integer codes and their names (names are matched case-insensitively)."""

    name: str
    values: tuple[tuple[int, str], ...]

    def code_of(self, value: Any) -> int | None:
        """The code of ``value`` (a code, a digit string or a name in any case); ``None`` if unknown."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value if any(code == value for code, _ in self.values) else None
        if isinstance(value, str):
            text = value.strip()
            if text.lstrip("-").isdigit():
                return self.code_of(int(text))
            lowered = text.lower()
            for code, name in self.values:
                if name.lower() == lowered:
                    return code
        return None

    def name_of(self, code: int) -> str:
        """The name of ``code`` for messages; the bare number when the enum has no such code."""
        for value, name in self.values:
            if value == code:
                return name
        return str(code)

    def code_by_name(self, name: str) -> int | None:
        """The code of exactly this name (case-sensitive: item keys are)."""
        for code, value in self.values:
            if value == name:
                return code
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.values)


@dataclass(frozen=True)
class HeaderField:
    """A field of an ``X-StormConnect-Header``; kind is integer, boolean, string, id, enum or enum_list."""

    name: str
    kind: str
    enum: str | None
    required: bool | None


class _Fields(Generic[_F]):
    """Lookup by name over ``fields``, shared by header and item schemas (both are small: a scan is enough)."""

    fields: tuple[_F, ...]

    def field(self, name: str) -> _F | None:
        for field in self.fields:
            if field.name == name:
                return field
        return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


@dataclass(frozen=True)
class HeaderSchema(_Fields[HeaderField]):
    """The fields of one ``X-StormConnect-Header`` class (``SkuOnhandHeader``, ``CustomerHeader``...)."""

    name: str
    fields: tuple[HeaderField, ...]

    @property
    def has_full_file(self) -> bool:
        """Whether Norce reads ``FullFile`` here: elsewhere a ``true`` would deactivate nothing, silently."""
        return self.field("FullFile") is not None


@dataclass(frozen=True)
class ItemField:
    """A field of an item schema.

    ``kind``: string, integer, number, boolean, date-time, uuid, enum (``ref`` names the enum), object or
    array (``ref`` names the item schema of the object or of each element), string_array.
    ``required``: ``True`` when the docs flag it (or .NET marks it ``IsRequired``); ``None`` when not stated.
    ``nullable``: whether the .NET type takes ``null`` (a non-nullable number or enum does not).
    """

    name: str
    kind: str
    ref: str | None
    required: bool | None
    nullable: bool
    max_length: int | None


@dataclass(frozen=True)
class ItemSchema(_Fields[ItemField]):
    """The fields of one item class, keyed ``Service/Class`` (``Product/Sku``)."""

    key: str
    fields: tuple[ItemField, ...]


@dataclass(frozen=True)
class MaskBinding:
    """A ``...FieldsThatAreSet`` header field and the item objects whose keys it governs.

    ``paths`` are dotted from the item root, ``[]`` marking a list: ``""`` is the item itself,
    ``"Variants[].Skus[]"`` every SKU of every variant.
    """

    header_field: str
    enum: str
    paths: tuple[str, ...]
    primary: bool = False


#: Which objects each mask governs, per import method, primary mask first. *Inferred* from the header
#: field names, their enums and the item nesting (``connect.json x_stormconnect_headers.*.fields`` and
#: ``endpoints[].notes``: "Product.Variants[] -> Variant.Skus[] -> Sku.StandardPrice/VatRates/Cultures/
#: StructureItems"); ``test_connect_contracts`` checks every path resolves to an object whose fields
#: match the enum. CustomerHeader: the primary mask is CompanyFieldsThatAreSet for ImportCompanies and
#: CustomerFieldsThatAreSet for ImportCustomers (``x_stormconnect_headers.CustomerHeader`` requiredness).
_IMAGES = ("MainImage", "AdditionalImages[]", "Variants[].MainImage", "Variants[].AdditionalImages[]")
MASK_BINDINGS: dict[str, tuple[MaskBinding, ...]] = {
    "Product/ImportOnhands": (MaskBinding("SkuOnhandFieldsThatAreSet", "SkuOnhandField", ("",), True),),
    "Product/ImportSkuPriceLists": (
        MaskBinding("SkuPriceListFieldsThatAreSet", "SkuPriceListField", ("",), True),
    ),
    "Product/ImportPriceLists": (
        MaskBinding("PriceListFieldsThatAreSet", "PriceListField", ("",), True),
        MaskBinding("PriceListPriceRuleFieldsThatAreSet", "PriceListPriceRuleField", ("PriceRules[]",)),
        MaskBinding("WarehouseFieldsThatAreSet", "WarehouseField", ("Warehouses[]",)),
        MaskBinding(
            "WarehouseLocationFieldsThatAreSet", "WarehouseLocationField", ("Warehouses[].Locations[]",)
        ),
    ),
    "Product/ImportProducts": (
        MaskBinding("ProductFieldsThatAreSet", "ProductField", ("",), True),
        MaskBinding("ProductCultureFieldsThatAreSet", "ProductCultureField", ("Cultures[]",)),
        MaskBinding("VariantFieldsThatAreSet", "VariantField", ("Variants[]",)),
        MaskBinding("VariantCultureFieldsThatAreSet", "VariantCultureField", ("Variants[].Cultures[]",)),
        MaskBinding("SkuFieldsThatAreSet", "SkuField", ("Variants[].Skus[]",)),
        MaskBinding("SkuCultureFieldsThatAreSet", "SkuCultureField", ("Variants[].Skus[].Cultures[]",)),
        MaskBinding(
            "SkuPriceListFieldsThatAreSet", "SkuPriceListField", ("Variants[].Skus[].StandardPrice",)
        ),
        MaskBinding(
            "SkuStructureItemFieldsThatAreSet",
            "SkuStructureItemField",
            ("Variants[].Skus[].StructureItems[]",),
        ),
        MaskBinding(
            "ImageCultureFieldsThatAreSet", "ImageCultureField", tuple(f"{p}.Cultures[]" for p in _IMAGES)
        ),
    ),
    "Product/ImportRelations": (
        MaskBinding("RelationFieldsThatAreSet", "RelationField", ("",), True),
        MaskBinding("RelationCultureFieldsThatAreSet", "RelationCultureField", ("Cultures[]",)),
    ),
    "Product/ImportCompetitorSkus": (
        MaskBinding("CompetitorSkuFieldsThatAreSet", "CompetitorSkuField", ("",), True),
    ),
    "Customer/ImportCustomers": (
        MaskBinding("CustomerFieldsThatAreSet", "CustomerField", ("",), True),
        MaskBinding("AccountFieldsThatAreSet", "AccountField", ("Accounts[]",)),
        MaskBinding("CompanyFieldsThatAreSet", "CompanyField", ("Companies[]",)),
    ),
    "Customer/ImportCompanies": (
        MaskBinding("CompanyFieldsThatAreSet", "CompanyField", ("",), True),
        MaskBinding("CustomerFieldsThatAreSet", "CustomerField", ("Customers[]",)),
        MaskBinding("AccountFieldsThatAreSet", "AccountField", ("Customers[].Accounts[]",)),
    ),
    "Supplier/ImportProducts": (
        MaskBinding("FieldsThatAreSet", "SupplierProductField", ("",), True),
        MaskBinding("OnhandFieldsThatAreSet", "SupplierOnHandField", ("OnHand[]",)),
        MaskBinding("PriceFieldsThatAreSet", "SupplierPriceField", ("PriceList[]",)),
        MaskBinding("ContentFieldsThatAreSet", "ProductCultureField", ("ContentList[]",)),
        MaskBinding("ProductInfoFieldsThatAreSet", "SupplierProductInfoField", ("ProductInfo[]",)),
    ),
}


@dataclass(frozen=True)
class ImportContract:
    """Everything the operator checks for one import method."""

    method: str
    path: str
    header: HeaderSchema
    item_schema: ItemSchema
    masks: tuple[MaskBinding, ...]

    @property
    def primary_mask(self) -> MaskBinding:
        """The header's main ``...FieldsThatAreSet``: always sent, even empty (then Norce writes keys only)."""
        return next(m for m in self.masks if m.primary)


class Contracts:
    """The typed view of the generated tables; use :func:`contracts` for the shared instance."""

    def __init__(self) -> None:
        self.enums: dict[str, EnumType] = {
            name: EnumType(name, tuple(tuple(v) for v in values)) for name, values in data.ENUMS.items()
        }
        self.schemas: dict[str, ItemSchema] = {
            key: ItemSchema(key, tuple(ItemField(*row) for row in rows)) for key, rows in data.SCHEMAS.items()
        }
        self.headers: dict[str, HeaderSchema] = {
            name: HeaderSchema(
                name,
                tuple(HeaderField(*row) for row in rows if (name, row[0]) not in EXAMPLE_ONLY_HEADER_FIELDS),
            )
            for name, rows in data.HEADERS.items()
        }
        self.methods: dict[str, ImportContract] = {
            method: ImportContract(
                method=method,
                path=path,
                header=self.headers[header],
                item_schema=self.schemas[item_schema],
                masks=MASK_BINDINGS[method],
            )
            for method, (path, header, item_schema) in data.METHODS.items()
        }

    def enum(self, name: str) -> EnumType:
        return self.enums[name]

    def schema(self, key: str) -> ItemSchema:
        return self.schemas[key]

    def schema_at(self, root: ItemSchema, path: str) -> ItemSchema:
        """The item schema of the objects at ``path`` (see :class:`MaskBinding`) under ``root``."""
        schema = root
        for part in filter(None, path.split(".")):
            field = schema.field(part.removesuffix("[]"))
            if field is None or field.ref is None or field.kind not in ("object", "array"):
                raise KeyError(f"{path!r}: {schema.key} has no object field {part!r}")
            schema = self.schemas[field.ref]
        return schema

    def method(self, method: str) -> ImportContract:
        return self.methods[method]


@lru_cache(maxsize=1)
def contracts() -> Contracts:
    """The shared, immutable model (built once per process)."""
    return Contracts()


def import_methods() -> tuple[str, ...]:
    """Every Connect import method of the contracts, as ``Service/Operation``."""
    return tuple(data.METHODS)


def is_pseudo_value(name: str) -> bool:
    """Whether a mask value is an option (``...CreateOnly`` and the like), never an item field."""
    return name in PSEUDO_VALUES or name.endswith(PSEUDO_SUFFIXES)


def mask_value_for_key(enum: EnumType, key: str) -> int | None:
    """The mask code that makes Norce write item key ``key``; ``None`` for keys no mask value covers
    (identifying keys such as PartNo, WarehouseCode, LocationCode, Code of a price list, QuantityBreak)."""
    name = MASK_ALIASES.get(enum.name, {}).get(key, key)
    if is_pseudo_value(name):
        return None
    return enum.code_by_name(name)
