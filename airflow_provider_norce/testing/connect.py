"""Norce Connect 4.0 imports as asynchronous jobs, with state that Query then shows.

Request (``POST /commerce/connect/4.0/{Product|Customer}/Import...``):

* Header ``X-StormConnect-Header``: a one-line JSON object with ``AccountId`` (int) and ``FullFile`` (bool),
  both required; optional ``StorageName`` (str), ``SerializationType`` (0 = JSON; anything else is refused
  because the body is JSON), ``JobId``, ``SupplierId``, ``IgnoreSkuPriceListFieldsWhenEmpty`` and
  ``...FieldsThatAreSet`` (lists of ints). Problems -> 400 ``{"Message": ...}`` saying what to fix.
* Body: a JSON array of items, else 400.

Answer 200::

    {"StatusCode": "OK", "Description": "Job 1001 queued: 3 of 4 items passed validation.", "JobId": "1001",
     "ValidationSummary": {"NrOfItemsInTotal": 4, "NrOfValidationFailures": 1,
                           "Messages": ["Row 2: OnhandValue must be a number."]}}

Per-item validation (rows are 1-based): ImportProducts needs ``ManufacturerPartNo`` or ``PartNo`` (``Skus`` if
given: objects with ``PartNo``); ImportOnhands ``PartNo``, ``WarehouseCode``, numeric ``OnhandValue``;
ImportSkuPriceLists ``PartNo``, ``PriceListCode`` (prices numeric); ImportPriceLists ``Code``; ImportRelations
``PartNo``/``ManufacturerPartNo`` and ``RelatedPartNo``; ImportCompetitorSkus ``PartNo`` and ``CompetitorCode``;
ImportCustomers ``Code`` (``Email`` must contain ``@``); ImportCompanies ``Code``. Invalid items are skipped.

Job life (simulator clock, ``d`` = ``job_duration``): Queued(6) until 0.25 d, Validating(5) until 0.5 d,
Initialized(1) until d, then the end state. End state:

* **4 Validation failed** when the import had items and every one failed validation;
* **3 Failed** when any valid item's key (``PartNo``, ``ManufacturerPartNo``, a SKU's ``PartNo``, ``Code``)
  starts with ``"FAIL-"``: one Error log line (SeverityId 3) per such row, and *nothing* of the job is
  applied (the deterministic failure rule for tests);
* **2 Succeeded** otherwise: the items are applied to the catalog at that moment. A stock/price/competitor row
  for an unknown SKU, or a SKU price for an unknown price list, is skipped with a Warning (SeverityId 2) and
  counted in ``Fail``. ``FullFile: true`` then deactivates (``IsActive: false``) every row of the same kind
  that the import did not name: products (and their SKUs), stock rows, SKU prices, price lists, customers,
  companies. Only ``"DEFAULT"`` exists as a price list until ImportPriceLists adds more.

``Job/Get?id=`` and ``Job/GetLog?id=`` shapes are documented on :meth:`ConnectService.job_status` and
:meth:`ConnectService.job_log`. Jobs are settled lazily (no background thread): every API request first
finishes the jobs whose time has come, so a fake clock drives them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.testing.clock import iso_z
from airflow_provider_norce.testing.data import onhand_row
from airflow_provider_norce.testing.odata import parse_datetime
from airflow_provider_norce.testing.replies import Reply, json_reply, message_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from airflow_provider_norce.testing.clock import SimTime
    from airflow_provider_norce.testing.data import Catalog

PREFIX = "/commerce/connect/4.0/"
QUEUED, VALIDATING, INITIALIZED, SUCCEEDED, FAILED, VALIDATION_FAILED = 6, 5, 1, 2, 3, 4
INFO, WARNING, ERROR = 1, 2, 3
FAIL_PREFIX = "FAIL-"
HEADER = "X-StormConnect-Header"

Item = dict[str, Any]
#: what applying a job gives: inserts, updates and log lines (severity, imported row, message)
Outcome = tuple[int, int, list[tuple[int, int | None, str]]]


# -- validation helpers --------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(item: Item, name: str) -> bool:
    value = item.get(name)
    return isinstance(value, str) and value.strip() != ""


def _check_optional(item: Item, numbers: tuple[str, ...] = (), texts: tuple[str, ...] = ()) -> list[str]:
    problems = [
        f"{n} must be a number." for n in numbers if item.get(n) is not None and not _is_number(item[n])
    ]
    problems += [
        f"{n} must be a string." for n in texts if item.get(n) is not None and not isinstance(item[n], str)
    ]
    if item.get("IsActive") is not None and not isinstance(item["IsActive"], bool):
        problems.append("IsActive must be true or false.")
    return problems


def _validate_products(item: Item) -> list[str]:
    problems = (
        []
        if _text(item, "ManufacturerPartNo") or _text(item, "PartNo")
        else ["ManufacturerPartNo or PartNo is required."]
    )
    skus = item.get("Skus")
    if skus is not None and not (
        isinstance(skus, list) and all(isinstance(s, dict) and _text(s, "PartNo") for s in skus)
    ):
        problems.append("Skus must be a list of objects that each have a PartNo.")
    return problems + _check_optional(item, texts=("Name",))


def _validate_onhands(item: Item) -> list[str]:
    problems = [f"{n} is required." for n in ("PartNo", "WarehouseCode") if not _text(item, n)]
    if not _is_number(item.get("OnhandValue")):
        problems.append("OnhandValue is required and must be a number.")
    problems += _check_optional(item, ("IncomingValue", "LeadTimeDayCount"), ("LocationCode",))
    date = item.get("NextDeliveryDate")
    if date is not None:
        try:
            parse_datetime(str(date))
        except ValueError:
            problems.append("NextDeliveryDate must be an ISO-8601 date.")
    return problems


def _validate_sku_prices(item: Item) -> list[str]:
    problems = [f"{n} is required." for n in ("PartNo", "PriceListCode") if not _text(item, n)]
    problems += _check_optional(item, ("PriceSale", "PriceRecommended", "PriceCost"), ("CurrencyCode",))
    quantity = item.get("QuantityBreak")
    if quantity is not None and not (
        isinstance(quantity, int) and not isinstance(quantity, bool) and quantity >= 1
    ):
        problems.append("QuantityBreak must be an integer of at least 1.")
    return problems


def _validate_price_lists(item: Item) -> list[str]:
    return (["Code is required."] if not _text(item, "Code") else []) + _check_optional(
        item, texts=("Name", "CurrencyCode")
    )


def _validate_relations(item: Item) -> list[str]:
    problems = (
        []
        if _text(item, "PartNo") or _text(item, "ManufacturerPartNo")
        else ["PartNo or ManufacturerPartNo is required."]
    )
    return problems + ([] if _text(item, "RelatedPartNo") else ["RelatedPartNo is required."])


def _validate_competitor_skus(item: Item) -> list[str]:
    problems = [f"{n} is required." for n in ("PartNo", "CompetitorCode") if not _text(item, n)]
    return problems + _check_optional(item, ("Price",), ("CompetitorPartNo",))


def _validate_customers(item: Item) -> list[str]:
    problems = ["Code is required."] if not _text(item, "Code") else []
    email = item.get("Email")
    if email is not None and not (isinstance(email, str) and "@" in email):
        problems.append("Email is not an e-mail address.")
    return problems + _check_optional(item, texts=("FirstName", "LastName"))


def _validate_companies(item: Item) -> list[str]:
    return (["Code is required."] if not _text(item, "Code") else []) + _check_optional(item, texts=("Name",))


def _keys(item: Item) -> list[str]:
    """The identifying values of an item, for the ``FAIL-`` rule."""
    keys = [item.get(n) for n in ("PartNo", "ManufacturerPartNo", "Code")]
    keys += [s.get("PartNo") for s in item.get("Skus") or [] if isinstance(s, dict)]
    return [k for k in keys if isinstance(k, str)]


# -- application (caller holds catalog.lock) -------------------------------------------------------------
class _Applied:
    """What applying one job did: inserts, updates, skipped rows, and the keys it named (for FullFile)."""

    def __init__(self) -> None:
        self.inserts = self.updates = 0
        self.named: set[Any] = set()
        self.log: list[tuple[int, int | None, str]] = []

    def existing(
        self, table: dict[Any, dict[str, Any]], key: Any, named: Any = None
    ) -> dict[str, Any] | None:
        """The record under ``key`` (an update) or None (an insert: the caller creates it); names ``named``
        (default ``key``) so that FullFile keeps it."""
        self.named.add(key if named is None else named)
        record = table.get(key)
        if record is None:
            self.inserts += 1
        else:
            self.updates += 1
        return record

    def skip(self, row: int, message: str) -> None:
        self.log.append((WARNING, row, f"Row {row}: {message}; row skipped."))

    def deactivate_unnamed(
        self, records: Iterable[tuple[Any, dict[str, Any]]], stamp: str
    ) -> list[dict[str, Any]]:
        """FullFile: deactivate every active record whose key the import did not name; return those changed.

        A record that was already inactive keeps its ``Updated``: nothing about it changed."""
        changed = [record for key, record in records if key not in self.named and record["IsActive"]]
        for record in changed:
            record.update(IsActive=False, Updated=stamp)
        return changed

    def outcome(self) -> Outcome:
        return self.inserts, self.updates, self.log


def _nested(catalog: Catalog, name: str) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every record of each SKU's ``name`` table (``OnHand``, ``PriceLists``), keyed ``(PartNo, *key)``."""
    for part_no, sku in catalog.skus.items():
        for key, record in sku[name].items():
            yield (part_no, *key), record


