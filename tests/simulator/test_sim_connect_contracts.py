"""The simulator answers as Norce's published Connect contracts say (tests/norce_contracts/connect.json).

Each test names the contract rule it holds the simulator to: header masks, item schemas, what is written,
FullFile scope per import, counters, and the catalog that Query shows afterwards.
"""

from __future__ import annotations

import pytest

ONHAND, PRICES, PRICE_LISTS = (
    "Product/ImportOnhands",
    "Product/ImportSkuPriceLists",
    "Product/ImportPriceLists",
)
PRODUCTS, RELATIONS, COMPETITORS = (
    "Product/ImportProducts",
    "Product/ImportRelations",
    "Product/ImportCompetitorSkus",
)
CUSTOMERS, COMPANIES, SUPPLIER = (
    "Customer/ImportCustomers",
    "Customer/ImportCompanies",
    "Supplier/ImportProducts",
)
GUID = "6f1c1f0e-3c1b-4b7a-9a7e-2f0b7c1d9e11"


def _stock_item(part_no: str = "100001", **fields) -> dict:
    return {"PartNo": part_no, "WarehouseCode": "MAIN", "LocationCode": "MAIN", **fields}


def _competitor(part_no: str, competitor: str, price: float) -> dict:
    return {
        "PartNo": part_no, "Source": "crawler", "CompetitorCode": competitor, "CompetitorPartNo": f"X-{part_no}",
        "PriceSale": price, "PriceSaleInclFreight": price + 49, "IsPricesInclVat": True, "IsInStock": True,
    }  # fmt: skip


def _run(client, clock, method: str, items: list, header: dict) -> dict:
    """Post an import, let the job finish, and return Job/Get with the log under ``"log"``."""
    response = client.import_(method, items, header=header)
    assert response.status_code == 200, response.text
    job_id = response.json()["JobId"]
    clock.advance(1)
    return {**client.job(job_id), "log": client.job_log(job_id), "answer": response.json()}


def _rows(client, entity: str, flt: str | None = None) -> list[dict]:
    params = {"$filter": flt} if flt else {}
    rows, _ = client.all_pages(entity, **params)
    return rows


def _stock(client, part_no: str = "100001") -> dict:
    return _rows(client, "Products/ProductSkuOnHands", f"PartNo eq '{part_no}'")[0]


# -- headers ----------------------------------------------------------------------------------------------
def test_enum_lists_take_codes_or_names_in_any_case(make_sim, clock):
    _, client = make_sim()
    header = {
        "AccountId": 1,
        "FullFile": False,
        "SkuOnhandFieldsThatAreSet": ["onhandvalue", 4, "LEADTIMEDAYCOUNT"],
    }
    job = _run(
        client, clock, ONHAND, [_stock_item(OnhandValue=7, IncomingValue=3, LeadTimeDayCount=2)], header
    )
    assert job["StatusId"] == 2
    stock = _stock(client)
    assert (stock["OnHandValue"], stock["IncomingValue"], stock["LeadTimeDayCount"]) == (7, 3, 2)


def test_full_file_is_ignored_where_the_header_class_has_none(make_sim, clock):
    """CustomerHeader has no FullFile: Newtonsoft ignores it, so nothing is deactivated."""
    _, client = make_sim(customers=3)
    header = {"AccountId": 1, "FullFile": True, "CustomerFieldsThatAreSet": ["FirstName"]}
    job = _run(client, clock, CUSTOMERS, [{"Code": "C000001", "FirstName": "Ada"}], header)
    assert (job["StatusId"], job["Updates"]) == (2, 1)
    assert all(row["IsActive"] for row in _rows(client, "Customers/Customers"))
    no_full_file = client.import_(CUSTOMERS, [], header={"AccountId": 1, "CustomerFieldsThatAreSet": [6]})
    assert no_full_file.status_code == 200, "FullFile is not required on CustomerHeader"


def test_missing_mask_succeeds_and_writes_nothing_as_norce_does(make_sim, clock):
    _, client = make_sim()
    before = _stock(client)
    job = _run(client, clock, ONHAND, [_stock_item(OnhandValue=555)], {"AccountId": 1, "FullFile": False})
    assert (job["StatusId"], job["Insert"], job["Updates"]) == (2, 0, 0)
    assert _stock(client) == before


