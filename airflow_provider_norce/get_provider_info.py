"""Provider registration: what ``airflow providers list`` and the connection form read.

The connection form is declarative (``conn-fields`` / ``ui-field-behaviour``, read by Airflow 3.2+
without importing the hook). Airflow 3.0/3.1 ask the hook's legacy methods instead; those are built
from the same dicts below, so the two forms cannot drift apart.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": ["string", "null"]}

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "environment": {
        "label": "Environment",
        "description": "production (default), stage or playground; picks the host and the default scope.",
        "schema": {"type": ["string", "null"], "enum": ["production", "stage", "playground", None]},
    },
    "region": {
        "label": "Region",
        "description": "The region in {client}.api-{region}.norce.tech; 'se' unless Norce told you otherwise.",
        "schema": _STRING,
    },
    "application_id": {
        "label": "Application ID",
        "description": "Numeric Norce application id, sent as the ApplicationId header on every API call.",
        "schema": _STRING,
    },
    "platform": {
        "label": "Platform",
        "description": "commerce (default) or storm for legacy Norce [Storm] token URL and scopes.",
        "schema": {"type": ["string", "null"], "enum": ["commerce", "storm", None]},
    },
    "scope": {
        "label": "Scope",
        "description": "OAuth2 scope; derived from the environment when empty (prod, stage, playground; "
        "Storm: production, lab). When empty and Norce refuses 'prod', 'production' is tried once.",
        "schema": _STRING,
    },
    "token_url": {
        "label": "Token URL override",
        "description": "Full token endpoint URL; leave empty to derive it from client name, region and environment.",
        "schema": _STRING,
    },
    "base_url": {
        "label": "Base URL override",
        "description": "Full API base URL (https, or http to localhost only); empty derives it.",
        "schema": _STRING,
    },
    "timeout": {
        "label": "Timeout (s)",
        "description": "Seconds per request (default 60).",
        "schema": {"type": ["number", "string", "null"]},
    },
    "max_attempts": {
        "label": "Max attempts",
        "description": "Attempts per request, retries included, on 429, 5xx and timeouts (default 6).",
        "schema": {"type": ["integer", "string", "null"]},
    },
    "max_retry_wait": {
        "label": "Max retry wait (s)",
        "description": "Total seconds one request may wait between retries (default 300).",
        "schema": {"type": ["number", "string", "null"]},
    },
    "token_cache": {
        "label": "Token cache",
        "description": (
            "machine (default): one token shared by every task process of the worker; process: per process; "
            "redis: one token for the whole cluster, in the Redis of the token cache Redis connection."
        ),
        "schema": {"type": ["string", "null"], "enum": ["machine", "process", "redis", None]},
    },
    "token_cache_conn_id": {
        "label": "Token cache Redis connection",
        "description": "With token cache redis: the Airflow Redis connection holding the shared tokens (default redis_default).",
        "schema": _STRING,
    },
    "verify": {
        "label": "Verify TLS",
        "description": "true (default), false, or the path of a CA bundle.",
        "schema": {"type": ["boolean", "string", "null"]},
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
        "region": "se",
        "application_id": "1234",
        "token_cache": "machine",
        "token_cache_conn_id": "redis_default",
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
            {"integration-name": integration, "python-modules": ["airflow_provider_norce.triggers.norce"]}
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
    """``CONN_FIELDS`` as wtforms fields, for Airflow 3.0/3.1 (wtforms is imported only here)."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import StringField

    return {
        name: StringField(
            lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), description=spec["description"]
        )
        for name, spec in CONN_FIELDS.items()
    }
