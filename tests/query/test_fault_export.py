"""Issue 9, cases 1 and 9 (operator part): hostile @odata.nextLinks and bad export arguments, on the wire.

A Norce that answers with a nextLink leading back to a page already read must fail the listing within one
page, naming the connection, the entity set and the link; the export must leave no file and no temp file.
Bad arguments are refused before any request is sent.
"""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest
from norce_airflow_testlib import mock_connection_for_a_test, mock_token_endpoint

from airflow_provider_norce.exceptions import NorceAPIError
from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.operators.query import NorceQueryExportOperator

BASE = "https://acme.api-se.norce.tech"
QUERY = f"{BASE}/commerce/query/2.0/"
ORDERS = f"{QUERY}Orders/Orders"
SECRET = "fault-export-client-secret"
ACCESS_TOKEN = "fault-export-access-token"
UTC = dt.timezone.utc
CONTEXT = {
    "data_interval_start": dt.datetime(2026, 11, 19, tzinfo=UTC),
    "data_interval_end": dt.datetime(2026, 11, 20, tzinfo=UTC),
    "logical_date": dt.datetime(2026, 11, 20, tzinfo=UTC),
    "dag": None,
}


@pytest.fixture(autouse=True)
def conn(monkeypatch):
    yield from mock_connection_for_a_test(monkeypatch, SECRET)


@pytest.fixture
def norce(requests_mock):
    return mock_token_endpoint(requests_mock, ACCESS_TOKEN)


def listing(mock, *pages: dict, limit: int = 12) -> None:
    """Serve ``pages`` in turn (the last one again and again), failing the test if the client keeps
    following: before the fix the loop never ended."""
    served = iter(range(limit + 1))

    def answer(request, context):
        number = next(served, limit)
        if number >= limit:
            raise AssertionError(f"the client followed the nextLink loop {limit} times")
        return pages[min(number, len(pages) - 1)]

    mock.get(ORDERS, json=answer)


def rows(start: int, n: int) -> list[dict]:
    return [{"Id": i, "Updated": "2026-11-19T01:00:00Z"} for i in range(start, start + n)]


def page_gets(mock) -> list[str]:
    return [r.url for r in mock.request_history if r.method == "GET"]


def assert_no_secret(text: str) -> None:
    assert SECRET not in text and ACCESS_TOKEN not in text


# -- case 1: nextLinks that loop -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        pytest.param(f"{ORDERS}?$skip=0&$top=2", id="absolute-self"),
        pytest.param("Orders?$top=2&$skip=0", id="relative-self-reordered"),
        pytest.param(f"{ORDERS}?%24top=2&%24skip=0", id="encoded-self"),
        pytest.param(
            "https://ACME.api-se.norce.tech/commerce/query/2.0/Orders/Orders?$skip=0&$top=2", id="host-case"
        ),
    ],
)
def test_next_link_to_itself_fails_within_one_page(norce, link):
    listing(norce, {"value": rows(1, 2), "@odata.nextLink": link})
    hook = NorceHook()
    with pytest.raises(NorceAPIError) as err:
        list(hook.paginate(ORDERS, params={"$skip": "0", "$top": "2"}))
    message = str(err.value)
    assert "'norce_default'" in message and "Orders/Orders" in message
    assert "leads back to a page already read" in message and "$skip=0" in message
    assert_no_secret(message)
    assert len(page_gets(norce)) == 1


def test_next_link_a_b_a_fails_before_reading_a_again(norce):
    listing(
        norce,
        {"value": rows(1, 2), "@odata.nextLink": f"{ORDERS}?$skip=2"},
        {"value": rows(3, 2), "@odata.nextLink": f"{ORDERS}?$skip=0"},
        {"value": rows(1, 2), "@odata.nextLink": f"{ORDERS}?$skip=2"},
        {"value": rows(3, 2), "@odata.nextLink": f"{ORDERS}?$skip=0"},
    )
    seen: list[int] = []
    with pytest.raises(NorceAPIError, match=r"leads back to a page already read .*\$skip=0"):
        for page in NorceHook().paginate_pages(ORDERS, params={"$skip": "0"}):
            seen += [row["Id"] for row in page]
    assert seen == [1, 2]  # page B (which links back) is not handed on either: no duplicate ever
    assert len(page_gets(norce)) == 2