def test_require_field_masks_option_answers_400_instead(make_sim):
    sim, client = make_sim(require_field_masks=True)
    response = client.import_(
        ONHAND, [_stock_item(OnhandValue=5)], header={"AccountId": 1, "FullFile": False}
    )
    assert response.status_code == 400
    assert "SkuOnhandFieldsThatAreSet" in response.json()["Message"]
    assert sim.counters()["jobs_created"] == 0


def test_ignore_when_empty_must_be_allowed_and_masked(make_sim):
    _, client = make_sim()
    header = {
        "AccountId": 1,
        "FullFile": False,
        "SkuPriceListFieldsThatAreSet": [3],
        "IgnoreSkuPriceListFieldsWhenEmpty": [6],
    }
    response = client.import_(PRICES, [], header=header)
    assert response.status_code == 400
    assert "IgnoreSkuPriceListFieldsWhenEmpty" in response.json()["Message"]


# -- items --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "header", "item", "message"),
    [
        (ONHAND, {"FullFile": False}, {"PartNo": "100001", "WarehouseCode": "MAIN"}, "LocationCode is required"),
        (PRICES, {"FullFile": False}, {"PartNo": "100001"}, "PriceListCode is required"),
        (PRICE_LISTS, {}, {"Name": "x"}, "Code is required"),
        (PRICE_LISTS, {}, {"Code": "B2B", "Warehouses": [{"Code": "W2"}]}, "Warehouses[0].Locations is required"),
        (PRODUCTS, {"FullFile": False}, {"Variants": [{"Skus": [{"Status": 1}]}]}, "Variants[0].Skus[0].PartNo is required"),
        (PRODUCTS, {"FullFile": False}, {"Variants": [{"Skus": [{"PartNo": "1", "Cultures": [{}]}]}]}, "Skus[0].Cultures[0].CultureCode"),
        (PRODUCTS, {"FullFile": False}, {"Variants": [{"Skus": [{"PartNo": "1", "Status": "Nope"}]}]}, "Status must be a SkuStatus"),
        (PRODUCTS, {"FullFile": False}, {"Variants": [{}, {}]}, "Code is required"),
        (PRODUCTS, {"FullFile": True}, {"Variants": [{}]}, "Code is required"),
        (RELATIONS, {"FullFile": False}, {"PartNo": "100001", "RelatedPartNo": "100002"}, "RelationTypeCode is required"),
        (COMPETITORS, {"FullFile": False}, {"PartNo": "100001", "CompetitorCode": "C", "Price": 5}, "PriceSale is required"),
        (COMPETITORS, {"FullFile": False}, {"PartNo": "100001", "CompetitorCode": "C"}, "PriceSaleInclFreight is required"),
        (CUSTOMERS, {}, {"Code": "C1", "Id": "7"}, "Id must be an integer"),
        (COMPANIES, {}, {"Code": "ACME"}, "ApplicationKey is required"),
        (COMPANIES, {}, {"Code": "ACME", "ApplicationKey": "not-a-guid"}, "ApplicationKey must be a GUID"),
        (SUPPLIER, {"FullFile": False}, {"ProductName": "x"}, "SupplierPartNo is required"),
        (ONHAND, {"FullFile": False}, _stock_item(OnhandValue=None), "OnhandValue cannot be null"),
        (ONHAND, {"FullFile": False}, _stock_item(NextDeliveryDate="soon"), "NextDeliveryDate must be an ISO-8601"),
    ],
)  # fmt: skip
def test_items_are_validated_against_the_published_item_schemas(make_sim, method, header, item, message):
    _, client = make_sim()
    response = client.import_(method, [item], header={"AccountId": 1, **header})
    assert response.status_code == 200, response.text
    summary = response.json()["ValidationSummary"]
    assert summary["NrOfValidationFailures"] == 1
    assert any(message in text for text in summary["Messages"]), summary["Messages"]


def test_enum_fields_in_items_take_names_and_unknown_keys_are_ignored(make_sim, clock):
    _, client = make_sim()
    header = {"AccountId": 1, "CustomerFieldsThatAreSet": ["EmailAddress", "FirstName"]}
    items = [{"Code": "NEW-1", "Type": "customer", "Email": "old@example.com", "FirstName": "Ada"}]
    job = _run(client, clock, CUSTOMERS, items, header)
    assert (job["StatusId"], job["answer"]["ValidationSummary"]["NrOfValidationFailures"]) == (2, 0)
    row = _rows(client, "Customers/Customers", "CustomerCode eq 'NEW-1'")[0]
    assert (row["FirstName"], row["EmailAddress"]) == ("Ada", None), "'Email' is not a Customer field"


