"""One task process of the fan-out benchmark (run as a script, forty at once).

Prints ``ready`` after its imports, waits for a line on stdin (the start signal), makes its calls and
prints one JSON line: ``{"ok": bool, "calls": n, "error": ...}``.

* ``hook``: what a task using this provider does: ``NorceHook`` on ``AIRFLOW_CONN_NORCE_DEFAULT``.
* ``naive``: what Norce's page leads a user to write: ``requests`` alone, a token per task, no retry.
"""

from __future__ import annotations

import json
import os
import sys


def hook(calls: int) -> int:
    from airflow_provider_norce.hooks.norce import NorceHook

    norce = NorceHook("norce_default")
    _ = norce.config  # read the connection before the start signal, as a task does before execute()
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(calls):
        norce.run_json("commerce/metadata/1.1/GetApplication", params={"format": "json"})
    return calls


def naive(calls: int) -> int:
    import requests
    from bench_common import token_by_hand

    conn = json.loads(os.environ["AIRFLOW_CONN_NORCE_DEFAULT"])
    base = conn["host"]
    print("ready", flush=True)
    sys.stdin.readline()
    response = token_by_hand(conn)
    response.raise_for_status()
    headers = {"Authorization": "Bearer " + response.json()["access_token"],
               "ApplicationId": conn["extra"]["application_id"]}  # fmt: skip
    for _ in range(calls):
        requests.get(base + "/commerce/metadata/1.1/GetApplication", params={"format": "json"},
                     headers=headers, timeout=60).raise_for_status()  # fmt: skip
    return calls


def main() -> None:
    mode, calls = sys.argv[1], int(sys.argv[2])
    try:
        done = hook(calls) if mode == "hook" else naive(calls)
        result: dict[str, object] = {"ok": True, "calls": done}
    except Exception as err:  # the benchmark counts failures, as Airflow would count failed tasks
        result = {"ok": False, "error": type(err).__name__}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
