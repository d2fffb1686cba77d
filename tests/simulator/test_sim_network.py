"""The simulated network: latency per request (in its own thread), seeded jitter, a link-wide bandwidth cap.

No test here measures wall time: the link's clock and sleep are injected (``FakeClock``) and the tests check
the waits the link asked for; concurrency is proven with a barrier that only opens when all requests sleep
at the same time.
"""

from __future__ import annotations

import signal
import threading

import pytest
import requests

from airflow_provider_norce.simulator import FakeClock, NorceSimulator
from airflow_provider_norce.simulator.__main__ import build_parser, main
from airflow_provider_norce.simulator.network import Network

PATH = "/commerce/metadata/1.1/GetApplication"
NO_NETWORK = {"latency": 0.0, "latency_jitter": 0.0, "bandwidth": None}


def recording_link(**settings: float | None) -> tuple[Network, FakeClock]:
    """A link whose waits advance a fake clock (and are listed in ``clock.sleeps``) instead of sleeping."""
    clock = FakeClock()
    return Network(**settings, clock=clock, sleep=clock.sleep), clock


# -- the rules, on the Network object -----------------------------------------------------------------------


def test_latency_is_slept_once_per_request_with_no_jitter_exactly():
    link, clock = recording_link(latency=0.1)
    assert [link.wait_latency() for _ in range(3)] == [0.1, 0.1, 0.1]
    assert clock.sleeps == [0.1, 0.1, 0.1]


def test_zero_latency_sleeps_nothing():
    link, clock = recording_link()
    assert link.wait_latency() == 0.0
    assert clock.sleeps == []


def test_jitter_stays_within_bounds_and_repeats_with_the_seed():
    first = Network(0.1, 0.02, seed=7)
    again = Network(0.1, 0.02, seed=7)
    other = Network(0.1, 0.02, seed=8)
    sequence = [first.draw_latency() for _ in range(500)]
    assert all(0.08 <= delay <= 0.12 for delay in sequence)
    assert min(sequence) < 0.085 and max(sequence) > 0.115, "the draws spread over the whole band"
    assert [again.draw_latency() for _ in range(500)] == sequence, "same seed, same delays"
    assert [other.draw_latency() for _ in range(500)] != sequence


def test_bandwidth_paces_chunks_and_the_waits_add_up_to_bytes_over_bandwidth():
    clock = FakeClock()
    link = Network(bandwidth=1000, clock=clock, sleep=clock.sleep, chunk_size=100)
    written: list[bytes] = []
    data = bytes(range(256)) * 4 + b"x" * 26  # 1,050 bytes
    link.send(lambda chunk: written.append(bytes(chunk)), data)
    assert b"".join(written) == data
    assert [len(chunk) for chunk in written] == [100] * 10 + [50]
    assert sum(clock.sleeps) == pytest.approx(len(data) / 1000)
    assert clock.sleeps == pytest.approx([0.1] * 10 + [0.05])


def test_the_bucket_is_shared_by_the_whole_link_and_holds_no_burst():
    clock = FakeClock()
    link = Network(bandwidth=1000, clock=clock, sleep=clock.sleep)
    # two senders at the same instant: the second queues behind the first one's bytes
    assert link.reserve(500) == pytest.approx(0.5)
    assert link.reserve(500) == pytest.approx(1.0)
    clock.advance(1.0)  # the link has sent both
    assert link.reserve(100) == pytest.approx(0.1)
    clock.advance(60)  # a long idle time saves no credit: the link never runs above its cap
    assert link.reserve(100) == pytest.approx(0.1)


def test_no_cap_writes_everything_at_once_and_chunks_follow_the_cap():
    link, clock = recording_link()
    written: list[bytes] = []
    link.send(written.append, b"a" * 200_000)
    assert written == [b"a" * 200_000] and clock.sleeps == []
    assert Network(bandwidth=12_500_000).chunk_size() == 65_536
    assert Network(bandwidth=1_000_000).chunk_size() == 10_000
    assert Network(bandwidth=10).chunk_size() == 1024