# -- what is written -------------------------------------------------------------------------------------
def test_fields_outside_the_mask_keep_their_old_value(make_sim, clock):
    _, client = make_sim()
    both = {"AccountId": 1, "FullFile": False, "SkuOnhandFieldsThatAreSet": ["OnhandValue", "IncomingValue"]}
    _run(client, clock, ONHAND, [_stock_item(OnhandValue=10, IncomingValue=5)], both)
    only_onhand = {**both, "SkuOnhandFieldsThatAreSet": ["OnhandValue"]}
    _run(client, clock, ONHAND, [_stock_item(OnhandValue=11, IncomingValue=9)], only_onhand)
    stock = _stock(client)
    assert (stock["OnHandValue"], stock["IncomingValue"]) == (11, 5)


def test_masked_fields_absent_from_the_item_are_written_empty(make_sim, clock):
    _, client = make_sim()
    header = {
        "AccountId": 1,
        "FullFile": False,
        "SkuOnhandFieldsThatAreSet": ["OnhandValue", "IncomingValue"],
    }
    _run(client, clock, ONHAND, [_stock_item(OnhandValue=10, IncomingValue=5)], header)
    _run(client, clock, ONHAND, [_stock_item(LeadTimeDayCount=3)], header)
    stock = _stock(client)
    assert (stock["OnHandValue"], stock["IncomingValue"], stock["LeadTimeDayCount"]) == (0, None, None)
    assert stock["OnHandLastUpdated"] == stock["IncomingLastUpdated"] == stock["Updated"]


def test_sku_prices_write_masked_prices_skip_zero_and_report_unknown_lists(make_sim, clock):
    _, client = make_sim()
    before = _rows(client, "Products/ProductSkuPriceLists", "PartNo eq '100001'")[0]
    header = {
        "AccountId": 1,
        "FullFile": False,
        "SkuPriceListFieldsThatAreSet": ["PriceSale", "PriceRecommended"],
    }
    items = [
        {
            "PartNo": "100001",
            "PriceListCode": "DEFAULT",
            "PriceSale": 0,
            "PriceRecommended": 300,
            "PriceCost": 1,
        },
        {"PartNo": "100002", "PriceListCode": "NO-SUCH-LIST", "PriceSale": 10},
    ]
    job = _run(client, clock, PRICES, items, header)
    assert (job["StatusId"], job["Updates"], job["Fail"]) == (2, 1, 1)
    assert any("price list 'NO-SUCH-LIST' does not exist" in line["Message"] for line in job["log"])
    after = _rows(client, "Products/ProductSkuPriceLists", "PartNo eq '100001'")[0]
    assert (after["PriceSale"], after["PriceRecommended"]) == (before["PriceSale"], 300), (
        "0 prices are ignored"
    )
    assert "PriceCost" not in after and "PriceListCode" not in after
    assert after["PriceRecommendedLastUpdated"] == after["Updated"] != before["Updated"]
    assert after["PriceSaleLastUpdated"] == before["PriceSaleLastUpdated"]


def test_onhand_for_an_unknown_location_is_not_imported(make_sim, clock):
    _, client = make_sim()
    header = {"AccountId": 1, "FullFile": False, "SkuOnhandFieldsThatAreSet": [3]}
    job = _run(client, clock, ONHAND, [{**_stock_item(OnhandValue=1), "LocationCode": "NOWHERE"}], header)
    assert (job["StatusId"], job["Fail"]) == (2, 1)
    assert any(line["SeverityId"] == 3 and "NOWHERE" in line["Message"] for line in job["log"])


