"""From an Airflow connection to a validated Norce configuration, URLs included.

Everything that can be wrong with a connection is found here, before a single request is sent, and
reported with the connection id and the field to fix. URL derivation follows
``shared/reference/norce-api.md``:

* Norce Commerce: ``https://{client}.api-{region}[.{environment}].norce.tech`` (production has no
  environment label); token at ``/identity/1.0/connect/token``; services at ``/commerce/{service}/{version}/``.
* Norce [Storm] (legacy): token at ``https://identity.storm.io/1.0/connect/token`` whatever the environment
  (the scope picks it); Connect and Query on hosts of their own.

Facts the reference marks as inferred (the ``prod`` scope spelling, Storm's production Connect host)
are overridable through the connection extras ``scope``, ``auth_url`` and ``base_url``.

Extra names: Airflow masks (shows and saves as ``***``) every extra whose key contains a word of its
sensitive-field list, ``token`` among them, so the token-related extras are named ``auth_url``,
``auth_cache`` and ``auth_cache_conn_id``. The former names ``token_url``, ``token_cache`` and
``token_cache_conn_id`` are still read (:data:`RENAMED_EXTRAS`), with one warning per connection. An extra
that holds JSON ``null`` (the UI's form saves every emptied field so) is unset: the default applies.

Production scope: Norce's newest OAuth page and its own SDK say ``prod``; older pages say ``production``
(``tests/norce_contracts/identity.json scope_spellings``). The default is ``prod``; when the connection does
not set ``scope`` and Norce answers ``invalid_scope``, the hook tries the other spelling once
(:func:`fallback_scope`, driven by ``NorceHook._token``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_norce.arguments import bool_word
from airflow_provider_norce.exceptions import NorceConnectionConfigError
from airflow_provider_norce.redaction import strip_userinfo

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

PLATFORMS = ("commerce", "storm")
ENVIRONMENTS = ("production", "stage", "playground")
TOKEN_CACHES = ("process", "machine", "redis")
#: The Airflow Redis connection ``auth_cache = "redis"`` uses unless ``auth_cache_conn_id`` names another.
DEFAULT_TOKEN_CACHE_CONN_ID = "redis_default"

#: Scopes by platform and environment. Commerce production is ``prod`` (newest Norce page, Norce's
#: commerce-agent-sdk, third-party production use: ``identity.json scope_spellings``/``scope_conclusion``);
#: Storm keeps ``production``/``lab`` as its page states them.
DEFAULT_SCOPES: dict[str, dict[str, str]] = {
    "commerce": {"production": "prod", "stage": "stage", "playground": "playground"},
    "storm": {"production": "production", "stage": "lab", "playground": "lab"},
}
#: Other spellings seen in Norce's material, named by an ``invalid_scope`` error so a user knows what to try.
SCOPE_ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "production": ("prod",),
    "prod": ("production",),
    "stage": ("lab",),
    "playground": ("lab",),
    "lab": ("playground", "stage", "qa"),
    "qa": ("lab",),
}

#: The two documented spellings of Commerce's production scope; one is tried when the other is refused,
#: but only for a connection that leaves ``scope`` unset (an explicit scope is never changed).
SCOPE_FALLBACKS: dict[str, str] = {"prod": "production", "production": "prod"}

STORM_TOKEN_URL = "https://identity.storm.io/1.0/connect/token"
#: Storm's API hosts. Connect on lab and Query are documented; Connect's production host is inferred.
STORM_SERVICE_URLS: dict[str, dict[str, str]] = {
    "connect": {
        "production": "https://connect.storm.io/4.0/api/",
        "stage": "https://connect.lab.storm.io/4.0/api/",
        "playground": "https://connect.lab.storm.io/4.0/api/",
    },
    "query": {env: "https://query.storm.io/Query/2.0/" for env in ENVIRONMENTS},
}
#: Service versions a pipeline uses on Norce Commerce (``/commerce/{service}/{version}/``).
SERVICE_VERSIONS: dict[str, str] = {
    "connect": "4.0",
    "query": "2.0",
    "metadata": "1.1",
    "customer": "1.1",
    "order": "1.1",
    "product": "1.1",
    "shopping": "1.1",
}

DEFAULT_REGION = "se"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_MAX_RETRY_WAIT = 300.0

_CLIENT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_REGION = re.compile(r"^[a-z0-9]{1,16}$")
#: Norce's ApplicationId is an int32 (``connect.json``).
_INT32_MAX = 2**31 - 1
#: The extras this provider reads; a value of only whitespace in one of them is a mistake, never a default.
KNOWN_EXTRAS = (
    "platform",
    "environment",
    "region",
    "application_id",
    "scope",
    "auth_url",
    "base_url",
    "timeout",
    "max_attempts",
    "max_retry_wait",
    "auth_cache",
    "auth_cache_conn_id",
    "verify",
    "proxies",
)
#: Former extra name -> current one. Airflow masks any extra whose key contains ``token``, so the form showed
#: these as ``***``; the former names are still read, and a connection giving both with different values is
#: refused (which one was meant cannot be known).
RENAMED_EXTRAS: dict[str, str] = {
    "token_url": "auth_url",
    "token_cache": "auth_cache",
    "token_cache_conn_id": "auth_cache_conn_id",
}
#: (connection id, former name) pairs already warned about in this process: one warning each, not one per task.
_WARNED_RENAMES: set[tuple[str, str]] = set()
_DEFAULT_PORTS = {"https": 443, "http": 80}


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine, the only place plain ``http`` is allowed (local testing)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def commerce_base_url(client_name: str, region: str, environment: str) -> str:
    """``https://{client}.api-{region}[.{environment}].norce.tech``; production has no environment label."""
    label = "" if environment == "production" else f".{environment}"
    return f"https://{client_name}.api-{region}{label}.norce.tech"


