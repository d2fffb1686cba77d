"""The misbehaving-Norce matrix: every Query misbehaviour the export's fast path could trust, against a real export.

Each case runs ``NorceQueryExportOperator`` against the simulator with one (or two) of its Query switches on
(``sim.set_query_behaviour``, docs: simulator.md "Misbehaving Query (switches)"), by the default export (key
ranges, ``max_concurrency=8`` with a small ``slice_rows`` so several slices run) and one page at a time
(``max_concurrency=1``: keyset pages), and asserts one of the two outcomes an export may have:

* **exact**: the file holds exactly the rows its window selects (the truth read from the simulator's data model
  by ``order_ids_in_window``, not over OData), each once, in key order, byte for byte the file an export with
  every switch off writes; the completeness record in XCom says how it read and which fallback it took;
* **failed cleanly**: the task raises a clear error, the previous file is byte-identical, and nothing
  (``.norce-tmp``, ``.norce-lock``, ``.norce-slices-*``) is left when no retry follows.

Each case names what the export did before commit 79ef7cf (the checks and the fallback) in a comment; they were
run against its parent fcae3fb (``git worktree add /tmp/old fcae3fb``) to confirm.
"""

from __future__ import annotations

import hashlib
import itertools
import os

import pytest
from norce_airflow_testlib import mock_connection_for_a_test, mock_token_endpoint
from norce_query_testlib import context_for, order_ids_in_window, read_csv, read_jsonl, utc

from airflow_provider_norce.exceptions import NorceAPIError, NorceUntrustedAnswerError
from airflow_provider_norce.hooks import norce as norce_hook
from airflow_provider_norce.hooks.norce import NorceHook
from airflow_provider_norce.operators.query import NorceQueryExportOperator

# The simulator's orders are spread over November 2026. The window ends after them, so orders added mid-export
# (which take the next Ids and a Created after the newest order's) can land inside it.
START, END = utc(2026, 11, 6), utc(2026, 12, 6)
ORDERS = 3_000  # about 2,100 rows of the connection's application in the window: 21 pages of 100
PAGE = 100
SIM = pytest.mark.norce_simulator(orders=ORDERS, page_size=PAGE)

#: the default export, cut into several slices (about 8 key ranges of 300 rows), and one page at a time
DEFAULT = {"max_concurrency": 8, "slice_rows": 300}
ONE_AT_A_TIME = {"max_concurrency": 1}
MODES = [pytest.param(DEFAULT, id="default"), pytest.param(ONE_AT_A_TIME, id="one-page-at-a-time")]

KEY_RANGES, KEYSET, NEXT_LINK = "key ranges", "keyset pages", "nextLink pages"
PREVIOUS = b'{"Id": -1, "OrderNo": "the previous run\'s file"}\n'


def export(path, **kwargs) -> dict:
    """One export of the window [START, END) (the default window: Updated, else Created; the connection's
    application only), as a task run without a retry to follow."""
    op = NorceQueryExportOperator(task_id="export_orders", destination=str(path), **kwargs)
    return op.execute(context_for(START, END))