def test_empty_pages_linking_to_themselves_stop(norce):
    listing(norce, {"value": [], "@odata.nextLink": f"{ORDERS}?$skiptoken=abc"})
    with pytest.raises(NorceAPIError, match="leads back to a page already read"):
        list(NorceHook().paginate(ORDERS))
    assert len(page_gets(norce)) == 2  # the first page, then the self-linking one once


def test_a_long_listing_of_distinct_links_is_followed(norce):
    pages = [
        {"json": {"value": rows(i * 2, 2), "@odata.nextLink": f"{ORDERS}?$skip={(i + 1) * 2}"}}
        for i in range(49)
    ]
    pages.append({"json": {"value": rows(98, 2)}})
    norce.get(ORDERS, pages)
    assert [row["Id"] for row in NorceHook().paginate(ORDERS)] == list(range(100))


@pytest.mark.parametrize("link", [5, ["x"], {"a": 1}, True])
def test_next_link_that_is_not_a_string_is_a_clear_error(norce, link):
    norce.get(ORDERS, json={"value": rows(1, 2), "@odata.nextLink": link})
    with pytest.raises(NorceAPIError, match=r"'norce_default'.*Orders/Orders.*nextLink that is not a link"):
        list(NorceHook().paginate(ORDERS))


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example.com/commerce/query/2.0/Orders/Orders?$skip=2",
        "http://acme.api-se.norce.tech/commerce/query/2.0/Orders/Orders?$skip=2",
        "https://acme.api-se.norce.tech:8443/commerce/query/2.0/Orders/Orders?$skip=2",
        "//evil.example.com/x",
    ],
)
def test_next_link_to_another_origin_is_not_followed_and_gets_no_token(norce, link):
    norce.get(ORDERS, json={"value": rows(1, 2), "@odata.nextLink": link})
    with pytest.raises(NorceAPIError, match=r"'norce_default'.*Orders/Orders.*another host, port or scheme"):
        list(NorceHook().paginate(ORDERS))
    assert page_gets(norce) == [ORDERS]


# -- case 1 through the export operator: the task fails, no file is left -----------------------------


def exporter(destination, **kwargs) -> NorceQueryExportOperator:
    kwargs.setdefault("window_field", None)
    kwargs.setdefault("filter_application", False)
    return NorceQueryExportOperator(task_id="export_orders", destination=destination, **kwargs)


@pytest.mark.parametrize(
    ("concurrency", "gets"),
    [
        # keyset pages: the second keyset page answers keys already read (this server ignores the keyset
        # filter), so the export falls back to the nextLink, whose loop is refused before a page is written
        # twice: first page, keyset page, keyset page again, then the nextLink pages 1 and 2
        (1, 5),
        # key ranges: the last-key read answers 500 rows ($top ignored): fallback, then the same refusal
        (8, 4),
    ],
    ids=["sequential", "sliced"],
)
@pytest.mark.parametrize("previous", [None, '{"Id":0}\n'])
def test_export_of_a_looping_listing_fails_and_leaves_the_previous_file(
    norce, tmp_path, previous, concurrency, gets
):
    destination = tmp_path / "orders.jsonl"
    if previous is not None:
        destination.write_text(previous)
    listing(
        norce,
        {"value": rows(1, 500), "@odata.nextLink": f"{ORDERS}?$skip=500"},
        {"value": rows(501, 500), "@odata.nextLink": f"{ORDERS}?$skip=500"},
    )
    with pytest.raises(NorceAPIError, match=r"Orders/Orders.*leads back to a page already read .*skip=500"):
        exporter(str(destination), max_concurrency=concurrency).execute(CONTEXT)
    assert len(page_gets(norce)) == gets
    assert os.listdir(tmp_path) == ([] if previous is None else ["orders.jsonl"])
    if previous is not None:
        assert destination.read_text() == previous


