"""A task process for the machine-store tests: run as a script, one per simulated Airflow task.

Protocol: prints ``ready`` once imported and set up, waits for one line on stdin (so many processes
start their work together), then does its job and prints one JSON line.

Modes:

* ``light URL CLIENT SECRET``: the process cache plus the machine store (from the environment) in
  front of a plain token request to the simulator, then one API call with the token. No Airflow
  import, so thirty of these start in about a second.
* ``hook``: ``NorceHook`` with the connection ``AIRFLOW_CONN_NORCE_DEFAULT`` (what a task does).
* ``hang URL CLIENT SECRET``: takes the key's lock, prints ``fetching`` and sleeps (to be SIGKILLed).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time


def light(base_url: str, client_id: str, secret: str, *, hang: bool = False) -> dict[str, object]:
    import requests

    from airflow_provider_norce.tokens.cache import TokenCache, token_from_response, token_key
    from airflow_provider_norce.tokens.store import store_for

    token_url = base_url + "/identity/1.0/connect/token"
    store = store_for("machine")
    assert store is not None, "no machine store"
    cache = TokenCache()
    session = requests.Session()

    def fetch(reserve, note_rate_limited):
        if hang:
            print("fetching", flush=True)
            time.sleep(3600)
        wait = reserve(60.0)
        if wait is None:
            raise RuntimeError("no token slot within 60 s")
        time.sleep(wait)
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
                "scope": "production"}  # fmt: skip
        response = session.post(token_url, data=form, timeout=30)
        if response.status_code == 429:
            note_rate_limited(float(response.headers.get("Retry-After") or 20))
        response.raise_for_status()
        return token_from_response(response.json(), time.time())

    key = token_key(token_url, client_id, "production", secret)
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        token = cache.get(key, fetch, store)
    except Exception as err:  # reported to the test, which asserts on it
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    api = session.get(
        base_url + "/commerce/metadata/1.1/GetApplication",
        headers={"Authorization": "Bearer " + token.access_token, "ApplicationId": "1234"},
        timeout=30,
    )
    return {"ok": api.status_code == 200, "status": api.status_code, "token": _digest(token.access_token)}


def hook() -> dict[str, object]:
    from airflow_provider_norce.hooks.norce import NorceHook

    norce = NorceHook("norce_default")
    print("ready", flush=True)
    sys.stdin.readline()
    app = norce.run_json("commerce/metadata/1.1/GetApplication")
    return {"ok": True, "app": app.get("Id"), "token": _digest(norce.get_access_token()),
            "store": type(norce.shared_store).__name__}  # fmt: skip


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "light":
        result = light(*args)
    elif mode == "hang":
        result = light(*args, hang=True)
    elif mode == "hook":
        result = hook()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
