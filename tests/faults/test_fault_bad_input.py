"""Bad input at the DAG level (issue 9, "Bad input, the same way"): real ``dag.test()`` runs against the simulator.

Each task of ``tests/faults/dags/bad_input.py`` gets one bad input: a connection with a missing or malformed
field, a templated argument that renders to the wrong thing, a hostile item file. Each must fail before any
request (the simulator counts none, token requests included), with one error in the task log that names the
connection or task, the field, and what to do. One ``dag.test()`` per DAG runs all its cases (module-scoped
fixtures); the tests then check each task.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

import airflow
import pytest
from norce_faults_testlib import task_states

DAGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dags")
DAG_FILE = "bad_input.py"
LOGICAL_DATE = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
AIRFLOW_3_0 = airflow.__version__.startswith("3.0.")
#: Every bad connection also carries these, so a request that slipped through would fail fast, not retry.
FAST = {"max_attempts": 1, "timeout": 3, "max_retry_wait": 0, "token_cache": "process"}


@dataclass
class DagRun:
    """What one ``dag.test()`` left: task states, the task logs of all its tasks, the simulator's counters."""

    states: dict[str, str]
    out: str
    counters: dict[str, Any]

    def refusals(self, pattern: str) -> list[str]:
        """The errors the tasks failed with (``Class: message``) that match ``pattern`` (a regex)."""
        return [text for text in task_errors(self.out) if re.search(pattern, text)]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_LINE = re.compile(r"^[\w.]*(?:Error|Exception): ")
_NEW_RECORD = re.compile(
    r"^(\d{4}-\d\d-\d\d[T ]\d\d:|\[|Traceback|During handling|The above exception|[│╭╰])"
)


def task_errors(out: str) -> list[str]:
    """Each ``ExceptionClass: message`` of a task log, as one line of text.

    Airflow 3.3 writes it on one line after the traceback; Airflow 3.0 renders tracebacks with rich, which
    colours the text and wraps it at 100 columns: the colours are removed and the wrapped lines joined.
    """
    lines = _ANSI.sub("", out).splitlines()
    errors: list[str] = []
    index = 0
    while index < len(lines):
        if not _ERROR_LINE.match(lines[index]):
            index += 1
            continue
        text = lines[index]
        index += 1
        while index < len(lines) and lines[index].strip() and not _NEW_RECORD.match(lines[index]):
            text += " " + lines[index]
            index += 1
        errors.append(" ".join(text.split()))
    return errors


@pytest.fixture(scope="module")
def simulator():
    from airflow_provider_norce.simulator.server import NorceSimulator

    sim = NorceSimulator(job_duration=0.2).start()
    with pytest.MonkeyPatch.context() as patch:
        default = sim.connection_dict()
        default["extra"] = {**default["extra"], **FAST}
        patch.setenv("AIRFLOW_CONN_NORCE_DEFAULT", json.dumps(default))
        try:
            yield sim, patch
        finally:
            sim.stop()