def test_configure_changes_part_of_the_settings_and_validates_them_together():
    link = Network(0.1, 0.02)
    assert link.configure(bandwidth=5_000) == {"latency": 0.1, "latency_jitter": 0.02, "bandwidth": 5_000}
    assert link.configure(latency=0.3) == {"latency": 0.3, "latency_jitter": 0.02, "bandwidth": 5_000}
    assert link.configure(bandwidth=None)["bandwidth"] is None
    with pytest.raises(ValueError, match=r"latency_jitter \(0.5\) must not exceed latency \(0.3\)"):
        link.configure(latency_jitter=0.5)
    assert link.settings() == {"latency": 0.3, "latency_jitter": 0.02, "bandwidth": None}, "unchanged"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"latency": -0.1}, r"latency must be >= 0"),
        ({"latency": 0.1, "latency_jitter": 0.2}, r"latency_jitter \(0.2\) must not exceed latency"),
        ({"latency_jitter": -1}, r"latency_jitter must be >= 0"),
        ({"bandwidth": 0}, r"bandwidth must be > 0 bytes per second"),
        ({"bandwidth": -5}, r"bandwidth must be > 0"),
        ({"latency": float("nan")}, r"latency must be a finite number"),
        ({"latency": "fast"}, r"latency must be a finite number"),
        ({"latency": True}, r"latency must be a finite number"),
    ],
)
def test_bad_settings_are_a_clear_value_error(settings, message):
    with pytest.raises(ValueError, match=message):
        Network(**settings)
    with pytest.raises(ValueError, match=message):
        NorceSimulator(**settings)


# -- in the server --------------------------------------------------------------------------------------------


def test_every_answer_but_sim_control_crosses_the_link_once(make_sim):
    sim, client = make_sim(orders=50)
    link, clock = recording_link(latency=0.05)
    sim.link = link
    client.token()  # identity
    assert client.get(PATH).status_code == 200  # API
    assert client.query("Orders/Orders", **{"$top": 3}).status_code == 200  # Query
    assert client.get("/commerce/connect/4.0/Job/Get?id=999").status_code == 404  # Connect
    sim.add_fault("api", "503", count=1)
    assert client.get(PATH).status_code == 503  # a fault's answer crosses the link too
    for _ in range(3):
        requests.get(sim.base_url + "/_sim/counters", timeout=5)
        requests.get(sim.base_url + "/_sim/network", timeout=5)
    assert clock.sleeps == [0.05] * 5


def test_concurrent_requests_sleep_their_latency_at_the_same_time(make_sim):
    """Eight requests over one link all wait at once: the barrier opens only when all 8 sleep together, so a
    latency slept under a shared lock (one at a time) would break it and fail the requests."""
    sim, client = make_sim(orders=50)
    headers = client.headers()  # the token first, over the default (instant) link
    barrier = threading.Barrier(8, timeout=30)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        barrier.wait()

    sim.link = Network(latency=0.1, sleep=sleep)
    statuses: list[int] = []

    def call() -> None:
        with requests.Session() as session:
            statuses.append(session.get(sim.base_url + PATH, headers=headers, timeout=60).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not barrier.broken
    assert statuses == [200] * 8
    assert waits == [0.1] * 8


def test_a_capped_link_paces_the_whole_answer(make_sim):
    sim, client = make_sim(orders=2000)
    client.token()
    expected = client.query("Orders/Orders").content  # over the uncapped link
    clock = FakeClock()
    sim.link = Network(bandwidth=1_000_000, clock=clock, sleep=clock.sleep, chunk_size=4096)
    response = client.query("Orders/Orders")
    assert response.content == expected, "pacing changes the timing, never the bytes"
    sent = sum(clock.sleeps) * 1_000_000  # bytes the link was told to carry: headers and body
    assert len(expected) < sent < len(expected) + 1000
    assert len(clock.sleeps) == -(-round(sent) // 4096)


def test_sim_network_get_and_post_change_the_link_at_run_time(make_sim):
    sim, _ = make_sim()
    url = sim.base_url + "/_sim/network"
    assert requests.get(url, timeout=5).json() == NO_NETWORK
    changed = requests.post(url, json={"latency": 0.2, "latency_jitter": 0.05}, timeout=5)
    assert changed.status_code == 200
    assert changed.json() == {"latency": 0.2, "latency_jitter": 0.05, "bandwidth": None}
    assert requests.post(url, json={"bandwidth": 125_000}, timeout=5).json()["bandwidth"] == 125_000
    assert sim.network() == {"latency": 0.2, "latency_jitter": 0.05, "bandwidth": 125_000}
    assert requests.get(sim.base_url + "/_sim/info", timeout=5).json()["network"] == sim.network()
    too_low = requests.post(url, json={"latency": 0.01}, timeout=5)  # below the jitter of 0.05: refused
    assert too_low.status_code == 400 and "must not exceed latency" in too_low.json()["error"]
    back = requests.post(url, json={"bandwidth": None, "latency": 0, "latency_jitter": 0}, timeout=5)
    assert back.json() == NO_NETWORK


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"latency": -1}, "latency must be >= 0"),
        ({"latency_jitter": 0.5}, "must not exceed latency"),
        ({"bandwidth": 0}, "bandwidth must be > 0"),
        ({"bandwidth": "fast"}, "finite number"),
        ({"speed": 1}, "unknown network setting(s) ['speed']"),
        ([0.1], "send a JSON object"),
    ],
)
def test_sim_network_post_rejects_bad_settings_with_400(make_sim, body, message):
    sim, _ = make_sim()
    sim.set_network(latency=0.1)
    answer = requests.post(sim.base_url + "/_sim/network", json=body, timeout=5)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert sim.network() == {"latency": 0.1, "latency_jitter": 0.0, "bandwidth": None}, "left unchanged"


