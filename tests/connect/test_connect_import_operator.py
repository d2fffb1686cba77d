"""NorceConnectImportOperator against the Norce simulator (real HTTP): posting, batching, waiting, failing."""

from __future__ import annotations

import json
import math

import pytest
from norce_connect_support import DictStateStore, imports, main_stock, onhand, sku_rows, use_simulator

from airflow_provider_norce.connect.jobs import IMPORT_METHODS
from airflow_provider_norce.exceptions import NorceJobError
from airflow_provider_norce.operators.connect import NorceConnectImportOperator

pytestmark = pytest.mark.norce_simulator(job_duration=0.2)


@pytest.fixture
def sim(norce_simulator, monkeypatch):
    use_simulator(monkeypatch, norce_simulator.sim)
    return norce_simulator.sim


def make(task_id: str = "import", **kwargs) -> NorceConnectImportOperator:
    kwargs.setdefault("import_method", "Product/ImportOnhands")
    kwargs.setdefault("connect_header", {"AccountId": 1})
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("deferrable", False)
    return NorceConnectImportOperator(task_id=task_id, **kwargs)


def test_items_list_posts_batches_and_waits(sim):
    items = [onhand(str(100001 + i), 500 + i) for i in range(7)]
    job_ids = make(items=items, batch_size=3).execute({"task_state_store": DictStateStore()})

    assert len(job_ids) == 3 and all(isinstance(j, str) for j in job_ids)
    assert imports(sim) == 3
    assert sim.counters()["jobs_created"] == 3
    rows = sku_rows(sim, **{"$expand": "OnHand"})
    for i in range(7):
        assert main_stock(rows, str(100001 + i)) == 500 + i


def test_onhand_import_without_a_mask_writes_its_stock(sim):
    """Issue 8: a stock import whose connect_header names no SkuOnhandFieldsThatAreSet used to "succeed" and
    write nothing; the operator now derives the mask from the items, so Norce writes the stock."""
    items = [onhand("100001", 41), {**onhand("100002", 42), "IncomingValue": 5}]
    job_ids = make(items=items, connect_header='{"AccountId": 3}').execute({})
    assert len(job_ids) == 1
    rows = sku_rows(sim, **{"$expand": "OnHand"})
    assert main_stock(rows, "100001") == 41 and main_stock(rows, "100002") == 42


@pytest.mark.parametrize("fmt", ["jsonl", "array"])
def test_file_items_ceil_batches_and_query_shows_data(sim, tmp_path, fmt):
    n, batch = 23, 5
    items = [
        {
            "ManufacturerCode": "ACME",
            "Cultures": [{"CultureCode": "sv-SE", "Name": f"Test product {i}"}],
            "Variants": [
                {
                    "ManufacturerPartNo": f"MPN-T{i:04d}",
                    "Skus": [{"PartNo": f"T-{i:04d}", "Status": "Active", "Type": 1}],
                }
            ],
        }
        for i in range(n)
    ]
    path = tmp_path / f"products.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(item) + "\n" for item in items))
    else:
        path.write_text("[\n" + ",\n".join(json.dumps(item, indent=1) for item in items) + "\n]")

    job_ids = make(import_method="Product/ImportProducts", items_path=str(path), batch_size=batch).execute(
        {"task_state_store": DictStateStore()}
    )

    assert len(job_ids) == math.ceil(n / batch) == imports(sim, "Product/ImportProducts")
    rows = sku_rows(sim)
    assert {f"T-{i:04d}" for i in range(n)} <= set(rows)
    assert rows["T-0007"]["StatusId"] == 1  # Status "Active", given by name, sent as Norce reads it


def test_object_storage_uri_is_read_too(sim, tmp_path):
    path = tmp_path / "onhands.jsonl"
    path.write_text("\n".join(json.dumps(onhand(str(100001 + i), 9)) for i in range(4)))
    job_ids = make(items_path=f"file://{path}", batch_size=2).execute({})
    assert len(job_ids) == 2