def _apply_products(catalog: Catalog, rows: list[tuple[int, Item]], full: bool, stamp: str) -> Outcome:
    applied = _Applied()
    for _row, item in rows:
        mpn = item.get("ManufacturerPartNo") or item["PartNo"]
        product = applied.existing(catalog.products, mpn)
        if product is None:
            product = catalog.add_product(mpn, item.get("Name") or mpn, stamp)
        product.update(IsActive=item.get("IsActive", True), Updated=stamp)
        if item.get("Name"):
            product["Name"] = item["Name"]
        skus = item.get("Skus") or ([{"PartNo": item["PartNo"]}] if item.get("PartNo") else [])
        for sku_item in skus:
            sku = catalog.skus.get(sku_item["PartNo"])
            if sku is None:
                sku = catalog.add_sku(
                    sku_item["PartNo"], product, sku_item.get("Name") or product["Name"], stamp
                )
            sku.update(ProductId=product["Id"], ManufacturerPartNo=mpn, Updated=stamp)
            sku["IsActive"] = sku_item.get("IsActive", item.get("IsActive", True))
            if sku_item.get("Name"):
                sku["Name"] = sku_item["Name"]
    if full:
        for product in applied.deactivate_unnamed(catalog.products.items(), stamp):
            for sku in catalog.skus.values():
                if sku["ProductId"] == product["Id"]:
                    sku.update(IsActive=False, Updated=stamp)
    return applied.outcome()


