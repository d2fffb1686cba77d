"""Items are checked against Norce's item schema before anything is posted (issue 8, item 3).

``ItemChecker`` is exercised directly for each rule; the operator tests (requests-mock) show that invalid
items fail the task before any request, or with ``skip_invalid_items=True`` never reach Norce.
"""

from __future__ import annotations

import json

import pytest
from norce_connect_support import mock_norce, onhand, sent_headers, sent_items

from airflow_provider_norce.connect.contracts import contracts
from airflow_provider_norce.connect.item_validation import MAX_SHOWN, ItemChecker
from airflow_provider_norce.connect.items import ListItems
from airflow_provider_norce.operators.connect import NorceConnectImportOperator

KEY = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def problems(method: str, item: dict) -> list[str]:
    return ItemChecker(contracts().method(method)).check(item)


def onhand_problems(**fields) -> list[str]:
    return problems("Product/ImportOnhands", {**onhand("1", 1), **fields})


def sku_product(**sku) -> dict:
    return {
        "ManufacturerCode": "M",
        "Variants": [{"ManufacturerPartNo": "MP", "Skus": [{"PartNo": "P1", **sku}]}],
    }


# -- required fields -------------------------------------------------------------------------------


def test_required_fields_top_level_and_nested():
    assert problems("Product/ImportOnhands", {"PartNo": "1", "WarehouseCode": "MAIN", "OnhandValue": 1}) == [
        "field LocationCode: is required by Norce's Product/SkuOnhand contract, and missing"
    ]
    product = {
        "ManufacturerCode": "M",
        "Variants": [{"ManufacturerPartNo": "MP", "Skus": [{"EanCode": "1"}]}],
    }
    assert problems("Product/ImportProducts", product) == [
        "field Variants[0].Skus[0].PartNo: is required by Norce's Product/Sku contract, and missing"
    ]
    assert onhand_problems(PartNo=None) == ["field PartNo: is required by Norce's contract, and null"]
    assert onhand_problems(LocationCode="  ") == ["field LocationCode: is required, and empty"]


def test_null_is_refused_where_the_type_is_not_nullable():
    assert onhand_problems(OnhandValue=None) == [
        "field OnhandValue: may not be null (Norce's type is not nullable); leave it out"
    ]
    assert onhand_problems(IncomingValue=None) == []  # decimal? in .NET


# -- types -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"OnhandValue": "lots"}, "field OnhandValue: must be a number, got a string 'lots'"),
        ({"OnhandValue": True}, "field OnhandValue: must be a number, got a boolean True"),
        ({"LeadTimeDayCount": 2.5}, "field LeadTimeDayCount: must be an integer, got a number 2.5"),
        (
            {"LeadTimeDayCount": 2**31},
            "field LeadTimeDayCount: is 2147483648, outside Norce's 32-bit integer range",
        ),
        ({"IsActive": "yes"}, "field IsActive: must be true or false, got a string 'yes'"),
        ({"PartNo": 100001}, "field PartNo: must be a string, got an integer 100001"),
        ({"NextDeliveryDate": "24/12/2026"}, "field NextDeliveryDate: must be an ISO-8601 date-time"),
        (
            {"NextDeliveryDate": "2026-02-30T00:00:00Z"},
            "field NextDeliveryDate: must be an ISO-8601 date-time",
        ),
        ({"Infos": {"Code": "a", "Value": "b"}}, "field Infos: must be a JSON array of Product/Info objects"),
        ({"Infos": ["a"]}, "field Infos[0]: must be a JSON object (Product/Info), got a string 'a'"),
        ({"Infos": [{"Code": "a"}]}, "field Infos[0].Value: is required by Norce's Product/Info contract"),
    ],
)
def test_types_are_checked_with_the_field_path(fields, expected):
    found = onhand_problems(**fields)
    assert len(found) == 1 and found[0].startswith(expected), found


@pytest.mark.parametrize(
    "value", ["2026-12-24", "2026-12-24T08:00:00Z", "2026-12-24T08:00:00.1234567+01:00", "2026-12-24 08:00"]
)
def test_date_times_norce_accepts(value):
    assert onhand_problems(NextDeliveryDate=value) == []