@dataclass(frozen=True)
class NorceConnectionConfig:
    """A Norce tenant as one Airflow connection describes it; the secret never shows in its repr."""

    conn_id: str
    client_id: str
    client_secret: str = field(repr=False)
    platform: str
    environment: str
    region: str
    scope: str
    token_url: str
    base_url: str
    application_id: int | None
    timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    token_cache: str = "machine"
    #: The Airflow connection (type ``redis``) of the cluster token store, read only when ``token_cache`` is ``redis``.
    token_cache_conn_id: str = DEFAULT_TOKEN_CACHE_CONN_ID
    proxies: Mapping[str, str] | None = None
    #: "storm" when Storm's own per-service hosts apply; "commerce" for ``/commerce/{service}/{version}/``.
    layout: str = "commerce"
    #: True when the connection's ``scope`` extra chose the scope; then no other spelling is ever tried.
    scope_explicit: bool = False
    #: Storm only: the Connect URL the connection gave (``base_url``, path kept), instead of Storm's default.
    storm_connect_url: str | None = None

    def fallback_scope(self, refused: str) -> str | None:
        """The scope to try once after Norce answered ``invalid_scope`` to ``refused``, or None.

        Only for Commerce connections that leave ``scope`` unset, and only between the documented
        production spellings ``prod`` and ``production`` (``identity.json scope_spellings``).
        """
        if self.scope_explicit or self.platform != "commerce":
            return None
        return SCOPE_FALLBACKS.get(refused)

    @cached_property
    def api_hosts(self) -> frozenset[str]:
        """The ``scheme://host[:port]`` origins that may receive the bearer token, and no others."""
        origins = {canonical_origin(self.base_url)}
        if self.layout == "storm":
            origins.update(canonical_origin(urls[self.environment]) for urls in STORM_SERVICE_URLS.values())
        return Origins(origins)

    def service_url(self, service: str) -> str:
        """Absolute URL prefix (ending in ``/``) of a Norce service such as ``connect`` or ``query``."""
        if self.layout == "storm" and service == "connect" and self.storm_connect_url:
            return self.storm_connect_url
        if self.layout == "storm" and service in STORM_SERVICE_URLS:
            return STORM_SERVICE_URLS[service][self.environment]
        try:
            version = SERVICE_VERSIONS[service]
        except KeyError:
            known = ", ".join(sorted(SERVICE_VERSIONS))
            raise ValueError(f"unknown Norce service {service!r}; known: {known}") from None
        return f"{self.base_url}/commerce/{service}/{version}/"

    @classmethod
    def from_connection(cls, conn: Any, conn_id: str | None = None) -> NorceConnectionConfig:
        """Validate an Airflow ``Connection`` (or anything with its attributes) into a config."""
        conn_id = conn_id or getattr(conn, "conn_id", None) or "norce_default"
        extra, given_as = _extras(conn, conn_id)

        def fail(field_name: str, problem: str) -> NorceConnectionConfigError:
            # Named as the connection spells it: a former name (token_url) where the connection used it.
            return NorceConnectionConfigError(conn_id, given_as.get(field_name, field_name), problem)

        client_id = (conn.login or "").strip()
        if not client_id:
            raise fail(
                "login", "no client id; put the OAuth2 Client ID from Norce Admin (Settings > Users > OAUTH)"
            )
        if not _visible_ascii(client_id):
            raise fail(
                "login",
                "the client id holds whitespace, control or non-ASCII characters; copy the OAuth2 Client ID "
                "from Norce Admin (Settings > Users > OAUTH) again, without anything around it",
            )
        # The secret is read into no local variable of this frame: a traceback that shows locals (Airflow
        # 3.0's rich tracebacks in dag.test) would print it when a later field is refused.
        if not conn.password:
            raise fail(
                "password", "no client secret; put the OAuth2 Client Secret shown when the user was created"
            )

        platform = _choice(extra, "platform", "commerce", PLATFORMS, fail)
        environment = _choice(extra, "environment", "production", ENVIRONMENTS, fail)
        region = str(extra.get("region") or DEFAULT_REGION).strip().lower()
        if not _REGION.match(region):
            raise fail("region", f"{region!r} is not a region label such as 'se'")

        host = (conn.host or "").strip()
        base_url_extra = str(extra.get("base_url") or "").strip()
        layout = "commerce"
        storm_connect_url: str | None = None
        url_field = "base_url" if base_url_extra else "host"
        if platform == "storm" and (base_url_extra or "://" in host):
            # Storm's Connect URL carries its path (https://connect.storm.io/4.0/api/): kept, used as is.
            layout = "storm"
            storm_connect_url = _storm_connect_url(base_url_extra or host, url_field, fail)
            base_url = canonical_origin(storm_connect_url)
        elif base_url_extra or "://" in host:
            base_url = _commerce_base_url(base_url_extra or host, url_field, fail)
        elif platform == "storm":
            layout = "storm"
            base_url = canonical_origin(STORM_SERVICE_URLS["connect"][environment])
        elif not host:
            raise fail("host", "no client name; put the client name of https://{client}.api-se.norce.tech")
        elif "@" in host or ":" in host:
            raise fail(
                "host",
                "is neither a client name (a DNS label) nor a URL with a scheme, and must not carry "
                "credentials; put the client name of https://{client}.api-se.norce.tech or an https URL",
            )
        elif not _CLIENT_NAME.fullmatch(host.lower()):
            raise fail(
                "host",
                f"{host!r} is neither a client name (a DNS label: the letters a-z, digits and '-') nor a URL; "
                "put the client name of https://{client}.api-se.norce.tech or an https URL",
            )
        else:
            base_url = commerce_base_url(host.lower(), region, environment)

        token_url_extra = str(extra.get("auth_url") or "").strip()
        if token_url_extra:
            token_url = _checked_url(token_url_extra, "auth_url", fail, keep_path=True)
        elif platform == "storm":
            token_url = STORM_TOKEN_URL
        else:
            token_url = f"{base_url}/identity/1.0/connect/token"

        scope_extra = str(extra.get("scope") or "").strip()
        if scope_extra and not scope_extra.isprintable():
            raise fail("scope", "holds control characters; give the scope as Norce Admin names it")
        scope = scope_extra or DEFAULT_SCOPES[platform][environment]

        application_id: int | None = None
        raw_app = extra.get("application_id")
        if raw_app not in (None, ""):
            text = str(raw_app).strip()
            if isinstance(raw_app, bool) or not (text.isascii() and text.isdigit()):
                raise fail(
                    "application_id",
                    f"{raw_app!r} is not numeric; Norce application ids are whole numbers written with the "
                    "digits 0-9 (Norce Admin shows the id of each application)",
                )
            application_id = int(text)
            if application_id > _INT32_MAX:
                raise fail(
                    "application_id",
                    f"{raw_app!r} is larger than any Norce application id ({_INT32_MAX}); check the number",
                )

        from airflow_provider_norce.tokens.store import registered_token_stores

        token_cache = _choice(extra, "auth_cache", "machine", TOKEN_CACHES + registered_token_stores(), fail)
        token_cache_conn_id = _conn_id(extra, "auth_cache_conn_id", DEFAULT_TOKEN_CACHE_CONN_ID, fail)
        proxies = extra.get("proxies")
        if proxies is not None and not isinstance(proxies, dict):
            raise fail("proxies", 'must be a JSON object such as {"https": "http://proxy:3128"}')

        return cls(
            conn_id=conn_id,
            client_id=client_id,
            client_secret=conn.password,
            platform=platform,
            environment=environment,
            region=region,
            scope=scope,
            token_url=token_url,
            base_url=base_url,
            application_id=application_id,
            timeout=_number(extra, "timeout", DEFAULT_TIMEOUT, fail, positive=True),
            verify=_verify(extra, fail),
            max_attempts=_whole_number(extra, "max_attempts", DEFAULT_MAX_ATTEMPTS, fail),
            max_retry_wait=_number(extra, "max_retry_wait", DEFAULT_MAX_RETRY_WAIT, fail),
            token_cache=token_cache,
            token_cache_conn_id=token_cache_conn_id,
            proxies=proxies,
            layout=layout,
            scope_explicit=bool(scope_extra),
            storm_connect_url=storm_connect_url,
        )


