"""Connect: header and body validation, per-item validation, job life on a fake clock, logs, state in Query."""

from __future__ import annotations

import pytest

ONHAND = "Product/ImportOnhands"
PRICES = "Product/ImportSkuPriceLists"


def _sku(client, part_no: str) -> dict:
    response = client.query(f"Products/ProductSkus('{part_no}')", **{"$expand": "OnHand,PriceLists"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (False, "missing"),
        ("", "missing"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"FullFile": False}, "AccountId"),
        ({"AccountId": 1}, "FullFile"),
        ({"AccountId": "1", "FullFile": False}, "AccountId"),
        ({"AccountId": 1, "FullFile": "false"}, "FullFile"),
        ({"AccountId": 1, "FullFile": False, "SerializationType": 1}, "SerializationType"),
        ({"AccountId": 1, "FullFile": False, "SkuPriceListFieldsThatAreSet": ["a"]}, "FieldsThatAreSet"),
    ],
)
def test_bad_storm_connect_header_is_400_with_a_clear_message(make_sim, header, needle):
    sim, client = make_sim()
    response = client.import_(ONHAND, [], header=header)
    assert response.status_code == 400
    assert needle in response.json()["Message"]
    assert sim.counters()["jobs_created"] == 0


@pytest.mark.parametrize("body", [b"{}", b'{"PartNo": "1"}', b"not json", b""])
def test_body_must_be_a_json_array(make_sim, body):
    _, client = make_sim()
    response = client.import_(ONHAND, body)
    assert response.status_code == 400
    assert response.json()["Message"]


def test_unknown_import_method_is_404_and_get_is_405(make_sim):
    _, client = make_sim()
    assert client.import_("Product/ImportUnicorns", []).status_code == 404
    assert client.get("/commerce/connect/4.0/Product/ImportOnhands").status_code == 405


def test_import_answer_shape_and_per_item_validation(make_sim):
    sim, client = make_sim()
    items = [
        {"PartNo": "100001", "WarehouseCode": "MAIN", "OnhandValue": 5},
        {"PartNo": "100002", "WarehouseCode": "MAIN", "OnhandValue": "five"},
        {"WarehouseCode": "MAIN", "OnhandValue": 1},
        "not an object",
    ]
    response = client.import_(ONHAND, items)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"StatusCode", "Description", "JobId", "ValidationSummary"}
    assert isinstance(body["JobId"], str) and body["JobId"].isdigit()
    summary = body["ValidationSummary"]
    assert summary["NrOfItemsInTotal"] == 4
    assert summary["NrOfValidationFailures"] == 3
    assert any("Row 2" in m and "OnhandValue" in m for m in summary["Messages"])
    assert any("Row 3" in m and "PartNo" in m for m in summary["Messages"])
    assert any("Row 4" in m for m in summary["Messages"])
    assert sim.counters()["jobs_created"] == 1


@pytest.mark.parametrize(
    ("method", "item", "needle"),
    [
        ("Product/ImportProducts", {"Name": "x"}, "ManufacturerPartNo"),
        ("Product/ImportProducts", {"PartNo": "P", "Skus": [{"Name": "no part"}]}, "Skus"),
        (PRICES, {"PartNo": "100001"}, "PriceListCode"),
        (PRICES, {"PartNo": "100001", "PriceListCode": "DEFAULT", "PriceSale": "9"}, "PriceSale"),
        (PRICES, {"PartNo": "100001", "PriceListCode": "DEFAULT", "QuantityBreak": 0}, "QuantityBreak"),
        ("Product/ImportPriceLists", {"Name": "x"}, "Code"),
        ("Product/ImportRelations", {"PartNo": "100001"}, "RelatedPartNo"),
        ("Product/ImportCompetitorSkus", {"PartNo": "100001"}, "CompetitorCode"),
        ("Customer/ImportCustomers", {"Code": "C1", "Email": "nope"}, "Email"),
        ("Customer/ImportCompanies", {"Name": "ACME"}, "Code"),
        (ONHAND, {"PartNo": "100001", "WarehouseCode": "W", "OnhandValue": 1, "IsActive": "yes"}, "IsActive"),
    ],
)
def test_item_validation_rules(make_sim, method, item, needle):
    _, client = make_sim()
    summary = client.import_(method, [item]).json()["ValidationSummary"]
    assert summary["NrOfValidationFailures"] == 1
    assert any(needle in message for message in summary["Messages"])


