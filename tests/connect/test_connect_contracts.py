"""The operator's model of the Connect contracts against Norce's published copy (``tests/norce_contracts``).

The model is generated; these tests catch drift (the copy changed, the generated module did not) and check
every method, header field, enum code and name, and required item field against ``connect.json`` itself,
plus the hand-written mask bindings and aliases against the item schemas.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from airflow_provider_norce.connect.contracts import (
    EXAMPLE_ONLY_HEADER_FIELDS,
    MASK_ALIASES,
    MASK_BINDINGS,
    contracts,
    import_methods,
    is_pseudo_value,
    mask_value_for_key,
)
from airflow_provider_norce.connect.jobs import IMPORT_METHODS

ROOT = Path(__file__).resolve().parents[2]
CONNECT = json.loads((ROOT / "tests" / "norce_contracts" / "connect.json").read_text(encoding="utf-8"))


def _generator():
    spec = importlib.util.spec_from_file_location(
        "generate_connect_contracts", Path(__file__).with_name("generate_connect_contracts.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_generated_module_matches_the_contracts_copy():
    generator = _generator()
    assert generator.TARGET.read_text(encoding="utf-8") == generator.generate(), (
        "airflow_provider_norce/connect/contract_data.py is stale: run "
        "python tests/connect/generate_connect_contracts.py"
    )


def test_every_import_endpoint_is_a_method_with_its_path_header_and_item_schema():
    model = contracts()
    assert len(CONNECT["endpoints"]) == 9
    for endpoint in CONNECT["endpoints"]:
        method = endpoint["path"].strip("/")
        contract = model.method(method)
        assert contract.path == endpoint["path"]
        assert contract.header.name == endpoint["header_schema"]
        assert contract.item_schema.key == endpoint["item_schema"]
    assert set(import_methods()) == set(IMPORT_METHODS) == set(model.methods)
    assert "Supplier/ImportProducts" in IMPORT_METHODS


def test_every_header_field_with_its_kind_enum_and_full_file():
    model = contracts()
    for name, header in CONNECT["x_stormconnect_headers"].items():
        fields = {f.name: f for f in model.headers[name].fields}
        for field in header["fields"]:
            if (name, field["name"]) in EXAMPLE_ONLY_HEADER_FIELDS:
                assert field["name"] not in fields
                assert "only in the docs example" in field["note"]
                continue
            ours = fields.pop(field["name"])
            if "enum" in field["type"]:
                assert ours.enum and ours.enum in field["type"]
                assert ours.kind == ("enum_list" if field["type"].startswith("array") else "enum")
            if field["name"] == "AccountId":
                assert ours.kind == "integer" and ours.required is True
        assert not fields, f"{name}: fields not in the contracts: {fields}"
    assert not model.headers["CustomerHeader"].has_full_file
    assert not model.headers["PriceListHeader"].has_full_file
    for name in ("SkuOnhandHeader", "SkuPriceListHeader", "ProductHeader", "RelationHeader",
                 "CompetitorSkuHeader", "SupplierProductHeader"):  # fmt: skip
        assert model.headers[name].has_full_file, name


def test_every_enum_code_and_name():
    model = contracts()
    assert set(model.enums) == set(CONNECT["enums"])
    for name, enum in CONNECT["enums"].items():
        assert model.enum(name).values == tuple((v["code"], v["name"]) for v in enum["values"])
        for value in enum["values"]:
            assert model.enum(name).code_of(value["name"].upper()) == value["code"]
            assert model.enum(name).code_of(value["code"]) == value["code"]


def test_every_item_field_type_and_required_flag_of_every_reachable_schema():
    model = contracts()
    assert {"Product/SkuOnhand", "Product/Sku", "Customer/Account", "Supplier/SupplierOnHand"} <= set(
        model.schemas
    )
    for key, schema in model.schemas.items():
        source = CONNECT["item_schemas"][key]
        assert schema.names == tuple(f["name"] for f in source["fields"]), key
        for field in source["fields"]:
            ours = schema.field(field["name"])
            required = field["required_per_docs"] is True or field.get("dotnet_DataMember_IsRequired") is True
            assert (ours.required is True) == required, (key, field["name"])
            assert ours.nullable == field["dotnet_nullable"], (key, field["name"])
            if ours.kind == "enum":
                assert field["type"] == f"integer enum {ours.ref}"
            if ours.kind in ("object", "array"):
                assert ours.ref.split("/")[1] == field["type"].split()[-1].rstrip(">"), (key, field["name"])
    onhand = model.schema("Product/SkuOnhand")
    assert [f.name for f in onhand.fields if f.required] == ["PartNo", "LocationCode", "WarehouseCode"]


def test_mask_bindings_match_the_headers_and_the_item_schemas():
    """Each mask is a header field with that enum; each path reaches objects whose non-key fields the enum
    names (directly or through MASK_ALIASES), and every non-option enum value names a field there."""
    model = contracts()
    for method, bindings in MASK_BINDINGS.items():
        contract = model.method(method)
        assert sum(b.primary for b in bindings) == 1, method
        for binding in bindings:
            field = contract.header.field(binding.header_field)
            assert field is not None and field.kind == "enum_list" and field.enum == binding.enum
            enum = model.enum(binding.enum)
            for path in binding.paths:
                schema = model.schema_at(contract.item_schema, path)
                mapped = {mask_value_for_key(enum, name) for name in schema.names} - {None}
                values = {code for code, name in enum.values if not is_pseudo_value(name)}
                if (binding.header_field, path) == ("CompanyFieldsThatAreSet", "Companies[]"):
                    # a customer's Companies[] are CompanyIdentifier objects: a subset of a company's fields
                    assert schema.key == "Customer/CompanyIdentifier" and mapped < values
                    continue
                assert mapped == values, (method, binding.header_field, path, values - mapped)
        unbound = {
            f.name
            for f in contract.header.fields
            if f.kind == "enum_list" and f.name.endswith("FieldsThatAreSet")
        } - {b.header_field for b in bindings}
        assert not unbound, (method, unbound)


def test_aliases_are_the_only_names_that_differ():
    model = contracts()
    assert MASK_ALIASES == {
        "SkuField": {"VatRates": "VatRate"},
        "ProductField": {"AssortmentCode": "Assortment"},
    }
    assert mask_value_for_key(model.enum("SkuField"), "VatRates") == 21
    assert mask_value_for_key(model.enum("ProductField"), "AssortmentCode") == 14
    # key fields and options are never mask values
    assert mask_value_for_key(model.enum("SkuOnhandField"), "PartNo") is None
    assert mask_value_for_key(model.enum("SkuOnhandField"), "LocationCode") is None
    assert mask_value_for_key(model.enum("SkuPriceListField"), "QuantityBreak") is None
    assert mask_value_for_key(model.enum("CustomerField"), "SearchOnlyByCode") is None


@pytest.mark.parametrize(
    "method, primary",
    [
        ("Product/ImportOnhands", "SkuOnhandFieldsThatAreSet"),
        ("Product/ImportSkuPriceLists", "SkuPriceListFieldsThatAreSet"),
        ("Product/ImportPriceLists", "PriceListFieldsThatAreSet"),
        ("Product/ImportProducts", "ProductFieldsThatAreSet"),
        ("Product/ImportRelations", "RelationFieldsThatAreSet"),
        ("Product/ImportCompetitorSkus", "CompetitorSkuFieldsThatAreSet"),
        ("Customer/ImportCustomers", "CustomerFieldsThatAreSet"),
        ("Customer/ImportCompanies", "CompanyFieldsThatAreSet"),
        ("Supplier/ImportProducts", "FieldsThatAreSet"),
    ],
)
def test_primary_mask_of_each_method(method, primary):
    assert contracts().method(method).primary_mask.header_field == primary


def test_contracts_are_not_loaded_by_importing_the_operator():
    """The operator module is imported on every DAG parse: the contracts load only in ``execute``."""
    import subprocess

    code = (
        "import sys, airflow_provider_norce.operators.connect as m; "
        "print(any(n.startswith('airflow_provider_norce.connect_contract') for n in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "False"
