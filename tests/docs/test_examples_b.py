"""The code in docs/simulator.md, tokens.md, deployment.md, benchmarks.md, faults.md and norce-contracts.md.

Every code block of those pages is a ``{literalinclude}`` of a file something runs: the example files in
``docs/examples/`` whose names start with ``sim_``, ``tok_`` or ``dep_`` are run here, for real (a simulator on a
real socket, real subprocesses, Airflow's own connection look-up and secrets backend), so a page cannot show code
that no longer works. The last tests check the pages themselves: no code block that is not an include, every
include's file and markers exist, and every example file is both shown by a page and run by a test here.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from docs_examples_testlib import EXAMPLES, load

from airflow_provider_norce.connection import NorceConnectionConfig
from airflow_provider_norce.exceptions import NorceConnectionConfigError

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: The pages whose code this file answers for (DOCS-A's pages have a test of their own).
PAGES = ("simulator.md", "tokens.md", "deployment.md", "benchmarks.md", "faults.md", "norce-contracts.md")
PREFIXES = ("sim_", "tok_", "dep_")
#: Every example file of ours, and the test below that runs it: a new file without a test fails the last test.
RUN_BY = {
    "sim_start.py": "test_sim_start_reads_orders_through_the_hook",
    "sim_pytest.py": "test_sim_pytest_example_passes_under_pytest",
    "sim_cli.sh": "test_sim_cli_starts_steers_and_stops_the_simulator",
    "sim_faults.py": "test_sim_faults_a_429_is_waited_out_and_the_steering_works",
    "sim_network.py": "test_sim_network_a_slow_link_and_a_late_update",
    "sim_order.json": "test_sim_data_samples_are_what_the_simulator_answers",
    "sim_sku.json": "test_sim_data_samples_are_what_the_simulator_answers",
    "tok_machine.py": "test_tok_machine_one_token_per_machine_one_per_process_without",
    "tok_scope.py": "test_tok_scope_falls_back_once_and_an_explicit_scope_is_kept",
    "tok_custom_store.py": "test_tok_custom_store_is_the_one_the_hooks_share",
    "tok_redis.py": "test_tok_redis_one_token_for_the_cluster_one_per_machine_without",
    "dep_connection.json": "test_dep_connection_json_is_a_valid_norce_connection",
    "dep_worker_env.sh": "test_dep_worker_env_gives_the_hook_its_connection",
    "dep_redis_env.sh": "test_dep_redis_env_gives_the_hook_its_redis_store",
    "dep_secrets.cfg": "test_dep_secrets_backend_serves_the_connections",
    "dep_connections.json": "test_dep_secrets_backend_serves_the_connections",
    "dep_tls_proxy.json": "test_dep_tls_proxy_extras_are_valid_and_a_missing_ca_is_refused",
    "dep_retry_policy.py": "test_dep_retry_policy_dag_parses_and_decides",
    "dep_check_install.sh": "test_dep_check_install_lists_the_provider",
}


@pytest.fixture(autouse=True)
def own_token_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own machine token store (subprocesses inherit it), an empty process cache and scope memo.

    Why: each simulator signs tokens with a key of its own, so a simulator that gets the port of an earlier one
    must not be offered that one's stored token or scope (it would change the counts the pages show).
    """
    from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE, WORKING_SCOPES

    monkeypatch.setenv("NORCE_TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    PROCESS_TOKEN_CACHE.clear()
    WORKING_SCOPES.clear()


def venv_env(**extra: str) -> dict[str, str]:
    """This interpreter's environment with its ``bin`` first on PATH, so ``python`` and ``airflow`` are ours."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return {**os.environ, "PATH": path, **extra}


def connection_from(data: dict[str, Any], conn_id: str) -> NorceConnectionConfig:
    """Validate Airflow's JSON form of a connection the way a task does: Airflow's Connection, then ours."""
    from airflow.models.connection import Connection

    return NorceConnectionConfig.from_connection(Connection.from_json(json.dumps(data), conn_id=conn_id))


# -- the simulator -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_sim_start_reads_orders_through_the_hook(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", "{}")  # restored after the example sets it
    result = load("sim_start.py").main()
    assert result["ok"], result["message"]
    assert "application 1234" in result["message"]
    orders = result["orders"]
    assert orders and {order["ApplicationId"] for order in orders} == {1234}
    assert len({order["Id"] for order in orders}) == len(orders)
    counters = result["counters"]
    assert counters["token_requests"] == 1
    assert counters["requests"]["GET /commerce/query/2.0/Orders/Orders"] == 2  # 500 a page: two pages


@pytest.mark.integration
def test_sim_pytest_example_passes_under_pytest():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", str(EXAMPLES / "sim_pytest.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


#: A log line Airflow prints on stdout (a timestamp first; in brackets on 3.0) between the lines the script prints.
LOG_LINE = re.compile(r"^\[?\d{4}-\d\d-\d\dT\d\d:")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.integration
def test_sim_cli_starts_steers_and_stops_the_simulator():
    port = _free_port()
    result = subprocess.run(
        ["bash", str(EXAMPLES / "sim_cli.sh")],
        cwd=ROOT,
        env=venv_env(NORCE_SIM_PORT=str(port)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if not LOG_LINE.match(line)]
    assert lines[0] == f"Norce simulator listening on http://127.0.0.1:{port}"
    assert lines[1].startswith("(True, \"Norce issued a token to client 'sim-client'"), lines[1]
    info, added, faults, counters, *acks = (json.loads(line) for line in lines[2:])
    assert info["connection"]["host"] == f"http://127.0.0.1:{port}"
    assert added == {"ok": True}
    assert [(f["endpoint"], f["kind"], f["count"]) for f in faults] == [("query", "503", 2)]
    assert counters["token_requests"] == 1  # the connection test through the exported connection
    assert acks == [{"ok": True}] * 3
    with socket.socket() as probe:  # stopped: nothing listens on the port (closed connections may linger)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


@pytest.mark.integration
def test_sim_faults_a_429_is_waited_out_and_the_steering_works(monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", "{}")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_norce"):
        result = load("sim_faults.py").main()
    waited = result["waited"]
    assert waited["rows"] == 10
    assert waited["counters"]["api_429"] == 2
    assert waited["counters"]["requests"]["GET /commerce/query/2.0/Orders/Orders"] == 3
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and all("429" in line for line in retries), retries
    assert result["steered"]["token_requests"] == 0  # the counters were reset last
    assert len(result["issued_before"]) == 1
    after = result["after"]  # the revoked token: one 401, one new token, the call again
    assert after["api_401"] == 1 and after["token_requests"] == 1
    assert after["requests"]["GET /commerce/metadata/1.1/GetApplication"] == 2


@pytest.mark.integration
def test_sim_network_a_slow_link_and_a_late_update(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", "{}")
    result = load("sim_network.py").main()
    network = result["network"]
    assert network["rows"] == 500 and network["query_rows"] == 500
    assert network["network"] == {"latency": 0.0, "latency_jitter": 0.0, "bandwidth": None}
    late = result["late"]
    assert 1990 not in late["exported"] and late["exported"], late
    assert late["again"] == sorted([*late["exported"], 1990])


@pytest.mark.integration
@pytest.mark.norce_simulator()  # the defaults the page describes (seed 42)
@pytest.mark.parametrize(
    ("sample", "path"),
    [
        ("sim_order.json", "commerce/query/2.0/Orders/Orders(1)?$expand=Items"),
        ("sim_sku.json", "commerce/query/2.0/Products/ProductSkus('100001')?$expand=PriceLists"),
    ],
)
def test_sim_data_samples_are_what_the_simulator_answers(norce_simulator, sample, path):
    from airflow_provider_norce.hooks.norce import NorceHook

    answer = NorceHook(norce_simulator.conn_id).run_json(path)
    answer.pop("@odata.context")
    assert answer == json.loads((EXAMPLES / sample).read_text())


# -- token sharing -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_tok_machine_one_token_per_machine_one_per_process_without():
    assert load("tok_machine.py").main() == {"machine": 1, "process": 3}


@pytest.mark.integration
def test_tok_scope_falls_back_once_and_an_explicit_scope_is_kept(monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", "{}")
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_EXPLICIT", "{}")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_norce"):
        result = load("tok_scope.py").main()
    assert result["token_requests"] == 3  # prod, production; then the explicit prod, refused
    warnings = [r.getMessage() for r in caplog.records if "invalid_scope" in r.getMessage()]
    assert len(warnings) == 1 and "set the connection's extra 'scope' to 'production'" in warnings[0]
    assert "norce_explicit" in result["error"] and "invalid_scope" in result["error"]
    assert "sim-secret" not in result["error"]


@pytest.mark.integration
def test_tok_custom_store_is_the_one_the_hooks_share(monkeypatch):
    from airflow_provider_norce.tokens import store

    monkeypatch.setattr(store, "_factories", dict(store._factories))  # the registration ends with the test
    monkeypatch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", "{}")
    result = load("tok_custom_store.py").main()
    assert result == {"same_token": True, "renewed": True, "token_requests": 2}


@pytest.mark.integration
def test_tok_redis_one_token_for_the_cluster_one_per_machine_without(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "token_store"))
    from redis_testlib import RedisServer, redis_server_binary

    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (bash .ci/os-packages installs it)")
    server = RedisServer(tmp_path / "redis").start()
    try:
        assert load("tok_redis.py").main(server.url) == {"machine": 2, "redis": 1}
    finally:
        server.stop()


# -- deployment ----------------------------------------------------------------------------------------------


def test_dep_connection_json_is_a_valid_norce_connection():
    data = json.loads((EXAMPLES / "dep_connection.json").read_text())
    config = connection_from(data, "norce_default")
    assert config.base_url == "https://acme.api-se.stage.norce.tech"
    assert config.token_url == "https://acme.api-se.stage.norce.tech/identity/1.0/connect/token"
    assert (config.application_id, config.scope, config.token_cache) == (1234, "stage", "machine")


def _sh_between(name: str, marker: str) -> str:
    text = (EXAMPLES / name).read_text()
    return text.split(f"# [START {marker}]\n", 1)[1].split(f"# [END {marker}]", 1)[0]


def _source_and_read(script_name: str, read: str, airflow_home: Path) -> Any:
    """Source an environment script of the docs in bash, run ``read`` in Python there; its last line as JSON."""
    script = f'source "{EXAMPLES / script_name}"\npython -c "$READ"\n'
    result = subprocess.run(
        ["bash", "-c", script],
        env=venv_env(READ=read, AIRFLOW_HOME=str(airflow_home)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_dep_worker_env_gives_the_hook_its_connection(tmp_path):
    read = (
        "import json, os\n"
        "from airflow_provider_norce.hooks.norce import NorceHook\n"
        "config = NorceHook('norce_default').config\n"
        "print(json.dumps([config.token_url, config.application_id, config.token_cache,"
        " os.environ['NORCE_TOKEN_CACHE_DIR']]))\n"
    )
    token_url, application_id, token_cache, store_dir = _source_and_read("dep_worker_env.sh", read, tmp_path)
    assert token_url == "https://acme.api-se.stage.norce.tech/identity/1.0/connect/token"
    assert (application_id, token_cache) == (1234, "machine")
    assert store_dir == "/run/airflow/norce-tokens"
    assert "export NORCE_TOKEN_CACHE_DIR" in _sh_between("dep_worker_env.sh", "dep_worker_env")


def test_dep_redis_env_gives_the_hook_its_redis_store(tmp_path):
    read = (
        "import json\n"
        "from airflow_provider_norce.hooks.norce import NorceHook\n"
        "from airflow_provider_norce.tokens.redis_connection import redis_client\n"
        "config = NorceHook('norce_default').config\n"
        "client, target = redis_client(config.token_cache_conn_id, config.conn_id, socket_timeout=1)\n"
        "kwargs = client.connection_pool.connection_kwargs\n"
        "print(json.dumps([config.token_cache, str(target), kwargs['password']]))\n"
    )
    token_cache, target, password = _source_and_read("dep_redis_env.sh", read, tmp_path)
    assert token_cache == "redis"
    assert target == "connection 'redis_tokens' (redis.internal:6379/2)"
    assert password == "redis-password"


def test_dep_secrets_backend_serves_the_connections():
    parser = configparser.ConfigParser()
    parser.read(EXAMPLES / "dep_secrets.cfg")
    module, _, name = parser["secrets"]["backend"].rpartition(".")
    backend_class = getattr(importlib.import_module(module), name)
    kwargs = json.loads(parser["secrets"]["backend_kwargs"])
    assert set(kwargs) == {"connections_file_path"}
    kwargs["connections_file_path"] = str(EXAMPLES / "dep_connections.json")  # the file the page shows
    backend = backend_class(**kwargs)
    production = NorceConnectionConfig.from_connection(backend.get_connection("norce_default"))
    assert production.token_url == "https://acme.api-se.norce.tech/identity/1.0/connect/token"
    assert (production.environment, production.scope) == ("production", "prod")
    assert production.application_id == 1234
    stage = NorceConnectionConfig.from_connection(backend.get_connection("norce_stage"))
    assert stage.token_url == "https://acme.api-se.stage.norce.tech/identity/1.0/connect/token"
    assert stage.scope == "stage" and stage.scope_explicit


def test_dep_tls_proxy_extras_are_valid_and_a_missing_ca_is_refused(tmp_path):
    data = json.loads((EXAMPLES / "dep_tls_proxy.json").read_text())
    with pytest.raises(NorceConnectionConfigError) as refused:  # this machine has no such CA file
        connection_from(data, "norce_default")
    assert refused.value.field == "verify"
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    data["extra"]["verify"] = str(bundle)  # where the bundle exists, the same extras are accepted
    config = connection_from(data, "norce_default")
    assert config.verify == str(bundle)
    assert dict(config.proxies or {}) == {"https": "http://proxy.internal:3128"}
    assert (config.timeout, config.max_attempts, config.max_retry_wait) == (60.0, 6, 300.0)


def test_dep_retry_policy_dag_parses_and_decides():
    pytest.importorskip(
        "airflow.sdk.definitions.retry_policy", reason="task retry policies arrived in Airflow 3.3"
    )
    from datetime import timedelta

    from airflow.sdk.definitions.retry_policy import RetryAction

    from airflow_provider_norce.exceptions import NorceAuthError, NorceRateLimitError
    from airflow_provider_norce.retries.task_policy import NorceTaskRetryPolicy

    module = load("dep_retry_policy.py")
    task = module.dag.get_task("export_orders")
    assert isinstance(task.retry_policy, NorceTaskRetryPolicy)
    assert (task.retries, task.retry_delay) == (3, timedelta(minutes=5))
    policy = task.retry_policy
    assert policy.evaluate(NorceAuthError("invalid_client"), 1, 4).action is RetryAction.FAIL
    limited = policy.evaluate(NorceRateLimitError("429", status_code=429, retry_after=300), 1, 4)
    assert limited.action is RetryAction.RETRY and limited.retry_delay == timedelta(seconds=300)


@pytest.mark.airflow
def test_dep_check_install_lists_the_provider(tmp_path):
    result = subprocess.run(
        ["bash", str(EXAMPLES / "dep_check_install.sh")],
        env=venv_env(AIRFLOW_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed, hooks = [line for line in result.stdout.splitlines() if not LOG_LINE.match(line)]
    assert listed.startswith("airflow-provider-norce") and "Norce Commerce" in listed
    assert "airflow_provider_norce.hooks.norce.NorceHook" in hooks


# -- the pages -----------------------------------------------------------------------------------------------

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
OPTION = re.compile(r"^ *:(?P<name>[\w-]+):(?: +(?P<value>.*))?$")


def _unquoted(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "\"'" else value


def code_blocks(page: str) -> list[tuple[int, str, dict[str, str]]]:
    """``(line, info string, options)`` of every fenced block of a page (the info string's directive, if any)."""
    blocks = []
    lines = (DOCS / page).read_text().splitlines()
    number = 0
    while number < len(lines):
        opened = FENCE.match(lines[number])
        number += 1
        if not opened:
            continue
        start, fence, info = number, opened["fence"], opened["info"].strip()
        options: dict[str, str] = {}
        while number < len(lines) and not lines[number].strip().startswith(fence):
            if option := OPTION.match(lines[number]):
                options[option["name"]] = _unquoted(option["value"] or "")
            number += 1
        number += 1
        blocks.append((start, info, options))
    return blocks


def includes() -> list[tuple[str, int, Path, dict[str, str]]]:
    found = []
    for page in PAGES:
        for line, info, options in code_blocks(page):
            if info.startswith("{literalinclude}"):
                found.append((page, line, (DOCS / info.split(None, 1)[1].strip()).resolve(), options))
    return found


@pytest.mark.parametrize("page", PAGES)
def test_every_code_block_is_an_include_of_a_tested_file(page):
    assert (DOCS / page).exists(), f"docs/{page} is missing"
    bare = [f"docs/{page}:{line}: {info or '(no language)'}" for line, info, _ in code_blocks(page)]
    bare = [entry for entry in bare if "{literalinclude}" not in entry]
    assert not bare, "code blocks that are not a {literalinclude} of a tested file:\n" + "\n".join(bare)


def test_every_include_names_a_file_and_markers_that_exist():
    problems = []
    for page, line, path, options in includes():
        where = f"docs/{page}:{line}"
        if not path.is_file():
            problems.append(f"{where}: no file {path.relative_to(ROOT) if ROOT in path.parents else path}")
            continue
        text = path.read_text()
        for option in ("start-after", "end-before"):
            if option in options and options[option] not in text:
                problems.append(f"{where}: {option} {options[option]!r} is not in {path.name}")
        if path.parent == EXAMPLES and path.name.startswith(PREFIXES) and path.suffix in (".py", ".sh"):
            if not ("start-after" in options and "end-before" in options):
                problems.append(f"{where}: include {path.name} between its [START]/[END] markers")
    assert not problems, "\n".join(problems)


def test_every_example_file_is_run_here_and_shown_by_a_page():
    ours = sorted(p.name for p in EXAMPLES.iterdir() if p.name.startswith(PREFIXES))
    assert sorted(RUN_BY) == ours, "RUN_BY must name the test of every sim_/tok_/dep_ file in docs/examples"
    tests = {name for name, value in globals().items() if name.startswith("test_") and callable(value)}
    assert set(RUN_BY.values()) <= tests
    shown = {path.name for _, _, path, _ in includes() if path.parent == EXAMPLES}
    assert not set(ours) - shown, f"example files no page includes: {sorted(set(ours) - shown)}"
