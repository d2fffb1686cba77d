"""Check Connect import items against Norce's item schema before anything is posted.

Why: Norce answers an import at once with a job id and validates later, so a wrong item shows up as a
failed (or silently partial) job long after the task "succeeded". Checking here names the item, the field
path and the fix, and keeps invalid items from ever reaching Norce.

What is checked, per :mod:`airflow_provider_norce.connect.contracts` (from ``connect.json item_schemas``):

* required keys (``required_per_docs`` true, or .NET ``IsRequired``), nested ones included
  (``Variants[0].Skus[0].PartNo``); ``null`` where the .NET type is not nullable;
* types: string (and its documented maximum length), integer (int32), number, boolean, date-time string,
  uuid string, object, array, enum (a code or a name, any case);
* the conditional rules of the contracts' notes, in :data:`RULES`;
* unknown keys are not errors (Norce ignores them) but draw one warning each.

The same pass counts, for every mask of the method, how many objects it governs and how many carry each
key (:class:`~airflow_provider_norce.connect.header.MaskUsage`), so the header's masks can be derived
without keeping the items: memory stays bounded for streamed files.

Speed: the check runs over every item before the first POST, so its cost per item bounds an import. Items
of one file nearly all have the same keys, so the checker compiles, per object shape (schema, place in the
item, key tuple), a :class:`_Shape`: the fields to check with a predicate each (an exact-type test, then
only the format checks: length, date-time, enum, int32 range), the nested objects' shapes, the unknown
keys and their warnings. An item that fits is accepted that way and its mask usage is tallied per shape
(added up at the end). An item the fast path does not accept is walked again by the original, explaining
walk (``_check_object``), which alone writes problems: the fast path decides nothing it cannot prove, so
errors, warnings and counts are the same (``tests/connect/test_item_check_parity.py``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.connect.contracts import contracts
from airflow_provider_norce.connect.header import MaskUsage

if TYPE_CHECKING:
    from airflow_provider_norce.connect.contracts import ImportContract, ItemField, ItemSchema
    from airflow_provider_norce.connect.items import ItemSource

#: Errors (and skipped items) shown in one message; the total is always given.
MAX_SHOWN = 20
#: Distinct unknown keys remembered (a file of random keys must not grow memory).
MAX_UNKNOWN_KEYS = 50
INT32 = (-(2**31), 2**31 - 1)
#: Key tuples compiled per object shape; past this (a file of ever-new keys) objects take the explaining
#: walk, so that memory stays bounded whatever the file holds.
MAX_SHAPES = 256
#: Nor are key tuples of more characters than this compiled (what is cached must stay small).
MAX_SHAPE_KEY_CHARS = 4096
#: Distinct accepted enum spellings ("active", "Active "...) remembered per field, and the longest text
#: a cache (enum spellings, date-times, UUIDs) remembers: longer values are checked every time.
MAX_ENUM_SPELLINGS = 256
MAX_CACHED_CHARS = 64
#: Key spellings of the docs that .NET (what Norce reads) spells otherwise
#: (``connect.json disagreements`` "Variant dangerous-goods key").
KEY_HINTS = {"IsDagerousGoods": "IsDangerousGoods"}
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,7})?)?)?(Z|[+-]\d{2}:?\d{2})?"
)


def _text(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key)
    if key == "Id" and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and value.strip() != ""


@dataclass(frozen=True)
class RuleContext:
    """What a conditional rule may need from the header: FullFile and the masks the user gave (codes)."""

    full_file: bool = False
    given_masks: dict[str, list[int]] = field(default_factory=dict)


#: A conditional rule: the problem of one object (its schema's fields are checked already), or ``None``.
Rule = Callable[[dict[str, Any], RuleContext], str | None]


def _one_of(*keys: str) -> Rule:
    def rule(obj: dict[str, Any], context: RuleContext) -> str | None:
        if any(_text(obj, key) for key in keys):
            return None
        return f"needs one of {', '.join(keys)} for Norce to find or create it (none is set)"

    return rule


def _elements(value: Any) -> Iterator[Any]:
    """The elements of a value given for an array; none when it cannot be iterated (an integer, a
    datetime: its field's own check has said so, and a rule must not crash on it)."""
    try:
        return iter(value or ())
    except TypeError:
        return iter(())


def _product_identified(obj: dict[str, Any], context: RuleContext) -> str | None:
    variants = [v for v in _elements(obj.get("Variants")) if isinstance(v, dict)]
    skus = [s for v in variants for s in _elements(v.get("Skus")) if isinstance(s, dict)]
    if any(_text(s, "PartNo") for s in skus):
        return None
    if _text(obj, "ManufacturerCode") and any(_text(v, "ManufacturerPartNo") for v in variants):
        return None
    return (
        "needs a SKU PartNo (Variants[].Skus[].PartNo), or ManufacturerCode with a "
        "Variants[].ManufacturerPartNo, for Norce to find or create the product"
    )


def _product_code(obj: dict[str, Any], context: RuleContext) -> str | None:
    if _text(obj, "Code"):
        return None
    variants = obj.get("Variants")
    if isinstance(variants, list) and len(variants) > 1:
        return f"has {len(variants)} Variants, so it needs Code (the variant-cluster key)"
    if context.full_file:
        return "needs Code (the variant-cluster key) in a FullFile import"
    if 3 in context.given_masks.get("ProductFieldsThatAreSet", ()):
        return "needs Code: the given ProductFieldsThatAreSet lists Code (3)"
    return None


def _one_sku_per_variant(obj: dict[str, Any], context: RuleContext) -> str | None:
    skus = obj.get("Skus")
    if isinstance(skus, list) and len(skus) > 1:
        return f"holds {len(skus)} Skus; Norce takes one SKU per variant (give each SKU its own variant)"
    return None


def _non_empty(key: str) -> Rule:
    def rule(obj: dict[str, Any], context: RuleContext) -> str | None:
        value = obj.get(key)
        if isinstance(value, list) and value:
            return None
        return f"needs at least one {key} entry"

    return rule


#: Conditional rules from the contracts' notes, per item schema, each with its source in connect.json.
RULES: dict[str, tuple[Rule, ...]] = {
    # item_schemas.Customer/Customer docs_note: "update matches on Code, Id or EmailAddress"
    "Customer/Customer": (_one_of("Id", "Code", "EmailAddress"),),
    # item_schemas.Customer/Company docs_note: "update matches on Code, Id or OrganizationNo"
    "Customer/Company": (_one_of("Id", "Code", "OrganizationNo"),),
    # item_schemas.Customer/Customer Companies note: "identifiers tried in order Id, Code, OrganizationNo"
    "Customer/CompanyIdentifier": (_one_of("Id", "Code", "OrganizationNo"),),
    # item_schemas.Product/Product docs_note (create / update needs) and its Code note: "required when a
    # product has several variants or when Code is in ProductFieldsThatAreSet / FullFile=true"
    "Product/Product": (_product_identified, _product_code),
    # endpoints[Product/ImportProducts].notes: "Variant.Skus[] (one SKU per variant)"
    "Product/Variant": (_one_sku_per_variant,),
    # item_schemas.Supplier/SupplierProduct OnHand / PriceList notes: "at least one entry required"
    "Supplier/SupplierProduct": (_non_empty("OnHand"), _non_empty("PriceList")),
}


@dataclass
class ItemScan:
    """What one pass over the items found: counts, errors, warnings and the mask usage."""

    method: str
    source_name: str
    total: int = 0
    invalid: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    usage: dict[str, MaskUsage] = field(default_factory=dict)
    unknown: Counter[str] = field(default_factory=Counter)

    @property
    def valid(self) -> int:
        return self.total - len(self.invalid)

    def warnings(self) -> list[str]:
        return [
            f"{self.source_name}: {count} item(s) carry {where}, which Norce's {self.method} contract "
            "does not know; Norce ignores it."
            for where, count in sorted(self.unknown.items())
        ]

    def error_text(
        self,
        task_id: str,
        fix: str = "Fix the items, or pass skip_invalid_items=True to leave invalid items out "
        "(they are never sent to Norce).",
    ) -> str:
        """The task's error: how many items do not fit, the first problems, then ``fix``."""
        shown = "\n  ".join(self.errors)
        more = (
            f"\n  ... and {self.error_count - len(self.errors)} more"
            if self.error_count > len(self.errors)
            else ""
        )
        return (
            f"Task {task_id!r}: {len(self.invalid)} of {self.total} item(s) of {self.source_name} do not fit "
            f"Norce's {self.method} contract ({self.error_count} problem(s)); nothing was posted:\n  "
            f"{shown}{more}\n{fix}"
        )


@dataclass
class _ItemWalk:
    """What checking one item collects: its problems, the objects under each mask path and the keys they
    carry, and (shared by the whole scan) the unknown keys seen."""

    unknown: Counter[str]
    problems: list[str] = field(default_factory=list)
    objects: Counter[str] = field(default_factory=Counter)
    keys: dict[str, Counter[str]] = field(default_factory=dict)


#: Accepts one value of a field exactly when the explaining walk finds no problem with the value itself
#: (its nested objects are checked by their own shapes).
Accepts = Callable[[Any], bool]


@dataclass(eq=False)
class _Shape:
    """How to accept an object of one schema, at one place, with one key tuple (see the module's Speed).

    ``fast`` is false when the key tuple alone makes the object invalid (a required key is missing):
    such objects always take the explaining walk.
    """

    node: _Node
    fast: bool
    #: (key, predicate) of the present schema fields that are not objects or arrays of objects
    scalars: tuple[tuple[str, Accepts], ...] = ()
    #: (key, the nested node, an array of objects?, null allowed?), in schema order as the walk goes
    nested: tuple[tuple[str, _Node, bool, bool], ...] = ()
    #: keys the schema does not know (their values must still be JSON) and their warning entries
    unknown: tuple[str, ...] = ()
    entries: tuple[str, ...] = ()
    #: the present schema fields, in the object's key order: what the mask of this place counts
    known: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()


class _Node:
    """One item schema at one place in the item (``Variants[].Skus[]``): its compiled key tuples."""

    def __init__(self, checker: ItemChecker, schema: ItemSchema, shape: str) -> None:
        self.checker = checker
        self.schema = schema
        self.shape = shape
        self.counted = shape in checker.mask_paths
        self.shapes: dict[tuple[Any, ...], _Shape] = {}
        self.children: dict[str, _Node] = {}

    def compile(self, keys: tuple[Any, ...]) -> _Shape | None:
        """The shape of objects with exactly ``keys``; ``None`` (the explaining walk decides) once
        :data:`MAX_SHAPES` are compiled, or for keys that are not text or too long to keep."""
        if (
            len(self.shapes) >= MAX_SHAPES
            or not all(type(key) is str for key in keys)
            or sum(map(len, keys)) > MAX_SHAPE_KEY_CHARS
        ):
            return None
        shape = self._compile(keys)
        self.shapes[keys] = shape
        return shape

    def _compile(self, keys: tuple[Any, ...]) -> _Shape:
        schema, checker = self.schema, self.checker
        present = set(keys)
        if any(spec.required and spec.name not in present for spec in schema.fields):
            return _Shape(self, fast=False)
        scalars: list[tuple[str, Accepts]] = []
        nested: list[tuple[str, _Node, bool, bool]] = []
        for spec in schema.fields:
            if spec.name not in present:
                continue
            if spec.kind in ("object", "array"):
                nested.append((spec.name, self.child(spec), spec.kind == "array", _null_ok(spec)))
            else:
                scalars.append((spec.name, checker._accepts(spec)))
        unknown = tuple(key for key in keys if schema.field(key) is None)
        prefix = f"{self.shape}." if self.shape else ""
        return _Shape(
            self,
            fast=True,
            scalars=tuple(scalars),
            nested=tuple(nested),
            unknown=unknown,
            entries=tuple(f"unknown key {prefix + key!r}{_key_hint(key, schema)}" for key in unknown),
            known=tuple(key for key in keys if key not in unknown),
            rules=RULES.get(schema.key, ()),
        )

    def child(self, spec: ItemField) -> _Node:
        node = self.children.get(spec.name)
        if node is None:
            shape = f"{self.shape}.{spec.name}" if self.shape else spec.name
            shape += "[]" if spec.kind == "array" else ""
            node = _Node(self.checker, self.checker.model.schema(str(spec.ref)), shape)
            self.children[spec.name] = node
        return node


def _null_ok(spec: ItemField) -> bool:
    """Whether ``null`` passes the explaining walk's null check (it is not checked further)."""
    return not spec.required and spec.nullable


class ItemChecker:
    """Checks items of one import method and counts what the masks govern."""

    def __init__(self, contract: ImportContract, context: RuleContext | None = None) -> None:
        self.contract = contract
        self.context = context or RuleContext()
        self.model = contracts()
        #: schema path ("Variants[].Skus[]") -> the mask header fields that govern objects there
        self.mask_paths: dict[str, list[str]] = {}
        for binding in contract.masks:
            for path in binding.paths:
                self.mask_paths.setdefault(path, []).append(binding.header_field)
        self._root = _Node(self, contract.item_schema, "")

    def scan(self, source: ItemSource) -> ItemScan:
        """Read every item of ``source`` once: validate it and count mask usage (bounded memory)."""
        scan = ItemScan(self.contract.method, source.name)
        objects: Counter[str] = Counter()
        keys: dict[str, Counter[str]] = {}
        #: shapes of accepted objects -> how many; added to objects/keys at the end (first-use order)
        tally: dict[_Shape, int] = {}
        unknown = scan.unknown
        fits, root = self._fits, self._root
        numbered = getattr(source, "numbered", None)
        lines = numbered() if callable(numbered) else ((None, item) for item in source)
        number = 0
        for number, (line, item) in enumerate(lines, start=1):
            visited: list[_Shape] = []
            if fits(item, root, visited):
                for shape in visited:
                    tally[shape] = tally.get(shape, 0) + 1
                    for entry in shape.entries:
                        if entry in unknown or len(unknown) < MAX_UNKNOWN_KEYS:
                            unknown[entry] += 1
                continue
            walk = _ItemWalk(unknown)
            self._check_object(item, self.contract.item_schema, "", "", walk)
            problems = walk.problems
            if not problems:  # only items that will be sent shape the masks
                objects.update(walk.objects)
                for place, carried in walk.keys.items():
                    keys.setdefault(place, Counter()).update(carried)
            else:
                scan.invalid.add(number)
                scan.error_count += len(problems)
                room = MAX_SHOWN - len(scan.errors)
                label = f"item {number}" if line is None else f"item {number} (line {line})"
                scan.errors += [f"{label}, {p}" for p in problems[: max(room, 0)]]
        scan.total = number
        for shape, count in tally.items():
            node = shape.node
            if node.counted:
                objects[node.shape] += count
                counted = keys.setdefault(node.shape, Counter())
                for key in shape.known:
                    counted[key] += count
        for binding in self.contract.masks:
            counted = Counter()
            for path in binding.paths:
                counted.update(keys.get(path, Counter()))
            scan.usage[binding.header_field] = MaskUsage(
                objects=sum(objects[path] for path in binding.paths), keys=counted
            )
        return scan

    def check(self, item: dict[str, Any]) -> list[str]:
        """The problems of one item (``field path: what is wrong``); empty when it fits the contract."""
        walk = _ItemWalk(Counter())
        self._check_object(item, self.contract.item_schema, "", "", walk)
        return walk.problems

    # -- the fast path: accept what fits, decide nothing else -----------------------------------------

    def _fits(self, obj: dict[str, Any], node: _Node, visited: list[_Shape]) -> bool:
        """Whether ``obj`` certainly fits (then its shapes, children first as the walk counts them, are
        appended to ``visited``); ``False`` when it does not fit or the fast path cannot tell."""
        keys = tuple(obj)
        shape = node.shapes.get(keys) or node.compile(keys)
        if shape is None or not shape.fast:
            return False
        for key, accepts in shape.scalars:
            if not accepts(obj[key]):
                return False
        for key, child, many, null_ok in shape.nested:
            value = obj[key]
            if value is None:
                if null_ok:
                    continue
                return False
            if many:
                if not isinstance(value, list):
                    return False
                for element in value:
                    if not isinstance(element, dict) or not self._fits(element, child, visited):
                        return False
            elif not isinstance(value, dict) or not self._fits(value, child, visited):
                return False
        for key in shape.unknown:
            if _json_problem(obj[key], key) is not None:
                return False
        context = self.context
        for rule in shape.rules:
            if rule(obj, context):
                return False
        visited.append(shape)
        return True

    def _accepts(self, spec: ItemField) -> Accepts:
        """The predicate of a field that is not an object or an array of objects: a test of the usual
        exact types (``str``, ``int``, ``float``, ``bool``) and format, else the explaining walk's own
        check of the value (subclasses, ``null``, wrong types: rare, and never decided twice)."""

        def explain(value: Any) -> bool:
            return self._value_problem(value, spec, spec.name) is None

        kind, required, limit = spec.kind, bool(spec.required), spec.max_length
        if kind == "string":
            if limit is not None:
                return lambda v: (
                    (type(v) is str and len(v) <= limit and (not required or v.strip() != "")) or explain(v)
                )
            if required:
                return lambda v: (type(v) is str and v.strip() != "") or explain(v)
            return lambda v: type(v) is str or explain(v)
        if kind == "date-time":
            return lambda v: (
                (
                    type(v) is str
                    and len(v) <= MAX_CACHED_CHARS
                    and _cached_date_time(v)
                    and (not required or v.strip() != "")
                )
                or explain(v)
            )
        if kind == "uuid":
            return lambda v: (
                (
                    type(v) is str
                    and len(v) <= MAX_CACHED_CHARS
                    and _cached_uuid(v)
                    and (not required or v.strip() != "")
                )
                or explain(v)
            )
        if kind == "integer":
            low, high = INT32
            return lambda v: (type(v) is int and low <= v <= high) or explain(v)
        if kind == "number":
            return lambda v: (
                (type(v) is float and math.isfinite(v)) or (type(v) is int and -_BIG < v < _BIG) or explain(v)
            )
        if kind == "boolean":
            return lambda v: type(v) is bool or explain(v)
        if kind == "enum":
            codes = frozenset(code for code, _ in self.model.enum(str(spec.ref)).values)
            spellings: set[str] = set()

            def enum(v: Any) -> bool:
                if type(v) is int:
                    return v in codes or explain(v)
                if type(v) is str and v in spellings:
                    return True
                if not explain(v):
                    return False
                if type(v) is str and len(v) <= MAX_CACHED_CHARS and len(spellings) < MAX_ENUM_SPELLINGS:
                    spellings.add(v)
                return True

            return enum
        return explain

    # -- the explaining walk: every problem, with its field path -------------------------------------

    def _check_object(
        self,
        obj: dict[str, Any],
        schema: ItemSchema,
        path: str,
        shape: str,
        walk: _ItemWalk,
    ) -> None:
        problems = walk.problems
        counted: Counter[str] | None = None
        if shape in self.mask_paths:
            walk.objects[shape] += 1
            counted = walk.keys.setdefault(shape, Counter())
        for spec in schema.fields:
            where = f"{path}.{spec.name}" if path else spec.name
            if spec.name not in obj:
                if spec.required:
                    problems.append(
                        f"field {where}: is required by Norce's {schema.key} contract, and missing"
                    )
                continue
            self._check_value(obj[spec.name], spec, where, shape, walk)
        for key in obj:
            if not isinstance(key, str):
                problems.append(_json_problem_text(f"{path}.{key!r}" if path else repr(key), "key", key))
                continue
            if schema.field(key) is not None:
                if counted is not None:  # only schema fields: Norce ignores other keys, and a file of
                    counted[key] += 1  # ever-new keys must not grow memory
                continue
            # Norce ignores the value, but it is posted: it must be JSON (no datetime, set, bytes, NaN).
            problem = _json_problem(obj[key], f"{path}.{key}" if path else key)
            if problem:
                problems.append(problem)
            label = f"{shape}.{key}" if shape else key
            entry = f"unknown key {label!r}{_key_hint(key, schema)}"
            if entry in walk.unknown or len(walk.unknown) < MAX_UNKNOWN_KEYS:
                walk.unknown[entry] += 1
        for rule in RULES.get(schema.key, ()):
            problem = rule(obj, self.context)
            if problem:
                problems.append(f"{path}: {problem}" if path else problem)

    def _check_value(
        self,
        value: Any,
        spec: ItemField,
        where: str,
        shape: str,
        walk: _ItemWalk,
    ) -> None:
        problem = self._value_problem(value, spec, where)
        if problem:
            walk.problems.append(problem)
            return
        if value is None:
            return
        child_shape = f"{shape}.{spec.name}" if shape else spec.name
        if spec.kind == "object":
            schema = self.model.schema(str(spec.ref))
            self._check_object(value, schema, where, child_shape, walk)
        elif spec.kind == "array":
            schema = self.model.schema(str(spec.ref))
            for index, element in enumerate(value):
                at = f"{where}[{index}]"
                if not isinstance(element, dict):
                    walk.problems.append(
                        f"field {at}: must be a JSON object ({schema.key}), got {_kind(element)}"
                    )
                    continue
                self._check_object(element, schema, at, f"{child_shape}[]", walk)

    def _value_problem(self, value: Any, spec: ItemField, where: str) -> str | None:
        """The problem of the value itself (not of its nested objects), or ``None``."""
        if value is None:
            if spec.required:
                return f"field {where}: is required by Norce's contract, and null"
            if not spec.nullable:
                return f"field {where}: may not be null (Norce's type is not nullable); leave it out"
            return None
        if spec.required and isinstance(value, str) and not value.strip():
            return f"field {where}: is required, and empty"
        problem = self._type_problem(value, spec)
        if problem:
            return f"field {where}: {problem}"
        if spec.kind not in ("object", "array"):  # those are walked field by field
            return _json_problem(value, where)
        return None

    def _type_problem(self, value: Any, spec: ItemField) -> str | None:
        kind = spec.kind
        if kind in ("string", "date-time", "uuid") and not isinstance(value, str):
            return f"must be a string, got {_kind(value)}"
        if kind == "string":
            if spec.max_length is not None and len(value) > spec.max_length:
                return f"is {len(value)} characters long; Norce takes at most {spec.max_length}"
        elif kind == "date-time":
            if not _is_date_time(value):
                return f"must be an ISO-8601 date-time such as 2025-01-31T12:00:00Z, got {value!r}"
        elif kind == "uuid":
            if not _is_uuid(value):
                return f"must be a UUID such as 3f2504e0-4f89-11d3-9a0c-0305e82c3301, got {value!r}"
        elif kind == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                return f"must be an integer, got {_kind(value)}"
            if not INT32[0] <= value <= INT32[1]:
                return f"is {_int_text(value)}, outside Norce's 32-bit integer range"
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"must be a number, got {_kind(value)}"
            if isinstance(value, int) and not -_BIG < value < _BIG:
                try:
                    float(value)
                except OverflowError:  # math.isfinite would raise it
                    return f"is an integer of {value.bit_length()} bits, too large for a number (at most about 1.8e308)"
            elif not math.isfinite(value):
                return f"must be a number, got {_kind(value)}"
        elif kind == "boolean":
            if not isinstance(value, bool):
                return f"must be true or false, got {_kind(value)}"
        elif kind == "enum":
            enum = self.model.enum(str(spec.ref))
            if enum.code_of(value) is None:
                listed = ", ".join(f"{name} ({code})" for code, name in enum.values)
                return f"{value!r} is not a {enum.name} value; use one of {listed}"
        elif kind == "object":
            if not isinstance(value, dict):
                return f"must be a JSON object ({spec.ref}), got {_kind(value)}"
        elif kind == "array":
            if not isinstance(value, list):
                return f"must be a JSON array of {spec.ref} objects, got {_kind(value)}"
        elif kind == "string_array" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            return f"must be a JSON array of strings, got {_kind(value)}"
        return None


def _json_problem(value: Any, where: str) -> str | None:
    """Why ``value`` (at field path ``where``) cannot be posted as JSON, or ``None``: the first value that
    ``json.dumps`` would refuse (a datetime, a set, bytes, a key that is not text) or would write as
    invalid JSON (NaN, Infinity). Iterative, so a deeply nested value cannot exhaust the stack."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        current, at = stack.pop()
        if current is None or isinstance(current, (str, bool, int)):
            continue
        if isinstance(current, float):
            if not math.isfinite(current):
                return (
                    f"field {at}: is {current!r}, which JSON cannot carry (it would be posted as invalid "
                    "JSON); give a number, or leave the field out"
                )
            continue
        if isinstance(current, (list, tuple)):
            stack.extend((element, f"{at}[{index}]") for index, element in enumerate(current))
            continue
        if isinstance(current, dict):
            for key, element in current.items():
                if not isinstance(key, str):
                    return _json_problem_text(f"{at}.{key!r}", "key", key)
                stack.append((element, f"{at}.{key}"))
            continue
        return _json_problem_text(at, "value", current)
    return None


def _json_problem_text(at: str, what: str, value: Any) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return (
        f"field {at}: the {what} {shown} ({type(value).__name__}) cannot be sent as JSON; convert it first "
        "(a datetime to an ISO-8601 string such as 2025-01-31T12:00:00Z, a set or tuple to a list, bytes and "
        "decimals to text or numbers, keys to text)"
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    shown = (
        _int_text(value) if isinstance(value, int) else repr(value) if isinstance(value, (float, str)) else ""
    )
    return names.get(type(value), "an object" if isinstance(value, dict) else type(value).__name__) + (
        f" {shown}" if shown and len(shown) <= 40 else ""
    )


#: Integers beyond this are checked against float's range (JSON numbers Norce reads as double/decimal).
_BIG = 2**1000


def _int_text(value: int) -> str:
    """``value`` as text; an integer too long to print (``sys.get_int_max_str_digits``) by its size."""
    try:
        return repr(value)
    except ValueError:
        return f"an integer of {value.bit_length()} bits"


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    """Whether Norce reads ``text`` as a date-time."""
    match = _DATE_TIME.fullmatch(text.strip())
    if not match:
        return False
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True


#: The fast path's date-time and UUID checks, cached (a file repeats the same few dates and keys); only
#: values of at most MAX_CACHED_CHARS characters are passed, so the caches stay small.
_cached_date_time = lru_cache(maxsize=4096)(_is_date_time)
_cached_uuid = lru_cache(maxsize=4096)(_is_uuid)


def _key_hint(key: str, schema: ItemSchema) -> str:
    if key in KEY_HINTS:
        return f" (Norce reads {KEY_HINTS[key]!r})"
    for name in schema.names:
        if name.lower() == key.lower():
            return f" (did you mean {name!r}?)"
    return ""


class SkippingItems:
    """An item source without the items whose 1-based numbers are in ``skip`` (invalid ones)."""

    def __init__(self, source: ItemSource, skip: set[int]) -> None:
        self.source = source
        self.skip = skip  # not copied: one set of the invalid numbers is enough
        self.name = source.name

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for number, item in enumerate(self.source, start=1):
            if number not in self.skip:
                yield item
