"""The lineage naming rules, and what each operator reports: no Norce request, no Airflow run."""

from __future__ import annotations

import json
import os

import pytest
from airflow.models.connection import Connection

from airflow_provider_norce.connection import NorceConnectionConfig
from airflow_provider_norce.lineage import (
    call_dataset,
    connect_dataset_name,
    file_dataset,
    norce_namespace,
    query_dataset_name,
)

SECRET = "lineage-test-secret-5d1c"


def namespace_of(host: str | None, **extra: object) -> str:
    conn = Connection(
        conn_id="norce_lineage",
        conn_type="norce",
        host=host,
        login="client-7",
        password=SECRET,
        extra=json.dumps(extra),
    )
    return norce_namespace(conn.host, NorceConnectionConfig.from_connection(conn))


@pytest.mark.parametrize(
    ("host", "extra", "expected"),
    [
        ("Acme", {}, "norce://acme.production"),
        ("acme", {"environment": "stage"}, "norce://acme.stage"),
        ("acme", {"environment": "playground", "region": "no"}, "norce://acme.playground"),
        # a whole Norce base URL in the host field names its client
        ("https://acme.api-se.stage.norce.tech", {"environment": "stage"}, "norce://acme.stage"),
        # the simulator, both ways it is configured: the host field names the tenant, never the port
        ("http://127.0.0.1:8765", {}, "norce://127.0.0.1.production"),
        ("127.0.0.1", {"base_url": "http://127.0.0.1:8765"}, "norce://127.0.0.1.production"),
        # a base_url override keeps the tenant of the host field
        ("acme", {"base_url": "http://127.0.0.1:9"}, "norce://acme.production"),
        # Storm: stage and playground are one environment, lab; its shared hosts name no tenant
        ("acme", {"platform": "storm", "environment": "stage"}, "norce://acme.lab"),
        (None, {"platform": "storm", "environment": "playground"}, "norce://client-7.lab"),
        (None, {"platform": "storm"}, "norce://client-7.production"),
        (
            "https://connect.storm.io/4.0/api/",
            {"platform": "storm"},
            "norce://client-7.production",
        ),
    ],
)
def test_norce_namespace(host, extra, expected):
    assert namespace_of(host, **extra) == expected


def test_dataset_names_of_entity_sets_and_import_methods():
    assert query_dataset_name("/Orders/Orders") == "query/Orders/Orders"
    assert connect_dataset_name("Product/ImportOnhands") == "connect/Product/ImportOnhands"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("commerce/query/2.0/Application/ClientPriceLists", "query/Application/ClientPriceLists"),
        ("/commerce/connect/4.0/Product/ImportOnhands?x=1", "connect/Product/ImportOnhands"),
        ("https://acme.api-se.norce.tech/commerce/metadata/1.1/GetApplication", "metadata/GetApplication"),
        ("Query/2.0/Orders/Orders", "query/Orders/Orders"),  # Storm's Query
        ("https://connect.storm.io/4.0/api/Product/ImportOnhands", "connect/Product/ImportOnhands"),
        ("GetApplication", None),
        ("commerce/query", None),
    ],
)
def test_call_dataset(endpoint, expected):
    assert call_dataset(endpoint) == expected


def test_file_datasets_follow_the_naming_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert file_dataset("exports/o.jsonl") == ("file", str(tmp_path / "exports" / "o.jsonl"))
    assert file_dataset(tmp_path / "o.jsonl") == ("file", str(tmp_path / "o.jsonl"))
    assert file_dataset("file:///data/o.jsonl") == ("file", "/data/o.jsonl")
    assert file_dataset("file://nas1/data/o.jsonl") == ("file://nas1", "/data/o.jsonl")
    # the connection id of an Airflow object-storage URI names credentials, not data
    assert file_dataset("s3://aws_default@bucket/orders/o.jsonl") == ("s3://bucket", "orders/o.jsonl")
    assert file_dataset("gcs://bucket/o.jsonl") == ("gs://bucket", "o.jsonl")


def test_object_storage_paths_are_named_like_their_uri():
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    path = ObjectStoragePath("s3://aws_default@bucket/orders/o.jsonl")
    assert file_dataset(path) == ("s3://bucket", "orders/o.jsonl")


