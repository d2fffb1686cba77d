"""Speed of the Norce simulator, so tests, the demo and other benchmarks are never bound by it.

Measures (a) token-cached API calls per second over keep-alive ``requests.Session``s in a few threads
(target >= 1,000/s) and (b) Query paging throughput in orders per second following ``@odata.nextLink``
(target >= 50,000/s). Prints one JSON line. Bounded in count and time; loopback only.

    /tmp/v33/bin/python benchmarks/bench_simulator.py [--requests 6000] [--threads 4] [--orders 200000]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import requests

from airflow_provider_norce.simulator import NorceSimulator


def _token(sim: NorceSimulator) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
    }
    response = requests.post(sim.token_url, data={**form, "scope": "production"}, timeout=10)
    response.raise_for_status()
    return str(response.json()["access_token"])


def bench_api_calls(
    sim: NorceSimulator, headers: dict[str, str], total: int, threads: int
) -> dict[str, float]:
    """Cheap authenticated GETs spread over ``threads`` sessions; returns requests/second."""
    url = sim.base_url + "/commerce/metadata/1.1/GetApplication?format=json"
    per_thread = total // threads
    errors: list[int] = []

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(per_thread):
                response = session.get(url, headers=headers, timeout=10)
                if response.status_code != 200:
                    errors.append(response.status_code)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"api_requests": per_thread * threads, "api_seconds": round(elapsed, 3),
            "api_requests_per_second": round(per_thread * threads / elapsed), "api_errors": len(errors)}  # fmt: skip


def bench_paging(sim: NorceSimulator, headers: dict[str, str]) -> dict[str, float]:
    """Read every order of the window page by page, as an export operator does; returns orders/second."""
    url: str | None = (
        sim.base_url + "/commerce/query/2.0/Orders/Orders"
        "?$filter=Updated ge 2026-11-01T00:00:00Z and Updated lt 2026-12-01T00:00:00Z"
    )
    rows = pages = 0
    started = time.perf_counter()
    with requests.Session() as session:
        while url:
            response = session.get(url, headers=headers, timeout=30)
            response.raise_for_status()
            page = response.json()
            rows += len(page["value"])
            pages += 1
            url = page.get("@odata.nextLink")
    elapsed = time.perf_counter() - started
    return {"orders_read": rows, "pages": pages, "paging_seconds": round(elapsed, 3),
            "orders_per_second": round(rows / elapsed)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--orders", type=int, default=200_000)
    args = parser.parse_args()
    with NorceSimulator(orders=args.orders) as sim:
        headers = {"Authorization": "Bearer " + _token(sim), "ApplicationId": str(sim.application_id)}
        result: dict[str, object] = {"benchmark": "norce_simulator"}
        result.update(bench_api_calls(sim, headers, args.requests, args.threads))
        result.update(bench_paging(sim, headers))
        result["token_requests"] = sim.counters()["token_requests"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
