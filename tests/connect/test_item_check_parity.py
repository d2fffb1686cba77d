"""The fast item check gives exactly the results of the explaining walk (issue 11, item 5).

``ItemChecker.scan`` accepts items through shapes compiled per key tuple and walks only the items it does
not accept with the explaining walk (see ``connect/item_validation.py``). With ``MAX_SHAPES = 0`` no shape
is ever compiled, so every item takes the explaining walk: that is the checker as it was before the fast
path, and the reference here. A varied corpus (every import method; valid and invalid items; nested
products; wrong types, unknown keys, NaN and Infinity, bools for ints, huge ints, missing keys, keys that
are not text, mixed shapes) is scanned both ways and must give the same errors (text, order, numbers and
lines), warnings, mask usage and refused items. A few results are also spelled out, so that the reference
itself is pinned.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_norce.connect import item_validation
from airflow_provider_norce.connect.contracts import ItemSchema, contracts, import_methods
from airflow_provider_norce.connect.item_validation import ItemChecker, ItemScan, RuleContext
from airflow_provider_norce.connect.items import FileItems, ListItems

KEY = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


# -- a corpus built from the contracts ------------------------------------------------------------


def sample(schema: ItemSchema, depth: int = 0) -> dict[str, Any]:
    """An object with every field of ``schema`` set to a value of its kind (one element per array)."""
    model = contracts()
    obj: dict[str, Any] = {}
    for number, spec in enumerate(schema.fields):
        if spec.kind == "string":
            obj[spec.name] = f"{spec.name[: (spec.max_length or 40)]}"
        elif spec.kind == "integer":
            obj[spec.name] = number
        elif spec.kind == "number":
            obj[spec.name] = number + 0.5 if number % 2 else number
        elif spec.kind == "boolean":
            obj[spec.name] = number % 2 == 0
        elif spec.kind == "date-time":
            obj[spec.name] = f"2026-12-{1 + number % 28:02d}T08:00:00Z"
        elif spec.kind == "uuid":
            obj[spec.name] = KEY
        elif spec.kind == "enum":
            code, name = model.enum(str(spec.ref)).values[0]
            obj[spec.name] = code if number % 2 else name.lower()
        elif spec.kind == "string_array":
            obj[spec.name] = ["a", "b"]
        elif depth < 3:  # object or array; three levels reach Variants[].Skus[].StandardPrice
            child = sample(model.schema(str(spec.ref)), depth + 1)
            obj[spec.name] = child if spec.kind == "object" else [child]
    return obj


def wrong_values(kind: str) -> list[Any]:
    """Values that do not fit ``kind`` (or fit only in some spellings), exact and subclassed types."""
    common: list[Any] = [None, "", "  ", [], {}, {1, 2}, datetime(2026, 1, 1), b"x", Decimal("1.5")]
    return common + {
        "string": [1, 1.5, True, "x" * 4001, ["a"]],
        "integer": [True, 1.5, "1", 2**31, -(2**31) - 1, 2**31 - 1, 10**400, 10**5000],
        "number": [True, "1", math.nan, math.inf, -math.inf, 10**400, 10**30, 2**1000 + 1],
        "boolean": [0, 1, "true"],
        "date-time": [
            "2026-02-30",
            "24/12/2026",
            "2026-12-24 08:00",
            " 2026-12-24 ",
            " 2026-12-24" + " " * 99,
            8,
        ],
        "uuid": ["not-a-uuid", KEY.upper(), "{" + KEY + "}", "urn:uuid:" + KEY, KEY + " " * 99, 1],
        "enum": [0, 1, -1, 99, "1", " Active ", "active" + " " * 99, "nope", 1.0, True],
        "string_array": ["a", ["a", 1], ("a",), ["a", None]],
        "object": ["x", [{}], [], 1],
        "array": [{}, ["x"], [None], "x", ()],
    }.get(kind, [])


def corpus(method: str) -> list[dict[str, Any]]:
    """Valid items of ``method`` (most of them the same shape, as in a real file) and, between them,
    every field of the item and of its first nested objects given wrong values, removed, or joined by
    unknown keys."""
    model = contracts()
    root = model.method(method).item_schema
    valid = sample(root)
    items: list[dict[str, Any]] = []

    def add(item: dict[str, Any]) -> None:
        items.append(item)
        items.append(valid)  # the common shape, between every odd one

    def mutations(obj: dict[str, Any], schema: ItemSchema, replace: Any, level: int = 0) -> None:
        for spec in schema.fields:
            wrong = wrong_values(spec.kind) if level < 2 else [None, "x", 1.5, True, [{}]]
            for value in [*wrong, "missing"]:
                changed = dict(obj)
                if value == "missing":
                    changed.pop(spec.name, None)
                else:
                    changed[spec.name] = value
                add(replace(changed))
            nested = obj.get(spec.name)
            if spec.kind == "object" and isinstance(nested, dict):
                mutations(
                    nested,
                    model.schema(str(spec.ref)),
                    lambda o, n=spec.name: replace({**obj, n: o}),
                    level + 1,
                )
            elif spec.kind == "array" and isinstance(nested, list) and nested:
                mutations(
                    nested[0],
                    model.schema(str(spec.ref)),
                    lambda o, n=spec.name: replace({**obj, n: [o, o] if n == "Variants" else [o]}),
                    level + 1,
                )

    mutations(valid, root, lambda changed: changed)
    for extra in (
        {"Unknown": 1},
        {"unknown": {"a": [1, 2.5]}},
        {"Bad": math.nan},
        {"Bad": {"x": {1}}},
        {7: 1},
    ):
        add({**valid, **extra})
    add({**valid, **{name.lower(): "x" for name in root.names[:3]}})  # misspelled keys: a hint each
    add({**valid, "IsDagerousGoods": True})
    add({key: valid[key] for key in reversed(list(valid))})  # same keys, another order
    add({})
    for number in range(60):  # more distinct unknown keys than the warnings keep
        add({**valid, f"Extra{number}": number})
    return items


def summary(scan: ItemScan) -> dict[str, Any]:
    """Everything the operator reads from a scan, mask keys in their order."""
    return {
        "total": scan.total,
        "invalid": sorted(scan.invalid),
        "errors": scan.errors,
        "error_count": scan.error_count,
        "warnings": scan.warnings(),
        "usage": {name: (u.objects, list(u.keys.items())) for name, u in scan.usage.items()},
        "error_text": scan.error_text("imp") if scan.invalid else "",
    }


def both_ways(
    method: str, source: Any, monkeypatch: pytest.MonkeyPatch, context: RuleContext | None = None
) -> tuple[dict[str, Any], dict[str, Any], ItemChecker]:
    contract = contracts().method(method)
    fast_checker = ItemChecker(contract, context)
    fast = summary(fast_checker.scan(source))
    with monkeypatch.context() as patched:
        patched.setattr(item_validation, "MAX_SHAPES", 0)
        reference = summary(ItemChecker(contract, context).scan(source))
    return fast, reference, fast_checker


# -- parity ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", import_methods())
def test_scan_matches_the_explaining_walk_for_every_method(method, monkeypatch):
    items = corpus(method)
    fast, reference, checker = both_ways(method, ListItems(items, "t"), monkeypatch)
    assert fast == reference
    # the corpus exercises both routes: items the fast path accepted, and items it refused
    assert 0 < len(fast["invalid"]) < fast["total"]
    assert checker._root.shapes, "no item was accepted by a compiled shape"


@pytest.mark.parametrize(
    "context",
    [RuleContext(full_file=True), RuleContext(given_masks={"ProductFieldsThatAreSet": [3]}), RuleContext()],
)
def test_products_rules_that_read_the_header_match(context, monkeypatch):
    items = corpus("Product/ImportProducts")[:400]  # the root's fields: what the header's rules read
    items += [{**item, "Code": None} for item in items[:40]] + [{"Variants": [{"Skus": [{"PartNo": "P"}]}]}]
    fast, reference, _ = both_ways("Product/ImportProducts", ListItems(items, "t"), monkeypatch, context)
    assert fast == reference


def test_a_json_lines_file_gives_the_same_lines_and_results(tmp_path, monkeypatch):
    """Items read by the JSON parser (no NaN, sets or non-text keys can occur), blank lines between."""
    method = "Product/ImportProducts"
    items = [item for item in corpus(method)[:1200] if _is_json(item)]
    path = tmp_path / "products.jsonl"
    path.write_text(
        "".join(json.dumps(item) + ("\n\n" if n % 7 == 0 else "\n") for n, item in enumerate(items))
    )
    fast, reference, _ = both_ways(method, FileItems(str(path), "t"), monkeypatch)
    assert fast == reference
    assert any("(line " in error for error in fast["errors"])


def test_a_file_of_ever_new_keys_keeps_the_compiled_shapes_bounded(monkeypatch):
    """Past MAX_SHAPES key tuples, objects take the explaining walk: same results, bounded memory."""
    method = "Product/ImportOnhands"
    base = {"PartNo": "P", "WarehouseCode": "W", "LocationCode": "L", "OnhandValue": 1}
    items = [{**base, f"Key{number}": number, "IncomingValue": number % 3} for number in range(600)]
    items[500]["OnhandValue"] = "x"
    items += [{**base, "K" * 5000: 1}, {**base, "K" * 5000: 1, 1: 2}]  # keys too long to keep, or not text
    fast, reference, checker = both_ways(method, ListItems(items, "t"), monkeypatch)
    assert len(checker._root.shapes) == item_validation.MAX_SHAPES
    # the objects' counts are equal; the keys' order may differ once objects overflow (finish_header sorts)
    assert {k: v for k, v in fast.items() if k != "usage"} == {
        k: v for k, v in reference.items() if k != "usage"
    }
    for name, (objects, keys) in fast["usage"].items():
        assert (objects, dict(keys)) == (reference["usage"][name][0], dict(reference["usage"][name][1]))
    assert fast["usage"]["SkuOnhandFieldsThatAreSet"][0] == 600
    assert fast["invalid"] == [501, 602]


# -- the reference, pinned -------------------------------------------------------------------------


def test_mixed_items_give_these_errors_warnings_and_counts():
    good = {"PartNo": "P1", "WarehouseCode": "W", "LocationCode": "L", "OnhandValue": 5}
    items = [
        good,
        {**good, "IncomingValue": 2.5, "NextDeliveryDate": "2026-12-24", "Note": "n"},
        {**good, "OnhandValue": True},  # a bool is not a number
        {**good, "LeadTimeDayCount": 2**31},
        {**good, "OnhandValue": math.nan},
        {"WarehouseCode": "W", "LocationCode": "L", "OnhandValue": 1},
        {**good, "Note": {"when": datetime(2026, 1, 1)}},
        {**good, "IsActive": 1, 3: "x"},
        {**good, "Infos": [{"Code": "c", "Value": "v"}], "partNo": "p"},
        {**good, "OnhandValue": 10**400, "LeadTimeDayCount": 10**5000},  # printing it would raise
    ]
    scan = ItemChecker(contracts().method("Product/ImportOnhands")).scan(ListItems(items, "t"))
    assert sorted(scan.invalid) == [3, 4, 5, 6, 7, 8, 10] and scan.error_count == 9
    assert scan.errors == [
        "item 3, field OnhandValue: must be a number, got a boolean True",
        "item 4, field LeadTimeDayCount: is 2147483648, outside Norce's 32-bit integer range",
        "item 5, field OnhandValue: must be a number, got a number nan",
        "item 6, field PartNo: is required by Norce's Product/SkuOnhand contract, and missing",
        "item 7, field Note.when: the value datetime.datetime(2026, 1, 1, 0, 0) (datetime) cannot be sent as "
        "JSON; convert it first (a datetime to an ISO-8601 string such as 2025-01-31T12:00:00Z, a set or tuple "
        "to a list, bytes and decimals to text or numbers, keys to text)",
        "item 8, field IsActive: must be true or false, got an integer 1",
        "item 8, field 3: the key 3 (int) cannot be sent as JSON; convert it first (a datetime to an ISO-8601 "
        "string such as 2025-01-31T12:00:00Z, a set or tuple to a list, bytes and decimals to text or numbers, "
        "keys to text)",
        "item 10, field OnhandValue: is an integer of 1329 bits, too large for a number (at most about 1.8e308)",
        "item 10, field LeadTimeDayCount: is an integer of 16610 bits, outside Norce's 32-bit integer range",
    ]
    assert scan.warnings() == [
        "items: 2 item(s) carry unknown key 'Note', which Norce's Product/ImportOnhands contract does not know; "
        "Norce ignores it.",
        "items: 1 item(s) carry unknown key 'partNo' (did you mean 'PartNo'?), which Norce's "
        "Product/ImportOnhands contract does not know; Norce ignores it.",
    ]
    usage = scan.usage["SkuOnhandFieldsThatAreSet"]
    assert usage.objects == 3
    assert dict(usage.keys) == {
        "PartNo": 3,
        "WarehouseCode": 3,
        "LocationCode": 3,
        "OnhandValue": 3,
        "IncomingValue": 1,
        "NextDeliveryDate": 1,
        "Infos": 1,
    }


def test_nested_products_give_these_errors_and_counts():
    sku = {"PartNo": "S1", "Status": "active", "StandardPrice": {"PartNo": "S1", "PriceListCode": "STD"}}
    product = {"Code": "C", "Variants": [{"Skus": [sku]}, {"Skus": [{**sku, "PartNo": "S2"}]}]}
    items = [
        product,
        {**product, "Variants": [{"Skus": [{**sku, "Status": "Gone", "VatRates": {}}]}, {"Skus": []}]},
        {**product, "Variants": [{"Skus": [sku, sku]}, "v"]},
        {**product, "Code": None},
    ]
    scan = ItemChecker(contracts().method("Product/ImportProducts")).scan(ListItems(items, "t"))
    assert scan.errors[:2] == [
        "item 2, field Variants[0].Skus[0].Status: 'Gone' is not a SkuStatus value; use one of Active (1), "
        "Coming (2), Expiring (3), Hidden (4), Inactive (5), NotActivated (6)",
        "item 2, field Variants[0].Skus[0].VatRates: must be a JSON array of Product/VatRate objects, got an "
        "object",
    ]
    assert scan.errors[2:] == [
        "item 3, Variants[0]: holds 2 Skus; Norce takes one SKU per variant (give each SKU its own variant)",
        "item 3, field Variants[1]: must be a JSON object (Product/Variant), got a string 'v'",
        "item 4, has 2 Variants, so it needs Code (the variant-cluster key)",
    ]
    assert sorted(scan.invalid) == [2, 3, 4]
    assert scan.usage["SkuFieldsThatAreSet"].objects == 2
    assert dict(scan.usage["SkuPriceListFieldsThatAreSet"].keys) == {"PartNo": 2, "PriceListCode": 2}


def _is_json(item: Any) -> bool:
    try:
        json.dumps(item, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True