def digest(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def truth(sim) -> list[int]:
    return sorted(order_ids_in_window(sim, START, END))


def file_ids(path, file_format: str = "jsonl") -> list[int]:
    if file_format == "csv":
        return [int(row["Id"]) for row in read_csv(str(path))]
    return [row["Id"] for row in read_jsonl(str(path))]


def assert_exact(
    sim, path, result: dict, mode: str, fallback: str | None, file_format: str = "jsonl"
) -> None:
    """The file holds the window's rows, each once, in key order; the XCom record says so."""
    ids = file_ids(path, file_format)
    assert ids == truth(sim), "exactly the rows of the window, each once, in key order"
    assert len(ids) > 10 * PAGE, "a window of many pages (else the case proves nothing)"
    record = result["completeness"]
    assert result["rows"] == record["rows"] == len(ids)
    assert record["key"] == "Id" and record["first"] == ids[0] and record["last"] == ids[-1]
    assert record["mode"] == mode
    assert record["fallback"] == fallback
    if mode == KEY_RANGES:
        assert record["slices"] > 2, "several slices ran"
    assert leftovers(path.parent) == []


def leftovers(folder) -> list[str]:
    """What an export may leave beside its file: temp files, its lock, its staging folder."""
    return sorted(
        name
        for name in os.listdir(folder)
        if name.endswith((".norce-tmp", ".norce-lock")) or ".norce-slices-" in name
    )


def assert_failed_cleanly(path) -> None:
    """The previous file is untouched and nothing else is left (no retry follows: the staging goes too)."""
    assert path.read_bytes() == PREVIOUS
    assert os.listdir(path.parent) == [path.name], "no .norce-tmp, .norce-lock or .norce-slices-* left"


def fallback_warning(output: str) -> str:
    lines = [line for line in output.splitlines() if "Reading one page at a time instead" in line]
    assert len(lines) == 1, f"one warning of the fallback, got {lines}"
    return lines[0]


@pytest.fixture
def reference(norce_simulator, tmp_path_factory):
    """The file an export with every switch off writes (jsonl, and csv on demand)."""
    folder = tmp_path_factory.mktemp("reference")
    made: dict[str, str] = {}

    def make(file_format: str = "jsonl", **kwargs) -> str:
        name = f"{file_format}-{sorted(kwargs.items())}"
        if name not in made:
            path = folder / f"{len(made)}.{file_format}"
            norce_simulator.sim.set_query_behaviour()
            result = export(path, file_format=file_format, **kwargs)
            assert result["completeness"]["fallback"] is None
            made[name] = digest(path)
        return made[name]

    return make


# -- 1-4: misbehaviours the key ranges rely on: the export falls back and the file stays exact ----------------


@pytest.mark.parametrize(
    ("switch", "default_fallback", "words"),
    [
        # The last-key read ($orderby=Id desc&$top=1) answered the smallest Id. Before: the plan ended at the
        # first page, the file held 100 of about 2,100 rows and the task succeeded.
        pytest.param({"desc_ignored": True}, "$orderby=Id desc ignored", "ignored 'desc'", id="desc_ignored"),
        # The last-key read answered a full page. Before: the task failed ("Id 2999 after Id 3000 ... not in
        # increasing key order") though every row could be read.
        pytest.param({"top_ignored": True}, "$top ignored", "$top ignored", id="top_ignored"),
        # Key ranges answered rows outside their bounds. Before: the task failed ("answered Id 502 for the
        # key range [744, 863)") though every row could be read.
        pytest.param(
            {"key_bounds_ignored": True},
            "Id bounds in $filter ignored",
            "ignored the key bounds",
            id="key_bounds",
        ),
        # Filter after paging: an empty page with a nextLink before every page. Before: the first page was
        # empty, so the export stopped there: an empty file, success.
        pytest.param(
            {"empty_pages": 1},
            "an empty page with an @odata.nextLink",
            "empty first page that says more rows follow",
            id="empty_pages",
        ),
    ],
)
@SIM
def test_the_default_export_falls_back_and_writes_the_exact_file(
    norce_simulator, tmp_path, capsys, reference, switch, default_fallback, words
):
    sim = norce_simulator.sim
    expected = reference()
    capsys.readouterr()
    sim.set_query_behaviour(**switch)
    path = tmp_path / "orders.jsonl"
    result = export(path, **DEFAULT)
    assert_exact(sim, path, result, NEXT_LINK, default_fallback)
    assert digest(path) == expected, "the bytes of an export of a well-behaved Norce"
    warning = fallback_warning(capsys.readouterr().out)
    assert words in warning and "@odata.nextLink" in warning


@pytest.mark.parametrize(
    ("switch", "fallback"),
    [
        # No last-key read one page at a time: neither desc nor $top is relied on. Before: it followed
        # nextLinks (exact too, verified); these four pin that the keyset reader, new in 79ef7cf, relies on
        # nothing unchecked.
        pytest.param({"desc_ignored": True}, None, id="desc_ignored"),
        pytest.param({"top_ignored": True}, None, id="top_ignored"),
        # The keyset page "Id gt <last>" answered the window from its start again. Before: nextLinks, exact;
        # a keyset reader without the check would write the first pages again and again.
        pytest.param({"key_bounds_ignored": True}, "Id bounds in $filter ignored", id="key_bounds"),
        # The first page is empty with a nextLink. A keyset reader without the check would stop there.
        pytest.param({"empty_pages": 1}, "an empty page with an @odata.nextLink", id="empty_pages"),
    ],
)
@SIM
def test_one_page_at_a_time_writes_the_exact_file(norce_simulator, tmp_path, reference, switch, fallback):
    sim = norce_simulator.sim
    expected = reference()
    sim.set_query_behaviour(**switch)
    path = tmp_path / "orders.jsonl"
    result = export(path, **ONE_AT_A_TIME)
    assert_exact(sim, path, result, KEYSET if fallback is None else NEXT_LINK, fallback)
    assert digest(path) == expected


@pytest.mark.parametrize(
    ("switch", "options"),
    [
        # Before: 100 of about 2,100 rows (desc), a failed task (top), an empty file (empty pages).
        # The fallback with a $select without the key: the key is still read (and checked), not written.
        pytest.param({"desc_ignored": True}, {"select": "OrderNo,Updated"}, id="desc-select-without-key"),
        pytest.param({"top_ignored": True}, {"file_format": "csv"}, id="top-csv"),
        pytest.param(
            {"empty_pages": 1}, {"file_format": "csv", "select": "Id,OrderNo,StatusId"}, id="empty-csv"
        ),
    ],
)
@SIM
def test_the_fallback_writes_the_bytes_of_a_good_export_in_every_format(
    norce_simulator, tmp_path, reference, switch, options
):
    expected = reference(**options)
    norce_simulator.sim.set_query_behaviour(**switch)
    path = tmp_path / f"orders.{options.get('file_format', 'jsonl')}"
    result = export(path, **DEFAULT, **options)
    assert digest(path) == expected
    assert result["completeness"]["mode"] == NEXT_LINK and result["completeness"]["fallback"]
    if "Id" not in options.get("select", "Id"):
        assert "Id" not in read_jsonl(str(path))[0]
        assert result["completeness"]["first"] == truth(norce_simulator.sim)[0]


# -- 5: an endless chain of empty pages: the export fails and keeps the previous file -------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(DEFAULT, id="default"),
        pytest.param(ONE_AT_A_TIME, id="one-page-at-a-time"),
        pytest.param({"orderby": "Updated"}, id="nextLink-pages"),
    ],
)
@SIM
def test_an_endless_chain_of_empty_pages_fails_and_keeps_the_previous_file(
    norce_simulator, tmp_path, options
):
    # Before: the default export wrote an empty file and succeeded; one page at a time and the nextLink pages
    # followed the chain of new links forever (the task hung until its execution_timeout).
    sim = norce_simulator.sim
    sim.set_query_behaviour(empty_page_chain=True)
    path = tmp_path / "orders.jsonl"
    path.write_bytes(PREVIOUS)
    with pytest.raises(NorceAPIError, match=r"answered 100 empty pages in a row.*keeps no file"):
        export(path, **options)
    assert_failed_cleanly(path)
    assert sim.counters()["query_empty_pages"] <= 102


