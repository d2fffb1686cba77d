"""The simulator's hand-written Connect rules (``testing/connect_rules.py``) agree with the published contracts.

Why: the simulator encodes the contracts by hand, separately from the operators, so that a mistake on one side
shows up against the other. This test holds that hand encoding to the contract file itself, field by field:
enum codes, header lists and their enums, FullFile presence, item fields, requiredness, nullability and the
nested item classes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_norce.simulator import connect_rules as rules

CONTRACT = json.loads((Path(__file__).parents[1] / "norce_contracts" / "connect.json").read_text("utf-8"))
#: schemas the simulator derives itself (not a contract class): Sku.StandardPrice is a SkuPriceList whose keys
#: are implied by the SKU, so it requires nothing (an inference, documented in connect_rules)
DERIVED = {"Product/StandardPrice": "Product/SkuPriceList"}


def _enum_of(type_text: str) -> str | None:
    match = re.search(r"enum (\w+)", type_text)
    return match.group(1) if match else None


def _members(name: str) -> dict[int, str]:
    entry = CONTRACT["enums"][name]
    return {v["code"]: v["name"] for v in entry.get("values") or entry.get("members")}


@pytest.mark.parametrize("name", sorted(rules.ENUMS))
def test_enum_codes_and_names_match(name):
    assert rules.ENUMS[name] == _members(name)


@pytest.mark.parametrize("key", sorted(rules.HEADERS))
def test_header_lists_full_file_and_main_masks_match(key):
    spec = rules.HEADERS[key]
    fields = {f["name"]: f for f in CONTRACT["x_stormconnect_headers"][spec.name]["fields"]}
    lists = {name: _enum_of(f["type"]) for name, f in fields.items() if "array" in f["type"]}
    assert spec.lists == lists
    full_file = fields.get("FullFile", {}).get("required_per_docs") is True
    assert spec.full_file is full_file
    for mask in spec.main_masks:
        required = fields[mask].get("required_per_docs")
        assert required is True or required is None or "required" in str(required), (mask, required)


def _check_field(schema: str, code: str, contract: dict[str, Any]) -> list[str]:
    problems = []
    kind = code.replace("?", "")
    enum = _enum_of(contract["type"])
    if enum and kind != f"e:{enum}":
        problems.append(f"{schema}.{contract['name']}: {code} vs {contract['type']}")
    if kind[0] in "inbe" and ("?" in code) != bool(contract.get("dotnet_nullable")):
        problems.append(f"{schema}.{contract['name']}: nullability {code} vs {contract.get('dotnet_type')}")
    if ":" in kind and kind[0] in "ol":
        inner = kind.split(":", 1)[1]
        inner = DERIVED.get(inner, inner).split("/")[1]
        expected = f"object {inner}" if kind[0] == "o" else f"array<object {inner}>"
        if contract["type"] != expected:
            problems.append(f"{schema}.{contract['name']}: {code} vs {contract['type']}")
    return problems


@pytest.mark.parametrize("name", sorted(rules.SCHEMAS))
def test_item_schema_fields_requiredness_and_types_match(name):
    schema = rules.SCHEMAS[name]
    contract = {f["name"]: f for f in CONTRACT["item_schemas"][DERIVED.get(name, name)]["fields"]}
    if name in DERIVED:
        assert set(schema.fields) <= set(contract)
        assert schema.required == ()
    else:
        assert set(schema.fields) == set(contract)
        assert set(schema.required) == {n for n, f in contract.items() if f.get("required_per_docs") is True}
    problems = [p for field, code in schema.fields.items() for p in _check_field(name, code, contract[field])]
    assert problems == []


def test_every_import_endpoint_is_simulated_with_its_header_and_item_class():
    from airflow_provider_norce.simulator.connect import METHODS

    for endpoint in CONTRACT["endpoints"]:
        method = METHODS[endpoint["path"].strip("/").lower()]
        assert method.header.name == endpoint["header_schema"], endpoint["path"]
        assert method.schema.name == endpoint["item_schema"], endpoint["path"]
    assert len(METHODS) == len(CONTRACT["endpoints"]) == 9
