"""The I/O-free rules of a concurrent export: how the window is cut, how a range is read, how 429s narrow it."""

from __future__ import annotations

import itertools
import threading

import pytest

from airflow_provider_norce.exceptions import NorceUntrustedAnswerError
from airflow_provider_norce.query.aimd import AimdLimit
from airflow_provider_norce.query.slices import KeyRange, SlicePlan, keyset_pages, plan_slices
from airflow_provider_norce.simulator.clock import FakeClock

# -- planning ----------------------------------------------------------------------------------------


def test_dense_keys_are_cut_into_slices_of_about_slice_rows():
    plan = plan_slices("fp", "Id", list(range(1, 501)), 1_000_000, concurrency=8, slice_rows=10_000)
    ranges = plan.ranges()
    assert ranges[0] == KeyRange(0, 1, 501)
    assert plan.count == len(ranges) == 101
    assert all(r.high - r.low == plan.width for r in ranges[1:-1])
    assert 9_000 <= plan.width <= 10_000
    assert ranges[-2].high <= 1_000_000 < ranges[-1].low + plan.width, "the last key is in the last slice"
    assert ranges[-1].high is None, "the last slice is open above: rows past the last key read are kept"
    covered = [(r.low, r.high) for r in ranges]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered)), "no gap, no overlap"


def test_a_small_rest_still_keeps_every_worker_busy_but_never_below_a_page_per_slice():
    plan = plan_slices("fp", "Id", list(range(1, 501)), 4_500, concurrency=8, slice_rows=10_000)
    assert plan.count - 1 == 8  # 4,000 rows after the first page: 8 slices of 500
    tiny = plan_slices("fp", "Id", list(range(1, 501)), 700, concurrency=8, slice_rows=10_000)
    assert tiny.count == 2  # 200 rows: one slice, not 8 slices of 25


def test_sparse_keys_do_not_become_thousands_of_empty_requests():
    """Old orders updated yesterday: 500 rows spread over 10 million ids on the first page."""
    head = list(range(1, 10_000_001, 20_000))[:500]
    plan = plan_slices("fp", "Id", head, 20_000_000, concurrency=8, slice_rows=10_000)
    sequential_pages = (20_000_000 - head[-1]) * len(head) / (head[-1] - head[0] + 1) / len(head)
    assert plan.count - 1 <= max(8, sequential_pages), "no more slice requests than pages at that density"


def test_plan_round_trips_and_a_foreign_plan_is_not_resumed():
    plan = plan_slices("abc", "Id", [5, 6, 7], 100, concurrency=2, slice_rows=10)
    assert SlicePlan.from_json(plan.to_json(), "abc") == plan
    assert SlicePlan.from_json(plan.to_json(), "other") is None
    assert SlicePlan.from_json({**plan.to_json(), "version": 99}, "abc") is None
    assert SlicePlan.from_json({"nonsense": 1}, "abc") is None
    assert SlicePlan.from_json({**plan.to_json(), "width": 0}, "abc") is None


# -- reading one key range by keyset ----------------------------------------------------------------


class ScriptedQuery:
    """Answers keyset requests from a sorted list of keys, ``page`` rows at a time, recording each ask."""

    def __init__(self, keys: list[int], page: int) -> None:
        self.keys, self.page, self.asked = keys, page, []

    def __call__(self, params: dict[str, str]) -> tuple[list[dict], bool]:
        self.asked.append(params["$filter"])
        words = params["$filter"].replace("(", " ").replace(")", " ").split()
        low_op, low, high = words[-6], int(words[-5]), int(words[-1])
        match = [k for k in self.keys if (k > low if low_op == "gt" else k >= low) and k < high]
        return [{"Id": k} for k in match[: self.page]], len(match) > self.page