def canonical_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (or of an origin), lower case, the scheme's default port dropped.

    ``https://host`` and ``https://host:443`` are one origin; a URL Norce returns (a nextLink) may spell
    it either way. A URL with credentials or an unreadable port has no origin here (``""``).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if "@" in parts.netloc or not parts.hostname:
        return ""
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class Origins(frozenset[str]):
    """The origins that may receive the token, each in its :func:`canonical_origin` spelling.

    Membership is tested on the canonical spelling too, so ``"https://host:443" in origins`` holds
    when ``https://host`` is allowed, whoever computed the left-hand side.
    """

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        if frozenset.__contains__(self, item):
            return True  # already canonical: what the hook asks on every request
        canonical = canonical_origin(item)
        return bool(canonical) and frozenset.__contains__(self, canonical)


def _visible_ascii(text: str) -> bool:
    """Printable ASCII without spaces: what an OAuth client id is made of (RFC 6749 A.1 minus the space)."""
    return all("!" <= char <= "~" for char in text)


def _redacted(url: str) -> str:
    """``url`` with any ``user:password@`` replaced, for an error message (also a password holding ``/``,
    which ``urlsplit`` leaves in the path: ``https://user:pa/ss@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparsable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return strip_userinfo(f"{parts.scheme}://{netloc}{parts.path}") if parts.scheme else "(a URL)"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def _check_raw_extra(conn: Any, conn_id: str) -> None:
    """Airflow drops an ``extra`` that is not JSON (with a warning) and hands out ``{}``: refuse it here.

    The text is never echoed (an extra may hold secrets); the position of the JSON error is.
    """
    text = getattr(conn, "extra", None)
    if not isinstance(text, str) or not text.strip():
        return
    try:
        parsed = json.loads(text)
    except ValueError as err:
        where = (
            f"{err.msg} at line {err.lineno} column {err.colno}"
            if isinstance(err, json.JSONDecodeError)
            else type(err).__name__
        )
        raise NorceConnectionConfigError(
            conn_id,
            "extra",
            f"is not valid JSON ({where}); Airflow would ignore it and run with production defaults and no "
            'application id. Fix the Extra field so it is one JSON object, such as {"environment": "stage"}',
        ) from None
    if not isinstance(parsed, dict):
        raise NorceConnectionConfigError(
            conn_id,
            "extra",
            f'must be a JSON object such as {{"environment": "stage"}}, not {_json_kind(parsed)}',
        )


def _extras(conn: Any, conn_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Extras as a dict under their current names, and the key each one was given under where that differs.

    Accepts the legacy ``extra__norce__<field>`` prefixed keys and the former names of
    :data:`RENAMED_EXTRAS` (both spellings together too: ``extra__norce__token_url``).
    """
    try:
        raw = conn.extra_dejson
    except Exception:  # Airflow logs and swallows bad JSON in some versions; be explicit instead
        _check_raw_extra(conn, conn_id)
        raise NorceConnectionConfigError(conn_id, "extra", "could not be read as JSON") from None
    if not raw:
        _check_raw_extra(conn, conn_id)
    if not isinstance(raw, dict):
        raise NorceConnectionConfigError(
            conn_id,
            "extra",
            f'must be a JSON object such as {{"environment": "stage"}}, not {_json_kind(raw)}; fix the Extra field',
        )
    extras = _unprefixed(raw, conn_id)
    given_as: dict[str, str] = {}
    for old, new in RENAMED_EXTRAS.items():
        if old not in extras:
            continue
        old_value = extras.pop(old)
        if _unset(old_value):
            continue
        new_value = extras.get(new)
        if not _unset(new_value) and new_value != old_value:
            raise NorceConnectionConfigError(
                conn_id,
                new,
                f"is given twice with different values: as {new!r} and under its former name {old!r}; "
                f"keep only {new!r}",
            )
        extras[new] = old_value
        given_as[new] = old
        if (conn_id, old) not in _WARNED_RENAMES:
            _WARNED_RENAMES.add((conn_id, old))
            log.warning(
                "Norce connection %r: the extra %r is read under its new name %r; rename it in the connection "
                "(Airflow hides extras whose name contains 'token' as ***)",
                conn_id,
                old,
                new,
            )
    for name in KNOWN_EXTRAS:
        value = extras.get(name)
        if isinstance(value, str) and value and not value.strip():
            raise NorceConnectionConfigError(
                conn_id,
                given_as.get(name, name),
                "holds only whitespace; remove it to use the default, or give a value",
            )
    return extras, given_as