def test_job_moves_queued_validating_initialized_succeeded_on_the_clock(make_sim, clock):
    _, client = make_sim(job_duration=8)
    job_id = client.import_(
        ONHAND, [{"PartNo": "100001", "WarehouseCode": "MAIN", "OnhandValue": 42}]
    ).json()["JobId"]
    seen = []
    for step in range(4):
        if step:
            clock.advance(2)
        job = client.job(job_id)
        seen.append((job["StatusId"], job["IsFinished"]))
    assert seen == [(6, False), (5, False), (1, False), (1, False)]
    assert _sku(client, "100001")["OnHand"][0]["OnhandValue"] != 42, "not applied before the job ends"
    clock.advance(2)
    done = client.job(job_id)
    assert done["StatusId"] == 2
    assert done["IsFinished"] is True
    assert done["JobId"] == int(job_id)
    assert done["Updates"] == 1 and done["Insert"] == 0 and done["Inserts"] == 0
    assert done["Fail"] == 0 and done["Totals"] == 1
    assert done["Start"] and done["Stop"] and done["LastUpdated"] == done["Stop"]
    assert done["RunTime"] == "00:00:06.0000000"
    assert set(done) >= {"JobId", "StatusId", "IsFinished", "Start", "Stop", "LastUpdated", "RunTime"}
    assert set(done) >= {"Insert", "Inserts", "Updates", "Fail", "Totals", "StorageName"}
    assert _sku(client, "100001")["OnHand"][0]["OnhandValue"] == 42


def test_queued_job_has_no_start_and_storage_name_is_echoed(make_sim, clock):
    _, client = make_sim(job_duration=4)
    header = {"AccountId": 1, "FullFile": False, "StorageName": "nightly"}
    job_id = client.import_(ONHAND, [], header=header).json()["JobId"]
    job = client.job(job_id)
    assert job["StatusId"] == 6
    assert job["Start"] is None and job["Stop"] is None and job["RunTime"] is None
    assert job["StorageName"] == "nightly"
    clock.advance(4)
    assert client.job(job_id)["StatusId"] == 2, "an empty import succeeds"


def test_fail_prefix_fails_the_job_with_error_lines_and_applies_nothing(make_sim, clock):
    _, client = make_sim(job_duration=1)
    items = [
        {"PartNo": "100001", "WarehouseCode": "MAIN", "OnhandValue": 999},
        {"PartNo": "FAIL-1", "WarehouseCode": "MAIN", "OnhandValue": 1},
    ]
    job_id = client.import_(ONHAND, items).json()["JobId"]
    clock.advance(1)
    job = client.job(job_id)
    assert job["StatusId"] == 3
    assert job["IsFinished"] is True
    assert job["Fail"] == 1
    log = client.job_log(job_id)
    errors = [line for line in log if line["SeverityId"] == 3]
    assert any(line["ImportedRow"] == 2 and "FAIL-1" in line["Message"] for line in errors)
    assert _sku(client, "100001")["OnHand"][0]["OnhandValue"] != 999


def test_all_items_invalid_gives_validation_failed(make_sim, clock):
    _, client = make_sim(job_duration=1)
    job_id = client.import_(ONHAND, [{"PartNo": "x"}, {}]).json()["JobId"]
    clock.advance(1)
    job = client.job(job_id)
    assert job["StatusId"] == 4
    assert job["Fail"] == 2
    log = client.job_log(job_id)
    assert [line["ImportedRow"] for line in log if line["SeverityId"] == 2] == [1, 1, 2, 2, 2]
    assert log[-1]["SeverityId"] == 3


def test_log_grows_with_the_job_and_has_the_documented_shape(make_sim, clock):
    _, client = make_sim(job_duration=10)
    job_id = client.import_(ONHAND, [{"PartNo": "100001", "WarehouseCode": "MAIN", "OnhandValue": 3}]).json()[
        "JobId"
    ]
    early = client.job_log(job_id)
    assert len(early) == 1 and early[0]["SeverityId"] == 1
    assert set(early[0]) == {"SeverityId", "Message", "TimeStamp", "ImportedRow"}
    clock.advance(10)
    late = client.job_log(job_id)
    assert len(late) == 2
    assert "inserted 0, updated 1" in late[-1]["Message"]


def test_unknown_or_bad_job_id(make_sim):
    _, client = make_sim()
    assert client.get("/commerce/connect/4.0/Job/Get?id=424242").status_code == 404
    assert client.get("/commerce/connect/4.0/Job/GetLog?id=424242").status_code == 404
    assert client.get("/commerce/connect/4.0/Job/Get?id=abc").status_code == 400
    assert client.get("/commerce/connect/4.0/Job/Get").status_code == 400


def test_job_ids_are_distinct_per_import(make_sim):
    _, client = make_sim()
    ids = {client.import_(ONHAND, []).json()["JobId"] for _ in range(5)}
    assert len(ids) == 5