# -- case 9, operator part: bad export arguments are refused before any request ------------------------


def refused_before_any_request(norce, op, match: str) -> str:
    with pytest.raises(ValueError, match=match) as err:
        op.execute(CONTEXT)
    assert norce.request_history == []
    message = str(err.value)
    assert "'export_orders'" in message
    return message


def test_destination_that_is_a_directory_is_refused(norce, tmp_path):
    refused_before_any_request(norce, exporter(str(tmp_path)), r"destination .* is a directory")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("suffix", ["/", os.sep + "sub/"])
def test_destination_ending_in_a_slash_is_refused(norce, tmp_path, suffix):
    refused_before_any_request(norce, exporter(str(tmp_path) + suffix), r"destination .* directory")
    assert os.listdir(tmp_path) == []


def test_destination_uri_ending_in_a_slash_is_refused(norce, tmp_path):
    refused_before_any_request(norce, exporter(f"file://{tmp_path}/"), r"destination .* directory")


def test_destination_uri_of_a_directory_is_refused_before_any_page(norce, tmp_path):
    (tmp_path / "keep").write_text("x")
    refused_before_any_request(norce, exporter(f"file://{tmp_path}"), r"destination .* is a directory")
    assert sorted(os.listdir(tmp_path)) == ["keep"]


@pytest.mark.parametrize("destination", [5, 1.5, ["a"], b"/tmp/x.jsonl"])
def test_destination_of_the_wrong_type_is_refused(norce, destination):
    refused_before_any_request(norce, exporter(destination), r"destination must be a file path")


@pytest.mark.parametrize("interval", ["x", -1, float("nan"), None, True])
def test_progress_interval_that_is_not_seconds_is_refused(norce, tmp_path, interval):
    refused_before_any_request(
        norce, exporter(str(tmp_path / "o.jsonl"), progress_interval=interval), r"progress_interval"
    )


def test_progress_interval_as_rendered_text_is_accepted(norce, tmp_path):
    norce.get(ORDERS, json={"value": rows(1, 3)})
    result = exporter(str(tmp_path / "o.jsonl"), progress_interval="0").execute(CONTEXT)
    assert result["rows"] == 3


def test_read_only_destination_directory_is_refused_up_front(norce, tmp_path):
    if os.geteuid() == 0:  # root writes to a chmod-ed directory; /sys refuses even root
        message = refused_before_any_request(
            norce, exporter("/sys/orders.jsonl"), r"cannot write .*orders.jsonl"
        )
        assert ".norce-tmp" not in message
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        message = refused_before_any_request(
            norce, exporter(str(folder / "orders.jsonl")), r"cannot write .*orders.jsonl"
        )
    finally:
        folder.chmod(stat.S_IRWXU)
    assert ".norce-tmp" not in message and os.listdir(folder) == []


# -- run(None) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", [None, "", "  ", 5])
def test_run_without_an_endpoint_is_refused_before_any_request(norce, endpoint):
    hook = NorceHook()
    with pytest.raises(ValueError, match=r"'norce_default'.*endpoint must be a non-empty"):
        hook.run(endpoint)
    with pytest.raises(ValueError, match=r"'norce_default'.*endpoint must be a non-empty"):
        list(hook.paginate(endpoint))
    assert norce.request_history == []


@pytest.mark.parametrize("method", [None, 5, "", "GE T"])
def test_run_with_a_bad_method_is_refused_before_any_request(norce, method):
    with pytest.raises(ValueError, match=r"'norce_default'.*method must be an HTTP method"):
        NorceHook().run("commerce/metadata/1.1/GetApplication", method=method)
    assert norce.request_history == []