#: The prefix Airflow 2's connection form gave every extra of a provider (``extra__norce__auth_url``).
LEGACY_PREFIX = "extra__norce__"


def _unprefixed(raw: Mapping[str, Any], conn_id: str) -> dict[str, Any]:
    """The extras under their names without :data:`LEGACY_PREFIX`; both spellings of one extra with different
    values are refused, naming both keys.

    Why: which one won depended on the order of the keys in the JSON, so where the client secret was posted
    (``auth_url``), or which Redis kept the tokens, could change with a re-saved connection. Equal values, or
    one of them unset (null or empty, as the form saves an emptied field), are read as one.
    """
    extras: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for key, value in raw.items():
        name = key[len(LEGACY_PREFIX) :] if key.startswith(LEGACY_PREFIX) else key
        if name not in extras or _unset(extras[name]):
            extras[name], keys[name] = value, key
            continue
        if _unset(value) or value == extras[name]:
            continue
        first, second = sorted((keys[name], key), key=len)
        raise NorceConnectionConfigError(
            conn_id,
            name,
            f"is given twice with different values: as {first!r} and as {second!r}, and which one is meant "
            f"cannot be known; keep only {name!r}",
        )
    return extras


def _unset(value: Any) -> bool:
    """JSON ``null`` or an empty string: what the UI's form saves for a field left empty."""
    return value is None or value == ""


