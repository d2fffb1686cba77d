"""Without the OpenLineage provider nothing happens: no import error, no log line; and importing the
operators never imports OpenLineage even where it is installed. Each in a fresh Python process."""

from __future__ import annotations

import json
import subprocess
import sys

#: Makes the OpenLineage client and provider fail to import, as on a machine without them. The provider's
#: package marker and ``get_provider_info`` stay: its installed entry point (which a blocker cannot remove)
#: has Airflow's provider registry load them, which it would not do where the provider is not installed.
BLOCKER = """
import importlib.abc, sys

REGISTRY = {"airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info"}

class NoOpenLineage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        provider = name.startswith("airflow.providers.openlineage") and name not in REGISTRY
        if name.split(".")[0] == "openlineage" or provider:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoOpenLineage())
"""

CALL_EVERY_METHOD = """
import json, logging, os, sys

from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.operators.norce import NorceOperator
from airflow_provider_norce.operators.query import NorceQueryExportOperator

records = []  # every log record from here on, whatever its logger (set up after Airflow's logging config)
class Keep(logging.Handler):
    def emit(self, record):
        records.append(f"{record.name}: {record.getMessage()}")
logging.getLogger().addHandler(Keep(level=logging.DEBUG))
logging.getLogger().setLevel(logging.DEBUG)

TASK_INSTANCE = object()  # what the provider passes on complete; the operators read their own results

export = NorceQueryExportOperator(task_id="export", destination="/tmp/x.jsonl")
load = NorceConnectImportOperator(
    task_id="load", import_method="Product/ImportOnhands", items_path="/tmp/in.jsonl",
    connect_header={"AccountId": 1},
)
call = NorceOperator(task_id="call", endpoint="commerce/query/2.0/Orders/Orders")
logging.getLogger("probe").warning("the handler still hears")  # Airflow's logging set-up kept it
before = len(records)
results = [
    export.get_openlineage_facets_on_start(), export.get_openlineage_facets_on_complete(TASK_INSTANCE),
    load.get_openlineage_facets_on_start(), load.get_openlineage_facets_on_complete(TASK_INSTANCE),
    call.get_openlineage_facets_on_start(),
]
print("RESULT", json.dumps({
    "results": [repr(r) for r in results],
    "records": records[before:],
    "probe": records[:before][-1:],
    "imported": sorted(m for m in sys.modules if m.split(".")[0] == "openlineage"
                       or m.startswith("airflow.providers.openlineage.") and m not in REGISTRY),
}))
"""


def run_python(code: str, env_conn: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "AIRFLOW_CONN_NORCE_DEFAULT": env_conn},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (result,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    return {**json.loads(result.removeprefix("RESULT ")), "stderr": done.stderr}


CONN = json.dumps({"conn_type": "norce", "host": "acme", "login": "c", "password": "s"})


def test_without_the_provider_the_lineage_methods_do_nothing_and_say_nothing():
    seen = run_python(BLOCKER + CALL_EVERY_METHOD, CONN)
    assert seen["results"] == ["None"] * 5
    assert seen["probe"] == ["probe: the handler still hears"]
    assert seen["records"] == []
    assert seen["imported"] == []
    assert "lineage" not in seen["stderr"].lower()


def test_importing_the_operators_imports_no_openlineage():
    code = """
import json, sys
import airflow_provider_norce.operators.connect, airflow_provider_norce.operators.norce
import airflow_provider_norce.operators.query
ours = sorted(m for m in sys.modules if m == "airflow_provider_norce.lineage")
import airflow_provider_norce.lineage
print("RESULT", json.dumps({"ours": ours, "client": sorted(m for m in sys.modules if m.split(".")[0] == "openlineage"),
                  "provider": sorted(m for m in sys.modules if m.startswith("airflow.providers.openlineage."))}))
"""
    seen = run_python(code, CONN)
    assert seen["ours"] == [], "an operator module imported airflow_provider_norce.lineage"
    assert seen["client"] == []
    # Airflow's provider registry may read the provider's get_provider_info; nothing else of it is imported
    assert set(seen["provider"]) <= {"airflow.providers.openlineage.get_provider_info"}
