"""The ``X-StormConnect-Header`` the operator sends: checks, FullFile, enum lists and derived masks.

Unit tests drive ``connect_header`` with items read by the real ``ItemChecker``; operator tests run the
operator against requests-mock and read the header Norce would have received (or that nothing was posted).
"""

from __future__ import annotations

import json

import pytest
from norce_connect_support import mock_norce, onhand, sent_headers, sent_items

from airflow_provider_norce.connect.contracts import contracts
from airflow_provider_norce.connect.header import finish_header, parse_connect_header
from airflow_provider_norce.connect.item_validation import ItemChecker
from airflow_provider_norce.connect.items import ListItems
from airflow_provider_norce.operators.connect import NorceConnectImportOperator


def plan_for(method: str, header, items):
    contract = contracts().method(method)
    parsed = parse_connect_header(header, contract, "t")
    scan = ItemChecker(contract).scan(ListItems(items, "t"))
    assert not scan.errors, scan.errors
    return finish_header(parsed, scan.usage)


def run(method: str = "Product/ImportOnhands", header=None, items=None, **kwargs):
    return NorceConnectImportOperator(
        task_id="imp",
        import_method=method,
        items=items if items is not None else [onhand("100001", 5)],
        connect_header=header if header is not None else {"AccountId": 1},
        wait_for_completion=False,
        **kwargs,
    ).execute({})


# -- keys, AccountId, FullFile ---------------------------------------------------------------------


def test_header_is_one_line_json_with_fullfile_false_and_derived_mask():
    plan = plan_for("Product/ImportOnhands", '{"AccountId": "7"}', [onhand("1", 2)])
    assert "\n" not in plan.header and " " not in plan.header
    assert json.loads(plan.header) == {"AccountId": 7, "FullFile": False, "SkuOnhandFieldsThatAreSet": [3]}
    assert plan.full_file is False


def test_account_id_is_required_and_an_integer():
    contract = contracts().method("Product/ImportOnhands")
    with pytest.raises(
        ValueError, match=r"Task 't': connect_header of Product/ImportOnhands lacks AccountId"
    ):
        parse_connect_header({"FullFile": False}, contract, "t")
    with pytest.raises(ValueError, match="AccountId must be an integer, got 'abc'"):
        parse_connect_header({"AccountId": "abc"}, contract, "t")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_connect_header("{AccountId: 1", contract, "t")


def test_unknown_header_key_is_refused_with_the_known_ones_and_a_hint():
    contract = contracts().method("Product/ImportOnhands")
    with pytest.raises(ValueError) as err:
        parse_connect_header({"AccountId": 1, "SkuOnHandFieldsThatAreSet": [3]}, contract, "t")
    text = str(err.value)
    assert "'SkuOnHandFieldsThatAreSet' (did you mean 'SkuOnhandFieldsThatAreSet'?" in text
    assert "Known keys: AccountId, JobId, SerializationType, StorageName, SupplierId, FullFile, " in text
    with pytest.raises(ValueError, match="write 'PriceListPriceRuleFieldsThatAreSet'"):
        parse_connect_header(
            {"AccountId": 1, "PriceListRuleFieldsThatAreSet": [0]},
            contracts().method("Product/ImportPriceLists"),
            "t",
        )


def test_full_file_on_a_header_without_it():
    customers = contracts().method("Customer/ImportCustomers")
    with pytest.raises(
        ValueError, match=r"sets FullFile to true, but Norce's CustomerHeader has no FullFile"
    ):
        parse_connect_header({"AccountId": 1, "FullFile": True}, customers, "t")
    parsed = parse_connect_header({"AccountId": 1, "FullFile": "false"}, customers, "t")
    assert "FullFile" not in parsed.values and parsed.notes == [
        "FullFile: false dropped: CustomerHeader has no FullFile"
    ]
    price_lists = contracts().method("Product/ImportPriceLists")
    with pytest.raises(ValueError, match="PriceListHeader has no FullFile"):
        parse_connect_header({"AccountId": 1, "FullFile": True}, price_lists, "t")
    plan = plan_for("Product/ImportPriceLists", {"AccountId": 1}, [{"Code": "PL1", "Name": "Retail"}])
    assert json.loads(plan.header) == {"AccountId": 1, "PriceListFieldsThatAreSet": [0]}


def test_serialization_type_must_be_json():
    contract = contracts().method("Product/ImportOnhands")
    assert (
        parse_connect_header({"AccountId": 1, "SerializationType": "json"}, contract, "t").values[
            "SerializationType"
        ]
        == 0
    )
    with pytest.raises(ValueError, match="announces XML, but this operator posts JSON"):
        parse_connect_header({"AccountId": 1, "SerializationType": 1}, contract, "t")


