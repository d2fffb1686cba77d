"""The DEBUG-level secrets audit (issue 9, "Secrets audit"; case 12).

The example DAGs (order export, nightly catalog sync with its job wait deferred, product ETL) and the audit's
own DAGs (tests/faults/dags/secrets_audit.py) run at DEBUG log level, in a process of their own
(``secrets_audit_runner.py``), against the simulator of this test, through: token 429s with and without
``Retry-After``, a token 503, Query/Connect 429s with and without ``Retry-After``, 5xx, truncated and dropped
bodies, tokens that live 4 s (renewed mid-export and mid-wait), tokens expired or revoked under the client
(401 once: renewed, in the task and in the trigger; 401 twice: the task fails), ``invalid_client``, an API
whose error body echoes the ``Authorization`` header, a token endpoint whose error echoes the form
(``client_secret`` included). Then everything the runs
left is searched for the client secret and for every access token the simulator issued
(``sim.issued_tokens()``, exact substrings in every spelling: see ``secrets_audit_search.py``): the runner's
stdout and stderr (task logs, the deferred trigger's lines), every file under ``$AIRFLOW_HOME/logs``, every row
of every table of the metadata database (XComs, rendered template fields, triggers, DAG run conf), and the
``str``/``repr``/traceback of every exception raised and of every hook, config, token, operator and trigger.

The runner also notes who asked for every ``MaskSecret`` the in-process comms sent (each is logged at DEBUG
in clear, case 12): a secret in one the provider asked for is a leak wherever it was logged.

A canary proves the search can see: one token, fetched outside the provider and so never masked, is planted
on purpose in the task log, a log file, an exception, an XCom and a rendered field; the audit must find it
in each. The only other finding allowed is Airflow's own: ``Sending request ...
MaskSecret(value=<the client secret>)``, the DEBUG line Airflow's in-process supervisor comms write for the
connection password that Airflow itself registers whenever a task reads a connection (apache/airflow#63921;
``context.py`` ``_mask_connection_secrets`` on 3.3, ``models/connection.py`` and ``_get_connection`` on 3.0).
To audit the provider as it was before a fix, point ``NORCE_AUDIT_PYTHONPATH`` at a copy of it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import re
import secrets
import subprocess
import sys
from urllib.parse import quote

import pytest
from secrets_audit_search import Search, Secret

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
EXAMPLES = os.path.join(TESTS, "..", "dags_examples")
#: Characters that URL-encoding and base64 both change: every spelling of the secret differs.
SECRET = f"audit+S/e={secrets.token_hex(6)}"
CONNECTION_EXTRA = {"max_attempts": 4, "max_retry_wait": 15, "timeout": 5}


def scenarios(tmp_path) -> list[dict]:
    onhands = tmp_path / "onhands.jsonl"
    prices = tmp_path / "prices.jsonl"
    onhands.write_text(
        "".join(
            json.dumps(
                {"PartNo": f"1000{n:02d}", "WarehouseCode": "MAIN", "LocationCode": "MAIN", "OnhandValue": n}
            )
            + "\n"
            for n in range(5)
        )
    )
    prices.write_text(
        "".join(
            json.dumps({"PartNo": f"1000{n:02d}", "PriceListCode": "DEFAULT", "PriceSale": 10.0 + n}) + "\n"
            for n in range(5)
        )
    )
    query, connect, jobs, token = "query", "connect", "jobs", "token"
    http_date = email.utils.format_datetime(
        dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2), usegmt=True
    )
    return [
        {
            "name": "order export through token and Query storms",
            "dag_id": "norce_order_export",
            "logical_date": "2026-11-20T00:00:00+00:00",
            "run_conf": {"output_dir": str(tmp_path / "export")},
            "expect": "success",
            "before": ["expire"],  # the machine store's token is stale: 401, renewed
            "faults": [
                {"endpoint": token, "kind": "429", "count": 1, "retry_after": 1},
                {"endpoint": token, "kind": "503", "count": 1},
                {"endpoint": query, "kind": "429", "count": 1, "retry_after": 1},
                {"endpoint": query, "kind": "429", "count": 1},  # no Retry-After
                {"endpoint": query, "kind": "500", "ratio": 0.15},  # in the middle of the export too
            ],
        },
        {
            "name": "catalog sync, deferred job wait, token expired under the client",
            "dag_id": "norce_nightly_catalog_sync",
            "logical_date": "2026-11-20T02:30:00+00:00",
            "run_conf": {"onhands_path": str(onhands), "prices_path": str(prices)},
            "expect": "success",
            "before": ["expire"],
            "faults": [
                {"endpoint": connect, "kind": "429", "count": 1, "retry_after": 1},
                {"endpoint": jobs, "kind": "429", "count": 1, "retry_after": http_date},  # in the trigger
                {"endpoint": jobs, "kind": "503", "count": 1},
                {"endpoint": jobs, "kind": "401", "count": 1},  # in the trigger: renewed
            ],
        },
        {
            "name": "product ETL through 5xx, truncated and dropped pages, 401 once, Connect 429",
            "dag_id": "norce_product_etl",
            "logical_date": "2026-11-20T04:00:00+00:00",
            "run_conf": {"work_dir": str(tmp_path / "etl"), "price_factor": 0.8},
            "expect": "success",
            "faults": [
                {"endpoint": "/commerce/query/2.0/Application", "kind": "502", "count": 1},
                {"endpoint": "/commerce/query/2.0/Products", "kind": "truncated", "count": 1},
                {"endpoint": "/commerce/query/2.0/Products", "kind": "drop", "count": 1},
                {"endpoint": "/commerce/query/2.0/Products", "kind": "401", "count": 1},
                {"endpoint": connect, "kind": "429", "count": 1},  # no Retry-After
            ],
        },
        {
            "name": "token revoked mid-run: 401 twice",
            "dag_id": "secrets_audit_call",
            "logical_date": "2026-11-21T00:00:00+00:00",
            "expect": "failed",
            "before": ["revoke"],
            "faults": [{"endpoint": "api", "kind": "401", "count": 2}],
        },
        {
            "name": "invalid_client after a revoked token, error bodies that echo the Authorization header and the form",
            "dag_id": "secrets_audit_echo",
            "logical_date": "2026-11-21T00:00:00+00:00",
            "expect": "failed",
            "before": ["revoke"],
            "faults": [{"endpoint": token, "kind": "invalid_client", "count": 1}],
            "tasks": {
                "invalid_client": "failed",
                "echo_authorization": "failed",
                "echo_token_form": "failed",
            },
        },
        {
            "name": "canary",
            "dag_id": "secrets_audit_canary",
            "logical_date": "2026-11-21T00:00:00+00:00",
            "expect": "success",
            "canary": True,
        },
    ]


def run_audit(sim, tmp_path, dags_folder: str) -> tuple[dict, str, str]:
    """The runner's dump, stdout and stderr."""
    import shutil

    examples = os.path.join(dags_folder, "norce_examples")
    shutil.copytree(EXAMPLES, examples, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    own = os.path.join(dags_folder, "norce_faults", "secrets_audit")
    os.makedirs(own, exist_ok=True)
    shutil.copy(os.path.join(HERE, "dags", "secrets_audit.py"), own)
    plan = {
        "sim_url": sim.base_url,
        "tests_dir": TESTS,
        "folders": [examples, own],
        "extra": CONNECTION_EXTRA,
        "scenarios": scenarios(tmp_path),
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",  # the Connect job waits run as triggers
            # NORCE_AUDIT_PYTHONPATH: audit another build of the provider (an unpacked release, a patched copy)
            "PYTHONPATH": os.pathsep.join(
                [p for p in (env.get("NORCE_AUDIT_PYTHONPATH"), HERE, TESTS, env.get("PYTHONPATH")) if p]
            ),
        }
    )
    done = subprocess.run(
        [
            sys.executable,
            os.path.join(HERE, "secrets_audit_runner.py"),
            str(tmp_path / "plan.json"),
            str(tmp_path / "dump.json"),
        ],
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        timeout=240,
    )
    (tmp_path / "runner.stdout").write_text(done.stdout)
    (tmp_path / "runner.stderr").write_text(done.stderr)
    assert done.returncode == 0, done.stderr[-5000:]
    with open(tmp_path / "dump.json", encoding="utf-8") as handle:
        return json.load(handle), done.stdout, done.stderr