def _apply_onhands(catalog: Catalog, rows: list[tuple[int, Item]], full: bool, stamp: str) -> Outcome:
    applied = _Applied()
    for row, item in rows:
        sku = catalog.skus.get(item["PartNo"])
        if sku is None:
            applied.skip(row, f"SKU '{item['PartNo']}' does not exist")
            continue
        key = (item["WarehouseCode"], item.get("LocationCode") or "")
        fields: dict[str, Any] = {
            n: item[n] for n in ("IncomingValue", "LeadTimeDayCount", "NextDeliveryDate") if n in item
        }
        fields["IsActive"] = item.get("IsActive", True)
        record = onhand_row(key[0], key[1], float(item["OnhandValue"]), stamp, **fields)
        old = applied.existing(sku["OnHand"], key, (item["PartNo"], *key))
        sku["OnHand"][key] = record if old is None else {**old, **record}
        sku["Updated"] = stamp
    if full:
        applied.deactivate_unnamed(_nested(catalog, "OnHand"), stamp)
    return applied.outcome()


def _apply_sku_prices(catalog: Catalog, rows: list[tuple[int, Item]], full: bool, stamp: str) -> Outcome:
    applied = _Applied()
    for row, item in rows:
        sku = catalog.skus.get(item["PartNo"])
        code = item["PriceListCode"]
        if sku is None:
            applied.skip(row, f"SKU '{item['PartNo']}' does not exist")
            continue
        if code not in catalog.price_lists:
            applied.skip(row, f"price list '{code}' does not exist")
            continue
        key = (code, item.get("QuantityBreak") or 1)
        record = applied.existing(sku["PriceLists"], key, (item["PartNo"], *key))
        if record is None:
            record = sku["PriceLists"][key] = {
                "PriceListCode": code,
                "QuantityBreak": key[1],
                "PriceSale": None,
                "PriceRecommended": None,
                "CurrencyCode": catalog.price_lists[code].get("CurrencyCode"),
            }
        for name in ("PriceSale", "PriceRecommended", "CurrencyCode"):
            if item.get(name) is not None:
                record[name] = float(item[name]) if name != "CurrencyCode" else item[name]
        record.update(IsActive=item.get("IsActive", True), Updated=stamp)
        sku["Updated"] = stamp
    if full:
        applied.deactivate_unnamed(_nested(catalog, "PriceLists"), stamp)
    return applied.outcome()


