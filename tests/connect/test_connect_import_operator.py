"""NorceConnectImportOperator against the Norce simulator (real HTTP): posting, batching, waiting, failing."""

from __future__ import annotations

import json
import math

import pytest
from norce_connect_support import DictStateStore, imports, onhand, sku_rows, use_simulator

from airflow_provider_norce.exceptions import NorceJobError
from airflow_provider_norce.jobs import IMPORT_METHODS
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
        onhand_main = [o for o in rows[str(100001 + i)]["OnHand"] if o["WarehouseCode"] == "MAIN"]
        assert onhand_main[0]["OnhandValue"] == 500 + i


def test_header_is_one_line_json_with_fullfile_false_added(sim):
    from airflow_provider_norce.operators.connect import build_connect_header

    header, full = build_connect_header({"AccountId": "7", "SkuPriceListFieldsThatAreSet": [3, 6]}, "t")
    assert "\n" not in header and full is False
    assert json.loads(header) == {"AccountId": 7, "SkuPriceListFieldsThatAreSet": [3, 6], "FullFile": False}
    # the simulator (which requires both fields) takes it
    assert make(items=[onhand("100001", 1)], connect_header='{"AccountId": 3}').execute({})


@pytest.mark.parametrize("fmt", ["jsonl", "array"])
def test_file_items_ceil_batches_and_query_shows_data(sim, tmp_path, fmt):
    n, batch = 23, 5
    items = [
        {
            "ManufacturerPartNo": f"MPN-T{i:04d}",
            "Name": f"Test product {i}",
            "Skus": [{"PartNo": f"T-{i:04d}"}],
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
    assert rows["T-0007"]["ManufacturerPartNo"] == "MPN-T0007"


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


def test_validation_failures_fail_the_task_with_messages(sim):
    items = [onhand("100001", 1), {"PartNo": "100002", "WarehouseCode": "MAIN", "OnhandValue": "lots"}]
    with pytest.raises(NorceJobError, match=r"refused 1 item\(s\) in validation .*Row 2: OnhandValue"):
        make(items=items).execute({})


def test_validation_failures_allowed(sim):
    items = [onhand("100001", 77), {"PartNo": "100002", "WarehouseCode": "MAIN"}]
    job_ids = make(items=items, allow_validation_failures=True).execute({})
    assert len(job_ids) == 1
    assert sim.connect.job_status(int(job_ids[0]))["StatusId"] == 2


def test_failing_job_fails_with_the_logs_error_lines(sim):
    items = [onhand("100001", 1), {"PartNo": "FAIL-42", "WarehouseCode": "MAIN", "OnhandValue": 1}]
    with pytest.raises(NorceJobError) as err:
        make(items=items).execute({})
    text = str(err.value)
    assert "ended Failed" in text
    assert "Row 2: importing 'FAIL-42' failed" in text
    assert "no changes were applied" in text


def test_validation_failed_job_fails_unless_allowed(sim):
    bad = [{"PartNo": "100001"}]  # every item invalid: the job ends Validation failed (4)
    with pytest.raises(NorceJobError, match=r"refused 1 item\(s\) in validation"):
        make(items=bad, allow_validation_failures=False).execute({})
    job_ids = make(items=bad, allow_validation_failures=True).execute({})
    assert sim.connect.job_status(int(job_ids[0]))["StatusId"] == 4


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
