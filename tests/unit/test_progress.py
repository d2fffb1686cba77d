"""The progress reporter on a fake clock: cadence, counts, rate, ETA, waits, and its heartbeat thread.

Every line here is read from a list sink, and time moves only when a test moves it: nothing sleeps, and no
test depends on how fast the machine is.
"""

from __future__ import annotations

import threading

import pytest

from airflow_provider_norce.exceptions import NorceAPIError
from airflow_provider_norce.progress import Progress, duration, number, retry_reason


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def reporter(clock: Clock, lines: list[str], **kwargs) -> Progress:
    kwargs.setdefault("interval", 10.0)
    return Progress(
        kwargs.pop("title", "Export progress"),
        kwargs.pop("unit", "rows"),
        sink=lines.append,
        clock=clock,
        **kwargs,
    )


def test_a_line_comes_once_the_interval_has_passed_since_the_last_one(clock):
    lines: list[str] = []
    progress = reporter(clock, lines)
    progress.counter("pages")
    for now in (1, 4, 9.9):
        clock.now = now
        progress.add(500, pages=1)
    assert lines == [], "nothing before 10 s"
    clock.now = 10.0
    progress.add(500, pages=1)
    assert lines == ["Export progress: 2,000 rows, 4 pages; 200 rows/s over 10 s"]
    clock.now = 19.9
    progress.add(500, pages=1)
    assert len(lines) == 1, "the next line waits 10 s after the previous LINE, not after the start"
    clock.now = 20.0
    progress.add(0)  # a cadence check alone
    assert lines[-1] == "Export progress: 2,500 rows, 5 pages; 125 rows/s over 20 s"


def test_interval_zero_logs_every_advance(clock):
    lines: list[str] = []
    progress = reporter(clock, lines, interval=0)
    for _ in range(3):
        progress.add(100, pages=1)
    assert len(lines) == 3
    assert lines[0].startswith("Export progress: 100 rows, 1 pages;")


def test_a_known_total_gives_the_share_and_an_eta(clock):
    lines: list[str] = []
    progress = reporter(clock, lines, title="Import progress, posting", unit="items", total=10_000)
    progress.counter("batches", 0, 10)
    for now in (2.0, 5.0, 10.0):
        clock.now = now
        progress.add(1000, batches=1)
    assert lines == [
        "Import progress, posting: 3,000 of 10,000 items (30 %), 3 of 10 batches; 300 items/s over 10 s, "
        "about 23 s left"
    ]


def test_an_estimated_total_says_about_and_no_eta_once_it_is_passed(clock):
    lines: list[str] = []
    progress = reporter(clock, lines, interval=0)
    progress.expect(1000, about=True)
    progress.counter("slices", 1, 4)
    clock.now = 2.0
    progress.add(250, pages=1)
    clock.now = 8.0
    progress.add(1000, pages=2, slices=3)
    assert lines[0] == (
        "Export progress: 250 of about 1,000 rows (25 %), 1 of 4 slices, 1 pages; 125 rows/s over 2.0 s, "
        "about 6.0 s left"
    )
    assert (
        lines[1]
        == "Export progress: 1,250 of about 1,000 rows (100 %), 4 of 4 slices, 3 pages; 156 rows/s over 8.0 s"
    )


def test_without_a_total_there_is_no_eta(clock):
    lines: list[str] = []
    progress = reporter(clock, lines, interval=0)
    clock.now = 5.0
    progress.add(10)
    assert "left" not in lines[0] and " of " not in lines[0]


def test_the_heartbeat_line_says_what_the_loop_waits_for(clock):
    lines: list[str] = []
    progress = reporter(clock, lines, waiting_for="Norce Query to answer a page of Orders/Orders")
    progress.counter("pages")
    clock.now = 3.0
    progress.add(500, pages=1)
    clock.now = 10.0
    progress.tick()
    assert lines[-1] == "Export progress: 500 rows, 1 pages; 50 rows/s over 10 s"  # idle 7 s < 10 s: not said
    clock.now = 20.0
    progress.tick()
    assert lines[-1] == (
        "Export progress: 500 rows, 1 pages; 25 rows/s over 20 s; waiting 17 s for Norce Query to answer a "
        "page of Orders/Orders"
    )
    clock.now = 25.0
    progress.tick()
    assert len(lines) == 2, "the heartbeat keeps the same cadence"


