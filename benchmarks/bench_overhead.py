"""Per-call overhead: GETs through ``NorceHook.run`` against the same GETs on a bare ``requests.Session``.

The bare session holds a static token and the ``ApplicationId`` header: the least any client can do.
The hook adds URL checks, the token cache look-up, the retry controller and the origin-bound auth.
Both run in this process against the simulator in another one (loopback), interleaved in rounds so
drift and noise hit both alike; the figure is the median of the per-round ratios.

    python benchmarks/bench_overhead.py [--calls 2000] [--rounds 10] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import requests
from bench_common import (
    APPLICATION_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    child_env,
    connection,
    emit,
    median,
    simulator,
)

ENDPOINT = "commerce/metadata/1.1/GetApplication"
PARAMS = {"format": "json"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="GETs per client in all")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="print where the hook's time goes")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # Airflow logs to stdout; ours is one JSON line
        figures = measure(args)
    emit("per_call_overhead", figures)


def measure(args: argparse.Namespace) -> dict:
    with simulator() as base:
        os.environ.update(child_env(AIRFLOW_CONN_NORCE_DEFAULT=connection(base, token_cache="process")))
        from airflow_provider_norce.hooks.norce import NorceHook

        hook = NorceHook("norce_default")
        token = requests.post(
            base + "/identity/1.0/connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": "production",
            },
            timeout=10,
        ).json()["access_token"]
        bare = requests.Session()
        bare.headers.update({"Authorization": f"Bearer {token}", "ApplicationId": str(APPLICATION_ID)})
        url = f"{base}/{ENDPOINT}"

        def via_hook(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                hook.run(ENDPOINT, params=PARAMS)
            return time.perf_counter() - started

        def via_session(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                bare.get(url, params=PARAMS, timeout=60).raise_for_status()
            return time.perf_counter() - started

        via_hook(100), via_session(100)  # warm-up: imports, token, keep-alive connections
        per_round = args.calls // args.rounds
        hook_times, bare_times = [], []
        for n in range(args.rounds):
            first, second = (via_hook, via_session) if n % 2 == 0 else (via_session, via_hook)
            a, b = first(per_round), second(per_round)
            hook_t, bare_t = (a, b) if first is via_hook else (b, a)
            hook_times.append(hook_t)
            bare_times.append(bare_t)
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(via_hook, per_round)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    ratios = [h / b for h, b in zip(hook_times, bare_times, strict=True)]
    ratio = median(ratios)
    return {
        "calls_each": per_round * args.rounds,
        "hook_us_per_call": round(1e6 * sum(hook_times) / (per_round * args.rounds)),
        "session_us_per_call": round(1e6 * sum(bare_times) / (per_round * args.rounds)),
        "ratio_median": round(ratio, 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "target": "ratio <= 1.10",
        "meets_target": ratio <= 1.10,
    }


if __name__ == "__main__":
    main()