# -- FullFile scope per import ------------------------------------------------------------------------------
def test_full_file_onhand_deactivates_only_the_locations_in_the_file(make_sim, clock):
    _, client = make_sim(products=3)
    _run(
        client, clock, PRICE_LISTS,
        [{"Code": "DEFAULT", "Warehouses": [{"Code": "MAIN", "Locations": [{"Code": "B"}]}]}],
        {"AccountId": 1, "PriceListFieldsThatAreSet": ["Warehouses"]},
    )  # fmt: skip
    header = {"AccountId": 1, "FullFile": False, "SkuOnhandFieldsThatAreSet": [3]}
    _run(client, clock, ONHAND, [{**_stock_item("100002", OnhandValue=4), "LocationCode": "B"}], header)
    job = _run(client, clock, ONHAND, [_stock_item(OnhandValue=9)], {**header, "FullFile": True})
    rows = _rows(client, "Products/ProductSkuOnHands")
    main = {r["PartNo"]: r["IsActive"] for r in rows if r["LocationId"] == 1}
    other = [r["IsActive"] for r in rows if r["LocationId"] != 1]
    assert main["100001"] is True and not any(v for p, v in main.items() if p != "100001")
    assert other == [True], "a location absent from the file is untouched"
    assert job["Updates"] == len(main), "one write for 100001 plus one per deactivated row"


def test_full_file_prices_deactivate_only_the_price_lists_in_the_file(make_sim, clock):
    _, client = make_sim(products=3)
    _run(
        client,
        clock,
        PRICE_LISTS,
        [{"Code": "B2B", "Name": "B2B"}],
        {"AccountId": 1, "PriceListFieldsThatAreSet": ["Name"]},
    )
    header = {"AccountId": 1, "FullFile": False, "SkuPriceListFieldsThatAreSet": ["PriceSale"]}
    _run(client, clock, PRICES, [{"PartNo": "100002", "PriceListCode": "B2B", "PriceSale": 10}], header)
    _run(
        client,
        clock,
        PRICES,
        [{"PartNo": "100001", "PriceListCode": "DEFAULT", "PriceSale": 11}],
        {**header, "FullFile": True},
    )
    lists = {p["Agreement"]: p["PriceListId"] for p in _rows(client, "Application/ClientPriceLists")}
    rows = _rows(client, "Products/ProductSkuPriceLists")
    default = {r["PartNo"]: r["IsActive"] for r in rows if r["PriceListId"] == lists["DEFAULT"]}
    b2b = [r["IsActive"] for r in rows if r["PriceListId"] == lists["B2B"]]
    assert default["100001"] and not any(v for p, v in default.items() if p != "100001")
    assert b2b == [True]


def test_full_file_competitor_prices_are_scoped_per_competitor(make_sim, clock):
    sim, client = make_sim(products=3)
    header = {"AccountId": 1, "FullFile": False, "CompetitorSkuFieldsThatAreSet": ["CompetitorName"]}
    _run(
        client,
        clock,
        COMPETITORS,
        [_competitor("100001", "A", 10), _competitor("100002", "A", 11), _competitor("100002", "B", 12)],
        header,
    )
    job = _run(client, clock, COMPETITORS, [_competitor("100001", "A", 9)], {**header, "FullFile": True})
    active = {key: row["IsActive"] for key, row in sim.catalog.competitor_skus.items()}
    assert active == {("A", "100001"): True, ("A", "100002"): False, ("B", "100002"): True}
    assert sim.catalog.competitor_skus[("A", "100001")]["PriceSale"] == 9
    assert (job["Updates"], job["Insert"]) == (2, 0)


def test_full_file_relations_deactivate_every_relation_not_in_the_file(make_sim, clock):
    sim, client = make_sim(products=3)
    header = {"AccountId": 1, "FullFile": False, "RelationFieldsThatAreSet": ["SortOrder"]}
    one = {"PartNo": "100001", "RelatedPartNo": "100002", "RelationTypeCode": "ACCESSORY", "SortOrder": 1}
    two = {"PartNo": "100002", "RelatedPartNo": "100003", "RelationTypeCode": "UPSELL"}
    job = _run(client, clock, RELATIONS, [one, two], header)
    assert job["Insert"] == 2
    _run(client, clock, RELATIONS, [one], {**header, "FullFile": True})
    assert {k: r["IsActive"] for k, r in sim.catalog.relations.items()} == {
        ("100001", "100002", "ACCESSORY"): True,
        ("100002", "100003", "UPSELL"): False,
    }
    assert sim.catalog.relations[("100001", "100002", "ACCESSORY")]["SortOrder"] == 1


# -- products -----------------------------------------------------------------------------------------------
PRODUCT_HEADER = {
    "AccountId": 1, "FullFile": False,
    "ProductFieldsThatAreSet": ["ManufacturerCode", "Code", "Variants", "Cultures"],
    "ProductCultureFieldsThatAreSet": ["Name"], "VariantFieldsThatAreSet": ["ManufacturerPartNo", "Skus", "Cultures"],
    "VariantCultureFieldsThatAreSet": ["Name"], "SkuFieldsThatAreSet": ["Status", "Type", "EanCode"],
    "SkuCultureFieldsThatAreSet": ["ErpName"],
}  # fmt: skip