URI_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"  # an AWS-shaped secret key: it holds '/'


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"s3://AKIAEXAMPLE:{URI_SECRET}@bucket/key", ("s3://bucket", "key")),
        (f"s3://AKIAEXAMPLE:{URI_SECRET}@bucket/orders/o.jsonl", ("s3://bucket", "orders/o.jsonl")),
        (f"s3a://AKIAEXAMPLE:{URI_SECRET}@bucket", ("s3://bucket", "")),
        (f"gcs://user:{URI_SECRET}@bucket/o.jsonl?x=1", ("gs://bucket", "o.jsonl")),
        (f"abfs://user:{URI_SECRET.replace('/', '%2F')}@container/o.jsonl", ("abfs://container", "o.jsonl")),
        (f"s3://user:{URI_SECRET}?k#f@bucket/k", ("s3://bucket", "k")),
        (f"file://user:{URI_SECRET}@nas1/data/o.jsonl", ("file://nas1", "/data/o.jsonl")),
        (
            "s3://bucket/orders/by@mail.jsonl",
            ("s3://bucket", "orders/by@mail.jsonl"),
        ),  # an '@' in a key stays
        (
            "hdfs://namenode:8020/data/o.jsonl",
            ("hdfs://namenode:8020", "data/o.jsonl"),
        ),  # a port is not a secret
    ],
)
def test_file_datasets_never_carry_userinfo(uri, expected):
    namespace, name = file_dataset(uri)
    assert (namespace, name) == expected
    for part in [*URI_SECRET.split("/"), "AKIAEXAMPLE", "user:"]:
        assert part not in namespace and part not in name


@pytest.mark.parametrize(
    "uri",
    [
        f"s3://AKIAEXAMPLE:{URI_SECRET}@bucket/a@b.jsonl",  # which '@' ends the password?
        "s3://AKIAEXAMPLE:1234/secret@bucket/key",  # a port, or a password that starts with digits?
        f"s3://AKIAEXAMPLE:sec@ret/{URI_SECRET}@bucket/key",
    ],
)
def test_credentials_that_cannot_be_separated_are_refused_without_naming_them(uri):
    from airflow_provider_norce.redaction import UnseparableCredentials

    with pytest.raises(UnseparableCredentials) as info:
        file_dataset(uri)
    for part in [*URI_SECRET.split("/"), "AKIAEXAMPLE", "1234", "secret"]:
        assert part not in str(info.value)


# -- what the operators report (OpenLineage provider installed; the connection is read, never called) --


#: what the provider hands to ``get_openlineage_facets_on_complete``; the operators read their own result
TASK_INSTANCE = object()


@pytest.fixture
def acme(monkeypatch):
    conn = {"conn_type": "norce", "host": "acme", "login": "client-1", "password": SECRET}
    conn["extra"] = {"environment": "stage"}
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(conn))


def as_json(lineage) -> dict:
    from openlineage.client.serde import Serde

    text = json.dumps(
        {
            "inputs": [Serde.to_dict(d) for d in lineage.inputs],
            "outputs": [Serde.to_dict(d) for d in lineage.outputs],
            "run": {k: Serde.to_dict(v) for k, v in lineage.run_facets.items()},
        }
    )
    assert SECRET not in text
    return json.loads(text)


def test_export_reports_the_entity_set_and_the_file(acme, tmp_path):
    from airflow_provider_norce.operators.query import NorceQueryExportOperator

    target = tmp_path / "orders.jsonl"
    target.write_text('{"Id": 1}\n{"Id": 2}\n')
    op = NorceQueryExportOperator(
        task_id="export", entity="Orders/Orders", destination=str(target), select="Id, Updated"
    )
    start = as_json(op.get_openlineage_facets_on_start())
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [
        ("norce://acme.stage", "query/Orders/Orders")
    ]
    assert [(d["namespace"], d["name"]) for d in start["outputs"]] == [("file", str(target))]
    assert [f["name"] for f in start["outputs"][0]["facets"]["schema"]["fields"]] == ["Id", "Updated"]
    assert start["outputs"][0].get("outputFacets", {}) == {}

    op._exported = {"path": str(target), "rows": 2, "pages": 1}  # as execute() keeps it
    done = as_json(op.get_openlineage_facets_on_complete(TASK_INSTANCE))
    statistics = done["outputs"][0]["outputFacets"]["outputStatistics"]
    assert (statistics["rowCount"], statistics["size"]) == (2, os.path.getsize(target))


