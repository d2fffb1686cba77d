"""The DAG runs of the secrets audit, in a process of their own (started by test_secrets_audit.py).

Usage: ``python secrets_audit_runner.py PLAN.json DUMP.json`` with ``AIRFLOW__LOGGING__LOGGING_LEVEL=DEBUG``.
The simulator runs in the pytest process; this process steers its faults over ``/_sim/`` and runs each
scenario of the plan with ``dag.test()``. Everything that cannot be read from outside afterwards goes into
DUMP: ``str``/``repr``/traceback of every exception raised in the runs (provider, requests, httpx and tenacity
errors as they are created, and every exception still alive after a run), and the ``repr``/``str`` of every
hook, connection config, token, operator and trigger object. The audit test searches that dump together
with this process's stdout/stderr, the log files and the metadata database.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import json
import os
import sys
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UTC = dt.timezone.utc


class Recorder:
    """Every exception and provider object the runs create (strong references: rendered at the end)."""

    def __init__(self) -> None:
        self.exceptions: dict[int, BaseException] = {}
        self.objects: dict[int, Any] = {}
        self.mask_messages: list[dict[str, Any]] = []

    def exception(self, exc: BaseException | None) -> None:
        """``exc`` and every exception linked to it (cause, context, a tenacity RetryError's last attempt)."""
        todo = [exc]
        while todo:
            current = todo.pop()
            if current is None or id(current) in self.exceptions:
                continue
            self.exceptions[id(current)] = current
            todo += [current.__cause__, current.__context__, _attempt_exception(current)]

    def obj(self, value: Any) -> None:
        self.objects.setdefault(id(value), value)

    def wrap_init(self, cls: type, kind: str) -> None:
        original = cls.__init__
        recorder = self

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            if kind == "exception":
                recorder.exception(self)
            else:
                recorder.obj(self)

        cls.__init__ = __init__  # type: ignore[misc]

    def install(self) -> None:
        import httpx
        import requests
        import tenacity

        from airflow_provider_norce.exceptions import NorceError
        from airflow_provider_norce.hooks.norce import NorceHook
        from airflow_provider_norce.triggers.norce import NorceJobTrigger

        for cls in (NorceError, requests.exceptions.RequestException, httpx.HTTPError, tenacity.RetryError):
            self.wrap_init(cls, "exception")
        for cls in (NorceHook, NorceJobTrigger):
            self.wrap_init(cls, "object")
        self.watch_mask_messages()

    def watch_mask_messages(self) -> None:
        """Note who asked for each ``MaskSecret`` that ``dag.test()``'s in-process comms send (and log at DEBUG):
        the code that called ``mask_secret``, so the audit can tell Airflow's own lines from the provider's."""
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms

        original = InProcessSupervisorComms.send
        messages = self.mask_messages

        def send(comms: Any, msg: Any) -> Any:
            if type(msg).__name__ == "MaskSecret":
                messages.append({"value": repr(msg.value), "caller": _mask_caller()})
            return original(comms, msg)

        InProcessSupervisorComms.send = send  # type: ignore[method-assign]

    def sweep(self) -> None:
        """Exceptions and tokens still alive after a run (the task's own failure, caught ones not yet freed)."""
        from airflow_provider_norce.tokens.cache import Token

        for value in gc.get_objects():
            kind = type(value)  # not isinstance: lazy proxies import things when asked for __class__
            if issubclass(kind, BaseException):
                self.exception(value)
            elif issubclass(kind, Token):
                self.obj(value)

    def texts(self) -> dict[str, list[str]]:
        exceptions = []
        for exc in list(self.exceptions.values()):
            try:
                rendered = "".join(traceback.format_exception(exc))
            except Exception as err:  # a broken __str__ must not hide the rest
                rendered = f"<format_exception failed: {err!r}>"
            exceptions.append(
                f"{type(exc).__qualname__}\nstr: {_safe(str, exc)}\nrepr: {_safe(repr, exc)}\n"
                f"args: {_safe(repr, getattr(exc, 'args', ()))}\n{rendered}"
            )
        objects = []
        for value in list(self.objects.values()):
            entry = [
                f"{type(value).__qualname__}",
                f"repr: {_safe(repr, value)}",
                f"str: {_safe(str, value)}",
            ]
            config = getattr(value, "__dict__", {}).get("config")
            if config is not None:
                entry += [f"config repr: {_safe(repr, config)}", f"config str: {_safe(str, config)}"]
            if hasattr(value, "serialize") and callable(value.serialize):
                entry.append(f"serialize: {_safe(lambda v: repr(v.serialize()), value)}")
            objects.append("\n".join(entry))
        return {"exceptions": exceptions, "objects": objects}


class _Planted:
    """The canary's object: its repr holds the canary token (URL-safe base64), on purpose."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"_Planted({self.text})"


def _mask_caller() -> str:
    """``file:line function`` of the code that called ``mask_secret`` (the frame outside the masking calls)."""
    seen_mask = False
    for frame in reversed(traceback.extract_stack()[:-2]):
        if frame.name in ("mask_secret", "amask_secret"):
            seen_mask = True
        elif seen_mask:
            return f"{frame.filename}:{frame.lineno} {frame.name}"
    return "unknown"


def _attempt_exception(exc: BaseException) -> BaseException | None:
    attempt = getattr(exc, "last_attempt", None)
    try:
        return attempt.exception() if attempt is not None else None
    except Exception:
        return None


def _safe(function: Any, value: Any) -> str:
    try:
        return function(value)
    except Exception as err:
        return f"<{function!r} failed: {err!r}>"


class _Echo(BaseHTTPRequestHandler):
    """A hostile server: ``/token`` answers 400 echoing the form it got, anything else 400 echoing the headers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        if self.path.startswith("/token"):
            payload = {
                "error": "invalid_request",
                "error_description": f"Could not parse the request: {body}",
            }
        else:
            payload = {"Message": "Bad request", "RequestHeaders": dict(self.headers.items())}
        data = json.dumps(payload).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _control(sim_url: str, method: str, path: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(sim_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read() or b"null")


def _canary_token(info: dict[str, Any]) -> str:
    """A token fetched outside the provider: never registered with any masker."""
    from urllib.parse import urlencode

    connection = info["connection"]
    form = urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": connection["login"],
            "client_secret": connection["password"],
            "scope": "prod",
        }
    ).encode()
    request = urllib.request.Request(info["token_url"], data=form, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["access_token"]


def _connections(info: dict[str, Any], echo_url: str, extra: dict[str, Any]) -> None:
    base = info["connection"]
    default = {**base, "extra": {**base["extra"], **extra}}
    os.environ["AIRFLOW_CONN_NORCE_DEFAULT"] = json.dumps(default)
    echo = {**default, "extra": {**default["extra"], "base_url": echo_url, "token_url": info["token_url"]}}
    os.environ["AIRFLOW_CONN_NORCE_ECHO"] = json.dumps(echo)
    form = {**default, "extra": {**default["extra"], "token_url": echo_url + "/token"}}
    os.environ["AIRFLOW_CONN_NORCE_ECHO_FORM"] = json.dumps(form)


def main(plan_path: str, dump_path: str) -> None:
    with open(plan_path, encoding="utf-8") as handle:
        plan = json.load(handle)
    sys.path.insert(0, plan["tests_dir"])
    sim_url = plan["sim_url"]
    recorder = Recorder()
    recorder.install()
    from norce_airflow_testlib import share_the_execution_api

    share_the_execution_api()

    echo = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    echo.daemon_threads = True
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    info = _control(sim_url, "GET", "/_sim/info")
    _connections(info, f"http://127.0.0.1:{echo.server_address[1]}", plan["extra"])

    from norce_airflow_testlib import load_dagbag

    dags: dict[str, Any] = {}
    for folder in plan["folders"]:
        bag = load_dagbag(folder)
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        dags.update(bag.dags)
    for dag in dags.values():  # a task's retry is part of the audit, but not its one-minute wait
        for task in dag.tasks:
            task.retry_delay = dt.timedelta(seconds=1)

    results = []
    for scenario in plan["scenarios"]:
        _control(sim_url, "DELETE", "/_sim/faults")
        for action in scenario.get("before", []):
            _control(sim_url, "POST", "/_sim/" + action)
        for fault in scenario.get("faults", []):
            _control(sim_url, "POST", "/_sim/faults", fault)
        conf = dict(scenario.get("run_conf") or {})
        if scenario.get("canary"):
            conf["canary"] = _canary_token(info)
        dag = dags[scenario["dag_id"]]
        started = time.monotonic()
        print(f"secrets-audit: scenario {scenario['name']} starts", flush=True)
        state, tasks = "error", {}
        try:
            run = dag.test(logical_date=dt.datetime.fromisoformat(scenario["logical_date"]), run_conf=conf)
            state = str(run.state)
            tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        except BaseException as exc:  # recorded and searched like any other
            recorder.exception(exc)
            traceback.print_exc()
        recorder.sweep()
        took = time.monotonic() - started
        print(f"secrets-audit: scenario {scenario['name']} ended {state} {tasks} in {took:.1f} s", flush=True)
        if scenario.get("canary"):  # and in the objects the audit renders
            recorder.obj(_Planted(base64.urlsafe_b64encode(conf["canary"].encode()).decode()))
        results.append(
            {"name": scenario["name"], "state": state, "tasks": tasks, "canary": conf.get("canary")}
        )
    _control(sim_url, "DELETE", "/_sim/faults")
    echo.shutdown()

    for dag in dags.values():
        for task in dag.tasks:
            recorder.obj(task)
    texts = recorder.texts()
    with open(dump_path, "w", encoding="utf-8") as handle:
        json.dump({"results": results, "mask_messages": recorder.mask_messages, **texts}, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: daemon threads of Airflow's in-process API may still hold locks