def test_prices_products_and_unknown_skus(make_sim, clock):
    _, client = make_sim(job_duration=0)
    client.import_("Product/ImportPriceLists", [{"Code": "B2B", "Name": "Business", "CurrencyCode": "EUR"}])
    prices = [
        {"PartNo": "100001", "PriceListCode": "B2B", "PriceSale": 10.5},
        {"PartNo": "100001", "PriceListCode": "NOPE", "PriceSale": 1},
        {"PartNo": "999999", "PriceListCode": "B2B", "PriceSale": 1},
    ]
    job_id = client.import_(PRICES, prices).json()["JobId"]
    job = client.job(job_id)
    assert (job["StatusId"], job["Insert"], job["Fail"]) == (2, 1, 2)
    assert sum(1 for line in client.job_log(job_id) if line["SeverityId"] == 2) == 2
    b2b = [p for p in _sku(client, "100001")["PriceLists"] if p["PriceListCode"] == "B2B"]
    assert b2b == [{**b2b[0], "PriceSale": 10.5, "CurrencyCode": "EUR", "IsActive": True}]
    product = {
        "ManufacturerPartNo": "NEW-1",
        "Name": "New",
        "Skus": [{"PartNo": "NEW-1-A"}, {"PartNo": "NEW-1-B"}],
    }
    assert client.job(client.import_("Product/ImportProducts", [product]).json()["JobId"])["Insert"] == 1
    new_skus = client.query("Products/ProductSkus", **{"$filter": "ManufacturerPartNo eq 'NEW-1'"}).json()[
        "value"
    ]
    assert [s["PartNo"] for s in new_skus] == ["NEW-1-A", "NEW-1-B"]


def test_full_file_onhands_deactivates_stock_rows_not_named(make_sim, clock):
    _, client = make_sim(products=5, job_duration=1)
    header = {"AccountId": 1, "FullFile": True}
    job_id = client.import_(
        ONHAND, [{"PartNo": "100001", "WarehouseCode": "MAIN", "OnhandValue": 7}], header=header
    )
    clock.advance(1)
    assert client.job(job_id.json()["JobId"])["StatusId"] == 2
    skus = client.query("Products/ProductSkus", **{"$expand": "OnHand"}).json()["value"]
    active = {s["PartNo"]: s["OnHand"][0]["IsActive"] for s in skus}
    assert active["100001"] is True
    assert len(active) > 1 and not any(v for k, v in active.items() if k != "100001")
    still_active = client.query(
        "Products/ProductSkus", **{"$expand": "OnHand($filter=IsActive eq true)"}
    ).json()
    assert sum(len(s["OnHand"]) for s in still_active["value"]) == 1


def test_full_file_products_and_customers_deactivate_the_rest(make_sim, clock):
    _, client = make_sim(products=4, customers=3, job_duration=0)
    header = {"AccountId": 1, "FullFile": True}
    client.import_("Product/ImportProducts", [{"ManufacturerPartNo": "MPN-000002"}], header=header)
    products = client.query("Products/Products", **{"$filter": "IsActive eq true"}).json()["value"]
    assert [p["ManufacturerPartNo"] for p in products] == ["MPN-000002"]
    inactive_skus = client.query("Products/ProductSkus", **{"$filter": "IsActive eq false"}).json()["value"]
    assert inactive_skus and all(s["ManufacturerPartNo"] != "MPN-000002" for s in inactive_skus)
    client.import_("Customer/ImportCustomers", [{"Code": "NEWC", "Email": "a@b.c"}], header=header)
    customers = client.query("Customers/Customers", **{"$filter": "IsActive eq true"}).json()["value"]
    assert [(c["Code"], c["Email"]) for c in customers] == [("NEWC", "a@b.c")]


def test_partial_file_keeps_the_rest_active(make_sim):
    _, client = make_sim(products=4, job_duration=0)
    client.import_("Product/ImportProducts", [{"ManufacturerPartNo": "MPN-000002", "Name": "Renamed"}])
    products = client.query("Products/Products", **{"$filter": "IsActive eq true"}).json()["value"]
    assert len(products) == 4
    assert [p["Name"] for p in products if p["ManufacturerPartNo"] == "MPN-000002"] == ["Renamed"]


def test_companies_relations_and_competitor_skus_are_accepted(make_sim):
    _, client = make_sim(job_duration=0)
    company = client.import_("Customer/ImportCompanies", [{"Code": "ACME", "Name": "Acme"}]).json()
    assert client.job(company["JobId"])["Insert"] == 1
    assert client.query("Customers/Companies").json()["value"][0]["Name"] == "Acme"
    relation = client.import_(
        "Product/ImportRelations", [{"PartNo": "100001", "RelatedPartNo": "100002"}]
    ).json()
    assert client.job(relation["JobId"])["StatusId"] == 2
    competitor = client.import_("Product/ImportCompetitorSkus", [{"PartNo": "100001", "CompetitorCode": "X"}])
    assert client.job(competitor.json()["JobId"])["Insert"] == 1


def test_chunked_upload_is_read(make_sim):
    _, client = make_sim(job_duration=0)

    def chunks():
        yield b'[{"PartNo": "100001", '
        yield b'"WarehouseCode": "MAIN", "OnhandValue": 11}]'

    response = client.import_(ONHAND, chunks())
    assert response.status_code == 200, response.text
    assert response.json()["ValidationSummary"]["NrOfValidationFailures"] == 0