def test_a_range_is_read_by_keyset_each_key_once_in_order():
    query = ScriptedQuery(keys=list(range(0, 100, 3)), page=5)
    pages = [
        rows
        for rows, _ in keyset_pages(query, {"$filter": "Updated ge X"}, KeyRange(1, 10, 40), "Id", "Task 't'")
    ]
    assert [row["Id"] for page in pages for row in page] == list(range(12, 40, 3))
    assert query.asked == [
        "(Updated ge X) and Id ge 10 and Id lt 40",
        "(Updated ge X) and Id gt 24 and Id lt 40",
    ]


def test_a_server_answering_a_key_again_or_outside_the_range_stops_the_slice():
    def repeats(params):
        return [{"Id": 11}, {"Id": 11}], False

    with pytest.raises(
        NorceUntrustedAnswerError, match=r"Task 't'.*Id 11 after Id 11.*not in increasing key order"
    ) as err:
        list(keyset_pages(repeats, {}, KeyRange(1, 10, 40), "Id", "Task 't'"))

    def outside(params):
        return [{"Id": 41}], False

    assert err.value.behaviour == "$orderby=Id not honoured"
    with pytest.raises(
        NorceUntrustedAnswerError, match=r"Id 41 to a request for Id 10 to 39: it ignored the key bounds"
    ) as err:
        list(keyset_pages(outside, {}, KeyRange(1, 10, 40), "Id", "Task 't'"))
    assert err.value.behaviour == "Id bounds in $filter ignored"


@pytest.mark.parametrize("value", ["42", 4.5, None, True])
def test_a_key_that_is_not_an_integer_names_slice_key_and_the_way_out(value):
    with pytest.raises(NorceUntrustedAnswerError, match=r"slice_key 'Id' is .*not an integer.*set slice_key"):
        list(keyset_pages(lambda params: ([{"Id": value}], False), {}, KeyRange(0, 0, 9), "Id", "Task 't'"))


# -- AIMD ------------------------------------------------------------------------------------------


class Http429(Exception):
    status_code = 429


class Http503(Exception):
    status_code = 503


def test_429s_of_one_burst_halve_once_and_pause_every_request():
    clock = FakeClock()
    limit = AimdLimit(8, clock=clock, sleep=clock.sleep)
    for _ in range(8):  # eight slices refused together
        limit.on_retry(Http429(), 5.0)
    assert limit.limit == 4
    before = clock()
    with limit.permit():
        pass
    assert clock() - before == pytest.approx(5.0), "the next request waited out the pause"
    limit.on_retry(Http429(), 1.0)
    assert limit.limit == 2, "a 429 after the pause halves again"
    clock.advance(1.0)
    for _ in range(5):
        limit.on_retry(Http429(), 0.0)
        clock.advance(0.001)
    assert limit.limit == 1, "never below one request"


def test_other_retries_do_not_narrow_the_gate():
    limit = AimdLimit(4, clock=FakeClock())
    limit.on_retry(Http503(), 2.0)
    limit.on_retry(ValueError("timeout"), 2.0)
    assert limit.limit == 4 and limit.throttles == 0


def test_the_gate_grows_back_by_one_per_limit_answers_up_to_the_ceiling():
    clock = FakeClock()
    limit = AimdLimit(4, clock=clock, sleep=clock.sleep)
    limit.on_retry(Http429(), 0.0)
    assert limit.limit == 2
    widths = []
    for _ in range(12):
        with limit.permit():
            pass
        widths.append(limit.limit)
    assert widths == [2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4]


def test_no_more_requests_in_flight_than_the_limit():
    limit = AimdLimit(3)
    inside, peak = 0, 0
    lock = threading.Lock()
    release = threading.Event()
    arrived = threading.Semaphore(0)

    def request():
        nonlocal inside, peak
        with limit.permit():
            with lock:
                inside += 1
                peak = max(peak, inside)
            arrived.release()
            release.wait()
            with lock:
                inside -= 1

    threads = [threading.Thread(target=request) for _ in range(7)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        assert arrived.acquire(timeout=10)
    assert not arrived.acquire(timeout=0.2), "a fourth request got in"
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert peak == 3 and limit.in_flight == 0