def test_set_network_in_python():
    sim = NorceSimulator(latency=0.1, latency_jitter=0.02, bandwidth=12_500_000)
    assert sim.network() == {"latency": 0.1, "latency_jitter": 0.02, "bandwidth": 12_500_000}
    assert sim.set_network(latency_jitter=0) == {
        "latency": 0.1,
        "latency_jitter": 0.0,
        "bandwidth": 12_500_000,
    }
    assert sim.set_network(bandwidth=None)["bandwidth"] is None
    with pytest.raises(ValueError, match="latency must be >= 0"):
        sim.set_network(latency=-1)


@pytest.mark.norce_simulator(latency=0.01, latency_jitter=0.005, bandwidth=50_000_000, orders=10)
def test_the_fixture_passes_the_network_settings_through(norce_simulator):
    assert norce_simulator.sim.network() == {
        "latency": 0.01,
        "latency_jitter": 0.005,
        "bandwidth": 50_000_000,
    }


def test_query_rows_counts_every_row_served_fast_path_slow_path_and_single(make_sim):
    sim, client = make_sim(orders=1200)
    rows, pages = client.all_pages("Orders/Orders")  # the fast path (no $select), 3 pages
    assert (len(rows), pages) == (1200, 3)
    assert sim.counters()["query_rows"] == 1200
    client.all_pages("Orders/Orders", **{"$select": "Id", "$filter": "Id le 10"})  # the dict path
    client.get("/commerce/query/2.0/Orders/Orders(42)")
    client.query("Products/ProductSkus", **{"$top": 5})
    assert sim.counters()["query_rows"] == 1200 + 10 + 1 + 5
    sim.reset_counters()
    assert sim.counters()["query_rows"] == 0


# -- the CLI ------------------------------------------------------------------------------------------------


def test_cli_network_flags_parse():
    options = build_parser().parse_args(
        ["serve", "--latency", "0.1", "--latency-jitter", "0.02", "--bandwidth", "12500000"]
    )
    assert (options.latency, options.latency_jitter, options.bandwidth) == (0.1, 0.02, 12_500_000)
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.latency, defaults.latency_jitter, defaults.bandwidth) == (0.0, 0.0, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--latency", "-0.1"], "latency must be >= 0"),
        (["--latency", "0.1", "--latency-jitter", "0.2"], "must not exceed latency"),
        (["--bandwidth", "0"], "bandwidth must be > 0"),
    ],
)
def test_cli_bad_network_flags_are_a_usage_error(capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        main(["serve", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_serves_with_the_network_it_was_given(serve_cli):
    url, process = serve_cli(
        "--orders", "10", "--latency", "0.01", "--latency-jitter", "0.005", "--bandwidth", "12500000"
    )
    network = requests.get(url + "/_sim/network", timeout=5).json()
    assert network == {"latency": 0.01, "latency_jitter": 0.005, "bandwidth": 12_500_000}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