def airflows_own(finding) -> bool:
    """Airflow's DEBUG line for the connection password it registers itself: not the provider's to fix."""
    return (
        finding.secret == "client secret"
        and finding.channel in ("stdout", "stderr")
        and "Sending request" in finding.line
        and "MaskSecret(" in finding.line
    )


@pytest.mark.airflow
@pytest.mark.integration
@pytest.mark.norce_simulator(
    client_secret=SECRET, expires_in=4, job_duration=1.0, page_size=100, products=60, token_burst=500
)
def test_debug_runs_through_every_fault_leak_no_secret(norce_simulator, dags_folder, tmp_path):
    sim = norce_simulator.sim
    dump, stdout, stderr = run_audit(sim, tmp_path, dags_folder)

    # The runs reached what they were meant to.
    expected = {s["name"]: s["expect"] for s in scenarios(tmp_path)}
    assert {r["name"]: r["state"] for r in dump["results"]} == expected, dump["results"]
    for planned, result in zip(scenarios(tmp_path), dump["results"]):
        assert result["tasks"] == planned.get("tasks", result["tasks"]), result
    counters = sim.counters()
    assert counters["token_429"] >= 1 and counters["api_429"] >= 3, counters
    assert counters["api_401"] >= 4, counters  # 401 once in the trigger and in the ETL, 401 twice
    assert counters["tokens_issued"] > 1 and counters["jobs_created"] >= 3, counters
    output = stdout + "\n" + stderr
    assert "Sending request" in output, "DEBUG is not on: Airflow's supervisor comms lines are missing"
    assert "still running; next check in" in output, "the deferred job wait (trigger) did not run"
    assert "answered 400" in output and "invalid_client" in output  # the echoes and invalid_client

    # Search everything for every secret.
    tokens = list(dict.fromkeys(sim.issued_tokens()))
    (canary_token,) = [r["canary"] for r in dump["results"] if r["canary"]]
    assert canary_token in tokens and len(tokens) > 2
    canary_label = f"token {tokens.index(canary_token)}"
    search = Search(
        [Secret("client secret", SECRET)] + [Secret(f"token {n}", token) for n, token in enumerate(tokens)]
    )
    search.text(stdout, "stdout", "runner")
    search.text(stderr, "stderr", "runner")
    assert search.files(os.path.join(os.environ["AIRFLOW_HOME"], "logs"), "log file") >= 1
    tables = search.database()
    assert tables.get("xcom", 0) >= 1 and "rendered_task_instance_fields" in tables
    for n, text in enumerate(dump["exceptions"]):
        search.text(text, "exceptions", f"#{n}")
    for n, text in enumerate(dump["objects"]):
        search.text(text, "objects", f"#{n}")
    # Every MaskSecret the runs sent through the in-process comms, by who asked: the provider's own must carry
    # no secret (under dag.test() each is logged at DEBUG in clear: case 12); Airflow's are Airflow's.
    messages = dump["mask_messages"]
    assert messages, "no MaskSecret was sent: the comms were not watched"
    for n, message in enumerate(messages):
        if "airflow_provider_norce" in message["caller"]:
            search.text(
                f"{message['caller']}: MaskSecret({message['value']})", "comms by the provider", f"#{n}"
            )
    assert len(dump["exceptions"]) >= 10 and len(dump["objects"]) >= 10

    # The canary: the one token planted on purpose is found in every channel it was planted in.
    planted = {
        (f.channel, f.where if f.channel == "database" else "")
        for f in search.findings
        if f.secret == canary_label
    }
    for channel in [
        ("stdout", ""),
        ("log file", ""),
        ("exceptions", ""),
        ("database", "xcom"),
        ("database", "rendered_task_instance_fields"),
        ("objects", ""),
    ]:
        assert channel in planted, f"the canary was not found in {channel}: the audit's search is broken"

    own = sorted({_untimed(f.line) for f in search.findings if f.secret != canary_label and airflows_own(f)})
    callers = sorted(
        {
            m["caller"].rsplit("/site-packages/", 1)[-1]
            for m in messages
            if SECRET in m["value"] or quote(SECRET, safe="/") in m["value"]
        }
    )
    print("Airflow's own lines with the client secret (not the provider's):\n" + "\n".join(own))
    print("asked for by:\n" + "\n".join(callers))
    leaks = [f for f in search.findings if f.secret != canary_label and not airflows_own(f)]
    shown = {}
    for finding in leaks:  # the first ten of each channel
        shown.setdefault(finding.channel, []).append(str(finding))
    assert not leaks, f"{len(leaks)} secrets found:\n" + "\n".join(
        line for lines in shown.values() for line in lines[:10]
    )


def _untimed(line: str) -> str:
    """``line`` without its leading timestamp (3.3's ``2026-...Z``, 3.0's ``2026-12-01 03:53:50``)."""
    return re.sub(r"^\[?\d{4}-\d\d-\d\d[T ][\d:.]+(Z|[+-]\d{4})?\]?\s*", "", line)
