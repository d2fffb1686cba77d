"""Provider registration: schema-valid, declarative form and legacy hook methods in step."""

from __future__ import annotations

import json
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_norce.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR, get_provider_info


def test_provider_info_is_valid_against_installed_airflow_schema():
    import airflow

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_is_registered():
    eps = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_norce")
    ]
    assert len(eps) == 1
    assert eps[0].load()()["package-name"] == "airflow-provider-norce"


def test_connection_type_and_hook_class():
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == "norce"
    module, _, name = conn_type["hook-class-name"].rpartition(".")
    hook = getattr(import_module(module), name)
    assert (hook.conn_type, hook.default_conn_name, hook.conn_name_attr) == (
        "norce",
        "norce_default",
        "norce_conn_id",
    )
    relabel = conn_type["ui-field-behaviour"]["relabeling"]
    assert relabel == {"host": "Client name", "login": "Client ID", "password": "Client Secret"}


def test_every_declared_module_imports():
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(kind, []):
            for module in entry["python-modules"]:
                try:
                    import_module(module)
                except ModuleNotFoundError as err:  # pragma: no cover - filled in by later work
                    pytest.fail(f"{kind} module {module} does not import: {err}")


def test_legacy_behaviour_matches_declarative():
    from airflow_provider_norce.hooks.norce import NorceHook

    legacy = NorceHook.get_ui_field_behaviour()
    assert legacy["hidden_fields"] == UI_FIELD_BEHAVIOUR["hidden-fields"]
    assert legacy["relabeling"] == UI_FIELD_BEHAVIOUR["relabeling"]
    assert legacy["placeholders"] == UI_FIELD_BEHAVIOUR["placeholders"]


def test_legacy_widgets_match_declarative():
    pytest.importorskip("wtforms")
    pytest.importorskip("flask_appbuilder")
    from airflow_provider_norce.hooks.norce import NorceHook

    widgets = NorceHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    for name, field in widgets.items():
        assert str(field.args[0]) == CONN_FIELDS[name]["label"]
        assert field.kwargs["description"] == CONN_FIELDS[name]["description"]


def test_extras_the_form_offers_are_the_ones_the_parser_reads():
    import inspect

    from airflow_provider_norce import connection

    source = inspect.getsource(connection.NorceConnectionConfig.from_connection) + inspect.getsource(
        connection
    )
    for name in CONN_FIELDS:
        assert f'"{name}"' in source, f"form field {name} is not read by the connection parser"