def _choice(extra: Mapping[str, Any], name: str, default: str, allowed: tuple[str, ...], fail: Any) -> str:
    value = str(extra.get(name) or default).strip().lower()
    if value not in allowed:
        raise fail(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _conn_id(extra: Mapping[str, Any], name: str, default: str, fail: Any) -> str:
    """An Airflow connection id: a non-empty string of visible characters (empty or unset: ``default``)."""
    raw = extra.get(name)
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str):
        raise fail(
            name,
            f"must be the id of an Airflow connection (a string such as {default!r}), not {_json_kind(raw)}",
        )
    text = raw.strip()
    if not _visible_ascii(text) or not text:
        raise fail(
            name,
            f"{raw!r} is not an Airflow connection id (it may not hold spaces or control characters); "
            f"give the id of an Airflow Redis connection such as {default!r}",
        )
    return text


def _number(extra: Mapping[str, Any], name: str, default: float, fail: Any, positive: bool = False) -> float:
    raw = extra.get(name)
    if raw in (None, ""):
        return float(default)
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(raw, bool) or not math.isfinite(value):
        raise fail(name, f"{raw!r} is not a number; give a number of seconds such as {default:g}")
    if value < 0 or (positive and value == 0):
        raise fail(name, f"{raw!r} must be {'greater than' if positive else 'at least'} 0")
    return value


def _whole_number(extra: Mapping[str, Any], name: str, default: int, fail: Any) -> int:
    """A whole number of at least 1 (``"3"`` and ``3.0`` included; ``0.5``, ``inf`` and ``nan`` refused)."""
    raw = extra.get(name)
    if raw in (None, ""):
        return default
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(raw, bool) or not math.isfinite(value) or not value.is_integer():
        raise fail(name, f"{raw!r} is not a whole number; give a count such as {default}")
    if value < 1:
        raise fail(name, f"{raw!r} must be greater than 0; give a count such as {default}")
    return int(value)


def _verify(extra: Mapping[str, Any], fail: Any) -> bool | str:
    raw = extra.get("verify")
    if raw is None:  # unset, or JSON null from the form: verify with the default CA bundle
        return True
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    word = bool_word(text)
    if word is not None:
        return word
    if not text:
        raise fail("verify", "empty; use true, false or the path of a CA bundle")
    if not os.path.exists(text):
        raise fail(
            "verify",
            f"{text!r} is neither true/false nor an existing CA bundle file or directory on this machine; "
            "use true, false or the path of a CA bundle (PEM) that exists where the task runs",
        )
    return text  # a CA bundle path, as requests takes it