# -- enum lists ------------------------------------------------------------------------------------


def test_enum_lists_take_codes_names_and_a_mix_and_send_codes():
    plan = plan_for(
        "Product/ImportOnhands",
        {"AccountId": 1, "SkuOnhandFieldsThatAreSet": ["onhandvalue", 4, "IsActive", "4"]},
        [{**onhand("1", 2), "IncomingValue": 1, "IsActive": True}],
    )
    assert json.loads(plan.header)["SkuOnhandFieldsThatAreSet"] == [3, 4, 10]


def test_unknown_enum_value_names_the_field_the_value_and_the_valid_names():
    contract = contracts().method("Product/ImportOnhands")
    with pytest.raises(ValueError) as err:
        parse_connect_header(
            {"AccountId": 1, "SkuOnhandFieldsThatAreSet": ["OnhandValue", "Stock"]}, contract, "t"
        )
    text = str(err.value)
    assert "SkuOnhandFieldsThatAreSet holds 'Stock'" in text
    assert "SkuOnhandField: OnhandValue (3), IncomingValue (4)" in text
    with pytest.raises(ValueError, match="SkuOnhandFieldsThatAreSet holds 2,"):
        parse_connect_header({"AccountId": 1, "SkuOnhandFieldsThatAreSet": [2]}, contract, "t")
    with pytest.raises(ValueError, match="must be a list of SkuOnhandField codes or names"):
        parse_connect_header({"AccountId": 1, "SkuOnhandFieldsThatAreSet": "OnhandValue"}, contract, "t")


def test_ignore_when_empty_accepts_only_documented_values_that_are_in_the_price_mask():
    contract = contracts().method("Product/ImportSkuPriceLists")
    with pytest.raises(ValueError, match=r"accepts only PriceSale \(3\).*got IsPriceDiscountable \(9\)"):
        parse_connect_header({"AccountId": 1, "IgnoreSkuPriceListFieldsWhenEmpty": [9]}, contract, "t")
    price = {"PartNo": "1", "PriceListCode": "DEFAULT", "PriceSale": 10}
    with pytest.raises(
        ValueError, match=r"holds \[PriceRecommended \(6\)\], which SkuPriceListFieldsThatAreSet"
    ):
        plan_for(
            "Product/ImportSkuPriceLists", {"AccountId": 1, "IgnoreSkuPriceListFieldsWhenEmpty": [6]}, [price]
        )
    plan = plan_for(
        "Product/ImportSkuPriceLists",
        {"AccountId": 1, "IgnoreSkuPriceListFieldsWhenEmpty": ["PriceSale"]},
        [price],
    )
    assert json.loads(plan.header)["IgnoreSkuPriceListFieldsWhenEmpty"] == [3]
    assert json.loads(plan.header)["SkuPriceListFieldsThatAreSet"] == [3]


# -- masks -----------------------------------------------------------------------------------------


def test_onhand_mask_is_derived_from_item_keys_and_keys_are_never_in_it():
    items = [onhand("1", 2), {**onhand("2", 3), "IncomingValue": 5, "NextDeliveryDate": "2026-12-24"}]
    plan = plan_for("Product/ImportOnhands", {"AccountId": 1}, items)
    assert json.loads(plan.header)["SkuOnhandFieldsThatAreSet"] == [3, 4, 5]
    assert plan.info == [
        "SkuOnhandFieldsThatAreSet derived from the items: [OnhandValue (3), IncomingValue (4), "
        "NextDeliveryDate (5)]"
    ]
    assert plan.warnings == [
        "SkuOnhandFieldsThatAreSet lists IncomingValue (4), but 1 of 2 items lack IncomingValue: Norce will "
        "write it empty for those.",
        "SkuOnhandFieldsThatAreSet lists NextDeliveryDate (5), but 1 of 2 items lack NextDeliveryDate: Norce "
        "will write it empty for those.",
    ]


def test_primary_mask_is_sent_empty_when_items_carry_only_keys():
    plan = plan_for(
        "Product/ImportSkuPriceLists", {"AccountId": 1}, [{"PartNo": "1", "PriceListCode": "DEFAULT"}]
    )
    assert json.loads(plan.header) == {"AccountId": 1, "FullFile": False, "SkuPriceListFieldsThatAreSet": []}