# -- 5, on the wire: the hook ends a chain of empty pages by count and by time ---------------------------------

BASE = "https://acme.api-se.norce.tech"
WIRE_ORDERS = f"{BASE}/commerce/query/2.0/Orders/Orders"


@pytest.fixture
def wire(monkeypatch, requests_mock):
    yield from mock_connection_for_a_test(monkeypatch, "hostile-norce-secret")


def serve(mock, pages) -> None:
    """Serve each page of ``pages`` (an iterator) once, in turn."""
    mock.get(WIRE_ORDERS, json=lambda request, context: next(pages))


def empty_chain(start: int = 0):
    """Empty pages, each with a new link (an endless chain)."""
    for step in itertools.count(start):
        yield {"value": [], "@odata.nextLink": f"{WIRE_ORDERS}?$skiptoken=e{step}"}


def page_gets(mock) -> int:
    return sum(1 for request in mock.request_history if request.method == "GET")


def test_a_chain_of_new_empty_links_ends_at_the_page_limit(wire, requests_mock, monkeypatch):
    norce = mock_token_endpoint(requests_mock, "hostile-token")
    monkeypatch.setattr(norce_hook, "EMPTY_PAGE_CHAIN_LIMIT", 7)
    first = {"value": [{"Id": 1}], "@odata.nextLink": f"{WIRE_ORDERS}?$skiptoken=r1"}
    serve(norce, itertools.chain([first], empty_chain()))
    handed: list[list[dict]] = []
    with pytest.raises(NorceAPIError, match=r"answered 7 empty pages in a row.*limit: 7 pages") as err:
        handed.extend(NorceHook().paginate_pages(WIRE_ORDERS))
    assert "hostile" not in str(err.value), "no secret or token in the message"
    assert page_gets(norce) == 8, "the page with rows, then 7 empty ones"
    assert handed == [[{"Id": 1}]] + [[]] * 6