def test_uuid_enum_string_array_and_max_length():
    account = {"ApplicationKey": "not-a-uuid", "LoginName": "u", "Status": "Blocked"}
    found = problems("Customer/ImportCustomers", {"Code": "C1", "Accounts": [account]})
    assert found[0].startswith("field Accounts[0].ApplicationKey: must be a UUID")
    assert found[1].startswith(
        "field Accounts[0].Status: 'Blocked' is not a AccountStatus value; use one of "
    )
    ok = {"ApplicationKey": KEY, "LoginName": "u", "Status": 1}
    assert problems("Customer/ImportCustomers", {"Code": "C1", "Accounts": [ok]}) == []
    assert (
        problems("Product/ImportProducts", sku_product(Status="active", Type=1)) == []
    )  # names any case, codes
    assert problems("Product/ImportProducts", sku_product(Status=9))[0].startswith(
        "field Variants[0].Skus[0].Status: 9 is not a SkuStatus value; use one of Active (1), Coming (2)"
    )
    price_list = {"Code": "PL", "PriceRules": [{"Flags": ["a", 1]}]}
    assert problems("Product/ImportPriceLists", price_list) == [
        "field PriceRules[0].Flags: must be a JSON array of strings, got an array"
    ]
    supplier = {"SupplierPartNo": "S" * 51, "OnHand": [{"Value": 1}], "PriceList": [{"CostPurchase": 1}]}
    assert problems("Supplier/ImportProducts", supplier) == [
        "field SupplierPartNo: is 51 characters long; Norce takes at most 50"
    ]


# -- conditional rules of the contracts' notes -----------------------------------------------------


def test_customers_and_companies_need_a_matching_key():
    assert problems("Customer/ImportCustomers", {"FirstName": "A"}) == [
        "needs one of Id, Code, EmailAddress for Norce to find or create it (none is set)"
    ]
    assert problems("Customer/ImportCustomers", {"Id": 5}) == []
    assert problems("Customer/ImportCustomers", {"EmailAddress": "a@b.se"}) == []
    assert problems("Customer/ImportCompanies", {"ApplicationKey": KEY, "Name": "Acme"}) == [
        "needs one of Id, Code, OrganizationNo for Norce to find or create it (none is set)"
    ]
    company = {"ApplicationKey": KEY, "Code": "C", "Customers": [{"FirstName": "A"}]}
    assert problems("Customer/ImportCompanies", company) == [
        "Customers[0]: needs one of Id, Code, EmailAddress for Norce to find or create it (none is set)"
    ]
    assert problems("Customer/ImportCompanies", {"Code": "C"}) == [
        "field ApplicationKey: is required by Norce's Customer/Company contract, and missing"
    ]


def test_products_need_an_identity_a_cluster_code_and_one_sku_per_variant():
    assert problems("Product/ImportProducts", {"ManufacturerCode": "M"}) == [
        "needs a SKU PartNo (Variants[].Skus[].PartNo), or ManufacturerCode with a Variants[].ManufacturerPartNo, "
        "for Norce to find or create the product"
    ]
    assert (
        problems(
            "Product/ImportProducts", {"ManufacturerCode": "M", "Variants": [{"ManufacturerPartNo": "X"}]}
        )
        == []
    )
    two = {"Variants": [{"Skus": [{"PartNo": "A"}]}, {"Skus": [{"PartNo": "B"}]}]}
    assert problems("Product/ImportProducts", two) == [
        "has 2 Variants, so it needs Code (the variant-cluster key)"
    ]
    assert problems("Product/ImportProducts", {**two, "Code": "CL"}) == []
    one_variant = {"Variants": [{"Skus": [{"PartNo": "A"}, {"PartNo": "B"}]}]}
    assert problems("Product/ImportProducts", one_variant) == [
        "Variants[0]: holds 2 Skus; Norce takes one SKU per variant (give each SKU its own variant)"
    ]


def test_supplier_products_need_on_hand_and_price_rows():
    assert problems("Supplier/ImportProducts", {"SupplierPartNo": "S"}) == [
        "needs at least one OnHand entry",
        "needs at least one PriceList entry",
    ]


# -- unknown keys, counting, collecting ------------------------------------------------------------


