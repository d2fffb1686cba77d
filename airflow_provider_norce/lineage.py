"""OpenLineage for the Norce operators: which datasets an export, an import or a single call reads and writes.

Teams that run the OpenLineage provider see a Norce task as ``Norce dataset -> file`` (an export) or
``file -> Norce dataset`` (an import) instead of a black box. The provider's listener calls the operators'
``get_openlineage_facets_on_start``/``_on_complete`` methods, which only delegate here.

Two halves, kept apart on purpose:

* the naming rules (:func:`norce_namespace`, :func:`query_dataset_name`, :func:`connect_dataset_name`,
  :func:`call_dataset`, :func:`file_dataset`): plain functions of the connection and the operator
  arguments, no OpenLineage import, no network call, never the secret;
* the builders (:func:`export_lineage`, :func:`import_lineage`, :func:`call_lineage`), which import
  OpenLineage inside the function: importing an operator module never imports OpenLineage, and without
  the OpenLineage provider they return ``None`` silently (the methods are then never called by Airflow
  anyway; a direct call stays harmless).

Naming follows the OpenLineage dataset naming spec (``spec/Naming.md``: namespace ``scheme://authority``
of the data source, name the path inside it): a Norce tenant's environment is the data source,
``norce://{tenant}.{environment}``; an entity set or import method is the dataset in it. Files use the
spec's own rules: a local path is namespace ``file`` with the absolute path as name; an object-storage URI
is ``{scheme}://{bucket}`` with the object key as name.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_norce.redaction import UnseparableCredentials, split_authority

if TYPE_CHECKING:
    from airflow_provider_norce.connection import NorceConnectionConfig

log = logging.getLogger(__name__)

#: The namespace scheme of every Norce dataset.
NORCE_SCHEME = "norce"
#: Norce [Storm] has one test environment, ``lab`` (host ``connect.lab.storm.io``, scope ``lab``), which the
#: connection reaches as ``stage`` or ``playground``: both name the same data, so both are named ``lab``.
STORM_ENVIRONMENTS = {"production": "production", "stage": "lab", "playground": "lab"}
#: Norce Commerce's own API host, ``{client}.api-{region}[.{environment}].norce.tech``: its client name is the
#: tenant even when the connection gives the whole URL.
_COMMERCE_HOST = re.compile(
    r"^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.api-[a-z0-9]+(?:\.[a-z]+)?\.norce\.tech$"
)
#: ``4.0``, ``2.0``, ``1.1``: the version segment of a Norce service path.
_VERSION = re.compile(r"^\d+(?:\.\d+)*$")
#: Object-storage schemes spelled two ways by fsspec/Airflow, and the spelling of the naming spec.
_SCHEME_ALIASES = {"gcs": "gs", "s3a": "s3", "s3n": "s3", "local": "file"}


# -- naming rules -------------------------------------------------------------------------------------


def norce_tenant(host: str | None, config: NorceConnectionConfig) -> str:
    """The tenant a connection names: its host field.

    A client name (``acme``) is the tenant as given. A URL in the host field (a whole base URL, or the
    simulator's ``http://127.0.0.1:8080``) names the tenant by its host name, port left out so that a
    restarted simulator keeps its name; Norce's own ``acme.api-se.norce.tech`` gives back ``acme``. A
    ``base_url`` extra never changes the tenant while the host field is set. Norce [Storm] serves every
    tenant from the same hosts, so a Storm connection without a client name in the host field is named by
    its client id (the login, not a secret).
    """
    text = (host or "").strip().lower()
    if "://" in text:
        text = (urlsplit(text).hostname or "").lower()
    if not text and config.platform != "storm":
        text = (urlsplit(config.base_url).hostname or "").lower()
    match = _COMMERCE_HOST.match(text)
    if match:
        return match.group(1)
    if config.platform == "storm" and (not text or text.endswith("storm.io")):
        return config.client_id
    return text


def norce_environment(config: NorceConnectionConfig) -> str:
    """``production``, ``stage`` or ``playground``; on Storm ``production`` or ``lab``."""
    if config.platform == "storm":
        return STORM_ENVIRONMENTS.get(config.environment, config.environment)
    return config.environment


def norce_namespace(host: str | None, config: NorceConnectionConfig) -> str:
    """``norce://{tenant}.{environment}``: the data source of every dataset of one Norce environment."""
    return f"{NORCE_SCHEME}://{norce_tenant(host, config)}.{norce_environment(config)}"


def connection_namespace(conn_id: str) -> str:
    """The Norce namespace of an Airflow connection, from its validated config: no request is sent."""
    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.hooks.norce import NorceHook

    conn = NorceHook.get_connection(conn_id)
    return norce_namespace(conn.host, NorceConnectionConfig.from_connection(conn, conn_id))


def query_dataset_name(entity: str) -> str:
    """``query/Orders/Orders``: the dataset of a Query entity set (``Namespace/EntitySet``)."""
    return "query/" + str(entity).strip().strip("/")


def connect_dataset_name(import_method: str) -> str:
    """``connect/Product/ImportOnhands``: the dataset an import method writes (``Service/ImportMethod``)."""
    return "connect/" + str(import_method).strip().strip("/")


def call_dataset(endpoint: str) -> str | None:
    """The dataset of one call's endpoint: ``commerce/query/2.0/Application/ClientPriceLists`` is
    ``query/Application/ClientPriceLists``, ``commerce/connect/4.0/Product/ImportOnhands`` is
    ``connect/Product/ImportOnhands`` (the names the export and import operators use), any other service
    ``{service}/{path}``. Storm's paths (``Query/2.0/...``, ``4.0/api/...`` for Connect) map the same way.
    ``None`` for a path that names no service, version and resource."""
    path = urlsplit(endpoint).path if "://" in endpoint else endpoint.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if parts and parts[0].lower() == "commerce":
        parts = parts[1:]
    if len(parts) >= 3 and _VERSION.match(parts[0]) and parts[1].lower() == "api":
        service, rest = "connect", parts[2:]  # Storm's Connect: /4.0/api/{Service}/{Method}
    elif len(parts) >= 3 and _VERSION.match(parts[1]):
        service, rest = parts[0].lower(), parts[2:]
    else:
        return None
    return f"{service}/{'/'.join(rest)}"


def file_dataset(location: Any) -> tuple[str, str]:
    """``(namespace, name)`` of a file argument, by the naming spec.

    A local path (``str`` or ``os.PathLike``) is ``("file", absolute path)``; ``file:///x`` is
    ``("file", "/x")`` and ``file://host/x`` ``("file://host", "/x")``; an object-storage URI or an
    ``ObjectStoragePath`` is ``("{scheme}://{bucket}", key)``, the Airflow connection id of
    ``s3://conn_id@bucket/key`` left out (it names credentials, not data), and so is any
    ``user:password@``, also one whose password holds ``/`` (``s3://KEY:SE/CRET@bucket/key``, which
    ``urlsplit`` cuts at the ``/``). Raises :class:`~airflow_provider_norce.redaction.UnseparableCredentials`
    (a ``ValueError`` naming nothing of the location) when the credentials cannot be told apart from the
    bucket and key: the builders then leave the file out of the lineage.
    """
    if isinstance(location, str):
        text = location
    elif hasattr(type(location), "fs"):  # ObjectStoragePath (looked up on the class: no file system opened)
        text = str(location)
    else:
        text = os.fspath(location)
    if "://" not in text:
        return "file", os.path.abspath(text)
    scheme_text, _, rest = text.partition("://")
    scheme = _SCHEME_ALIASES.get(scheme_text.lower(), scheme_text.lower())
    authority, tail = split_authority(rest)
    path = re.split(r"[?#]", tail, maxsplit=1)[0]  # a query or fragment is not part of the name (as before)
    if scheme == "file":
        return (f"file://{authority}" if authority else "file"), path or "/"
    return f"{scheme}://{authority}", path.lstrip("/")


def _file_dataset_or_none(location: Any, operator: Any, role: str) -> tuple[str, str] | None:
    """:func:`file_dataset`, or ``None`` with a warning (that shows nothing of the location) when its
    credentials cannot be separated from it."""
    try:
        return file_dataset(location)
    except UnseparableCredentials as err:
        log.warning(
            "Norce lineage: the %s of task %r is a URI with credentials that cannot be told apart from its "
            "bucket and path (%s); it is left out of the lineage. Put the credentials in an Airflow connection "
            "(s3://conn_id@bucket/key) instead of the URI",
            role,
            getattr(operator, "task_id", None),
            err,
        )
        return None


# -- building what the OpenLineage provider emits ----------------------------------------------------


def export_lineage(operator: Any, task_instance: Any = None) -> Any:
    """``Norce entity set -> file`` of a ``NorceQueryExportOperator``; with ``task_instance`` (on
    complete), the file's row count and size from the run the operator just finished."""
    facets = _facets()
    if facets is None:
        return None
    from airflow_provider_norce.arguments import field_names

    select = field_names(operator.select)
    norce = facets.Dataset(
        namespace=connection_namespace(operator.norce_conn_id),
        name=query_dataset_name(operator.entity),
        facets=_schema(facets, select),
    )
    named = _file_dataset_or_none(operator.destination, operator, "destination")
    if named is None:
        return _operator_lineage(inputs=[norce])
    namespace, name = named
    output_facets: dict[str, Any] = {}
    result = getattr(operator, "_exported", None) if task_instance is not None else None
    if isinstance(result, dict) and isinstance(result.get("rows"), int):
        output_facets["outputStatistics"] = facets.OutputStatisticsOutputDatasetFacet(
            rowCount=result["rows"], size=_local_size(namespace, name)
        )
    file_out = facets.OutputDataset(
        namespace=namespace, name=name, facets=_schema(facets, select), outputFacets=output_facets
    )
    return _operator_lineage(inputs=[norce], outputs=[file_out])


def import_lineage(operator: Any, task_instance: Any = None) -> Any:
    """``file -> Norce import method`` of a ``NorceConnectImportOperator`` (no input when the items came
    as a list or an XCom); with ``task_instance`` (on complete), the Connect job ids as the standard
    ``externalQuery`` run facet and, when the task waited for them, the rows Norce inserted or updated."""
    facets = _facets()
    if facets is None:
        return None
    namespace = connection_namespace(operator.norce_conn_id)
    inputs = []
    if operator.items_path not in (None, ""):
        named = _file_dataset_or_none(operator.items_path, operator, "items_path")
        if named is not None:
            inputs.append(facets.Dataset(namespace=named[0], name=named[1]))
    done = task_instance is not None
    job_ids = getattr(operator, "_posted_job_ids", None) if done else None
    summary = getattr(operator, "_jobs_summary", None) if done else None
    output_facets: dict[str, Any] = {}
    written = _rows_written(summary)
    if written is not None:
        output_facets["outputStatistics"] = facets.OutputStatisticsOutputDatasetFacet(rowCount=written)
    run_facets: dict[str, Any] = {}
    if isinstance(job_ids, list) and job_ids:
        run_facets["externalQuery"] = facets.ExternalQueryRunFacet(
            externalQueryId=",".join(str(j) for j in job_ids), source=namespace
        )
    output = facets.OutputDataset(
        namespace=namespace, name=connect_dataset_name(operator.import_method), outputFacets=output_facets
    )
    return _operator_lineage(inputs=inputs, outputs=[output], run_facets=run_facets)


def call_lineage(operator: Any) -> Any:
    """The dataset a ``NorceOperator`` call reads (``GET``) or writes (any other method); nothing for an
    endpoint that names no Norce service."""
    facets = _facets()
    if facets is None:
        return None
    name = call_dataset(str(operator.endpoint))
    if name is None:
        return _operator_lineage()
    dataset = facets.Dataset(namespace=connection_namespace(operator.norce_conn_id), name=name)
    if str(operator.method).strip().upper() == "GET":
        return _operator_lineage(inputs=[dataset])
    return _operator_lineage(outputs=[dataset])


def _facets() -> Any:
    """The OpenLineage facet classes, or ``None`` when the OpenLineage provider is not installed.

    Airflow's compat module stands in no-op functions for the classes when the OpenLineage client is
    missing; the provider's ``OperatorLineage`` is imported too, so a missing provider is seen either way."""
    try:
        from airflow.providers.common.compat.openlineage import facet
        from airflow.providers.openlineage.extractors import OperatorLineage  # noqa: F401
    except ImportError:
        return None
    if not isinstance(facet.Dataset, type):
        return None
    return facet


def _operator_lineage(**parts: Any) -> Any:
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(**parts)


def _schema(facets: Any, fields: list[str] | None) -> dict[str, Any]:
    """The standard ``schema`` facet of the selected fields (names only: Query's types are not read)."""
    if not fields:
        return {}
    return {
        "schema": facets.SchemaDatasetFacet(
            fields=[facets.SchemaDatasetFacetFields(name=name) for name in fields]
        )
    }


def _local_size(namespace: str, name: str) -> int | None:
    """The size of a local file (a stat, cheap); ``None`` for object storage, not worth a request."""
    if namespace != "file":
        return None
    try:
        return os.path.getsize(name)
    except OSError:
        return None


def _rows_written(summary: Any) -> int | None:
    """Rows Norce inserted or updated in all of the task's jobs, from the job summary the operator kept."""
    if not isinstance(summary, dict) or not isinstance(summary.get("jobs"), dict):
        return None
    counts = [
        (job.get("inserts") or 0) + (job.get("updates") or 0)
        for job in summary["jobs"].values()
        if isinstance(job, dict)
    ]
    return sum(counts) if counts else None
