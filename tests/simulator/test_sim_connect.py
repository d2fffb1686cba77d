"""Connect mechanics: header and body checks, the import answer, job life on a fake clock, Job/Get and Job/GetLog."""

from __future__ import annotations

import json
import re

import pytest

ONHAND = "Product/ImportOnhands"
ONHAND_HEADER = {"AccountId": 1, "FullFile": False, "SkuOnhandFieldsThatAreSet": [3]}
STOCK_100001 = {"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 42}
#: .NET DateTime as Norce writes it in Job/Get and Job/GetLog: no zone designator
NO_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$")


def _stock(client, part_no: str) -> list[dict]:
    response = client.query("Products/ProductSkuOnHands", **{"$filter": f"PartNo eq '{part_no}'"})
    assert response.status_code == 200, response.text
    return response.json()["value"]


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (False, "missing"),
        ("", "missing"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"FullFile": False}, "AccountId"),
        ({"AccountId": "1", "FullFile": False}, "AccountId"),
        ({"AccountId": 1}, "FullFile"),
        ({"AccountId": 1, "FullFile": "false"}, "FullFile"),
        ({"AccountId": 1, "FullFile": False, "SerializationType": 1}, "SerializationType"),
        ({"AccountId": 1, "FullFile": False, "SkuOnhandFieldsThatAreSet": 3}, "list"),
        ({"AccountId": 1, "FullFile": False, "SkuOnhandFieldsThatAreSet": [3, "Nope", 99]}, "'Nope', 99"),
    ],
)
def test_bad_storm_connect_header_is_400_naming_the_problem(make_sim, header, needle):
    sim, client = make_sim()
    response = client.import_(ONHAND, [], header=header)
    assert response.status_code == 400
    message = response.json()["Message"]
    assert needle in message
    assert message.startswith(ONHAND), "the message names the method"
    assert sim.counters()["jobs_created"] == 0


@pytest.mark.parametrize("body", [b"{}", b'{"PartNo": "1"}', b"not json", b""])
def test_body_must_be_a_json_array(make_sim, body):
    _, client = make_sim()
    response = client.import_(ONHAND, body, header=ONHAND_HEADER)
    assert response.status_code == 400
    assert "JSON" in response.json()["Message"]


def test_unknown_import_method_is_404_and_get_is_405(make_sim):
    _, client = make_sim()
    missing = client.import_("Product/ImportSkus", [], header=ONHAND_HEADER)
    assert missing.status_code == 404
    assert "Supplier/ImportProducts" in missing.json()["Message"], "the 404 lists the 9 known methods"
    assert client.get("/commerce/connect/4.0/Product/ImportOnhands").status_code == 405


def test_import_answer_is_flat_with_a_string_job_id_and_a_validation_summary(make_sim):
    sim, client = make_sim()
    items = [
        STOCK_100001,
        {**STOCK_100001, "OnhandValue": "five"},
        {"WarehouseCode": "MAIN"},
        "not an object",
    ]
    response = client.import_(ONHAND, items, header=ONHAND_HEADER)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"StatusCode", "Description", "JobId", "ValidationSummary"}
    assert isinstance(body["JobId"], str) and body["JobId"].isdigit()
    summary = body["ValidationSummary"]
    assert (summary["NrOfItemsInTotal"], summary["NrOfValidationFailures"]) == (4, 3)
    messages = summary["Messages"]
    assert "Row 2: OnhandValue must be a number." in messages
    assert "Row 3: PartNo is required (Product/SkuOnhand)." in messages
    assert "Row 3: LocationCode is required (Product/SkuOnhand)." in messages
    assert any(m.startswith("Row 4:") for m in messages)
    assert sim.counters()["jobs_created"] == 1