def _upsert_by_code(
    table: dict[str, dict[str, Any]],
    create: Callable[[str], dict[str, Any]],
    rows: list[tuple[int, Item]],
    full: bool,
    stamp: str,
    fields: tuple[str, ...],
) -> Outcome:
    applied = _Applied()
    for _row, item in rows:
        record = applied.existing(table, item["Code"])
        if record is None:
            record = create(item["Code"])
        record.update({n: item[n] for n in fields if n in item})
        record.update(IsActive=item.get("IsActive", True), Updated=stamp)
    if full:
        applied.deactivate_unnamed(table.items(), stamp)
    return applied.outcome()


def _apply_price_lists(catalog: Catalog, rows: list[tuple[int, Item]], full: bool, stamp: str) -> Outcome:
    return _upsert_by_code(
        catalog.price_lists,
        lambda code: catalog.add_price_list(code, None, None, stamp),
        rows,
        full,
        stamp,
        ("Name", "CurrencyCode"),
    )


def _apply_customers(catalog: Catalog, rows: list[tuple[int, Item]], full: bool, stamp: str) -> Outcome:
    return _upsert_by_code(
        catalog.customers,
        lambda code: catalog.add_customer(code, stamp),
        rows,
        full,
        stamp,
        ("Email", "FirstName", "LastName"),
    )


def _apply_companies(catalog: Catalog, rows: list[tuple[int, Item]], full: bool, stamp: str) -> Outcome:
    return _upsert_by_code(
        catalog.companies, lambda code: catalog.add_company(code, stamp), rows, full, stamp, ("Name",)
    )


def _apply_relations(catalog: Catalog, rows: list[tuple[int, Item]], full: bool, stamp: str) -> Outcome:
    applied = _Applied()
    for _row, item in rows:
        key = (
            item.get("PartNo") or item["ManufacturerPartNo"],
            item["RelatedPartNo"],
            item.get("RelationTypeCode", ""),
        )
        applied.existing(catalog.relations, key)
        catalog.relations[key] = {**item, "IsActive": item.get("IsActive", True), "Updated": stamp}
    if full:
        applied.deactivate_unnamed(catalog.relations.items(), stamp)
    return applied.outcome()


def _apply_competitor_skus(catalog: Catalog, rows: list[tuple[int, Item]], full: bool, stamp: str) -> Outcome:
    applied = _Applied()
    for row, item in rows:
        if item["PartNo"] not in catalog.skus:
            applied.skip(row, f"SKU '{item['PartNo']}' does not exist")
            continue
        key = (item["PartNo"], item["CompetitorCode"])
        applied.existing(catalog.competitor_skus, key)
        catalog.competitor_skus[key] = {**item, "IsActive": item.get("IsActive", True), "Updated": stamp}
    if full:
        applied.deactivate_unnamed(catalog.competitor_skus.items(), stamp)
    return applied.outcome()


@dataclass(frozen=True)
class ImportMethod:
    """One Connect import method: its name, item validation and how a successful job is applied."""

    name: str
    validate: Callable[[Item], list[str]]
    apply: Callable[[Catalog, list[tuple[int, Item]], bool, str], Outcome]


METHODS = {
    m.name.lower(): m
    for m in (
        ImportMethod("Product/ImportProducts", _validate_products, _apply_products),
        ImportMethod("Product/ImportOnhands", _validate_onhands, _apply_onhands),
        ImportMethod("Product/ImportSkuPriceLists", _validate_sku_prices, _apply_sku_prices),
        ImportMethod("Product/ImportPriceLists", _validate_price_lists, _apply_price_lists),
        ImportMethod("Product/ImportRelations", _validate_relations, _apply_relations),
        ImportMethod("Product/ImportCompetitorSkus", _validate_competitor_skus, _apply_competitor_skus),
        ImportMethod("Customer/ImportCustomers", _validate_customers, _apply_customers),
        ImportMethod("Customer/ImportCompanies", _validate_companies, _apply_companies),
    )
}


