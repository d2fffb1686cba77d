"""Provider registration: what ``airflow providers list`` and the connection form read.

The connection form is declarative (``conn-fields`` / ``ui-field-behaviour``, read by Airflow 3.2+
without importing the hook). Airflow 3.0/3.1 ask the hook's legacy methods instead; those are built
from the same dicts below, so the two forms cannot drift apart.

How Airflow's React form renders a field (``FlexibleForm/FieldSelector.tsx``; ``providers_manager``
``_to_api_format`` hands it ``schema`` and ``value = schema["default"]``), and why the schemas look as they do:

* a ``type`` with two non-null types (``["number", "string", "null"]``) becomes a multi-line "any JSON" text
  area, so every field has one type plus ``"null"``: numbers become single number inputs;
* an ``enum`` becomes a dropdown; ``None`` in the enum shows as ``null`` and a missing value as ``__null__``,
  so the enums hold only real values and ``default`` preselects the provider's default;
* no extra name contains a word of Airflow's sensitive-field list (``token``, ``secret``, ``proxy``...;
  substring match), or the UI shows and saves it as ``***``: hence ``auth_url``/``auth_cache``.

The form saves every field it shows (an emptied one as JSON ``null``); the connection parser reads ``null``
as "unset", so an emptied field means the provider's default.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_norce.connection import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RETRY_WAIT,
    DEFAULT_REGION,
    DEFAULT_TIMEOUT,
    DEFAULT_TOKEN_CACHE_CONN_ID,
    ENVIRONMENTS,
    PLATFORMS,
    TOKEN_CACHES,
)

_STRING = {"type": ["string", "null"]}


def _chooser(values: tuple[str, ...], default: str) -> dict[str, Any]:
    """A dropdown of ``values`` with ``default`` preselected (and no ``null`` entry)."""
    return {"type": ["string", "null"], "enum": list(values), "default": default}


def _number(kind: str, default: float, minimum: float) -> dict[str, Any]:
    """A single number input (``kind`` ``number`` or ``integer``) holding the provider's default."""
    shown = int(default) if float(default).is_integer() else default  # 60, not 60.0, in the form
    return {"type": [kind, "null"], "default": shown, "minimum": minimum}


CONN_FIELDS: dict[str, dict[str, Any]] = {
    "environment": {
        "label": "Environment",
        "description": "production (default), stage or playground; picks the host and the default scope.",
        "schema": _chooser(ENVIRONMENTS, "production"),
    },
    "region": {
        "label": "Region",
        "description": f"The region in {{client}}.api-{{region}}.norce.tech; '{DEFAULT_REGION}' unless Norce "
        "told you otherwise.",
        "schema": {"type": ["string", "null"], "default": DEFAULT_REGION},
    },
    "application_id": {
        "label": "Application ID",
        "description": "Numeric Norce application id, sent as the ApplicationId header on every API call.",
        "schema": _STRING,
    },
    "platform": {
        "label": "Platform",
        "description": "commerce (default) or storm for legacy Norce [Storm] token URL and scopes.",
        "schema": _chooser(PLATFORMS, "commerce"),
    },
    "scope": {
        "label": "Scope",
        "description": "OAuth2 scope; derived from the environment when empty (prod, stage, playground; "
        "Storm: production, lab). When empty and Norce refuses 'prod', 'production' is tried once.",
        "schema": _STRING,
    },
    "auth_url": {
        "label": "Token URL override",
        "description": "Full OAuth2 token endpoint URL; leave empty to derive it from client name, region and "
        "environment. (Formerly the extra token_url, still read.)",
        "schema": _STRING,
    },
    "base_url": {
        "label": "Base URL override",
        "description": "Full API base URL (https, or http to localhost only); empty derives it.",
        "schema": _STRING,
    },
    "timeout": {
        "label": "Timeout (s)",
        "description": f"Seconds per request (default {DEFAULT_TIMEOUT:g}).",
        "schema": _number("number", DEFAULT_TIMEOUT, 0),
    },
    "max_attempts": {
        "label": "Max attempts",
        "description": f"Attempts per request, retries included, on 429, 5xx and timeouts (default "
        f"{DEFAULT_MAX_ATTEMPTS}).",
        "schema": _number("integer", DEFAULT_MAX_ATTEMPTS, 1),
    },
    "max_retry_wait": {
        "label": "Max retry wait (s)",
        "description": f"Total seconds one request may wait between retries (default {DEFAULT_MAX_RETRY_WAIT:g}).",
        "schema": _number("number", DEFAULT_MAX_RETRY_WAIT, 0),
    },
    "auth_cache": {
        "label": "Token cache",
        "description": (
            "machine (default): one token shared by every task process of the worker; process: per process; "
            "redis: one token for the whole cluster, in the Redis of the token cache Redis connection. "
            "(Formerly the extra token_cache, still read.)"
        ),
        "schema": _chooser(("machine", *(kind for kind in TOKEN_CACHES if kind != "machine")), "machine"),
    },
    "auth_cache_conn_id": {
        "label": "Token cache Redis connection",
        "description": "With token cache redis: the Airflow Redis connection holding the shared tokens "
        f"(default {DEFAULT_TOKEN_CACHE_CONN_ID}). (Formerly the extra token_cache_conn_id, still read.)",
        "schema": {"type": ["string", "null"], "default": DEFAULT_TOKEN_CACHE_CONN_ID},
    },
    "verify": {
        "label": "Verify TLS",
        "description": "true (default), false, or the path of a CA bundle (PEM) on the workers.",
        "schema": {"type": ["string", "null"], "default": "true"},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"host": "Client name", "login": "Client ID", "password": "Client Secret"},
    "placeholders": {
        "host": "your client name, as in https://{client}.api-se.norce.tech (or a full base URL)",
        "login": "OAuth2 Client ID from Norce Admin > Settings > Users > OAUTH",
        "password": "OAuth2 Client Secret (shown once when the user is created)",
        "environment": "production",
        "region": DEFAULT_REGION,
        "application_id": "1234",
        "auth_cache": "machine",
        "auth_cache_conn_id": DEFAULT_TOKEN_CACHE_CONN_ID,
    },
}