def _variant(mpn: str, part_no: str, name: str) -> dict:
    return {
        "ManufacturerPartNo": mpn, "Cultures": [{"CultureCode": "sv-SE", "Name": name}],
        "Skus": [{"PartNo": part_no, "Status": "Active", "Type": 1, "EanCode": f"73{part_no}",
                  "Cultures": [{"CultureCode": "sv-SE", "ErpName": f"ERP {name}"}]}],
    }  # fmt: skip


def test_nested_product_import_gives_one_product_row_per_variant_and_counts_table_writes(make_sim, clock):
    _, client = make_sim(products=2)
    item = {
        "ManufacturerCode": "ACME", "Code": "TSHIRT", "Cultures": [{"CultureCode": "sv-SE", "Name": "T-shirt"}],
        "Variants": [_variant("TS-S", "900001", "T-shirt S"), _variant("TS-M", "900002", "T-shirt M")],
    }  # fmt: skip
    job = _run(client, clock, PRODUCTS, [item], PRODUCT_HEADER)
    assert (job["StatusId"], job["Insert"], job["Updates"], job["Totals"]) == (2, 4, 0, 1)
    products = _rows(client, "Products/Products", "Code eq 'TSHIRT'")
    assert sorted((p["ManufacturerPartNo"], p["DefaultName"], p["IsVariant"]) for p in products) == [
        ("TS-M", "T-shirt M", True),
        ("TS-S", "T-shirt S", True),
    ]
    sku = client.query("Products/ProductSkus('900001')").json()
    assert (sku["StatusId"], sku["TypeId"], sku["EanCode"], sku["ErpName"]) == (
        1,
        1,
        "73900001",
        "ERP T-shirt S",
    )
    assert sku["ProductId"] == next(p["Id"] for p in products if p["ManufacturerPartNo"] == "TS-S")


def test_new_product_parts_that_cannot_be_created_are_logged_and_the_job_succeeds(make_sim, clock):
    _, client = make_sim(products=2)
    no_status = {
        "ManufacturerCode": "ACME",
        "Code": "X",
        "Variants": [{"ManufacturerPartNo": "X-1", "Skus": [{"PartNo": "900009"}]}],
    }
    no_manufacturer = {"Code": "Y", "Variants": [{"ManufacturerPartNo": "Y-1"}]}
    job = _run(client, clock, PRODUCTS, [no_status, no_manufacturer], PRODUCT_HEADER)
    assert (job["StatusId"], job["Insert"], job["Fail"]) == (2, 1, 1)
    severities = {line["SeverityId"]: line["Message"] for line in job["log"] if line["SeverityId"] > 1}
    assert "needs Status and Type" in severities[2]
    assert "ManufacturerCode" in severities[3]


def test_full_file_products_deactivate_the_same_variant_cluster_only(make_sim, clock):
    _, client = make_sim(products=2)
    item = {
        "ManufacturerCode": "ACME",
        "Code": "TSHIRT",
        "Variants": [_variant("TS-S", "900001", "S"), _variant("TS-M", "900002", "M")],
    }
    _run(client, clock, PRODUCTS, [item], PRODUCT_HEADER)
    smaller = {**item, "Variants": [_variant("TS-S", "900001", "S")]}
    job = _run(client, clock, PRODUCTS, [smaller], {**PRODUCT_HEADER, "FullFile": True})
    assert job["StatusId"] == 2
    cluster = {
        p["ManufacturerPartNo"]: p["IsActive"] for p in _rows(client, "Products/Products", "Code eq 'TSHIRT'")
    }
    assert cluster == {"TS-S": True, "TS-M": False}
    others = _rows(client, "Products/Products", "Code ne 'TSHIRT'")
    assert others and all(p["IsActive"] for p in others), "products outside the cluster stay active"