def test_unknown_keys_are_warnings_with_a_hint_not_errors():
    checker = ItemChecker(contracts().method("Product/ImportProducts"))
    item = {**sku_product(partNo="x"), "Name": "n"}
    item["Variants"][0]["IsDagerousGoods"] = True
    scan = checker.scan(ListItems([item, item], "t"))
    assert scan.errors == [] and scan.valid == 2
    assert scan.warnings() == [
        "items: 2 item(s) carry unknown key 'Name', which Norce's Product/ImportProducts contract does not know; "
        "Norce ignores it.",
        "items: 2 item(s) carry unknown key 'Variants[].IsDagerousGoods' (Norce reads 'IsDangerousGoods'), which "
        "Norce's Product/ImportProducts contract does not know; Norce ignores it.",
        "items: 2 item(s) carry unknown key 'Variants[].Skus[].partNo' (did you mean 'PartNo'?), which Norce's "
        "Product/ImportProducts contract does not know; Norce ignores it.",
    ]


def test_errors_are_collected_first_twenty_shown_with_the_total():
    items = [onhand(str(i), 1) for i in range(30)]
    for item in items[5:]:
        del item["LocationCode"]
    scan = ItemChecker(contracts().method("Product/ImportOnhands")).scan(ListItems(items, "t"))
    assert scan.total == 30 and scan.valid == 5 and sorted(scan.invalid) == list(range(6, 31))
    assert len(scan.errors) == MAX_SHOWN and scan.error_count == 25
    text = scan.error_text("imp")
    assert text.startswith("Task 'imp': 25 of 30 item(s) of items do not fit Norce's Product/ImportOnhands")
    assert "item 6, field LocationCode: is required" in text and "... and 5 more" in text
    assert "skip_invalid_items=True" in text


def test_masks_count_only_valid_items():
    items = [{**onhand("1", 1), "IncomingValue": "x"}, onhand("2", 1)]
    scan = ItemChecker(contracts().method("Product/ImportOnhands")).scan(ListItems(items, "t"))
    usage = scan.usage["SkuOnhandFieldsThatAreSet"]
    assert usage.objects == 1 and "IncomingValue" not in usage.keys


# -- the operator ----------------------------------------------------------------------------------


def op(**kwargs) -> NorceConnectImportOperator:
    kwargs.setdefault("import_method", "Product/ImportOnhands")
    kwargs.setdefault("connect_header", {"AccountId": 1})
    return NorceConnectImportOperator(task_id="imp", wait_for_completion=False, **kwargs)


def test_invalid_items_fail_before_any_request(requests_mock, monkeypatch, tmp_path):
    mock_norce(requests_mock, monkeypatch)
    items = [onhand("100001", 1), {"PartNo": "100002", "WarehouseCode": "MAIN", "OnhandValue": 1}]
    with pytest.raises(
        ValueError, match=r"(?s)1 of 2 item\(s\) of items do not fit .*item 2, field LocationCode"
    ):
        op(items=items).execute({})
    path = tmp_path / "onhands.jsonl"
    path.write_text("\n\n".join(json.dumps(i) for i in items) + "\n")  # a blank line between them
    with pytest.raises(
        ValueError, match=r"(?s)of items_path '.*onhands.jsonl' do not fit.*item 2 \(line 3\), field"
    ):
        op(items_path=str(path), batch_size=1).execute({})
    assert requests_mock.call_count == 0


def test_skip_invalid_items_posts_only_valid_ones(requests_mock, monkeypatch, capsys):
    route = mock_norce(requests_mock, monkeypatch)
    good = [onhand("100001", 1), onhand("100003", 3)]
    bad = {"PartNo": "100002", "WarehouseCode": "MAIN", "OnhandValue": 2, "IncomingValue": 9}
    job_ids = op(items=[good[0], bad, good[1]], skip_invalid_items=True, batch_size=1).execute({})
    assert job_ids == ["12", "12"]
    assert sent_items(route) == good
    # the skipped item's IncomingValue does not widen the mask
    assert sent_headers(route)[0]["SkuOnhandFieldsThatAreSet"] == [3]
    logged = capsys.readouterr().out
    assert "leaving out 1 invalid item(s) of items (items 2)" in logged
    assert "item 2, field LocationCode: is required" in logged


def test_skip_invalid_items_is_refused_with_full_file(requests_mock, monkeypatch):
    mock_norce(requests_mock, monkeypatch)
    items = [onhand("100001", 1), {"PartNo": "100002", "WarehouseCode": "MAIN"}]
    with pytest.raises(ValueError, match="skip_invalid_items cannot apply with FullFile: true"):
        op(items=items, skip_invalid_items=True, connect_header={"AccountId": 1, "FullFile": True}).execute(
            {}
        )
    assert requests_mock.call_count == 0


