"""Provider registration: schema-valid, declarative form and legacy hook methods in step."""

from __future__ import annotations

import json
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

import jsonschema
import pytest

from airflow_provider_norce.connection import NorceConnectionConfig
from airflow_provider_norce.exceptions import NorceConnectionConfigError
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
    pytest.importorskip("wtforms", reason="Airflow 3.0/3.1 build the legacy form only with wtforms installed")
    pytest.importorskip(
        "flask_appbuilder", reason="the legacy form needs flask-appbuilder (the FAB provider)"
    )
    from airflow_provider_norce.hooks.norce import NorceHook

    widgets = NorceHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    for name, field in widgets.items():
        schema = CONN_FIELDS[name]["schema"]
        assert str(field.args[0]) == CONN_FIELDS[name]["label"]
        assert field.kwargs["description"] == CONN_FIELDS[name]["description"]
        assert field.kwargs["default"] == schema.get("default"), name
        numeric = schema["type"][0] in ("number", "integer")
        assert field.field_class.__name__ == ("IntegerField" if numeric else "StringField"), name


#: A usable value of every form field that differs from what an empty field means.
USABLE = {
    "environment": "stage",
    "region": "no",
    "application_id": "43",
    "platform": "storm",
    "scope": "custom-scope",
    "auth_url": "https://identity.example.com/connect/token",
    "base_url": "https://api.example.com",
    "timeout": "7",
    "max_attempts": "2",
    "max_retry_wait": "9",
    "auth_cache": "process",
    "auth_cache_conn_id": "redis_tokens",
    "verify": "false",
}
#: An unusable value of every form field the parser can refuse (a scope is any text Norce accepts).
UNUSABLE = {
    "environment": "moon",
    "region": "no such region",
    "application_id": "abc",
    "platform": "nope",
    "auth_url": "ftp://identity.example.com/token",
    "base_url": "ftp://api.example.com",
    "timeout": "-1",
    "max_attempts": "0",
    "max_retry_wait": "-1",
    "auth_cache": "memcached",
    "auth_cache_conn_id": "two words",
    "verify": "maybe",
}


def _config(**extra: object) -> NorceConnectionConfig:
    from airflow.models.connection import Connection

    conn = Connection(
        conn_id="norce_form",
        conn_type="norce",
        host="acme",
        login="client-1",
        password="s3cr3t",
        extra=json.dumps({"application_id": "42", **extra}),
    )
    return NorceConnectionConfig.from_connection(conn)


def test_the_tables_cover_every_form_field():
    assert set(USABLE) == set(CONN_FIELDS)
    assert set(UNUSABLE) == set(CONN_FIELDS) - {"scope"}


@pytest.mark.parametrize("name", sorted(USABLE))
def test_every_form_field_is_read_by_the_connection_parser(name):
    """A form field the parser ignored would be a setting that silently does nothing."""
    assert _config(**{name: USABLE[name]}) != _config(), (
        f"form field {name} is not read by the connection parser"
    )


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_an_unusable_form_field_is_refused_by_name(name):
    with pytest.raises(NorceConnectionConfigError) as err:
        _config(**{name: UNUSABLE[name]})
    assert (err.value.conn_id, err.value.field) == ("norce_form", name)


def test_the_defaults_the_form_shows_are_the_parsers_defaults():
    """Saving the form untouched gives the connection the parser would build from no extras at all."""
    shown = {
        name: spec["schema"]["default"] for name, spec in CONN_FIELDS.items() if "default" in spec["schema"]
    }
    assert set(shown) >= {
        "environment",
        "platform",
        "auth_cache",
        "timeout",
        "max_attempts",
        "max_retry_wait",
    }
    assert _config(**shown) == _config()