def test_job_moves_queued_validating_initialized_succeeded_on_the_clock(make_sim, clock):
    _, client = make_sim(job_duration=8)
    job_id = client.import_(ONHAND, [STOCK_100001], header=ONHAND_HEADER).json()["JobId"]
    seen = []
    for step in range(4):
        if step:
            clock.advance(2)
        job = client.job(job_id)
        seen.append((job["StatusId"], job["IsFinished"]))
    assert seen == [(6, False), (5, False), (1, False), (1, False)]
    assert _stock(client, "100001")[0]["OnHandValue"] != 42, "not applied before the job ends"
    clock.advance(2)
    done = client.job(job_id)
    assert set(done) == {
        "JobId", "StatusId", "IsFinished", "Start", "Stop", "LastUpdated", "RunTime", "Totals", "Insert",
        "Updates", "Fail", "StorageName",
    }  # fmt: skip
    assert (done["JobId"], done["StatusId"], done["IsFinished"]) == (int(job_id), 2, True)
    assert (done["Totals"], done["Insert"], done["Updates"], done["Fail"]) == (1, 0, 1, 0)
    assert NO_ZONE.match(done["Start"]) and NO_ZONE.match(done["Stop"]), done
    assert done["LastUpdated"] == done["Stop"]
    assert done["RunTime"] == "00:00:06.0000000"
    assert _stock(client, "100001")[0]["OnHandValue"] == 42


@pytest.mark.parametrize(
    ("spelling", "keys"), [("Insert", {"Insert"}), ("Inserts", {"Inserts"}), ("both", {"Insert", "Inserts"})]
)
def test_insert_counter_spelling_is_an_option(make_sim, clock, spelling, keys):
    _, client = make_sim(job_insert_spelling=spelling)
    job_id = client.import_(ONHAND, [STOCK_100001], header=ONHAND_HEADER).json()["JobId"]
    clock.advance(1)
    assert {"Insert", "Inserts"} & set(client.job(job_id)) == keys


def test_job_log_starts_and_ends_with_the_published_lines(make_sim, clock):
    _, client = make_sim(job_duration=4)
    unknown = {**STOCK_100001, "PartNo": "NO-SUCH-SKU"}
    invalid = {"PartNo": "100001"}
    job_id = client.import_(ONHAND, [STOCK_100001, unknown, invalid], header=ONHAND_HEADER).json()["JobId"]
    assert client.job_log(job_id) == [], "nothing is written while the job is queued"
    clock.advance(1)
    assert [line["Message"] for line in client.job_log(job_id)] == ["Starting import."]
    clock.advance(3)
    log = client.job_log(job_id)
    assert client.job(job_id)["StatusId"] == 2, "records not imported do not fail the job"
    assert (log[0]["Message"], log[-1]["Message"]) == ("Starting import.", "Import finished.")
    assert all(set(line) == {"SeverityId", "Message", "TimeStamp", "ImportedRow"} for line in log)
    assert all(NO_ZONE.match(line["TimeStamp"]) for line in log)
    errors = [line for line in log if line["SeverityId"] == 3]
    assert [json.loads(line["ImportedRow"]) for line in errors] == [invalid, unknown]
    assert "Row 2: SKU 'NO-SUCH-SKU' does not exist" in errors[1]["Message"]
    assert client.job(job_id)["Fail"] == 2


def test_fail_prefixed_key_fails_the_whole_job_and_applies_nothing(make_sim, clock):
    _, client = make_sim()
    items = [{**STOCK_100001, "OnhandValue": 999}, {**STOCK_100001, "PartNo": "FAIL-1"}]
    job_id = client.import_(ONHAND, items, header=ONHAND_HEADER).json()["JobId"]
    clock.advance(1)
    job = client.job(job_id)
    assert (job["StatusId"], job["Fail"], job["Updates"]) == (3, 1, 0)
    assert any("FAIL-1" in line["Message"] for line in client.job_log(job_id) if line["SeverityId"] == 3)
    assert _stock(client, "100001")[0]["OnHandValue"] != 999


def test_every_item_invalid_is_validation_failed(make_sim, clock):
    _, client = make_sim()
    job_id = client.import_(ONHAND, [{"PartNo": "100001"}], header=ONHAND_HEADER).json()["JobId"]
    clock.advance(1)
    assert client.job(job_id)["StatusId"] == 4
    messages = [line["Message"] for line in client.job_log(job_id)]
    assert messages[-2:] == ["All 1 item(s) failed validation; nothing was imported.", "Import finished."]


def test_job_get_id_must_be_an_integer_and_known(make_sim):
    _, client = make_sim()
    assert client.get("/commerce/connect/4.0/Job/Get?id=abc").status_code == 400
    assert client.get("/commerce/connect/4.0/Job/Get?id=77").status_code == 404
    assert client.get("/commerce/connect/4.0/Job/GetLog?id=77").status_code == 404