@pytest.fixture(scope="module")
def run_dag(fault_dags_folder, simulator):
    from norce_airflow_testlib import load_dagbag

    sim, _ = simulator
    folder = os.path.join(fault_dags_folder, "bad_input")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(os.path.join(DAGS, DAG_FILE), folder)
    done: dict[str, DagRun] = {}
    bags: list[Any] = []

    def run(dag_id: str, conf: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> DagRun:
        """The run of ``dag_id``, made once per module by the first test that asks (task logs reach
        stdout through structlog, so that test's ``capsys`` reads them)."""
        if dag_id not in done:
            if not bags:  # parsed under capsys: Airflow's logging binds to the stdout of that moment
                bags.append(load_dagbag(folder))
                assert not bags[0].import_errors, bags[0].import_errors
            bag = bags[0]
            sim.reset_counters()
            capsys.readouterr()
            result = bag.dags[dag_id].test(logical_date=LOGICAL_DATE, run_conf=conf)
            captured = capsys.readouterr()  # both streams: where task logs go differs between versions
            done[dag_id] = DagRun(task_states(result), captured.out + captured.err, sim.counters())
        return done[dag_id]

    return run


def assert_refused_once(run: DagRun, task_id: str, pattern: str) -> None:
    """The task failed, with an error (matching ``pattern``) that is in the task log exactly once."""
    assert run.states[task_id] == "failed", (task_id, run.states[task_id])
    lines = run.refusals(pattern)
    assert len(lines) == 1, (task_id, pattern, lines)


def assert_nothing_reached_norce(run: DagRun, sim: Any) -> None:
    """No request at all, the token request included, and the client secret in no log line."""
    assert run.counters["token_requests"] == 0, run.counters
    assert run.counters["requests"] == {}, run.counters
    assert secret_leaks(run.out, sim.client_secret) == []


def assert_every_case_refused_before_any_request(run: DagRun, cases: dict[str, Any], sim: Any) -> None:
    """The DAG's run holds one failed task per case, and none of them reached Norce."""
    assert set(run.states) == set(cases)
    assert set(run.states.values()) == {"failed"}
    assert_nothing_reached_norce(run, sim)


def secret_leaks(out: str, secret: str) -> list[str]:
    """Task-log lines holding ``secret``, but for two that are Airflow 3.0's own and not the provider's:

    * at DEBUG its supervisor logs each ``MaskSecret`` message it receives, the connection's password
      included (apache/airflow#63921, issue 9 case 12);
    * when it refuses a connection whose ``extra`` is not a JSON object (before the provider sees it), its
      ``dag.test()`` traceback shows the locals of its own frames, the parsed connection among them.
    """
    lines = _ANSI.sub("", out).splitlines()
    leaks = []
    for index, line in enumerate(lines):
        if secret not in line or "MaskSecret(" in line:
            continue
        ends_with = next((later for later in lines[index:] if _ERROR_LINE.match(later)), "")
        if AIRFLOW_3_0 and ends_with.startswith("ValueError: Encountered") and "`extra`" in ends_with:
            continue
        leaks.append(line)
    return leaks


# -- connections -------------------------------------------------------------------------------------------


def bad_connections(sim: Any) -> dict[str, dict[str, Any]]:
    """``bad_<case>``: the simulator's own connection with one field broken (each would reach the simulator
    if the provider let it through)."""
    base = sim.base_url
    good = sim.connection_dict()

    def conn(**changes: Any) -> dict[str, Any]:
        merged = {**good, "extra": {**good["extra"], **FAST, **changes.pop("extra", {})}}
        merged.update(changes)
        return merged

    return {
        "no_login": conn(login=None),
        "no_password": conn(password=None),
        "login_with_space": conn(login="sim client"),
        "login_unicode": conn(login="sim\u2011client"),  # a non-breaking hyphen pasted from a document
        "application_id_text": conn(extra={"application_id": "abc"}),
        "application_id_superscript": conn(extra={"application_id": "\u00b2"}),
        "application_id_arabic_digits": conn(extra={"application_id": "\u0661\u0662\u0663\u0664"}),
        "application_id_with_space": conn(extra={"application_id": "12 34"}),
        "extra_not_json": {**conn(), "extra": '{"application_id": "1234", "max_attempts": 1,}'},
        "extra_not_object": {**conn(), "extra": '["application_id", 1234]'},
        "host_with_service_path": conn(host=base + "/commerce/metadata/1.1"),
        "host_with_token_path": conn(host=base + "/identity/1.0/connect/token"),
        "base_url_with_service_path": conn(extra={"base_url": base + "/commerce/query/2.0/"}),
        "export_host_with_service_path": conn(host=base + "/commerce/query/2.0/"),
        "import_host_with_service_path": conn(host=base + "/commerce/connect/4.0/"),
        "norce_host_with_path": conn(host="https://acme.api-se.norce.tech/api"),
        "host_port_out_of_range": conn(host="http://127.0.0.1:99999"),
        "host_port_not_a_number": conn(host="http://127.0.0.1:abc"),
        "client_name_with_port": conn(host="acme:8443"),
        "client_name_unicode": conn(host="\u00e5cme"),
        "host_with_space": conn(host="acme corp"),
        "http_to_remote_host": conn(extra={"base_url": "http://acme.example.com"}),
        "http_token_url_to_remote_host": conn(extra={"token_url": "http://id.example.com/connect/token"}),
    }


#: task id -> (connection case, field named, what the error tells the user to do)
CONNECTION_CASES: dict[str, tuple[str, str, str]] = {
    "conn_no_login": ("no_login", "login", "put the OAuth2 Client ID from Norce Admin"),
    "conn_no_password": ("no_password", "password", "put the OAuth2 Client Secret"),
    "conn_login_with_space": ("login_with_space", "login", "copy the OAuth2 Client ID from Norce Admin"),
    "conn_login_unicode": ("login_unicode", "login", "copy the OAuth2 Client ID from Norce Admin"),
    "conn_application_id_text": ("application_id_text", "application_id", "written with the digits 0-9"),
    "conn_application_id_superscript": (
        "application_id_superscript",
        "application_id",
        "written with the digits 0-9",
    ),
    "conn_application_id_arabic_digits": (
        "application_id_arabic_digits",
        "application_id",
        "written with the digits 0-9",
    ),
    "conn_application_id_with_space": (
        "application_id_with_space",
        "application_id",
        "written with the digits 0-9",
    ),
    "conn_extra_not_json": ("extra_not_json", "extra", "Fix the Extra field so it is one JSON object"),
    "conn_extra_not_object": ("extra_not_object", "extra", "not an array; fix the Extra field"),
}
if AIRFLOW_3_0:  # Airflow 3.0 refuses such a connection itself (logging why) and hands out none at all
    CONNECTION_CASES |= {
        "conn_extra_not_json": ("extra_not_json", "conn_id", "one it could not read: see Airflow's error"),
        "conn_extra_not_object": (
            "extra_not_object",
            "conn_id",
            "one it could not read: see Airflow's error",
        ),
    }
CONNECTION_CASES |= {
    "conn_host_with_service_path": ("host_with_service_path", "host", "give 'http://127.0.0.1:"),
    "conn_host_with_token_path": ("host_with_token_path", "host", "give 'http://127.0.0.1:"),
    "conn_base_url_with_service_path": ("base_url_with_service_path", "base_url", "give 'http://127.0.0.1:"),
    "export_host_with_service_path": ("export_host_with_service_path", "host", "give 'http://127.0.0.1:"),
    "import_host_with_service_path": ("import_host_with_service_path", "host", "give 'http://127.0.0.1:"),
    "conn_norce_host_with_path": ("norce_host_with_path", "host", "give 'https://acme.api-se.norce.tech'"),
    "conn_host_port_out_of_range": ("host_port_out_of_range", "host", "with a port from 1 to 65535"),
    "conn_host_port_not_a_number": ("host_port_not_a_number", "host", "with a port from 1 to 65535"),
    "conn_client_name_with_port": ("client_name_with_port", "host", "put the client name of https://"),
    "conn_client_name_unicode": ("client_name_unicode", "host", "put the client name of https://"),
    "conn_host_with_space": ("host_with_space", "host", "put the client name of https://"),
    "conn_http_to_remote_host": ("http_to_remote_host", "base_url", "use https"),
    "conn_http_token_url_to_remote_host": ("http_token_url_to_remote_host", "token_url", "use https"),
}


@pytest.fixture
def connections_run(simulator, run_dag, tmp_path_factory):
    """Call it with the test's ``capsys``: the run happens (once) inside a test, where task logs are read."""
    sim, patch = simulator

    def run(capsys: pytest.CaptureFixture[str]) -> DagRun:
        for case, connection in bad_connections(sim).items():
            patch.setenv(f"AIRFLOW_CONN_BAD_{case.upper()}", json.dumps(connection))
        return run_dag("bad_input_connections", {"work_dir": str(tmp_path_factory.mktemp("conn"))}, capsys)

    return run


@pytest.mark.parametrize("task_id", sorted(CONNECTION_CASES))
def test_bad_connection_is_refused_before_any_request(connections_run, capsys, task_id):
    case, field, fix = CONNECTION_CASES[task_id]
    run = connections_run(capsys)
    named = re.escape(f"Norce connection 'bad_{case}', field '{field}'")
    assert_refused_once(run, task_id, named + ".*" + re.escape(fix))


def test_no_bad_connection_sent_any_request(simulator, connections_run, capsys):
    run = connections_run(capsys)
    assert_every_case_refused_before_any_request(run, CONNECTION_CASES, simulator[0])


def test_a_path_is_kept_where_norces_url_shape_needs_it(simulator, run_dag, capsys):
    """Storm's Connect URL carries its path (``https://connect.storm.io/4.0/api/``): a Storm connection's
    ``base_url`` is used as given, and the import reaches Connect there (here: the simulator's Connect path)."""
    sim, patch = simulator
    storm = sim.connection_dict()
    storm["host"] = ""
    storm["extra"] = {
        **storm["extra"],
        **FAST,
        "platform": "storm",
        "base_url": sim.base_url + "/commerce/connect/4.0/",
        "token_url": sim.token_url,
    }
    patch.setenv("AIRFLOW_CONN_STORM_SIM", json.dumps(storm))
    run = run_dag("bad_input_storm_connect", {}, capsys)
    assert run.states == {"storm_import": "success"}, run.out[-3000:]
    assert run.counters["jobs_created"] == 1
    assert run.counters["requests"]["POST /commerce/connect/4.0/Product/ImportOnhands"] == 1


@pytest.mark.parametrize(
    ("url", "base_url", "query"),
    [
        # another host in front of Norce: its path is a gateway's prefix, kept
        (
            "https://gateway.example.com/norce/",
            "https://gateway.example.com/norce",
            "https://gateway.example.com/norce/commerce/query/2.0/",
        ),
        # Norce's own host at its root: the trailing slash is no path
        (
            "https://acme.api-se.norce.tech/",
            "https://acme.api-se.norce.tech",
            "https://acme.api-se.norce.tech/commerce/query/2.0/",
        ),
    ],
)
def test_a_gateway_prefix_is_kept_a_norce_host_has_none(url, base_url, query):
    from types import SimpleNamespace

    from airflow_provider_norce.connection import NorceConnectionConfig

    conn = SimpleNamespace(conn_id="norce_gw", host=url, login="cid", password="pw", extra_dejson={})
    config = NorceConnectionConfig.from_connection(conn)
    assert (config.base_url, config.service_url("query")) == (base_url, query)


# -- operator arguments rendered from dag_run.conf ----------------------------------------------------------


def argument_conf(work_dir: str) -> dict[str, Any]:
    return {
        "work_dir": work_dir,
        "empty": "",
        "xml": "xml",
        "word": "word",
        "maybe": "maybe",
        "ten": "ten",
        "minus_one": "-1",
        "inf": "inf",
        "unknown_conn": "norce_nowhere",
        "unknown_method": "Product/ImportNothing",
        "unknown_http_method": "FETCH",
        "other_host_url": "https://elsewhere.example.com/commerce/metadata/1.1/GetApplication",
        "items": [{"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 1}],
    }


def _task(task_id: str, rest: str) -> str:
    return re.escape(f"Task '{task_id}': ") + rest


def _unknown(conn_id: str) -> str:
    return re.escape(
        f"Norce connection '{conn_id}', field 'conn_id': Airflow has no usable connection with this id"
    ) + (".*create or fix a connection of type norce")


#: task id -> the error (a regex) its task log must hold exactly once
ARGUMENT_CASES: dict[str, str] = {
    "export_destination_empty": _task("export_destination_empty", "destination is empty; give a file path"),
    "export_destination_directory": _task(
        "export_destination_directory", "destination '.*' is a directory; give a file path inside it"
    ),
    "export_destination_slash": _task(
        "export_destination_slash", "destination '.*/exports/' ends in '/'.*give a file name"
    ),
    "export_file_format_unknown": _task(
        "export_file_format_unknown", "file_format 'xml' is not one of jsonl"
    ),
    "export_entity_empty": _task(
        "export_entity_empty", "entity '' must be 'Namespace/EntitySet', for example"
    ),
    "export_entity_no_namespace": _task(
        "export_entity_no_namespace", "entity 'word' must be 'Namespace/EntitySet', for example"
    ),
    "export_filter_application_word": _task(
        "export_filter_application_word", "filter_application 'maybe' is not true or false"
    ),
    "export_conn_id_empty": _task("export_conn_id_empty", "norce_conn_id is ''; give the id of an Airflow"),
    "export_conn_id_unknown": _unknown("norce_nowhere_export"),
    "import_batch_size_word": _task(
        "import_batch_size_word", "batch_size must be a whole number .* got 'ten'"
    ),
    "import_poll_interval_negative": _task(
        "import_poll_interval_negative", "poll_interval must be a number of seconds above 0, got '-1'"
    ),
    "import_timeout_inf": _task("import_timeout_inf", "timeout must be a finite number of seconds .* 'inf'"),
    "import_wait_word": _task("import_wait_word", "wait_for_completion must be true or false, got 'maybe'"),
    "import_method_unknown": re.escape("import_method 'Product/ImportNothing' is not a Norce Connect import ")
    + "method; use one of: Product/ImportProducts",
    "import_header_not_json": _task("import_header_not_json", "connect_header of .* is not valid JSON"),
    "import_items_path_empty": _task("import_items_path_empty", "items_path is empty; give the path"),
    "import_items_path_directory": _task(
        "import_items_path_directory", "items_path '.*' is a directory; give the path of one JSON-array"
    ),
    "import_items_jinja_string": _task(
        "import_items_jinja_string", "items must be a list of JSON objects, got a string; pass the XComArg"
    ),
    "import_conn_id_empty": _task("import_conn_id_empty", "norce_conn_id is ''; give the id of an Airflow"),
    "import_conn_id_unknown": _unknown("norce_nowhere_import"),
    "call_endpoint_empty": _task("call_endpoint_empty", "endpoint is ''; give a path such as"),
    "call_endpoint_other_host": re.escape(
        "Norce connection 'norce_default': refusing to send the Norce token "
    )
    + "to https://elsewhere.example.com; only http://127.0.0.1:\\d+ receive it",
    "call_method_unknown": _task("call_method_unknown", "method must be one of GET, POST, .*got 'FETCH'"),
    "call_paginate_word": _task("call_paginate_word", "paginate must be true or false, got 'maybe'"),
    "call_request_params_text": _task(
        "call_request_params_text", "request_params must be a mapping such as .*, got str 'word'"
    ),
    "call_headers_text": _task("call_headers_text", "headers must be a mapping such as .*, got str 'word'"),
    "call_conn_id_empty": _task("call_conn_id_empty", "norce_conn_id is ''; give the id of an Airflow"),
    "call_conn_id_unknown": _unknown("norce_nowhere_call"),
}


@pytest.fixture
def arguments_run(run_dag, tmp_path_factory):
    def run(capsys: pytest.CaptureFixture[str]) -> DagRun:
        work_dir = tmp_path_factory.mktemp("arguments")
        return run_dag("bad_input_arguments", argument_conf(str(work_dir)), capsys)

    return run


@pytest.mark.parametrize("task_id", sorted(ARGUMENT_CASES))
def test_argument_rendered_wrong_is_refused_before_any_request(arguments_run, capsys, task_id):
    assert_refused_once(arguments_run(capsys), task_id, ARGUMENT_CASES[task_id])


def test_no_bad_argument_sent_any_request(simulator, arguments_run, capsys):
    run = arguments_run(capsys)
    assert_every_case_refused_before_any_request(run, ARGUMENT_CASES, simulator[0])


# -- item files of a Connect import ------------------------------------------------------------------------

ITEM = {"PartNo": "100001", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": 1}
TEN_MB = 10 * 1024 * 1024


def write_item_files(folder: Any) -> None:
    files = {
        "empty": b"",
        "whitespace_only": b"  \n\n\t \n",
        "not_json": b'{"PartNo": "100001", "WarehouseCode": MAIN}\n',
        "json_object": json.dumps(ITEM, indent=2).encode(),
        "array_of_numbers": b"[1, 2, 3]",
        # a 10 MB line cut off inside a string, and a 10 MB line that is a JSON string, not an object
        "ten_mb_line_not_json": b'{"PartNo": "' + b"9" * TEN_MB + b"\n",
        "ten_mb_line_not_an_object": b'"' + b"9" * TEN_MB + b'"\n',
        "invalid_utf8": json.dumps(ITEM).encode() + b"\n" + b'{"PartNo": "10\xff\xfe02"}\n',
    }
    for name, content in files.items():
        (folder / f"{name}.json").write_bytes(content)


def _items(case: str, rest: str) -> str:
    return re.escape(f"Task 'items_{case}': ") + f"(item 1 of )?items_path '.*/{case}.json'" + rest


ITEM_FILE_CASES: dict[str, str] = {
    "items_empty": _items(
        "empty", " is empty; it must hold a JSON array of objects.*for no items write \\[\\]"
    ),
    "items_whitespace_only": _items("whitespace_only", " is empty; it must hold a JSON array of objects"),
    # a syntax error inside one line is no "JSON object over several lines": the error ends without that hint
    "items_not_json": _items(
        "not_json", ": line 1 is not valid JSON \\(Expecting value: line 1 column 39.*\\)$"
    ),
    "items_json_object": _items(
        "json_object", ": line 1 is not valid JSON .*looks like one JSON object over several lines"
    ),
    "items_array_of_numbers": _items("array_of_numbers", " is a int, not a JSON object"),
    "items_ten_mb_line_not_json": _items(
        "ten_mb_line_not_json", ": line 1 is not valid JSON \\(Unterminated string.*\\)$"
    ),
    "items_ten_mb_line_not_an_object": _items("ten_mb_line_not_an_object", " is a str, not a JSON object"),
    "items_invalid_utf8": _items(
        "invalid_utf8", " is not UTF-8 text: line 2 holds byte.*save the file as UTF-8"
    ),
}


@pytest.fixture
def item_files_run(run_dag, tmp_path_factory):
    def run(capsys: pytest.CaptureFixture[str]) -> DagRun:
        folder = tmp_path_factory.mktemp("items")
        write_item_files(folder)
        return run_dag("bad_input_item_files", {"work_dir": str(folder)}, capsys)

    return run


@pytest.mark.parametrize("task_id", sorted(ITEM_FILE_CASES))
def test_bad_item_file_is_refused_before_any_request(item_files_run, capsys, task_id):
    assert_refused_once(item_files_run(capsys), task_id, ITEM_FILE_CASES[task_id])


def test_no_bad_item_file_sent_any_request(simulator, item_files_run, capsys):
    run = item_files_run(capsys)
    assert_every_case_refused_before_any_request(run, ITEM_FILE_CASES, simulator[0])
    assert "9" * 1000 not in run.out  # a 10 MB line is named by its number, never echoed
