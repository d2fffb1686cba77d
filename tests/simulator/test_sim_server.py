"""The server itself: many clients at once, keep-alive, clean shutdown, port selection."""

from __future__ import annotations

import http.client
import socket
import threading

import psutil
import pytest
import requests

from airflow_provider_norce.simulator import NorceSimulator

PATH = "/commerce/metadata/1.1/GetApplication"


def test_many_concurrent_clients_share_one_token(make_sim):
    sim, client = make_sim(orders=2000)
    headers = client.headers()
    failures: list[str] = []

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(20):
                response = session.get(sim.base_url + PATH, headers=headers, timeout=10)
                if response.status_code != 200:
                    failures.append(response.text)
            page = session.get(
                sim.base_url + "/commerce/query/2.0/Orders/Orders", headers=headers, timeout=10
            )
            if len(page.json()["value"]) != 500:
                failures.append("short page")

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    counters = sim.counters()
    assert counters["requests"][f"GET {PATH}"] == 320
    assert counters["token_requests"] == 1


def test_keep_alive_reuses_one_connection(make_sim):
    sim, client = make_sim()
    headers = client.headers()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as raw:
        request = (
            f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {headers['Authorization']}\r\n"
            "ApplicationId: 1234\r\n\r\n"
        ).encode()
        reader = raw.makefile("rb")
        for _ in range(3):
            raw.sendall(request)
            status = reader.readline()
            assert status.startswith(b"HTTP/1.1 200")
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                assert name.lower() != "connection" or "close" not in value
            assert b'"Id":1234,' in reader.read(length)


def _listening_ports_of_this_process() -> set[int]:
    """The TCP ports this process holds a listening socket on.

    Why ask the OS about this process only: the suite runs on several pytest-xdist workers, each starting
    simulators on ephemeral ports, so once our port is released another worker may bind it at any moment.
    Whether the port is free says nothing about this simulator; whether this process still listens on it does.
    """
    return {
        conn.laddr.port
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr
    }


def _reaches_the_simulator_that_issued(base_url: str, token: str) -> bool:
    """Whether ``base_url`` still answers as the simulator that issued ``token``.

    Every simulator has its own token store (and signing key), so ``/_sim/tokens`` of any other server on the
    same port -- another worker's simulator, or something else entirely -- does not list ``token``. A refused
    connection, an error or a foreign answer all mean: not this simulator.
    """
    try:
        answer = requests.get(base_url + "/_sim/tokens", timeout=5)
        body = answer.json() if answer.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return False
    return isinstance(body, dict) and token in body.get("tokens", [])


def test_stop_closes_idle_keep_alive_connections_and_releases_the_port(make_sim):
    sim, client = make_sim(orders=10)
    port, base_url, token = sim.port, sim.base_url, client.token()
    idle = http.client.HTTPConnection(sim.host, port, timeout=5)
    try:
        idle.request("GET", "/_sim/counters")
        answer = idle.getresponse()
        assert answer.status == 200 and answer.read()
        assert not answer.will_close, "the connection must stay open (keep-alive) to test its closing"
        assert port in _listening_ports_of_this_process()
        assert _reaches_the_simulator_that_issued(base_url, token)
        sim.stop()
        sim.stop()  # idempotent
        assert idle.sock is not None
        assert idle.sock.recv(1) == b"", "stop() closes an idle keep-alive connection: the client reads EOF"
    finally:
        idle.close()
    assert port not in _listening_ports_of_this_process(), "stop() closes the listening socket"
    assert not _reaches_the_simulator_that_issued(base_url, token)


def test_context_manager_and_double_start():
    with NorceSimulator(orders=1) as sim:
        assert sim.base_url == f"http://127.0.0.1:{sim.port}"
        assert sim.token_url == sim.base_url + "/identity/1.0/connect/token"
        with pytest.raises(RuntimeError):
            sim.start()
        assert requests.get(sim.base_url + "/_sim/counters", timeout=5).status_code == 200


def test_stop_interrupts_a_held_timeout_fault():
    sim = NorceSimulator().start()
    sim.add_fault("token", "timeout", delay=60)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.post(sim.token_url, data={}, timeout=30)
        except requests.RequestException as err:
            errors.append(err)

    thread = threading.Thread(target=call)
    thread.start()
    while sim.counters()["token_requests"] == 0:
        threading.Event().wait(0.01)
    sim.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], requests.exceptions.ConnectionError)
