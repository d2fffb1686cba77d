"""The CLI (a real subprocess) and the promise that the simulator never imports Airflow."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests


def test_cli_prints_the_url_then_serves_until_sigterm(serve_cli):
    url, process = serve_cli(
        "--port", "0", "--client-id", "cli-client", "--client-secret", "cli-secret", "--expires-in", "60",
        "--application-id", "55", "--orders", "20", "--no-retry-after", "--token-burst", "1",
    )  # fmt: skip
    form = {"grant_type": "client_credentials", "client_id": "cli-client", "client_secret": "cli-secret"}
    token = requests.post(url + "/identity/1.0/connect/token", data={**form, "scope": "stage"}, timeout=5)
    assert token.status_code == 200
    assert token.json()["expires_in"] == 60
    limited = requests.post(url + "/identity/1.0/connect/token", data={**form, "scope": "stage"}, timeout=5)
    assert limited.status_code == 429 and "Retry-After" not in limited.headers
    headers = {"Authorization": "Bearer " + token.json()["access_token"], "ApplicationId": "55"}
    orders = requests.get(url + "/commerce/query/2.0/Orders/Orders?$count=true", headers=headers, timeout=5)
    assert orders.json()["@odata.count"] == 20
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert process.stdout.read() == "", "exactly one line is printed"


def test_cli_rejects_bad_arguments():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_norce.simulator", "serve", "--query-rate-limit", "fast"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "RATE_PER_SECOND,BURST" in result.stderr


def test_simulator_and_plugin_import_without_airflow_or_requests():
    code = (
        "import sys\n"
        "import airflow_provider_norce.simulator.pytest_plugin\n"
        "from airflow_provider_norce.simulator import NorceSimulator\n"
        "sim = NorceSimulator(orders=1_000_000).start(); sim.stop()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'requests'))\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_contract_options_reach_the_simulator():
    from airflow_provider_norce.simulator.__main__ import build_parser
    from airflow_provider_norce.simulator.server import NorceSimulator

    argv = [
        "serve",
        "--allowed-scopes",
        "prod,stage",
        "--require-field-masks",
        "--job-insert-spelling",
        "both",
    ]
    argv += ["--onhand-set", "Products/ClientProductSkuOnHands"]
    options = vars(build_parser().parse_args(argv))
    del options["command"]
    assert options["allowed_scopes"] == ("prod", "stage")
    assert options["require_field_masks"] is True and options["job_insert_spelling"] == "both"
    sim = NorceSimulator(**options)  # every option is a keyword the simulator takes
    assert "Products/ClientProductSkuOnHands" in sim.query.sets
    defaults = vars(build_parser().parse_args(["serve"]))
    assert "allowed_scopes" not in defaults and "onhand_set" not in defaults  # the simulator's own defaults