def test_skip_invalid_items_is_templatable_and_checked(requests_mock, monkeypatch):
    mock_norce(requests_mock, monkeypatch)
    assert "skip_invalid_items" in NorceConnectImportOperator.template_fields
    with pytest.raises(ValueError, match="skip_invalid_items must be true or false, got 'maybe'"):
        op(items=[onhand("1", 1)], skip_invalid_items="maybe").execute({})
    assert requests_mock.call_count == 0


def test_norces_own_validation_answer_still_follows_allow_validation_failures(requests_mock, monkeypatch):
    """Local checks come first; what Norce's ValidationSummary refuses afterwards is judged as before."""
    from norce_connect_support import MOCK_BASE

    from airflow_provider_norce.exceptions import NorceJobError

    mock_norce(requests_mock, monkeypatch)
    route = requests_mock.post(
        f"{MOCK_BASE}/commerce/connect/4.0/Product/ImportOnhands",
        json={
            "StatusCode": "Success",
            "Description": "",
            "JobId": "13",
            "ValidationSummary": {
                "NrOfItemsInTotal": 2,
                "NrOfValidationFailures": 1,
                "Messages": ["Row 2: Sku 100002 is unknown."],
            },
        },
    )
    items = [onhand("100001", 1), onhand("100002", 2)]
    with pytest.raises(
        NorceJobError, match=r"refused 1 item\(s\) in validation .*Row 2: Sku 100002 is unknown"
    ):
        op(items=items).execute({})
    assert op(items=items, allow_validation_failures=True).execute({}) == ["13"]
    assert route.call_count == 2


def test_a_job_norce_ends_validation_failed_fails_unless_allowed(requests_mock, monkeypatch):
    from norce_connect_support import MOCK_BASE

    from airflow_provider_norce.exceptions import NorceJobError

    mock_norce(requests_mock, monkeypatch)
    connect = f"{MOCK_BASE}/commerce/connect/4.0"
    summary = {
        "NrOfItemsInTotal": 1,
        "NrOfValidationFailures": 1,
        "Messages": ["Row 1: Sku 100001 is locked."],
    }
    requests_mock.post(
        f"{connect}/Product/ImportOnhands",
        json={"StatusCode": "Success", "Description": "", "JobId": "14", "ValidationSummary": summary},
    )
    requests_mock.get(f"{connect}/Job/Get", json={"JobId": 14, "StatusId": 4, "IsFinished": True, "Fail": 1})
    requests_mock.get(f"{connect}/Job/GetLog", json=[])
    items = [onhand("100001", 1)]
    waiting = {"wait_for_completion": True, "poll_interval": 0.01, "deferrable": False}
    with pytest.raises(NorceJobError, match=r"refused 1 item\(s\) in validation"):
        NorceConnectImportOperator(
            task_id="imp",
            import_method="Product/ImportOnhands",
            items=items,
            connect_header={"AccountId": 1},
            **waiting,
        ).execute({})
    job_ids = NorceConnectImportOperator(
        task_id="imp",
        import_method="Product/ImportOnhands",
        items=items,
        connect_header={"AccountId": 1},
        allow_validation_failures=True,
        **waiting,
    ).execute({})
    assert job_ids == ["14"]


def test_scanning_a_large_file_keeps_memory_bounded(tmp_path):
    """The counting pass keeps field-name counts, never the items: memory does not grow with the file."""
    import tracemalloc

    from airflow_provider_norce.connect.items import FileItems

    path = tmp_path / "big.jsonl"
    with path.open("w") as handle:
        for i in range(5_000):
            handle.write(json.dumps({**onhand(f"{i:08d}", i), "IncomingValue": i, "Pad": "x" * 400}) + "\n")
    checker = ItemChecker(contracts().method("Product/ImportOnhands"))
    tracemalloc.start()
    try:
        scan = checker.scan(FileItems(str(path), "t"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scan.valid == 5_000 and scan.usage["SkuOnhandFieldsThatAreSet"].keys["IncomingValue"] == 5_000
    assert peak < 1_000_000, f"peak {peak} bytes for a {path.stat().st_size}-byte file"