def test_a_retry_is_named_by_its_status_and_the_wait_left(clock):
    lines: list[str] = []
    progress = reporter(clock, lines)
    clock.now = 12.0
    progress.add(500)  # a line at 12 s
    progress.on_retry(NorceAPIError("Norce answered 429", status_code=429), 30.0)
    clock.now = 22.0
    progress.tick()
    assert lines[-1].endswith("; waiting 20 s more to retry after HTTP 429 (rate limit)")
    clock.now = 45.0
    progress.tick()
    assert lines[-1].endswith("; retrying after HTTP 429 (rate limit)")
    clock.now = 60.0
    progress.add(500)
    assert lines[-1] == "Export progress: 1,000 rows; 17 rows/s over 1 min 00 s", "an advance ends the wait"


def test_a_retry_line_never_carries_the_error_text(clock):
    lines: list[str] = []
    progress = reporter(clock, lines, interval=0)
    secret = "Bearer eyJ-secret-token"
    progress.on_retry(NorceAPIError(f"timeout, Authorization: {secret}", status_code=None), 5.0)
    progress.tick()
    assert lines[-1].endswith("waiting 5.0 s more to retry after a connection error or timeout")
    assert secret not in "\n".join(lines)
    assert retry_reason(NorceAPIError("x", status_code=503)) == "HTTP 503"


def test_status_ends_every_line(clock):
    lines: list[str] = []
    progress = reporter(
        clock,
        lines,
        interval=0,
        title="Import progress, waiting for jobs",
        unit="jobs finished",
        total=4,
        show_rate=False,
    )
    progress.status = "job(s) 3, 4 still running in Norce, checked every 10.0 s"
    clock.now = 30.0
    progress.add(2)
    assert lines == [
        "Import progress, waiting for jobs: 2 of 4 jobs finished (50 %); 30 s so far, about 30 s left; "
        "job(s) 3, 4 still running in Norce, checked every 10.0 s"
    ]


def test_counted_checks_the_cadence_every_thousand_items_and_at_the_end(clock):
    lines: list[str] = []
    progress = reporter(clock, lines, interval=0, title="Import progress, checking items", unit="items")
    assert sum(1 for _ in progress.counted(iter(range(2500)))) == 2500
    assert progress.count == 2500
    assert [line.split(";")[0] for line in lines] == [
        "Import progress, checking items: 1,000 items",
        "Import progress, checking items: 2,000 items",
        "Import progress, checking items: 2,500 items",
    ]


def test_counted_counts_what_was_read_when_the_reader_stops_early(clock):
    progress = reporter(clock, [], interval=0)
    values = progress.counted(iter(range(10)))
    assert [next(values) for _ in range(3)] == [0, 1, 2]
    values.close()
    assert progress.count == 3


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0 s"),
        (4.25, "4.2 s"),
        (45, "45 s"),
        (65, "1 min 05 s"),
        (3599.6, "1 h 00 min"),
        (7440, "2 h 04 min"),
    ],
)
def test_durations_read_as_a_person_says_them(seconds, text):
    assert duration(seconds) == text


def test_numbers_have_thousands_separators():
    assert number(1234567) == "1,234,567"


def heartbeats() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("norce-progress-")]


def test_the_heartbeat_thread_ends_with_the_loop_even_when_it_fails():
    assert heartbeats() == []
    with pytest.raises(RuntimeError), Progress("Export progress", "rows", interval=3600, sink=print):
        assert [t.name for t in heartbeats()] == ["norce-progress-Export progress"]
        raise RuntimeError("the export failed")
    assert heartbeats() == []


@pytest.mark.parametrize("interval", [0, float("inf")])
def test_no_heartbeat_without_a_finite_positive_interval(interval):
    with Progress("Export progress", "rows", interval=interval, sink=print):
        assert heartbeats() == []


def test_the_heartbeat_logs_while_nothing_advances():
    """The thread itself, on the real clock: a tiny interval, and the test waits for the line (an Event),
    not for a time."""
    seen = threading.Event()
    lines: list[str] = []

    def sink(line: str) -> None:
        lines.append(line)
        seen.set()

    with Progress("Export progress", "rows", interval=0.01, sink=sink, waiting_for="a page"):
        assert seen.wait(30), "no heartbeat line came"
    assert lines[0].startswith("Export progress: 0 rows;")


def test_pages_of_other_slices_during_a_retry_wait_keep_it_said(clock):
    lines: list[str] = []
    progress = reporter(clock, lines, interval=0)
    progress.on_retry(NorceAPIError("429", status_code=429), 10.0)
    clock.now = 4.0
    progress.add(100)  # another slice's page, while the refused request waits
    assert lines[-1].endswith("; waiting 6.0 s more to retry after HTTP 429 (rate limit)")
    clock.now = 11.0
    progress.add(100)
    assert "429" not in lines[-1], "said until the retry's time has come"