def test_full_file_larger_than_batch_is_refused_before_any_post(sim, tmp_path):
    path = tmp_path / "prices.jsonl"
    path.write_text("\n".join(json.dumps(onhand(str(100001 + i), 1)) for i in range(11)))
    op = make(items_path=str(path), batch_size=10, connect_header={"AccountId": 1, "FullFile": True})

    with pytest.raises(NorceJobError, match=r"FullFile is true .* 11 items, more than batch_size=10") as err:
        op.execute({})
    assert "nothing was posted" in str(err.value)
    assert imports(sim) == 0 and sim.counters()["jobs_created"] == 0


def test_full_file_of_no_items_is_refused(sim):
    with pytest.raises(NorceJobError, match="would deactivate every"):
        make(items=[], connect_header={"AccountId": 1, "FullFile": True}).execute({})
    assert imports(sim) == 0


def test_full_file_within_batch_is_one_job(sim):
    items = [onhand(str(100001 + i), 1) for i in range(10)]
    job_ids = make(items=items, batch_size=10, connect_header={"AccountId": 1, "FullFile": True}).execute({})
    assert len(job_ids) == 1 and imports(sim) == 1


def test_malformed_file_fails_before_any_post(sim, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(onhand("100001", 1)) + "\n" + '{"PartNo": "100002",\n')
    with pytest.raises(ValueError, match=r"line 2 is not valid JSON"):
        make(items_path=str(path), batch_size=1).execute({})
    assert imports(sim) == 0


def test_items_against_the_contract_fail_before_any_post(sim):
    items = [onhand("100001", 1), {"PartNo": "100002", "WarehouseCode": "MAIN", "OnhandValue": "lots"}]
    with pytest.raises(ValueError, match=r"item 2, field OnhandValue: must be a number"):
        make(items=items).execute({})
    assert imports(sim) == 0


# Norce's own validation answer (ValidationSummary, jobs ending Validation failed) cannot be provoked
# through the operator any more: the simulator follows the same contracts, and the operator never posts an
# item they refuse. test_connect_item_validation.py drives those answers with requests-mock instead.


def test_failing_job_fails_with_the_logs_error_lines(sim):
    items = [onhand("100001", 1), onhand("FAIL-42", 1)]
    with pytest.raises(NorceJobError) as err:
        make(items=items).execute({})
    text = str(err.value)
    assert "ended Failed" in text
    assert "Row 2: importing 'FAIL-42' failed" in text
    assert "no changes were applied" in text


def test_no_wait_returns_job_ids_at_once(sim):
    job_ids = make(items=[onhand("100001", 3)], wait_for_completion=False, poll_interval=999).execute({})
    assert len(job_ids) == 1
    assert sim.counters()["requests"].get("GET /commerce/connect/4.0/Job/Get", 0) == 0


def test_wait_timeout_is_a_clear_error(norce_simulator, monkeypatch):
    use_simulator(monkeypatch, norce_simulator.sim)
    norce_simulator.sim.connect.job_duration = 30.0
    with pytest.raises(NorceJobError, match=r"still running after 0.2 s; they keep running in Norce"):
        make(items=[onhand("100001", 3)], timeout=0.2).execute({})


def test_bad_input_errors_name_what_to_fix(sim):
    with pytest.raises(ValueError, match="lacks AccountId"):
        make(items=[onhand("100001", 1)], connect_header={"FullFile": False}).execute({})
    with pytest.raises(ValueError) as err:
        make(import_method="Product/ImportStock", items=[])
    assert all(m in str(err.value) for m in IMPORT_METHODS)
    with pytest.raises(ValueError, match="exactly one of items"):
        NorceConnectImportOperator(task_id="x", import_method="Product/ImportOnhands", connect_header={})
    with pytest.raises(ValueError, match="item 2 of items is a str"):
        make(items=[onhand("100001", 1), "oops"]).execute({})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make(items_path="/nonexistent/items.jsonl").execute({})
    assert imports(sim) == 0


def test_templated_fields_include_the_conn_id_and_init_does_no_io(sim):
    op = make(norce_conn_id="never_defined_anywhere", items=[onhand("100001", 1)])  # no look-up here
    assert {"norce_conn_id", "import_method", "items", "items_path", "connect_header"} <= set(
        op.template_fields
    )
    assert sim.counters()["requests"] == {}