def get_provider_info() -> dict[str, Any]:
    from airflow_provider_norce import __version__

    integration = "Norce Commerce"
    return {
        "package-name": "airflow-provider-norce",
        "name": "Norce Commerce",
        "description": "`Norce Commerce <https://norce.io/>`__: OAuth2 hook, Connect imports, Query exports.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://docs.norce.io/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": integration, "python-modules": ["airflow_provider_norce.hooks.norce"]}
        ],
        "operators": [
            {
                "integration-name": integration,
                "python-modules": [
                    "airflow_provider_norce.operators.norce",
                    "airflow_provider_norce.operators.connect",
                    "airflow_provider_norce.operators.query",
                ],
            }
        ],
        "sensors": [
            {"integration-name": integration, "python-modules": ["airflow_provider_norce.sensors.norce"]}
        ],
        "triggers": [
            {
                "integration-name": integration,
                "python-modules": [
                    "airflow_provider_norce.triggers.norce",
                    "airflow_provider_norce.triggers.orders",
                ],
            }
        ],
        "connection-types": [
            {
                "connection-type": "norce",
                "hook-class-name": "airflow_provider_norce.hooks.norce.NorceHook",
                "hook-name": "Norce Commerce",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }


def legacy_ui_field_behaviour() -> dict[str, Any]:
    """``UI_FIELD_BEHAVIOUR`` in the snake_case shape of the legacy hook method."""
    return {
        "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden-fields"]),
        "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
        "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
    }


def legacy_connection_form_widgets() -> dict[str, Any]:
    """``CONN_FIELDS`` as wtforms fields, for Airflow 3.0/3.1 (wtforms is imported only here).

    Airflow 3.0/3.1 turn these into the same JSON-schema params as ``conn-fields`` by patching wtforms'
    ``StringField``/``IntegerField`` and ``validators.any_of`` (its ``HookMetaService``); it knows no float
    field, so a number field is an ``IntegerField`` there (the parser takes any number the JSON holds).
    Every module attribute is looked up when called, so Airflow's patches apply.
    """
    import wtforms
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import validators

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        schema = spec["schema"]
        numeric = schema["type"][0] in ("number", "integer")
        field_class = wtforms.IntegerField if numeric else wtforms.StringField
        checks = [validators.Optional()]
        if "enum" in schema:
            checks.append(validators.any_of(schema["enum"]))
        widgets[name] = field_class(
            lazy_gettext(spec["label"]),
            validators=checks,
            widget=BS3TextFieldWidget(),
            description=spec["description"],
            default=schema.get("default"),
        )
    return widgets