def test_import_reports_the_file_the_method_and_the_jobs(acme):
    from airflow_provider_norce.operators.connect import NorceConnectImportOperator

    op = NorceConnectImportOperator(
        task_id="load",
        import_method="Product/ImportOnhands",
        items_path="s3://aws_default@feeds/onhands.jsonl",
        connect_header={"AccountId": 1},
    )
    start = as_json(op.get_openlineage_facets_on_start())
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [("s3://feeds", "onhands.jsonl")]
    assert [(d["namespace"], d["name"]) for d in start["outputs"]] == [
        ("norce://acme.stage", "connect/Product/ImportOnhands")
    ]
    assert start["run"] == {}
    summary = {"jobs": {"11": {"inserts": 3, "updates": 4}, "12": {"inserts": None, "updates": 5}}}
    op._posted_job_ids, op._jobs_summary = ["11", "12"], summary  # as the finished import keeps them
    done = as_json(op.get_openlineage_facets_on_complete(TASK_INSTANCE))
    assert done["run"]["externalQuery"]["externalQueryId"] == "11,12"
    assert done["run"]["externalQuery"]["source"] == "norce://acme.stage"
    assert done["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 12


def test_import_of_in_memory_items_reports_only_norce(acme):
    from airflow_provider_norce.operators.connect import NorceConnectImportOperator

    op = NorceConnectImportOperator(
        task_id="load",
        import_method="Product/ImportOnhands",
        items=[{"PartNo": "A", "WarehouseCode": "W", "LocationCode": "L"}],
        connect_header={"AccountId": 1},
    )
    lineage = as_json(op.get_openlineage_facets_on_start())
    assert lineage["inputs"] == []
    assert [d["name"] for d in lineage["outputs"]] == ["connect/Product/ImportOnhands"]


def test_single_call_reports_what_it_reads_or_writes(acme):
    from airflow_provider_norce.operators.norce import NorceOperator

    read = NorceOperator(task_id="find", endpoint="commerce/query/2.0/Application/ClientPriceLists")
    lineage = as_json(read.get_openlineage_facets_on_start())
    assert [(d["namespace"], d["name"]) for d in lineage["inputs"]] == [
        ("norce://acme.stage", "query/Application/ClientPriceLists")
    ]
    assert lineage["outputs"] == []
    post = NorceOperator(task_id="post", endpoint="commerce/connect/4.0/Product/ImportOnhands", method="POST")
    assert [d["name"] for d in as_json(post.get_openlineage_facets_on_start())["outputs"]] == [
        "connect/Product/ImportOnhands"
    ]
    other = NorceOperator(task_id="other", endpoint="GetApplication")
    assert as_json(other.get_openlineage_facets_on_start()) == {"inputs": [], "outputs": [], "run": {}}


def test_an_items_path_with_unseparable_credentials_is_left_out_with_a_warning(acme, caplog):
    import logging

    from airflow_provider_norce.operators.connect import NorceConnectImportOperator

    op = NorceConnectImportOperator(
        task_id="load",
        import_method="Product/ImportOnhands",
        items_path=f"s3://AKIAEXAMPLE:{URI_SECRET}@feeds/on@hands.jsonl",
        connect_header={"AccountId": 1},
    )
    with caplog.at_level(logging.WARNING, logger="airflow_provider_norce.lineage"):
        start = as_json(op.get_openlineage_facets_on_start())
    assert start["inputs"] == []
    assert [(d["namespace"], d["name"]) for d in start["outputs"]] == [
        ("norce://acme.stage", "connect/Product/ImportOnhands")
    ]
    assert "left out of the lineage" in caplog.text and "'load'" in caplog.text
    for part in [*URI_SECRET.split("/"), "AKIAEXAMPLE"]:
        assert part not in caplog.text