def test_given_mask_is_kept_never_widened_and_each_left_out_field_warns_once():
    items = [{**onhand(str(i), 1), "IncomingValue": 2, "MinimumValue": 1} for i in range(3)]
    plan = plan_for(
        "Product/ImportOnhands", {"AccountId": 1, "SkuOnhandFieldsThatAreSet": ["OnhandValue"]}, items
    )
    assert json.loads(plan.header)["SkuOnhandFieldsThatAreSet"] == [3]
    assert plan.warnings == [
        "IncomingValue is carried by 3 of 3 items, but the given SkuOnhandFieldsThatAreSet leaves out "
        "IncomingValue (4): Norce will not write it. Add it to SkuOnhandFieldsThatAreSet, or leave "
        "SkuOnhandFieldsThatAreSet out to have it derived.",
        "MinimumValue is carried by 3 of 3 items, but the given SkuOnhandFieldsThatAreSet leaves out "
        "MinimumValue (8): Norce will not write it. Add it to SkuOnhandFieldsThatAreSet, or leave "
        "SkuOnhandFieldsThatAreSet out to have it derived.",
    ]


def test_create_only_value_covers_its_field_and_options_are_kept():
    items = [{"Code": "C1", "EmailAddress": "a@b.se", "FirstName": "A"}]
    plan = plan_for(
        "Customer/ImportCustomers",
        {
            "AccountId": 1,
            "CustomerFieldsThatAreSet": ["Code", "EmailAddress", "FirstName", "SearchOnlyByCode"],
        },
        items,
    )
    assert json.loads(plan.header)["CustomerFieldsThatAreSet"] == [2, 3, 6, 18]
    assert plan.warnings == []
    culture = {
        "ManufacturerCode": "M",
        "Cultures": [{"CultureCode": "sv-SE", "Name": "Namn"}],
        "Variants": [{"Skus": [{"PartNo": "P1"}]}],
    }
    plan = plan_for(
        "Product/ImportProducts",
        {"AccountId": 1, "ProductCultureFieldsThatAreSet": ["NameCreateOnly"]},
        [culture],
    )
    assert json.loads(plan.header)["ProductCultureFieldsThatAreSet"] == [1]
    assert plan.warnings == []


def test_product_masks_follow_the_nesting_and_the_aliases():
    product = {
        "ManufacturerCode": "ACME",
        "Code": "CL-1",
        "AssortmentCode": "A",
        "Cultures": [{"CultureCode": "sv-SE", "Name": "Namn", "Description": "Text"}],
        "MainImage": {
            "FileTypeName": "jpg",
            "ExternalCode": "i1",
            "Url": "https://x/i.jpg",
            "Cultures": [{"CultureCode": "sv-SE", "AltText": "alt"}],
        },
        "Variants": [
            {
                "ManufacturerPartNo": "MPN-1",
                "Cultures": [{"CultureCode": "sv-SE", "Name": "V"}],
                "Skus": [
                    {
                        "PartNo": "P1",
                        "Status": "Active",
                        "VatRates": [{"SalesArea": "Sweden", "Rate": 25}],
                        "Cultures": [{"CultureCode": "sv-SE", "ErpName": "E"}],
                        "StandardPrice": {"PartNo": "P1", "PriceListCode": "DEFAULT", "PriceSale": 99.0},
                        "StructureItems": [
                            {"StructurePartNo": "P1", "PartNo": "P2", "Quantity": 1, "SortOrder": 1}
                        ],
                    }
                ],
            }
        ],
    }
    header = json.loads(plan_for("Product/ImportProducts", {"AccountId": 1}, [product]).header)
    assert header == {
        "AccountId": 1,
        "FullFile": False,
        "ProductFieldsThatAreSet": [
            0,
            3,
            4,
            5,
            7,
            14,
        ],  # ManufacturerCode, Code, Variants, Cultures, MainImage, Assortment
        "ProductCultureFieldsThatAreSet": [0, 5],  # Name, Description; CultureCode is a key
        "VariantFieldsThatAreSet": [0, 4, 5],  # ManufacturerPartNo, Cultures, Skus
        "VariantCultureFieldsThatAreSet": [0, 1],
        "SkuFieldsThatAreSet": [
            1,
            20,
            21,
            25,
        ],  # Status, StandardPrice, VatRate (from VatRates), StructureItems
        "SkuCultureFieldsThatAreSet": [0],  # ErpName
        "SkuPriceListFieldsThatAreSet": [3],  # PriceSale; PartNo/PriceListCode are keys
        "SkuStructureItemFieldsThatAreSet": [0],  # SortOrder
        "ImageCultureFieldsThatAreSet": [2],  # AltText
    }


