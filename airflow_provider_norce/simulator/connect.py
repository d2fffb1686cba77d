"""Norce Connect 4.0 imports as asynchronous jobs, with state that Query then shows.

Request: ``POST /commerce/connect/4.0/{Product|Customer|Supplier}/Import...`` (9 methods, :data:`METHODS`)
with the ``X-StormConnect-Header`` of that method's header class and a JSON array body. Header rules
(:mod:`.connect_rules`): ``AccountId`` integer required; ``FullFile`` required where the header class has it
(on-hand, SKU price, product, relation, competitor, supplier) and ignored elsewhere like any unknown
property; enum lists as codes or names (unknown -> 400 naming them). A missing main field mask is accepted,
as Norce does, and then no field but the keys is written: the job Succeeds and changes nothing (the trap of
issue 8). ``NorceSimulator(require_field_masks=True)`` answers 400 instead: a test aid, not Norce.
Header or body problems -> 400 ``{"Message": ...}``.

Answer 200 (flat, ``JobId`` a string)::

    {"StatusCode": "OK", "Description": "Job 1001 queued: 3 of 4 items passed validation.", "JobId": "1001",
     "ValidationSummary": {"NrOfItemsInTotal": 4, "NrOfValidationFailures": 1,
                           "Messages": ["Row 2: OnhandValue must be a number."]}}

Items are validated against ``connect.json item_schemas`` (required keys, nested ones too, types, enum codes
or names); invalid items are reported in ``ValidationSummary`` and skipped.

Job life (simulator clock, ``d`` = ``job_duration``): Queued(6) until 0.25 d, Validating(5) until 0.5 d,
Initialized(1) until d, then the end state:

* **4 Validation failed** when the import had items and every one failed validation;
* **3 Failed** when any valid item's key (``PartNo``, ``ManufacturerPartNo``, ``Code``, ``SupplierPartNo``,
  a variant's ``ManufacturerPartNo`` or a SKU's ``PartNo``) starts with ``"FAIL-"``: nothing of the job is
  applied (the simulator's deterministic failure rule for tests; not Norce);
* **2 Succeeded** otherwise: the job is applied to the catalog at that moment (:mod:`.connect_apply`), with
  Warning (2) and Error (3) log lines for parts skipped and records not imported.

``Job/Get?id=`` (:meth:`ConnectService.job_status`) and ``Job/GetLog?id=`` (:meth:`ConnectService.job_log`).
Jobs are settled lazily (no background thread): every API request first finishes the jobs whose time has
come, so a fake clock drives them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.simulator import connect_apply as apply
from airflow_provider_norce.simulator import connect_rules as rules
from airflow_provider_norce.simulator.clock import iso_z
from airflow_provider_norce.simulator.replies import Reply, json_reply, message_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_norce.simulator.clock import SimTime
    from airflow_provider_norce.simulator.connect_rules import Header
    from airflow_provider_norce.simulator.data import Catalog

PREFIX = "/commerce/connect/4.0/"
QUEUED, VALIDATING, INITIALIZED, SUCCEEDED, FAILED, VALIDATION_FAILED = 6, 5, 1, 2, 3, 4
INFO, WARNING, ERROR = 1, 2, 3
FAIL_PREFIX = "FAIL-"
HEADER = rules.HEADER
#: spellings of the insert counter in Job/Get: the docs say ``Insert``, the .NET JobDto ``Inserts``
INSERT_SPELLINGS = {"Insert": ("Insert",), "Inserts": ("Inserts",), "both": ("Insert", "Inserts")}

Item = dict[str, Any]


def _product_rules(item: Item, header: Header) -> list[str]:
    """``Code`` is required for several variants, when it is in the mask, or with FullFile (connect.json)."""
    variants = item.get("Variants") or []
    needs_code = len(variants) > 1 or "Code" in header.mask("ProductFieldsThatAreSet") or header.full_file
    if needs_code and not (isinstance(item.get("Code"), str) and item["Code"].strip()):
        return ["Code is required (several variants, Code in ProductFieldsThatAreSet, or FullFile)."]
    return []


@dataclass(frozen=True)
class ImportMethod:
    """One Connect import method: path, header class, item class and how a succeeded job is applied."""

    name: str
    header: rules.HeaderSpec
    schema: rules.Schema
    apply: Callable[[Catalog, apply.Rows, Header, apply.Applied], None]
    extra: Callable[[Item, Header], list[str]] | None = None


METHODS = {
    m.name.lower(): m
    for m in (
        ImportMethod("Product/ImportOnhands", rules.HEADERS["SkuOnhandHeader"], rules.SCHEMAS["Product/SkuOnhand"], apply.apply_onhands),
        ImportMethod("Product/ImportSkuPriceLists", rules.HEADERS["SkuPriceListHeader"], rules.SCHEMAS["Product/SkuPriceList"], apply.apply_sku_prices),
        ImportMethod("Product/ImportPriceLists", rules.HEADERS["PriceListHeader"], rules.SCHEMAS["Product/PriceList"], apply.apply_price_lists),
        ImportMethod("Product/ImportProducts", rules.HEADERS["ProductHeader"], rules.SCHEMAS["Product/Product"], apply.apply_products, _product_rules),
        ImportMethod("Product/ImportRelations", rules.HEADERS["RelationHeader"], rules.SCHEMAS["Product/Relation"], apply.apply_relations),
        ImportMethod("Product/ImportCompetitorSkus", rules.HEADERS["CompetitorSkuHeader"], rules.SCHEMAS["Product/CompetitorSku"], apply.apply_competitor_skus),
        ImportMethod("Customer/ImportCustomers", rules.HEADERS["CustomerHeader/Customers"], rules.SCHEMAS["Customer/Customer"], apply.apply_customers),
        ImportMethod("Customer/ImportCompanies", rules.HEADERS["CustomerHeader/Companies"], rules.SCHEMAS["Customer/Company"], apply.apply_companies),
        ImportMethod("Supplier/ImportProducts", rules.HEADERS["SupplierProductHeader"], rules.SCHEMAS["Supplier/SupplierProduct"], apply.apply_supplier_products),
    )
}  # fmt: skip


def _keys(item: Item) -> list[str]:
    """The identifying values of an item, nested ones included, for the ``FAIL-`` rule."""
    keys = [item.get(n) for n in ("PartNo", "ManufacturerPartNo", "Code", "SupplierPartNo")]
    for variant in item.get("Variants") or []:
        keys.append(variant.get("ManufacturerPartNo"))
        keys += [sku.get("PartNo") for sku in variant.get("Skus") or []]
    return [k for k in keys if isinstance(k, str)]


@dataclass
class Job:
    """An import job; times are simulator-clock seconds."""

    id: int
    method: ImportMethod
    header: Header
    created: float
    valid: list[tuple[int, Item]]
    total: int
    invalid: dict[int, Any]  # row -> the item, for items that failed validation
    failing_rows: list[tuple[int, str]]
    #: (simulator time, severity, ImportedRow text or None, message)
    log: list[tuple[float, int, str | None, str]] = field(default_factory=list)
    status: int = QUEUED  # the end state once finished
    finished: bool = False
    inserts: int = 0
    updates: int = 0
    fail: int = 0


class ConnectService:
    """Creates, advances and reports import jobs; applies succeeded ones to the catalog.

    ``require_field_masks``: answer 400 when a header lacks its main ``...FieldsThatAreSet`` (a test aid;
    Norce accepts it and writes no field). ``insert_spelling``: ``"Insert"`` (docs, default), ``"Inserts"``
    (.NET JobDto) or ``"both"`` in ``Job/Get``.
    """

    def __init__(
        self,
        catalog: Catalog,
        time: SimTime,
        job_duration: float = 1.0,
        first_job_id: int = 1001,
        *,
        require_field_masks: bool = False,
        insert_spelling: str = "Insert",
    ) -> None:
        if insert_spelling not in INSERT_SPELLINGS:
            raise ValueError(
                f"insert_spelling must be one of {sorted(INSERT_SPELLINGS)}, not {insert_spelling!r}"
            )
        self.catalog = catalog
        self.time = time
        self.job_duration = max(0.0, float(job_duration))
        self.require_field_masks = require_field_masks
        self.insert_keys = INSERT_SPELLINGS[insert_spelling]
        self._lock = threading.RLock()
        self._jobs: dict[int, Job] = {}
        self._pending: list[Job] = []
        self._next_id = first_job_id

    # -- imports --------------------------------------------------------------------------------------
    def post_import(self, method_path: str, header: str | None, body: bytes) -> tuple[Reply, bool]:
        """Answer an import POST; the flag says whether a job was created."""
        method = METHODS.get(method_path.lower())
        if method is None:
            known = ", ".join(m.name for m in METHODS.values())
            return message_error(404, f"No Connect method '{method_path}'; known: {known}."), False
        parsed = self._header(method, header)
        if isinstance(parsed, str):
            return message_error(400, f"{method.name}: {parsed}"), False
        try:
            items = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError) as err:
            return message_error(400, f"{method.name}: the request body is not valid JSON: {err}."), False
        if not isinstance(items, list):
            return message_error(
                400, f"{method.name}: the request body must be a JSON array of items."
            ), False
        valid: list[tuple[int, Item]] = []
        invalid: dict[int, Any] = {}
        messages: list[str] = []
        for row, item in enumerate(items, start=1):
            problems = rules.validate(method.schema, item)
            if not problems and method.extra is not None:
                problems = method.extra(item, parsed)
            if problems:
                invalid[row] = item
                messages += [f"Row {row}: {problem}" for problem in problems]
            else:
                valid.append((row, item))
        failing = [(row, key) for row, item in valid for key in _keys(item) if key.startswith(FAIL_PREFIX)]
        with self._lock:
            job = Job(self._next_id, method, parsed, self.time.now(), valid, len(items), invalid, failing)
            job.log.append((job.created + self.job_duration * 0.25, INFO, None, "Starting import."))
            self._next_id += 1
            self._jobs[job.id] = job
            self._pending.append(job)
        self.settle()
        description = f"Job {job.id} queued: {len(valid)} of {len(items)} items passed validation."
        summary = {
            "NrOfItemsInTotal": len(items),
            "NrOfValidationFailures": len(invalid),
            "Messages": messages,
        }
        payload = {
            "StatusCode": "OK",
            "Description": description,
            "JobId": str(job.id),
            "ValidationSummary": summary,
        }
        return json_reply(200, payload), True

    def _header(self, method: ImportMethod, raw: str | None) -> Header | str:
        if raw is None or not raw.strip():
            return (
                f'the {HEADER} header is missing; send a one-line JSON object such as {{"AccountId":1,...}}.'
            )
        try:
            value = json.loads(raw)
        except ValueError as err:
            return f"the {HEADER} header is not valid JSON ({err})."
        return rules.parse_header(method.header, value, self.require_field_masks)

    # -- progress -------------------------------------------------------------------------------------
    def settle(self) -> None:
        """Finish, in creation order, every job whose duration has elapsed."""
        now = self.time.now()
        with self._lock:
            while self._pending and self._pending[0].created + self.job_duration <= now:
                self._finish(self._pending.pop(0))

    def _finish(self, job: Job) -> None:
        done = job.created + self.job_duration
        stamp = iso_z(self.time.wall(done))
        lines: list[tuple[int, str | None, str]] = [
            (
                ERROR,
                apply._row_text(item),
                f"Row {row}: the item failed validation; the record was not imported.",
            )
            for row, item in job.invalid.items()
        ]
        job.fail = len(job.invalid)
        if job.total and not job.valid:
            job.status = VALIDATION_FAILED
            lines.append((ERROR, None, f"All {job.total} item(s) failed validation; nothing was imported."))
        elif job.failing_rows:
            job.status = FAILED
            for row, key in job.failing_rows:
                message = f"Row {row}: importing '{key}' failed (simulated error for '{FAIL_PREFIX}' keys)."
                lines.append((ERROR, None, message))
            job.fail += len({row for row, _ in job.failing_rows})
            lines.append((ERROR, None, "The job failed; no changes were applied."))
        else:
            applied = apply.Applied(stamp)
            with self.catalog.lock:
                job.method.apply(self.catalog, job.valid, job.header, applied)
            job.inserts, job.updates = applied.inserts, applied.updates
            job.fail += applied.failed
            lines += applied.log
            job.status = SUCCEEDED
        lines.append((INFO, None, "Import finished."))
        job.log += [(done, *line) for line in lines]
        job.finished = True

    def _status_at(self, job: Job, now: float) -> int:
        if job.finished:
            return job.status
        elapsed = now - job.created
        if elapsed < self.job_duration * 0.25:
            return QUEUED
        if elapsed < self.job_duration * 0.5:
            return VALIDATING
        return INITIALIZED

    # -- reports --------------------------------------------------------------------------------------
    def job_status(self, job_id: int) -> dict[str, Any] | None:
        """``Job/Get``: ``{"JobId": int, "StatusId": 1-6, "IsFinished": bool, "Start": dt|None, "Stop": dt|None,
        "LastUpdated": dt, "RunTime": "hh:mm:ss.fffffff"|None, "Totals": int, "Insert": int, "Updates": int,
        "Fail": int, "StorageName": str|None}`` (``Insert`` spelled per ``insert_spelling``); date-times have
        no zone designator, like the documented log timestamps (inference). None if the job is unknown."""
        self.settle()
        now = self.time.now()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            start_at = job.created + self.job_duration * 0.25
            stop_at = job.created + self.job_duration
            started = job.finished or now >= start_at
            if job.finished:
                last = stop_at
            else:
                last = max(
                    t for t in (job.created, start_at, job.created + self.job_duration * 0.5) if t <= now
                )
            answer: dict[str, Any] = {
                "JobId": job.id,
                "StatusId": self._status_at(job, now),
                "IsFinished": job.finished,
                "Start": self._stamp(start_at) if started else None,
                "Stop": self._stamp(stop_at) if job.finished else None,
                "LastUpdated": self._stamp(last),
                "RunTime": _timespan((stop_at if job.finished else now) - start_at) if started else None,
                "Totals": job.total,
            }
            answer.update(dict.fromkeys(self.insert_keys, job.inserts))
            answer.update(
                Updates=job.updates, Fail=job.fail if job.finished else 0, StorageName=job.header.storage_name
            )
            return answer

    def job_log(self, job_id: int) -> list[dict[str, Any]] | None:
        """``Job/GetLog``: ``[{"SeverityId": 1|2|3, "Message": str, "TimeStamp": "2023-07-31T16:24:37.967",
        "ImportedRow": the row's JSON text or null}]``, "Starting import." first and "Import finished." last
        once the job is finished; lines written so far while it runs. None if the job is unknown."""
        self.settle()
        now = self.time.now()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return [
                {"SeverityId": sev, "Message": msg, "TimeStamp": self._stamp(at), "ImportedRow": row}
                for at, sev, row, msg in job.log
                if at <= now or job.finished
            ]

    def _stamp(self, at: float) -> str:
        """A .NET DateTime as Norce writes it: ``2023-07-31T16:24:37.967``, no zone designator (UTC here)."""
        wall = self.time.wall(at)
        whole = int(wall // 1)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((wall - whole) * 1000):03d}"

    def jobs_created(self) -> int:
        """How many jobs exist."""
        with self._lock:
            return len(self._jobs)


def _timespan(seconds: float) -> str:
    """A .NET ``TimeSpan`` string, ``hh:mm:ss.fffffff``, as Newtonsoft writes ``RunTime`` (inference)."""
    seconds = max(0.0, seconds)
    ticks = round(seconds * 10_000_000)
    whole, fraction = divmod(ticks, 10_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:07d}"
