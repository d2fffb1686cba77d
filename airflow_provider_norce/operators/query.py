"""``NorceQueryExportOperator``: export a Norce Query (OData) entity set to a JSON-lines or CSV file.

The operator stays thin: the hook pages through Query (``@odata.nextLink``, retries, tokens),
:mod:`airflow_provider_norce.query.concurrent` reads key ranges of the window concurrently and resumably,
the writers in :mod:`airflow_provider_norce.query.files` make the file appear atomically, and
:mod:`airflow_provider_norce.query.window` decides the default incremental window. Only a small summary
(``{"path", "rows", "pages"}``) goes to XCom; the rows go to the file.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_norce.arguments import as_bool, conn_id, field_names, non_negative_float, positive_int
from airflow_provider_norce.progress import Progress
from airflow_provider_norce.query.files import (
    FILE_FORMATS,
    DestinationError,
    atomic_output,
    describe,
    destination_problem,
    make_writer,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.query.completeness import ExportRecord


#: Query requests in flight by default; measured over a simulated 100 ms link (docs: benchmarks).
DEFAULT_MAX_CONCURRENCY = 8


class NorceQueryExportOperator(BaseOperator):
    """Read a Norce Query entity set, page by page or by concurrent key ranges, into one file that appears
    only when complete.

    :param entity: the entity set, ``Namespace/EntitySet`` (``Orders/Orders``, ``Products/ProductSkus``).
    :param destination: a local path, an ``ObjectStoragePath`` or an object-storage URI
        (``file:///...``, ``s3://aws_default@bucket/orders/{{ ds }}.jsonl``). Written atomically: readers see
        the previous file or the complete new one. A re-run of the same interval overwrites it.
    :param file_format: ``jsonl`` (one JSON object per line) or ``csv`` (header from ``select``, else the
        first row's keys; nested values as JSON text).
    :param filter: an OData ``$filter``. Default: the run's window on ``window_field``,
        ``Updated ge <start> and Updated lt <end>`` (see :mod:`airflow_provider_norce.query.window` for
        the rule that also covers ``@daily``'s empty data intervals).
    :param select: ``$select``: a comma-separated string or a list of field names.
    :param expand: ``$expand`` (for example ``OnHand,PriceLists``).
    :param orderby: ``$orderby``.
    :param window_field: the timestamp field of the default window; ``None`` exports the whole entity set
        when no ``filter`` is given.
    :param window_fallback_field: the field that places rows whose ``window_field`` is null in the default
        window (default ``Created``): ``(Updated ge A and Updated lt B) or (Updated eq null and Created ge A
        and Created lt B)``. Norce leaves ``Updated`` null on never-updated rows (third-party observation,
        ``query.json incremental_sync``). ``None`` turns the fallback off (for a set without that field).
    :param filter_application: with an ``application_id`` on the connection, restrict ``Orders/Orders`` to
        that application by adding ``ApplicationId eq N`` to the filter (``and``-ed with the user's
        ``filter`` or the default window). Why: the ``applicationId`` header does not filter orders, so
        without it every application's orders are exported (third-party observation, ``query.json
        request_headers.application_id``). ``False`` exports the orders of every application. Templated;
        ``"true"``/``"false"`` strings are accepted.
    :param norce_conn_id: the Airflow connection of type ``norce``.
    :param progress_interval: seconds between two progress lines in the task log at least (rows, pages,
        rows/s; with concurrent slices also the slices done and an estimated total with its ETA); a line
        comes while a page or a 429 is waited for too. ``0`` logs every page. The run ends with one
        ``Exported ...`` summary line either way (:mod:`airflow_provider_norce.progress`).
    :param max_concurrency: Query requests in flight at once (default 8, measured: see the docs'
        benchmarks). Above 1 the window is cut into key ranges of ``slice_key`` read concurrently with one
        token, into the same file a sequential export writes (:mod:`airflow_provider_norce.query.concurrent`);
        a 429 halves it for a while. ``1`` reads one keyset page after another (``Id gt <last>``). Every
        answer the key ranges rely on is checked; one that does not hold switches to Norce's
        ``@odata.nextLink`` pages with a warning (:mod:`airflow_provider_norce.query.slices`). A user
        ``orderby`` other than ``slice_key`` follows the nextLink too (slices are joined in key order).
    :param slice_key: the integer key the window is cut by. Default: ``Id`` for ``Orders/Orders`` and
        ``Products/Products`` (integer keys in Norce's contracts); other sets follow the nextLink unless
        one is named here.
    :param slice_rows: about how many rows one slice holds. A killed try's retry reads again at most the
        slices that were in flight, so this bounds the rows read twice.
    :param lookback: re-read this much before the default window's start (a ``timedelta`` or seconds), so
        that a row Norce updated late (its ``Updated`` inside the previous window, written after that run) is
        in the next run's file. Such a row can then be in two consecutive files: load them by key (upsert).
        Only with the default window, not with ``filter``.

    Pass ``outlets=[Asset("file:///exports/orders")]`` so downstream DAGs are scheduled on the export.
    Returns ``{"path": destination, "rows": n, "pages": k, "completeness": {...}}`` (``pages`` read by this try;
    ``completeness``: how the rows were read, the key range written, any fallback:
    :class:`~airflow_provider_norce.query.completeness.ExportRecord`). One export of a local destination runs
    at a time (:mod:`airflow_provider_norce.query.destination_lock`).
    """

    template_fields: Sequence[str] = (
        "entity",
        "destination",
        "file_format",
        "filter",
        "select",
        "expand",
        "orderby",
        "window_field",
        "window_fallback_field",
        "filter_application",
        "norce_conn_id",
        "slice_key",
    )
    ui_color = "#d8f0e5"

    def __init__(
        self,
        *,
        destination: Any,
        entity: str = "Orders/Orders",
        file_format: str = "jsonl",
        filter: str | None = None,
        select: str | Sequence[str] | None = None,
        expand: str | None = None,
        orderby: str | None = None,
        window_field: str | None = "Updated",
        window_fallback_field: str | None = "Created",
        filter_application: bool | str = True,
        norce_conn_id: str = "norce_default",
        progress_interval: float = 10.0,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        slice_key: str | None = None,
        slice_rows: int = 10_000,
        lookback: timedelta | float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entity = entity
        self.destination = destination
        self.file_format = file_format
        self.filter = filter
        self.select = select
        self.expand = expand
        self.orderby = orderby
        self.window_field = window_field
        self.window_fallback_field = window_fallback_field
        self.filter_application = filter_application
        self.norce_conn_id = norce_conn_id
        self.progress_interval = progress_interval
        self.max_concurrency = max_concurrency
        self.slice_key = slice_key
        self.slice_rows = slice_rows
        self.lookback = lookback

    def get_hook(self) -> NorceHook:
        from airflow_provider_norce.hooks.norce import NorceHook

        return NorceHook(norce_conn_id=self.norce_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        result = self._export(context)
        # Kept for OpenLineage's on-complete call, made in this process (or a fork of it): reading the
        # XCom back instead hangs in a fork of dag.test()'s in-process supervisor.
        self._exported = result
        return result

    def _export(self, context: Context) -> dict[str, Any]:
        file_format = str(self.file_format).strip().lower()
        if file_format not in FILE_FORMATS:
            raise ValueError(
                f"Task {self.task_id!r}: file_format {self.file_format!r} is not one of "
                f"{', '.join(FILE_FORMATS)}"
            )
        entity = str(self.entity).strip().strip("/")
        if entity.count("/") != 1:
            raise ValueError(
                f"Task {self.task_id!r}: entity {self.entity!r} must be 'Namespace/EntitySet', "
                "for example 'Orders/Orders' or 'Products/ProductSkus'"
            )
        if self.destination is None or self.destination == "":
            raise ValueError(f"Task {self.task_id!r}: destination is empty; give a file path or URI")
        problem = destination_problem(self.destination)
        if problem:
            raise ValueError(f"Task {self.task_id!r}: {problem}")
        progress_interval = non_negative_float(self.progress_interval, "progress_interval", self.task_id)
        concurrency = positive_int(self.max_concurrency, "max_concurrency", self.task_id)
        slice_rows = positive_int(self.slice_rows, "slice_rows", self.task_id)
        _lookback(self.lookback, self.task_id)
        select = field_names(self.select)
        self.norce_conn_id = conn_id(self.norce_conn_id, self.task_id)
        hook = self.get_hook()
        params = self.query_params(context, select, application_id=hook.config.application_id)
        endpoint = f"{hook.service_url('query').rstrip('/')}/{entity}"
        target = describe(self.destination)
        self.log.info(
            "Exporting Norce Query %s to %s (%s), $filter=%s",
            entity,
            target,
            file_format,
            params.get("$filter", "(none: the whole entity set)"),
        )
        from airflow_provider_norce.query.destination_lock import destination_lock
        from airflow_provider_norce.query.staging import remove_orphans

        key = self._slice_key()
        where = f"Task {self.task_id!r}"
        progress = Progress(
            "Export progress",
            "rows",
            interval=progress_interval,
            sink=self.log.info,
            waiting_for=f"Norce Query to answer a page of {entity}",
        )
        progress.counter("pages")
        started = time.monotonic()
        previous, hook.retry_listener = hook.retry_listener, progress.on_retry  # lines name a 429 waited out
        # the heartbeat ends with the export, however it ends; one export of a destination at a time
        try:
            with progress, _restored(hook, previous), destination_lock(self.destination, where):
                if key is not None:
                    record = self._export_sliced(
                        context,
                        hook,
                        endpoint,
                        params,
                        key,
                        select,
                        file_format,
                        concurrency,
                        slice_rows,
                        progress,
                    )
                else:
                    record = self._export_pages(hook, endpoint, params, select, file_format, progress)
                removed = remove_orphans(self.destination)
        except DestinationError as err:  # raised before any row was fetched, or at the final rename
            raise ValueError(f"{where}: {err}") from None
        for folder in removed:
            self.log.info(
                "Removed the staging folder of an earlier, abandoned export of this file: %s", folder
            )
        self._log_summary(record.pages, record.rows, time.monotonic() - started, target)
        self.log.info("Export complete: %s", record.describe())
        if record.resumed:
            self.log.info("%d of %d slices came from an earlier try", record.resumed, record.slices)
        return {"path": target, "rows": record.rows, "pages": record.pages, "completeness": record.as_dict()}

    def _export_pages(
        self,
        hook: NorceHook,
        endpoint: str,
        params: dict[str, str],
        select: list[str] | None,
        file_format: str,
        progress: Progress,
    ) -> ExportRecord:
        """One page after another, following Norce's nextLink; the set's key (when the rows carry it) is
        checked for a row twice."""
        from airflow_provider_norce.query.completeness import NEXT_LINK, ExportRecord
        from airflow_provider_norce.query.concurrent import read_pages

        key = self._known_key()
        # the key is asked for even when not selected (and left out of the rows), so every row is checked
        strip_key = bool(key and select and key not in select)
        if strip_key:
            params = {**params, "$select": ",".join([*(select or ()), str(key)])}
        pages = 0

        def counted(rows: list[dict[str, Any]]) -> None:
            nonlocal pages
            pages += 1
            progress.add(len(rows), pages=1)

        with atomic_output(self.destination) as stream:
            writer = make_writer(file_format, stream, _columns(select, self.expand))
            seen = read_pages(
                hook, endpoint, params, key, f"Task {self.task_id!r}", counted, writer, strip_key=strip_key
            )
        return ExportRecord(writer.rows, pages, NEXT_LINK, key, seen.first, seen.last)

    def _known_key(self) -> str | None:
        entity = str(self.entity).strip().strip("/").lower()
        return str(self.slice_key).strip() if self.slice_key else SLICE_KEYS.get(entity)

    def _slice_key(self) -> str | None:
        """The key to read the window by (key ranges, or keyset pages with ``max_concurrency=1``), or
        ``None`` to follow Norce's nextLink (and why, in the log)."""
        key = self._known_key()
        if not key:
            return None
        ordering = str(self.orderby or "").replace(",", " , ").split()
        if ordering and not (ordering[0] == key and ordering[1:] in ([], ["asc"])):
            self.log.info(
                "Task %r: orderby %r is not the key %r, so the export follows Norce's nextLink one page at "
                "a time (key ranges are joined in key order)",
                self.task_id,
                self.orderby,
                key,
            )
            return None
        return key

    def _export_sliced(
        self,
        context: Context,
        hook: NorceHook,
        endpoint: str,
        params: dict[str, str],
        key: str,
        select: list[str] | None,
        file_format: str,
        concurrency: int,
        slice_rows: int,
        progress: Progress,
    ) -> ExportRecord:
        from airflow_provider_norce.query.concurrent import SlicedExport
        from airflow_provider_norce.query.staging import fingerprint

        digest = fingerprint(
            endpoint=endpoint, params={k: v for k, v in params.items() if k != "$orderby"}, key=key
        )
        export = SlicedExport(
            hook,
            endpoint,
            params,
            key=key,
            select=select,
            destination=self.destination,
            file_format=file_format,
            columns=_columns(select, self.expand),
            concurrency=concurrency,
            slice_rows=slice_rows,
            digest=digest,
            where=f"Task {self.task_id!r}",
            progress=progress,
            logger=self.log,
        )
        return export.run(keep_staging_on_failure=_retry_follows(context))

    def query_params(
        self, context: Context, select: list[str] | None = None, application_id: int | None = None
    ) -> dict[str, str]:
        """The OData query options of this run.

        ``$filter`` is the user's ``filter``, else the default window (see
        :meth:`~airflow_provider_norce.query.window.ExportWindow.odata_filter`), and for ``Orders/Orders``
        ``ApplicationId eq <application_id>`` ``and``-ed in front (see ``filter_application``).
        """
        params: dict[str, str] = {}
        condition: str | None = None
        if self.filter not in (None, ""):
            if _lookback(self.lookback, self.task_id):
                raise ValueError(
                    f"Task {self.task_id!r}: lookback widens the default window and cannot change a given "
                    "filter; write the earlier start into the filter, or drop filter to use the window"
                )
            condition = str(self.filter)
        elif self.window_field:
            from airflow_provider_norce.query.window import ExportWindow, window_for_run

            window = window_for_run(context, self.task_id)
            lookback = _lookback(self.lookback, self.task_id)
            if lookback:
                window = ExportWindow(
                    window.start - lookback, window.end, f"{window.rule}, with a lookback of {lookback}"
                )
            fallback = str(self.window_fallback_field) if self.window_fallback_field else None
            condition = window.odata_filter(str(self.window_field), fallback)
            self.log.info(
                "Export window [%s, %s) on %s%s: %s",
                window.start.isoformat(),
                window.end.isoformat(),
                self.window_field,
                f" (rows where it is null: on {fallback})" if fallback else "",
                window.rule,
            )
        application = self._application_condition(application_id)
        if application and condition:
            condition = f"{application} and ({condition})"
        elif application:
            condition = application
        if condition:
            params["$filter"] = condition
        if select:
            params["$select"] = ",".join(select)
        if self.expand:
            params["$expand"] = str(self.expand)
        if self.orderby:
            params["$orderby"] = str(self.orderby)
        return params

    def _application_condition(self, application_id: int | None) -> str | None:
        """``ApplicationId eq N`` when this export must be restricted to the connection's application."""
        entity = str(self.entity).strip().strip("/").lower()
        if entity not in APPLICATION_FILTERED_SETS or not _flag(
            self.filter_application, self.task_id, "filter_application"
        ):
            return None
        if application_id is None:
            self.log.warning(
                "Task %r: the connection %r has no application_id, so %s is exported for every "
                "application (Norce's applicationId header does not filter orders); set the extra "
                "'application_id' or filter_application=False to silence this",
                self.task_id,
                self.norce_conn_id,
                self.entity,
            )
            return None
        return f"ApplicationId eq {int(application_id)}"

    def _log_summary(self, pages: int, rows: int, seconds: float, target: str) -> None:
        """The run's one summary line; its prefix ``Exported <rows> rows in <pages> pages to`` is kept
        stable for whoever greps task logs (digits without separators)."""
        rate = rows / seconds if seconds > 0 else 0.0
        self.log.info(
            "Exported %d rows in %d pages to %s in %.1f s (%.0f rows/s)", rows, pages, target, seconds, rate
        )

    def get_openlineage_facets_on_start(self) -> Any:
        """OpenLineage (when its provider is installed): the Norce entity set read and the file written
        (:mod:`airflow_provider_norce.lineage`)."""
        from airflow_provider_norce.lineage import export_lineage

        return export_lineage(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """As on start, with the file's row count and size from the result ``execute()`` kept."""
        from airflow_provider_norce.lineage import export_lineage

        return export_lineage(self, task_instance)


#: Entity sets (lower case) with an integer key to cut a concurrent export by (``query.json entity_sets``:
#: ``Orders/Orders`` Id int64 per Query 3.0 and the third-party loader; ``Products/Products`` Id integer).
SLICE_KEYS = {"orders/orders": "Id", "products/products": "Id"}

#: Entity sets (lower case) whose rows carry ``ApplicationId`` and are NOT filtered by the header.
APPLICATION_FILTERED_SETS = frozenset({"orders/orders"})


def _flag(value: bool | str, task_id: str, name: str) -> bool:
    """:func:`~airflow_provider_norce.arguments.as_bool`, with the error naming the value first."""
    try:
        return as_bool(value if isinstance(value, bool) else str(value), name, task_id)
    except ValueError:
        raise ValueError(f"Task {task_id!r}: {name} {value!r} is not true or false") from None


def _columns(select: list[str] | None, expand: str | None) -> list[str] | None:
    """CSV columns: the selected fields plus the expanded navigation properties (rows carry both)."""
    if not select:
        return None
    columns = list(select)
    depth, name = 0, ""
    for char in f"{expand or ''},":
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            if name.strip() and name.strip() not in columns:
                columns.append(name.strip())
            name = ""
        elif depth == 0:
            name += char
    return columns


def _lookback(value: timedelta | float | str | None, task_id: str) -> timedelta:
    """``lookback`` as a non-negative timedelta (seconds accepted)."""
    if value is None or value == "":
        return timedelta(0)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    else:
        seconds = non_negative_float(value, "lookback", task_id)
    if seconds < 0:
        raise ValueError(f"Task {task_id!r}: lookback {value!r} is negative; give a timedelta of 0 or more")
    return timedelta(seconds=seconds)


@contextlib.contextmanager
def _restored(hook: NorceHook, listener: Any) -> Iterator[None]:
    """Give ``hook`` back its own retry listener when the export ends, however it ends."""
    try:
        yield
    finally:
        hook.retry_listener = listener


def _retry_follows(context: Any) -> bool:
    """Whether a failure of this try is retried by Airflow (then the staging folder is kept for it)."""
    ti = context.get("ti") if hasattr(context, "get") else None
    try:
        return bool(ti is not None and ti.try_number <= ti.max_tries)
    except (AttributeError, TypeError):
        return False