def test_supplier_and_company_masks():
    supplier = {
        "SupplierPartNo": "S1",
        "ProductName": "Widget",
        "OnHand": [{"WarehouseCode": "W", "LocationCode": "L", "Value": 3}],
        "PriceList": [{"PriceListCode": "P", "CostPurchase": 1.5}],
        "ContentList": [{"CultureCode": "sv-SE", "Name": "W"}],
        "ProductInfo": [{"Code": "c", "Value": "v"}],
    }
    header = json.loads(plan_for("Supplier/ImportProducts", {"AccountId": 1}, [supplier]).header)
    assert header["FieldsThatAreSet"] == [0, 1]  # SupplierPartNo has a value (0) of its own
    assert header["OnhandFieldsThatAreSet"] == [0]  # Value; WarehouseCode/LocationCode are keys
    assert header["PriceFieldsThatAreSet"] == [0]
    assert header["ContentFieldsThatAreSet"] == [0]  # Name
    assert header["ProductInfoFieldsThatAreSet"] == [0]
    company = {
        "Code": "C1",
        "Name": "Acme",
        "Customers": [
            {
                "Code": "U1",
                "Accounts": [
                    {"ApplicationKey": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "LoginName": "u", "Status": 1}
                ],
            }
        ],
    }
    header = json.loads(
        plan_for(
            "Customer/ImportCompanies", {"AccountId": 1}, [{**company, "ApplicationKey": company_key()}]
        ).header
    )
    assert "FullFile" not in header
    assert header["CompanyFieldsThatAreSet"] == [0, 2, 4, 14]
    assert header["CustomerFieldsThatAreSet"] == [2, 14]
    assert header["AccountFieldsThatAreSet"] == [1]


def company_key() -> str:
    return "0e8a2f54-2b43-4b7a-9b6e-2c6a8b1f9d10"


# -- the operator sends it -------------------------------------------------------------------------


def test_operator_sends_the_derived_header_and_logs_mask_names(requests_mock, monkeypatch, capsys):
    route = mock_norce(requests_mock, monkeypatch)
    items = [{**onhand("100001", 5), "IncomingValue": 2}, onhand("100002", 7)]
    assert run(items=items) == ["12"]
    logged = capsys.readouterr().out
    assert sent_headers(route) == [{"AccountId": 1, "FullFile": False, "SkuOnhandFieldsThatAreSet": [3, 4]}]
    assert sent_items(route) == items
    assert "SkuOnhandFieldsThatAreSet derived from the items: [OnhandValue (3), IncomingValue (4)]" in logged
    assert "1 of 2 items lack IncomingValue: Norce will write it empty for those" in logged


def test_operator_refuses_a_bad_header_before_any_request(requests_mock, monkeypatch):
    route = mock_norce(requests_mock, monkeypatch)
    with pytest.raises(ValueError, match="'SkuOnHandFieldsThatAreSet'"):
        run(header={"AccountId": 1, "SkuOnHandFieldsThatAreSet": [3]})
    with pytest.raises(ValueError, match="SkuOnhandFieldsThatAreSet holds 'Stock'"):
        run(header={"AccountId": 1, "SkuOnhandFieldsThatAreSet": ["Stock"]})
    assert route.call_count == 0 and requests_mock.call_count == 0


def test_operator_accepts_supplier_import(requests_mock, monkeypatch):
    route = mock_norce(requests_mock, monkeypatch, "Supplier/ImportProducts")
    item = {
        "SupplierPartNo": "S1",
        "OnHand": [{"WarehouseCode": "W", "LocationCode": "L", "Value": 3}],
        "PriceList": [{"PriceListCode": "P", "CostPurchase": 1.5}],
    }
    assert run("Supplier/ImportProducts", items=[item]) == ["12"]
    assert sent_headers(route) == [
        {
            "AccountId": 1,
            "FullFile": False,
            "FieldsThatAreSet": [0],
            "OnhandFieldsThatAreSet": [0],
            "PriceFieldsThatAreSet": [0],
        }
    ]


def test_a_derived_product_mask_with_code_needs_code_on_every_item(requests_mock, monkeypatch):
    """Norce requires Code on every product once Code is in ProductFieldsThatAreSet: deriving it from the
    items that carry it while others lack it would have Norce refuse those after the POST."""
    route = mock_norce(requests_mock, monkeypatch, "Product/ImportProducts")

    def product(n: int, **extra) -> dict:
        sku = {"PartNo": f"P{n}", "Status": 1, "Type": 1}
        variant = {"ManufacturerPartNo": f"MPN-{n}", "Skus": [sku]}
        return {"ManufacturerCode": "ACME", "Variants": [variant], **extra}

    with pytest.raises(ValueError, match=r"lists Code \(3\) because 1 of 2 items carry Code.*1 lack it"):
        run("Product/ImportProducts", items=[product(1, Code="CL-1"), product(2)])
    assert route.call_count == 0
    assert run("Product/ImportProducts", items=[product(1, Code="CL-1"), product(2, Code="CL-2")]) == ["12"]
    assert 3 in sent_headers(route)[0]["ProductFieldsThatAreSet"]
