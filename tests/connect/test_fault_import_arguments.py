"""Issue 9, case 6 and the items_path part of case 9: a Connect import refuses bad arguments and items that
cannot be posted as JSON before anything is read or posted (requests-mock: every request is recorded)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re

import pytest
from norce_airflow_testlib import mock_connection_for_a_test, mock_token_endpoint

from airflow_provider_norce.operators.connect import NorceConnectImportOperator

BASE = "https://acme.api-se.norce.tech"
TOKEN_URL = f"{BASE}/identity/1.0/connect/token"
CONNECT = re.compile(re.escape(f"{BASE}/commerce/connect/4.0/") + ".*")
SECRET = "fault-import-client-secret"


@pytest.fixture(autouse=True)
def conn(monkeypatch):
    yield from mock_connection_for_a_test(monkeypatch, SECRET)


@pytest.fixture
def norce(requests_mock):
    mock_token_endpoint(requests_mock, "tok-import")
    jobs = iter(range(1000, 2000))
    requests_mock.post(CONNECT, json=lambda request, context: {"JobId": next(jobs)})
    requests_mock.get(CONNECT, json={"StatusId": 2, "IsFinished": True})  # Succeeded
    return requests_mock


def onhand(part_no: str, value: float = 5) -> dict:
    return {"PartNo": part_no, "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": value}


def make(**kwargs) -> NorceConnectImportOperator:
    kwargs.setdefault("import_method", "Product/ImportOnhands")
    kwargs.setdefault("connect_header", {"AccountId": 1})
    kwargs.setdefault("deferrable", False)
    if "items_path" not in kwargs:
        kwargs.setdefault("items", [onhand("100001"), onhand("100002")])
    return NorceConnectImportOperator(task_id="import_stock", **kwargs)


def refused_before_any_request(norce, op, match: str) -> str:
    with pytest.raises(ValueError, match=match) as err:
        op.execute({})
    assert norce.request_history == []
    message = str(err.value)
    assert "'import_stock'" in message and SECRET not in message
    return message


# -- case 6: arguments checked before the POST ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("wait_for_completion", "nope"),
        ("wait_for_completion", "maybe"),
        ("poll_interval", 0),
        ("poll_interval", "x"),
        ("poll_interval", float("nan")),
        ("poll_interval", float("inf")),
        ("timeout", 0),
        ("timeout", -5),
        ("timeout", "soon"),
        ("timeout", float("inf")),
        ("allow_validation_failures", "perhaps"),
        ("fail_on_row_errors", "sometimes"),
        ("skip_invalid_items", "2"),
        ("batch_size", "many"),
        ("batch_size", 0.5),
    ],
)
def test_bad_argument_is_refused_before_anything_is_posted(norce, argument, value):
    refused_before_any_request(norce, make(**{argument: value}), re.escape(argument))


def test_rendered_arguments_are_accepted(norce):
    job_ids = make(wait_for_completion="false", poll_interval="0.5", timeout="30", batch_size="1").execute({})
    assert job_ids == ["1000", "1001"]


# -- case 6: items that cannot be posted as JSON are refused before the first POST -------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (dt.datetime(2025, 1, 31, 12, 0), "datetime"),
        ({1, 2}, "set"),
        (b"raw", "bytes"),
        (decimal.Decimal("1.5"), "Decimal"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        ({"nested": [1, float("-inf")]}, "-inf"),
    ],
)
def test_item_that_is_not_json_is_refused_before_the_first_post(norce, value, shown):
    items = [onhand("100001"), {**onhand("100002"), "Note": value}]
    message = refused_before_any_request(norce, make(items=items, batch_size=1), r"item 2, field Note")
    assert shown in message and "nothing was posted" in message


def test_nan_in_a_known_number_field_is_refused(norce):
    items = [onhand("100001"), onhand("100002", float("nan"))]
    refused_before_any_request(norce, make(items=items, batch_size=1), r"item 2, field OnhandValue")


def test_key_that_is_not_text_is_refused(norce):
    items = [onhand("100001"), {**onhand("100002"), 5: "x"}]
    refused_before_any_request(norce, make(items=items, batch_size=1), r"item 2, field 5: the key 5 \(int\)")


def test_nan_in_an_items_file_is_refused(norce, tmp_path):
    path = tmp_path / "stock.jsonl"
    path.write_text(
        json.dumps(onhand("100001")) + "\n" + '{"PartNo":"100002","WarehouseCode":"MAIN",'
        '"LocationCode":"MAIN","OnhandValue":1,"Extra":NaN}\n'
    )
    refused_before_any_request(norce, make(items_path=str(path)), r"item 2 \(line 2\), field Extra: is nan")


def test_skip_invalid_items_leaves_an_unpostable_item_out(norce):
    items = [onhand("100001"), {**onhand("100002"), "When": dt.date(2025, 1, 1)}]
    job_ids = make(items=items, skip_invalid_items=True, wait_for_completion=False).execute({})
    assert job_ids == ["1000"]
    posts = [r for r in norce.request_history if r.method == "POST" and "connect/4.0" in r.url]
    assert [item["PartNo"] for item in json.loads(posts[0].body)] == ["100001"]


# -- case 9: items_path of the wrong kind ------------------------------------------------------------------


@pytest.mark.parametrize("path", [5, 1.5, ["a.json"], True, "", "   "])
def test_items_path_of_the_wrong_type_is_refused(norce, path):
    refused_before_any_request(norce, make(items_path=path), r"items_path")


def test_items_path_that_is_a_directory_is_refused(norce, tmp_path):
    refused_before_any_request(norce, make(items_path=str(tmp_path)), r"items_path .* is a directory")


def test_a_failing_token_endpoint_leaves_the_batch_free_to_post_again(requests_mock):
    """A 503 from the token endpoint means the import never left the worker: the batch is recorded as not
    posted, not as 'may have been received' (which would stop a retry from ever posting it)."""
    from norce_connect_support import DictStateStore

    from airflow_provider_norce.exceptions import NorceJobError

    requests_mock.post(TOKEN_URL, status_code=503, text="identity down")
    imports = requests_mock.post(CONNECT, json={"JobId": "1"})
    store = DictStateStore()
    with pytest.raises(
        NorceJobError, match="Nothing of this batch was imported; a retry posts it again"
    ) as err:
        make().execute({"task_state_store": store})
    assert imports.call_count == 0
    entry = store.get("norce_connect_batch_0")  # the in-flight marker, replaced: a retry posts it
    assert entry == {"not_posted": True, "sha256": entry["sha256"]}
    assert SECRET not in str(err.value)
