"""The connection form's fields render as Airflow's React UI renders them: one input each, defaults shown,
nothing masked but the secret. Checked against the installed Airflow's own code, not against a copy of it.

How the UI picks an input (Airflow ``ui/src/components/FlexibleForm/FieldSelector.tsx``): two non-null types
make a multi-line JSON text area; an ``enum`` makes a dropdown, where ``None`` shows as ``null`` and a missing
value as ``__null__``; ``integer``/``number`` make a number input. The value shown first is the schema's
``default`` (``ProvidersManager._to_api_format``).
"""

from __future__ import annotations

import pytest

from airflow_provider_norce.get_provider_info import CONN_FIELDS


def _should_hide_value_for_key():
    """Airflow's "is this extra a secret" rule: ``airflow._shared`` on 3.2+, the Task SDK's on 3.0/3.1."""
    try:
        from airflow._shared.secrets_masker import should_hide_value_for_key
    except ImportError:
        from airflow.sdk.execution_time.secrets_masker import should_hide_value_for_key
    return should_hide_value_for_key


@pytest.mark.parametrize("name", sorted(CONN_FIELDS))
def test_no_form_field_is_taken_for_a_secret(name):
    """A masked extra comes back from the UI as ``***`` and cannot be read or edited there."""
    hide = _should_hide_value_for_key()
    assert not hide(name), f"Airflow masks the extra {name!r}; rename it"
    assert not hide(f"extra__norce__{name}")


@pytest.mark.parametrize("old", ["token_url", "token_cache", "token_cache_conn_id"])
def test_the_former_names_are_the_ones_airflow_masks(old):
    """Why the extras were renamed; if Airflow stops masking them, the rename note in the docs can go."""
    assert _should_hide_value_for_key()(old)


@pytest.mark.parametrize("name", sorted(CONN_FIELDS))
def test_every_field_renders_as_one_single_line_input(name):
    schema = CONN_FIELDS[name]["schema"]
    kinds = [kind for kind in schema["type"] if kind != "null"]
    assert len(kinds) == 1 and kinds[0] in ("string", "number", "integer"), f"{name}: {schema['type']}"
    assert schema.get("format") is None, f"{name}: a format changes the input ({schema.get('format')})"


@pytest.mark.parametrize(
    "name", sorted(name for name, spec in CONN_FIELDS.items() if "enum" in spec["schema"])
)
def test_every_chooser_shows_its_default_never_null(name):
    schema = CONN_FIELDS[name]["schema"]
    assert None not in schema["enum"]
    assert schema["default"] == schema["enum"][0]


def test_the_form_airflow_serves_has_the_providers_labels_hints_and_defaults():
    """``/ui/connections/hook_meta`` as the installed Airflow builds it (conn-fields on 3.2+, legacy before)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    HookMetaService.hook_meta_data.cache_clear()
    (norce,) = [meta for meta in HookMetaService.hook_meta_data() if meta.connection_type == "norce"]
    if not norce.extra_fields:
        pytest.skip("this Airflow builds no form fields (Airflow 3.0/3.1 without wtforms/flask-appbuilder)")
    assert set(norce.extra_fields) == set(CONN_FIELDS)
    for name, spec in CONN_FIELDS.items():
        served = norce.extra_fields[name]
        assert served["schema"]["title"] == spec["label"], name
        assert served["description"] == spec["description"], name
        assert served["value"] == spec["schema"].get("default"), name
        assert served["schema"].get("enum") == spec["schema"].get("enum"), name
    assert norce.standard_fields.port.hidden and norce.standard_fields.host.title == "Client name"