@dataclass
class Job:
    """An import job; times are simulator-clock seconds."""

    id: int
    method: ImportMethod
    created: float
    full_file: bool
    storage_name: str | None
    valid: list[tuple[int, Item]]
    total: int
    validation_failures: list[tuple[int, str]]
    failing_rows: list[tuple[int, str]]
    log: list[tuple[float, int, int | None, str]] = field(default_factory=list)
    status: int = QUEUED  # the end state once finished
    finished: bool = False
    inserts: int = 0
    updates: int = 0
    fail: int = 0


class ConnectService:
    """Creates, advances and reports import jobs; applies successful ones to the catalog."""

    def __init__(
        self, catalog: Catalog, time: SimTime, job_duration: float = 1.0, first_job_id: int = 1001
    ) -> None:
        self.catalog = catalog
        self.time = time
        self.job_duration = max(0.0, float(job_duration))
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
        options = _parse_header(header)
        if isinstance(options, str):
            return message_error(400, options), False
        try:
            items = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError) as err:
            return message_error(400, f"The request body is not valid JSON: {err}."), False
        if not isinstance(items, list):
            return message_error(400, "The request body must be a JSON array of items."), False
        valid: list[tuple[int, Item]] = []
        failures: list[tuple[int, str]] = []
        for row, item in enumerate(items, start=1):
            problems = method.validate(item) if isinstance(item, dict) else ["the item is not a JSON object."]
            if problems:
                failures.extend((row, f"Row {row}: {problem}") for problem in problems)
            else:
                valid.append((row, item))
        failing = [(row, key) for row, item in valid for key in _keys(item) if key.startswith(FAIL_PREFIX)]
        failed_rows = {row for row, _ in failures}
        with self._lock:
            job = Job(
                id=self._next_id,
                method=method,
                created=self.time.now(),
                full_file=options["FullFile"],
                storage_name=options.get("StorageName"),
                valid=valid,
                total=len(items),
                validation_failures=failures,
                failing_rows=failing,
            )
            self._next_id += 1
            self._jobs[job.id] = job
            self._pending.append(job)
            job.log.append(
                (job.created, INFO, None, f"Job {job.id} queued: {method.name}, {len(items)} item(s).")
            )
            validated_at = job.created + self.job_duration * 0.5
            job.log += [(validated_at, WARNING, row, message) for row, message in failures]
        self.settle()
        summary = {
            "NrOfItemsInTotal": len(items),
            "NrOfValidationFailures": len(failed_rows),
            "Messages": [message for _, message in failures],
        }
        description = f"Job {job.id} queued: {len(valid)} of {len(items)} items passed validation."
        reply = json_reply(
            200,
            {
                "StatusCode": "OK",
                "Description": description,
                "JobId": str(job.id),
                "ValidationSummary": summary,
            },
        )
        return reply, True

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
        job.fail = len({row for row, _ in job.validation_failures})
        lines: list[tuple[int, int | None, str]] = []
        if job.total and not job.valid:
            job.status = VALIDATION_FAILED
            lines.append((ERROR, None, f"All {job.total} item(s) failed validation; nothing was imported."))
        elif job.failing_rows:
            job.status = FAILED
            for row, key in job.failing_rows:
                lines.append(
                    (
                        ERROR,
                        row,
                        f"Row {row}: importing '{key}' failed (simulated error for '{FAIL_PREFIX}' keys).",
                    )
                )
            job.fail += len({row for row, _ in job.failing_rows})
            lines.append((ERROR, None, "The job failed; no changes were applied."))
        else:
            with self.catalog.lock:
                job.inserts, job.updates, applied = job.method.apply(
                    self.catalog, job.valid, job.full_file, stamp
                )
            lines += applied
            job.fail += sum(1 for severity, _, _ in applied if severity >= WARNING)
            job.status = SUCCEEDED
            lines.append(
                (INFO, None, f"Job finished: inserted {job.inserts}, updated {job.updates}, failed {job.fail} "
                 f"of {job.total} item(s)" + (" (full file: items not named were deactivated)." if job.full_file else "."))
            )  # fmt: skip
        job.log += [(done, severity, row, message) for severity, row, message in lines]
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
        """``Job/Get``: ``{"JobId": int, "StatusId": 1-6, "IsFinished": bool, "Start": iso|None,
        "Stop": iso|None, "LastUpdated": iso, "RunTime": "hh:mm:ss.fffffff"|None, "Insert"/"Inserts": int,
        "Updates": int, "Fail": int, "Totals": int, "StorageName": str|None}``; None if unknown."""
        self.settle()
        now = self.time.now()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            status = self._status_at(job, now)
            start_at = job.created + self.job_duration * 0.25
            stop_at = job.created + self.job_duration
            started = job.finished or now >= start_at
            if job.finished:
                last = stop_at
            else:
                stages = (job.created, start_at, job.created + self.job_duration * 0.5)
                last = max(t for t in stages if t <= now)
            return {
                "JobId": job.id,
                "StatusId": status,
                "IsFinished": job.finished,
                "Start": iso_z(self.time.wall(start_at), millis=True) if started else None,
                "Stop": iso_z(self.time.wall(stop_at), millis=True) if job.finished else None,
                "LastUpdated": iso_z(self.time.wall(last), millis=True),
                "RunTime": _timespan((stop_at if job.finished else now) - start_at) if started else None,
                "Insert": job.inserts,
                "Inserts": job.inserts,
                "Updates": job.updates,
                "Fail": job.fail if job.finished else 0,
                "Totals": job.total,
                "StorageName": job.storage_name,
            }

    def job_log(self, job_id: int) -> list[dict[str, Any]] | None:
        """``Job/GetLog``: ``[{"SeverityId": 1|2|3, "Message": str, "TimeStamp": iso, "ImportedRow": int|None}]``
        for the lines written so far; None if the job is unknown."""
        self.settle()
        now = self.time.now()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return [
                {
                    "SeverityId": sev,
                    "Message": msg,
                    "TimeStamp": iso_z(self.time.wall(at), millis=True),
                    "ImportedRow": row,
                }
                for at, sev, row, msg in job.log
                if at <= now or job.finished
            ]

    def jobs_created(self) -> int:
        """How many jobs exist."""
        with self._lock:
            return len(self._jobs)