def test_a_chain_of_new_empty_links_ends_after_its_time(wire, requests_mock, monkeypatch):
    norce = mock_token_endpoint(requests_mock, "hostile-token")
    monkeypatch.setattr(norce_hook, "EMPTY_PAGE_CHAIN_SECONDS", 30.0)
    now = [1_000.0]

    def slow_clock() -> float:  # each look at the clock: 4 s later (a slow server)
        now[0] += 4.0
        return now[0]

    monkeypatch.setattr(norce_hook.time, "monotonic", slow_clock)
    serve(norce, empty_chain())
    with pytest.raises(NorceAPIError, match=r"empty pages in a row in 3\d s.*limit: 100 pages or 30 s"):
        list(NorceHook().paginate_pages(WIRE_ORDERS))
    assert 2 < page_gets(norce) < 100, "ended by the time, long before the page limit"


def test_a_few_empty_pages_before_rows_are_followed(wire, requests_mock, monkeypatch):
    # Filter after paging: runs of empty pages shorter than the limit, between pages of rows, are normal
    # (a guard: the limit counts empty pages in a row, not in all).
    norce = mock_token_endpoint(requests_mock, "hostile-token")
    monkeypatch.setattr(norce_hook, "EMPTY_PAGE_CHAIN_LIMIT", 5)
    pages = []
    for chunk in range(3):
        pages += [
            {"value": [], "@odata.nextLink": f"{WIRE_ORDERS}?$skiptoken=c{chunk}e{step}"} for step in range(4)
        ]
        last = chunk == 2
        pages.append(
            {"value": [{"Id": chunk * 2 + 1}, {"Id": chunk * 2 + 2}]}
            | ({} if last else {"@odata.nextLink": f"{WIRE_ORDERS}?$skiptoken=c{chunk}r"})
        )
    serve(norce, iter(pages))
    ids = [row["Id"] for page in NorceHook().paginate_pages(WIRE_ORDERS) for row in page]
    assert ids == [1, 2, 3, 4, 5, 6]
    assert page_gets(norce) == 15


def test_a_last_empty_page_without_a_link_ends_the_listing(wire, requests_mock):
    norce = mock_token_endpoint(requests_mock, "hostile-token")
    serve(norce, iter([{"value": [{"Id": 1}], "@odata.nextLink": f"{WIRE_ORDERS}?$skip=1"}, {"value": []}]))
    assert list(NorceHook().paginate_pages(WIRE_ORDERS)) == [[{"Id": 1}], []]
    assert page_gets(norce) == 2


# -- 6: overlapping pages (duplicates across nextLink pages) --------------------------------------------------


@pytest.mark.parametrize("options", MODES)
@SIM
def test_key_ranges_and_keyset_pages_are_immune_to_overlapping_pages(
    norce_simulator, tmp_path, reference, options
):
    # Both build their own requests ($filter on Id), never following a nextLink's $skip. Before: one page at
    # a time followed the nextLinks and wrote 3 rows of every page twice (success); the default was immune.
    sim = norce_simulator.sim
    expected = reference()
    sim.set_query_behaviour(duplicate_rows=3)
    path = tmp_path / "orders.jsonl"
    result = export(path, **options)
    assert_exact(sim, path, result, KEY_RANGES if options is DEFAULT else KEYSET, None)
    assert digest(path) == expected


