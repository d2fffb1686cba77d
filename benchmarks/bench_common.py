"""Shared pieces of the benchmarks: a simulator in its own process, child environments, JSON output, and the
measurement a child task process prints.

The simulator runs as ``python -m airflow_provider_norce.simulator serve`` in a separate process so that
the code being measured never shares a GIL with the server answering it. ``requests`` is imported only where
it is used: the child task scripts import this module before they measure what their own imports cost.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"
APPLICATION_ID = 1234


def token_by_hand(conn: dict[str, Any]) -> requests.Response:
    """The token request a user writes from Norce's page: a form POST, credentials in the body, no cache."""
    import requests

    return requests.post(
        conn["host"] + "/identity/1.0/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": conn["login"],
            "client_secret": conn["password"],
            "scope": "production",
        },
        timeout=60,
    )


@contextlib.contextmanager
def simulator(**options: Any) -> Iterator[str]:
    """Start the simulator CLI with ``--option value`` pairs (``True`` = a bare flag); yield its base URL."""
    args = [sys.executable, "-m", "airflow_provider_norce.simulator", "serve",
            "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET]  # fmt: skip
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if "listening on " not in line:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        yield line.rsplit(" ", 1)[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def counters(base_url: str) -> dict[str, Any]:
    import requests

    return requests.get(base_url + "/_sim/counters", timeout=10).json()


def connection(base_url: str, **extra: str) -> str:
    """``AIRFLOW_CONN_NORCE_DEFAULT`` for the simulator."""
    return json.dumps({
        "conn_type": "norce", "host": base_url, "login": CLIENT_ID, "password": CLIENT_SECRET,
        "extra": {"application_id": str(APPLICATION_ID), **extra},
    })  # fmt: skip


def child_env(**extra: str) -> dict[str, str]:
    """What a task process sees: an Airflow home of its own, no examples, unbuffered output."""
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="norce-bench-home-"))
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # deployed Airflow has bytecode caches; let children write them
    env.update(extra)
    return env


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}"


def emit(name: str, figures: dict[str, Any]) -> None:
    """One JSON line per benchmark: its figures, targets and verdicts, date and machine."""
    record = {"benchmark": name, **figures, "date": time.strftime("%Y-%m-%d"), "machine": machine()}
    print(json.dumps(record), flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def peak_kb() -> int:
    """Peak resident set of this process so far (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def print_measured(work: Callable[[], dict[str, Any]]) -> None:
    """Run ``work`` in a child task process whose imports are done; print one JSON line: its result, the
    seconds it took, the peak RSS and the peak RSS before it started (what the imports cost)."""
    before = peak_kb()
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    record = {**result, "seconds": seconds, "peak_rss_kb": peak_kb(), "rss_after_imports_kb": before}
    print(json.dumps(record), flush=True)