# -- customers, companies, supplier --------------------------------------------------------------------------
def test_customers_match_by_code_then_email_and_an_unknown_id_is_not_imported(make_sim, clock):
    _, client = make_sim(customers=2)
    header = {"AccountId": 1, "CustomerFieldsThatAreSet": ["FirstName", "EmailAddress"]}
    items = [
        {"Code": "C000001", "FirstName": "Ada", "EmailAddress": "ada@example.com"},
        {"EmailAddress": "customer2@example.com", "FirstName": "Bea"},
        {"Id": 999, "FirstName": "Nobody"},
    ]
    job = _run(client, clock, CUSTOMERS, items, header)
    assert (job["StatusId"], job["Updates"], job["Insert"], job["Fail"]) == (2, 2, 0, 1)
    rows = {
        r["Id"]: (r["CustomerCode"], r["FirstName"], r["EmailAddress"])
        for r in _rows(client, "Customers/Customers")
    }
    assert rows == {1: ("C000001", "Ada", "ada@example.com"), 2: ("C000002", "Bea", "customer2@example.com")}


def test_companies_are_created_with_their_code_and_masked_fields(make_sim, clock):
    _, client = make_sim()
    header = {"AccountId": 1, "CompanyFieldsThatAreSet": ["Name", "OrganizationNo"]}
    job = _run(
        client,
        clock,
        COMPANIES,
        [{"ApplicationKey": GUID, "Code": "ACME", "Name": "Acme AB", "VatNo": "SE1"}],
        header,
    )
    assert (job["StatusId"], job["Insert"]) == (2, 1)
    company = _rows(client, "Customers/Companies")[0]
    assert (company["CompanyCode"], company["Name"], company["OrganizationNo"], company["VatNo"]) == (
        "ACME",
        "Acme AB",
        None,
        None,
    )


def test_supplier_import_products_stores_masked_supplier_data(make_sim, clock):
    sim, client = make_sim()
    header = {
        "AccountId": 1,
        "FullFile": False,
        "SupplierId": 7,
        "FieldsThatAreSet": ["ProductName"],
        "OnhandFieldsThatAreSet": ["Value"],
    }
    item = {
        "SupplierPartNo": "S-1",
        "ProductName": "Widget",
        "EanCode": "123",
        "OnHand": [{"WarehouseCode": "SUP", "LocationCode": "1", "Value": 5}],
    }
    job = _run(client, clock, SUPPLIER, [item], header)
    assert (job["StatusId"], job["Insert"]) == (2, 1)
    stored = sim.catalog.supplier_products[(7, "S-1")]
    assert stored["ProductName"] == "Widget" and "EanCode" not in stored
    assert stored["OnHand"][("SUP", "1")] == {"IsActive": True, "Value": 5}


# -- catalog seed and Query shapes ---------------------------------------------------------------------------
def test_seed_catalog_has_the_ids_the_example_dags_rely_on(make_sim):
    _, client = make_sim(products=2, customers=4)
    assert [(p["Agreement"], p["CurrencyId"]) for p in _rows(client, "Application/ClientPriceLists")] == [
        ("DEFAULT", 1)
    ]
    assert _rows(client, "Core/Currencies", "Code eq 'SEK'")[0]["Id"] == 1
    warehouse = _rows(client, "Application/ClientWarehouses")[0]
    assert (
        warehouse["Code"],
        warehouse["LocationCode"],
        warehouse["WarehouseId"],
        warehouse["LocationId"],
    ) == ("MAIN", "MAIN", 1, 1)
    stock = _stock(client, "100001")
    assert (stock["WarehouseId"], stock["LocationId"]) == (1, 1)
    customers = _rows(client, "Customers/Customers")
    assert [c["Updated"] is None for c in customers] == [False, False, False, True], (
        "never-updated rows: null"
    )


def test_onhand_set_name_is_an_option(make_sim):
    _, client = make_sim(onhand_set="Products/ClientProductSkuOnHands")
    assert client.query("Products/ClientProductSkuOnHands").status_code == 200
    assert client.query("Products/ProductSkuOnHands").status_code == 404


def test_a_product_without_variants_writes_nothing_and_says_so(make_sim, clock):
    _, client = make_sim(products=2)
    before = _rows(client, "Products/Products")
    job = _run(
        client,
        clock,
        PRODUCTS,
        [{"ManufacturerCode": "ACME", "Code": "P000001", "Alias": "x"}],
        PRODUCT_HEADER,
    )
    assert (job["StatusId"], job["Insert"], job["Updates"]) == (2, 0, 0)
    assert any(line["SeverityId"] == 2 and "no Variants" in line["Message"] for line in job["log"])
    assert _rows(client, "Products/Products") == before