@pytest.mark.parametrize(
    "options",
    [
        # an orderby other than the key: Norce's nextLink pages, one at a time
        pytest.param({"orderby": "Updated"}, id="orderby-Updated"),
        pytest.param(
            {"orderby": "Updated desc", "max_concurrency": 1}, id="orderby-Updated-desc-one-at-a-time"
        ),
        # the key not selected: it is still asked for and checked, and left out of the rows
        pytest.param(
            {"orderby": "Updated", "select": "OrderNo,Updated"}, id="orderby-Updated-key-not-selected"
        ),
        pytest.param({"orderby": "Updated", "file_format": "csv"}, id="orderby-Updated-csv"),
    ],
)
@SIM
def test_overlapping_nextlink_pages_fail_naming_a_row_twice(norce_simulator, tmp_path, options):
    # Before: every row at a page boundary was written twice and the task succeeded. With the key not
    # selected, still so after 79ef7cf (the key went unchecked); fixed with this test (operators/query.py).
    sim = norce_simulator.sim
    sim.set_query_behaviour(duplicate_rows=3)
    path = tmp_path / f"orders.{options.get('file_format', 'jsonl')}"
    path.write_bytes(PREVIOUS)
    with pytest.raises(NorceUntrustedAnswerError, match=r"held a row twice \(Id \d+"):
        export(path, **options)
    assert_failed_cleanly(path)


@SIM
def test_nextlink_pages_without_overlap_are_exact(norce_simulator, tmp_path):
    """The control of the case above: the same export with every switch off writes every row once."""
    sim = norce_simulator.sim
    path = tmp_path / "orders.jsonl"
    result = export(path, orderby="Updated")
    ids = file_ids(path)
    assert sorted(ids) == truth(sim) and len(ids) > 10 * PAGE
    assert result["completeness"]["mode"] == NEXT_LINK and result["completeness"]["fallback"] is None
    assert (result["completeness"]["first"], result["completeness"]["last"]) == (min(ids), max(ids))


# -- 7: rows added to and removed from the window while the export runs -------------------------------------


@pytest.mark.parametrize("options", MODES)
@SIM
def test_rows_entering_and_leaving_the_window_mid_export(norce_simulator, tmp_path, options):
    """Every row that stayed in the window is written exactly once; a row that left or arrived at most once.

    Before, one page at a time followed $skip nextLinks: rows leaving the window before the page read shift
    the later pages back (rows that stayed are skipped), rows entering it (lower Ids) shift them on (a row is
    written twice); it wrote a row twice and succeeded. The default export closed its last key range at the
    last key read when planning, so the orders added after the plan were missing.
    """
    sim = norce_simulator.sim
    before = truth(sim)
    already_read = before[:5] + before[50:55]  # the first page (read before any change): gone later
    not_yet_read = before[1000:1005] + before[-5:]  # read after the changes, if at all
    outside = sorted(order_ids_in_window(sim, utc(2026, 11, 1), START))[:3]  # moved into the window
    assert outside and not set(outside) & set(before)
    early: list[int] = []  # added after the first page and the last-key read, before any slice
    late: list[int] = []  # added while slices run

    def change(page: int) -> None:
        if page == 2:  # the first page is read, nothing else (one at a time: page 2 is built, not yet sent)
            for order_id in already_read + not_yet_read:
                sim.update_order(order_id, "2026-10-01T00:00:00Z")
            early.extend(sim.add_orders(40, created="2026-12-02T00:00:00Z"))
        elif page == 6:  # slices in flight (one at a time: mid-window)
            late.extend(sim.add_orders(40, created="2026-12-03T00:00:00Z"))
            for order_id in outside:
                sim.update_order(order_id, "2026-11-20T12:00:00Z")

    sim.on_query_page = change
    path = tmp_path / "orders.jsonl"
    result = export(path, **options)
    sim.on_query_page = None
    assert len(early) == len(late) == 40
    after = truth(sim)
    stayed = set(before) & set(after)
    left = set(before) - set(after)
    arrived = set(after) - set(before)
    assert left == set(already_read + not_yet_read)
    assert arrived >= set(outside) and arrived & set(early), "some added orders are of the application"

    ids = file_ids(path)
    assert ids == sorted(set(ids)), "each row once, in key order"
    assert stayed <= set(ids), f"rows that stayed and are missing: {sorted(stayed - set(ids))[:10]}"
    assert set(ids) <= stayed | left | arrived
    assert set(ids) >= set(already_read), "read before they left"
    assert not set(ids) & set(not_yet_read), "the changes came before these rows were read"
    assert set(ids) >= set(early) & arrived, "added above the planned keys: read by the last, open, range"
    record = result["completeness"]
    assert record["rows"] == result["rows"] == len(ids)
    assert (record["first"], record["last"]) == (ids[0], ids[-1])
    assert record["mode"] == (KEY_RANGES if options is DEFAULT else KEYSET) and record["fallback"] is None
    assert leftovers(tmp_path) == []


