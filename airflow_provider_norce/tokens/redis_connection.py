"""A ``redis.Redis`` client from an Airflow connection of the official Redis provider's type ``redis``.

Read as ``airflow.providers.redis.hooks.redis.RedisHook.get_conn`` reads it (host, port, login,
password, extra ``db``, the ``ssl*`` extras), so one Redis connection serves Celery, the Redis provider
and this token store alike, but with socket timeouts (a blackholed Redis must not hang a task), and
without requiring the Redis provider package (only ``redis``). Differences, on purpose:

* a numeric URI path is the database when the extra ``db`` is absent (``redis://host:6379/2``, as
  Celery reads a broker URL; the Redis provider ignores it and uses 0);
* cluster mode (extra ``cluster``) is refused: the lock, the limiter's WATCH and the notifications need
  one server (a primary, which may sit behind Sentinel or a managed endpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.exceptions import NorceConnectionConfigError
from airflow_provider_norce.redaction import strip_userinfo, userinfo_secrets

if TYPE_CHECKING:
    import redis

#: The ``ssl*`` extras the Redis provider passes on to ``redis.Redis``.
SSL_EXTRAS = ("ssl", "ssl_cert_reqs", "ssl_ca_certs", "ssl_keyfile", "ssl_certfile", "ssl_check_hostname")
FIELD = "auth_cache_conn_id"


@dataclass(frozen=True)
class RedisTarget:
    """Where the token store's Redis is, for messages (never holds the password).

    ``host`` is the host field as shown: a URL typed into it (``redis://:PW@host:6379/0``) keeps its
    shape, without its ``user:password@`` (:func:`~airflow_provider_norce.redaction.strip_userinfo`).
    """

    conn_id: str
    host: str
    port: int
    db: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", strip_userinfo(self.host))

    def __str__(self) -> str:
        return f"connection {self.conn_id!r} ({self.host}:{self.port}/{self.db})"


def redis_client(
    redis_conn_id: str, norce_conn_id: str, *, socket_timeout: float
) -> tuple[redis.Redis, RedisTarget]:
    """The client and its description; :class:`NorceConnectionConfigError` naming both connections and
    the field when the Redis connection does not exist or cannot be used."""
    import redis

    conn = _connection(redis_conn_id, norce_conn_id)
    extra = _extra(conn, redis_conn_id, norce_conn_id)

    def fail(problem: str) -> NorceConnectionConfigError:
        return NorceConnectionConfigError(
            norce_conn_id, FIELD, strip_userinfo(f"the Redis connection {redis_conn_id!r} {problem}")
        )

    _mask_url_passwords(conn, extra)

    conn_type = (getattr(conn, "conn_type", None) or "redis").lower()
    if conn_type not in ("redis", "rediss"):
        raise fail(f"is of type {conn_type!r}, not 'redis'; point {FIELD} at a connection of type redis")
    if _truthy(extra.get("cluster")):
        raise fail(
            "is in cluster mode (extra 'cluster'), which the Norce token store does not support: its lock, "
            "limiter and notifications need one Redis server. Point auth_cache_conn_id at a standalone "
            "Redis (or a primary's endpoint), or set auth_cache to 'machine'"
        )
    host = conn.host or "localhost"
    try:
        port = int(conn.port or 6379)
        db = _db(extra.get("db"), getattr(conn, "schema", None))
    except ValueError as err:
        raise fail(f"has {err}; give whole numbers") from None
    password = None if str(conn.password).lower() in ("none", "false", "") else conn.password
    ssl = {name: extra[name] for name in SSL_EXTRAS if name in extra}
    if conn_type == "rediss":
        ssl.setdefault("ssl", True)
    client = redis.Redis(
        host=host,
        port=port,
        username=conn.login or None,
        password=password,
        db=db,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        **ssl,
    )
    return client, RedisTarget(redis_conn_id, host, port, db)


def _mask_url_passwords(conn: Any, extra: dict[str, Any]) -> None:
    """Register with Airflow's masker every password of a URL in the host field or a text extra.

    Why: a host field holding ``redis://:PW@host:6379/0`` leaves the password field empty, so Airflow's
    masker knows nothing to hide, and redis-py names the host (password included) in its errors.
    """
    texts = [conn.host or "", *(value for value in extra.values() if isinstance(value, str))]
    secrets = [secret for text in texts for secret in userinfo_secrets(text)]
    if not secrets:
        return
    from airflow_provider_norce.hooks.norce import _mask

    for secret in secrets:
        _mask(secret)


def _connection(redis_conn_id: str, norce_conn_id: str) -> Any:
    from airflow.providers.common.compat.sdk import BaseHook

    try:
        return BaseHook.get_connection(redis_conn_id)
    except Exception as err:  # AirflowNotFoundException lives in another module per Airflow version
        if "AirflowNotFoundException" not in {cls.__name__ for cls in type(err).__mro__}:
            raise
        raise NorceConnectionConfigError(
            norce_conn_id,
            FIELD,
            f"names the Redis connection {redis_conn_id!r}, which does not exist; create it (type redis, "
            f"for example AIRFLOW_CONN_{redis_conn_id.upper()}='redis://host:6379/0'), or set "
            f"{FIELD} to an existing one, or auth_cache to 'machine'",
        ) from None


def _extra(conn: Any, redis_conn_id: str, norce_conn_id: str) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except Exception:
        extra = None
    if not isinstance(extra, dict):
        raise NorceConnectionConfigError(
            norce_conn_id,
            FIELD,
            f"the Redis connection {redis_conn_id!r} has an extra that is not a JSON object",
        )
    return extra


def _db(extra_db: Any, schema: str | None) -> int:
    if extra_db not in (None, ""):
        if isinstance(extra_db, bool):
            raise ValueError(f"db {extra_db!r}")
        try:
            return int(str(extra_db).strip())
        except ValueError:
            raise ValueError(f"db {extra_db!r}") from None
    text = (schema or "").strip().strip("/")
    if text.isdigit():
        return int(text)
    return 0


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