def _timespan(seconds: float) -> str:
    """A .NET ``TimeSpan`` string, ``hh:mm:ss.fffffff``, as Norce serialises ``RunTime``."""
    seconds = max(0.0, seconds)
    ticks = round(seconds * 10_000_000)
    whole, fraction = divmod(ticks, 10_000_000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:07d}"


def _parse_header(raw: str | None) -> dict[str, Any] | str:
    """The parsed ``X-StormConnect-Header``, or a message saying what is wrong with it."""
    example = 'such as {"AccountId":1,"FullFile":false}'
    if raw is None or not raw.strip():
        return f"The {HEADER} header is missing; send a one-line JSON object {example}."
    try:
        value = json.loads(raw)
    except ValueError as err:
        return f"The {HEADER} header is not valid JSON ({err}); send a one-line JSON object {example}."
    if not isinstance(value, dict):
        return f"The {HEADER} header must be a JSON object {example}."
    missing = [name for name in ("AccountId", "FullFile") if name not in value]
    if missing:
        return f"The {HEADER} header lacks {' and '.join(missing)}; both are required, {example}."
    if not isinstance(value["AccountId"], int) or isinstance(value["AccountId"], bool):
        return f"AccountId in the {HEADER} header must be an integer."
    if not isinstance(value["FullFile"], bool):
        return f"FullFile in the {HEADER} header must be true or false."
    if value.get("SerializationType", 0) != 0:
        return f"SerializationType {value['SerializationType']!r} does not match the JSON body; use 0 (JSON)."
    if value.get("StorageName") is not None and not isinstance(value["StorageName"], str):
        return f"StorageName in the {HEADER} header must be a string."
    for name, fields in value.items():
        if name.endswith("FieldsThatAreSet") and not (
            isinstance(fields, list) and all(isinstance(f, int) and not isinstance(f, bool) for f in fields)
        ):
            return f"{name} in the {HEADER} header must be a list of integers."
    return value