# -- 8: misbehaviours combined: a switch on the fallback path too ---------------------------------------------

FAILS = "fails"
#: exact, read by keyset pages / exact, after falling back because the first page was empty with a nextLink
KEYSET_EXACT = (KEYSET, None)
EMPTY_FALLBACK_EXACT = (NEXT_LINK, "an empty page with an @odata.nextLink")


@pytest.mark.parametrize(
    ("switches", "options", "outcome"),
    [
        # desc ignored makes the key ranges fall back; the nextLink pages overlap: a row twice, caught.
        # Before: a short file (the first page), success.
        pytest.param({"desc_ignored": True, "duplicate_rows": 3}, DEFAULT, FAILS, id="desc+dup-default"),
        # One page at a time needs neither desc nor nextLinks. Before: the overlap was written (doubles).
        pytest.param(
            {"desc_ignored": True, "duplicate_rows": 3}, ONE_AT_A_TIME, KEYSET_EXACT, id="desc+dup-one"
        ),
        # Key bounds ignored: both fall back onto the overlapping pages. Before: the default failed (key order),
        # one page at a time wrote the doubles and succeeded.
        pytest.param(
            {"key_bounds_ignored": True, "duplicate_rows": 3}, DEFAULT, FAILS, id="bounds+dup-default"
        ),
        pytest.param(
            {"key_bounds_ignored": True, "duplicate_rows": 3}, ONE_AT_A_TIME, FAILS, id="bounds+dup-one"
        ),
        # Empty pages and overlap: fallback, the empty pages followed, the overlap caught. Before: an empty
        # file, success.
        pytest.param({"empty_pages": 1, "duplicate_rows": 3}, DEFAULT, FAILS, id="empty+dup-default"),
        # $top ignored and empty pages: the first page is empty, so the fallback comes first and is exact.
        # Before: an empty file, success.
        pytest.param(
            {"top_ignored": True, "empty_pages": 1}, DEFAULT, EMPTY_FALLBACK_EXACT, id="top+empty-default"
        ),
        # Every switch but the endless chain: exact or failed, never a doubled file. Before: an empty file
        # (default), doubles (one page at a time), success.
        pytest.param(
            {"desc_ignored": True, "top_ignored": True, "key_bounds_ignored": True, "empty_pages": 2},
            DEFAULT,
            EMPTY_FALLBACK_EXACT,
            id="all-but-dup-default",
        ),
        pytest.param(
            {
                "desc_ignored": True,
                "top_ignored": True,
                "key_bounds_ignored": True,
                "empty_pages": 2,
                "duplicate_rows": 1,
            },
            ONE_AT_A_TIME,
            FAILS,
            id="all-one",
        ),
    ],
)
@SIM
def test_combined_misbehaviours_give_the_exact_file_or_fail(
    norce_simulator, tmp_path, reference, switches, options, outcome
):
    sim = norce_simulator.sim
    expected = reference()
    sim.set_query_behaviour(**switches)
    path = tmp_path / "orders.jsonl"
    path.write_bytes(PREVIOUS)
    if outcome == FAILS:
        with pytest.raises(NorceUntrustedAnswerError, match=r"held a row twice"):
            export(path, **options)
        assert_failed_cleanly(path)
        return
    result = export(path, **options)
    assert file_ids(path) == truth(sim)
    mode, fallback = outcome
    assert_exact(sim, path, result, mode, fallback)
    assert digest(path) == expected