def _checked_url(url: str, field_name: str, fail: Any, keep_path: bool = False) -> str:
    """An absolute URL that is https, or http to loopback only."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise fail(field_name, "is not a URL; give an absolute https URL") from None
    if "@" in parts.netloc:
        raise fail(
            field_name,
            f"{_redacted(url)} must not carry credentials; remove the user:password@ part and use the "
            "login and password fields",
        )
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise fail(field_name, f"{_redacted(url)!r} is not an absolute http(s) URL")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or any(c.isspace() or not c.isprintable() for c in parts.netloc):
        raise fail(
            field_name,
            f"{_redacted(url)!r} has an invalid host or port; give https://host or https://host:port "
            "with a port from 1 to 65535",
        )
    if not parts.netloc.isascii():
        raise fail(
            field_name,
            f"{_redacted(url)!r} has a non-ASCII host; give the host in its ASCII (xn--) form",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise fail(
            field_name,
            f"plain http to {parts.hostname!r} would send the client secret unencrypted; "
            "use https (http is allowed only to 127.0.0.1, ::1 or localhost for local testing)",
        )
    if keep_path:
        return url
    if parts.query or parts.fragment:
        raise fail(
            field_name,
            f"{_redacted(url)!r} has a query or fragment that would be dropped; give only https://host "
            "(and a path prefix if a gateway needs one)",
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


#: The first path segment of Norce Commerce's own routes (``/commerce/{service}/{version}/``,
#: ``/identity/1.0/connect/token``): a host or ``base_url`` whose path holds one was copied from a service
#: or token URL, and the provider would add the route a second time.
_NORCE_ROUTES = ("commerce", "identity")
#: Norce Commerce's own hosts (``{client}.api-{region}[.{environment}].norce.tech``) serve every API from the
#: root: a path there is always a mistake.
_NORCE_COMMERCE_DOMAIN = ".norce.tech"


def _commerce_base_url(url: str, field_name: str, fail: Any) -> str:
    """The base URL of a Norce Commerce connection given as a URL (``host`` or ``base_url``).

    Norce Commerce publishes ``https://{client}.api-{region}[.{environment}].norce.tech`` with the APIs under
    ``/commerce/{service}/{version}/`` and the token under ``/identity/1.0/connect/token``; the provider adds
    those routes itself. So a path is refused where it can only be a mistake: on a ``*.norce.tech`` host, and
    wherever it holds one of Norce's routes (a pasted service or token URL, which would be sent to
    ``.../commerce/query/2.0/commerce/query/2.0/...``). Any other path on another host is kept as the prefix
    of a gateway or proxy in front of Norce.
    """
    base_url = _checked_url(url, field_name, fail)
    parts = urlsplit(base_url)
    segments = [segment for segment in parts.path.split("/") if segment]
    if not segments:
        return base_url
    origin = f"{parts.scheme}://{parts.netloc}"
    host = (parts.hostname or "").lower()
    routes = [i for i, segment in enumerate(segments) if segment.lower() in _NORCE_ROUTES]
    if host.endswith(_NORCE_COMMERCE_DOMAIN) or host == _NORCE_COMMERCE_DOMAIN[1:]:
        raise fail(
            field_name,
            f"{_redacted(url)!r} has a path ({parts.path!r}), but Norce Commerce serves every API from the root "
            f"of its host and the provider adds /commerce/{{service}}/{{version}}/ and "
            f"/identity/1.0/connect/token itself; give {origin!r}",
        )
    if routes:
        keep = "/".join(segments[: routes[0]])
        fix = f"{origin}/{keep}" if keep else origin
        raise fail(
            field_name,
            f"{_redacted(url)!r} holds Norce's route {'/' + '/'.join(segments[routes[0] :])!r}: it looks copied "
            "from a service or token URL, and the provider adds /commerce/{service}/{version}/ and "
            f"/identity/1.0/connect/token itself; give {fix!r}",
        )
    return base_url  # a gateway's prefix: kept


def _storm_connect_url(url: str, field_name: str, fail: Any) -> str:
    """Storm's Connect URL as the connection gives it, ending in ``/``: Storm's shape has a path
    (``https://connect.storm.io/4.0/api/``), kept; a bare host gets Storm's ``/4.0/api/``."""
    checked = _checked_url(url, field_name, fail)
    if not urlsplit(checked).path.strip("/"):
        return checked + "/4.0/api/"
    return checked + "/"
