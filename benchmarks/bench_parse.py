"""DAG parse cost: importing what a DAG file imports from this provider, against the http provider.

The DAG processor imports a DAG file's modules on every parse. Each measurement is a fresh interpreter
running ``import airflow.sdk`` (what any DAG file pays) and then the modules under test, timed inside
the process with ``perf_counter`` (interpreter start-up excluded); the cost of a provider is that time
minus the time of ``airflow.sdk`` alone. Runs are interleaved and repeated; medians are reported.

    python benchmarks/bench_parse.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench_common import child_env, emit, median

OURS = [
    "airflow_provider_norce.operators.norce",
    "airflow_provider_norce.operators.query",
    "airflow_provider_norce.operators.connect",
    "airflow_provider_norce.sensors.norce",
]
HTTP = ["airflow.providers.http.operators.http"]
PROBE = """
import sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
for name in sys.argv[1:]:
    __import__(name)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def measure(modules: list[str], env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, env=env, check=True
    )
    base, extra = out.stdout.strip().splitlines()[-1].split()
    return float(base), float(extra)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    env = child_env()
    measure(OURS + HTTP, env)  # compile bytecode once, outside the measurement
    ours, http, sdk = [], [], []
    for n in range(args.repeat):
        for name in ("ours", "http") if n % 2 == 0 else ("http", "ours"):
            base, extra = measure(OURS if name == "ours" else HTTP, env)
            sdk.append(base)
            (ours if name == "ours" else http).append(extra)
    ratio = median(ours) / median(http)
    emit(
        "dag_parse_import",
        {
            "repeat": args.repeat,
            "airflow_sdk_ms": round(1000 * median(sdk), 1),
            "ours_ms": round(1000 * median(ours), 1),
            "http_provider_ms": round(1000 * median(http), 1),
            "modules": OURS,
            "ratio": round(ratio, 3),
            "target": "ratio <= 1.1 (ours / http provider, beyond airflow.sdk)",
            "meets_target": ratio <= 1.1,
        },
    )


if __name__ == "__main__":
    main()
