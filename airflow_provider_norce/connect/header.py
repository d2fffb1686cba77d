"""Build the ``X-StormConnect-Header`` of a Connect import from the user's header and the items.

Why: Norce writes ONLY the item fields the header's ``...FieldsThatAreSet`` lists, and ignores header keys
it does not know. A stock import without ``SkuOnhandFieldsThatAreSet`` (or with a typo such as
``SkuOnHandFieldsThatAreSet``) is accepted, "succeeds" and writes no stock. So, following
``connect.json x_stormconnect_headers`` and ``common.x_stormconnect_header_rules``:

* unknown header keys are refused, with the known ones listed;
* ``AccountId`` is a required integer;
* ``FullFile`` is added as ``false`` where the header has it; where it does not (CustomerHeader, and
  PriceListHeader per the docs spec and .NET), ``true`` is refused and ``false`` dropped;
* enum lists may be codes, names (any case) or a mix; they are sent as integer codes, as Norce's .NET
  client does;
* a mask the user leaves out is derived from the keys the items carry (:func:`finish_header`); a mask the
  user gives is kept as given (never widened), with a warning for every item field it leaves out.

Two steps, because the header is checked before the items are read (a wrong header fails at once) and the
masks are derived after the one counting pass over the items: :func:`parse_connect_header`, then
:func:`finish_header`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.arguments import as_bool
from airflow_provider_norce.connect.contracts import (
    IGNORE_WHEN_EMPTY,
    IGNORE_WHEN_EMPTY_CODES,
    MASK_ALIASES,
    REQUIRED_WHEN_MASKED,
    contracts,
    is_pseudo_value,
    mask_value_for_key,
)

if TYPE_CHECKING:
    from airflow_provider_norce.connect.contracts import EnumType, HeaderField, ImportContract, MaskBinding

#: Header keys people write that Norce does not read, and what to write instead. The docs spec of the
#: PriceListHeader spells ``PriceListRuleFieldsThatAreSet``; the docs example and .NET spell
#: ``PriceListPriceRuleFieldsThatAreSet`` (``connect.json disagreements`` "PriceListHeader price-rule list name").
HEADER_KEY_HINTS = {"PriceListRuleFieldsThatAreSet": "PriceListPriceRuleFieldsThatAreSet"}


@dataclass(frozen=True)
class MaskUsage:
    """What the items carry where one mask applies: how many objects, and how many carry each key."""

    objects: int
    keys: Counter[str]


@dataclass
class ParsedHeader:
    """A checked header, before the masks the user left out are derived."""

    contract: ImportContract
    task_id: str
    values: dict[str, Any]
    full_file: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class HeaderPlan:
    """The header to send, and what the operator should log about it."""

    header: str
    values: dict[str, Any]
    full_file: bool
    info: list[str]
    warnings: list[str]


def _where(task_id: str, contract: ImportContract) -> str:
    return f"Task {task_id!r}: connect_header of {contract.method}"


def parse_connect_header(header: Any, contract: ImportContract, task_id: str) -> ParsedHeader:
    """Check the user's header for ``contract``: keys, ``AccountId``, ``FullFile`` and enum lists."""
    where = _where(task_id, contract)
    if isinstance(header, str):
        try:
            header = json.loads(header)
        except ValueError as err:
            raise ValueError(f"{where} is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(
            f"{where} must be an object such as "
            '{"AccountId": 1, "FullFile": false}, got ' + type(header).__name__
        )
    values = dict(header)
    notes: list[str] = []
    schema = contract.header
    full_file = False
    if schema.has_full_file:
        full_file = as_bool(values.get("FullFile", False), "connect_header FullFile", task_id)
        values["FullFile"] = full_file
    elif "FullFile" in values:
        if as_bool(values["FullFile"], "connect_header FullFile", task_id):
            raise ValueError(
                f"{where} sets FullFile to true, but Norce's {schema.name} has no FullFile (per the docs "
                "spec and the .NET contracts): Norce would ignore it and deactivate nothing. Remove FullFile "
                "from connect_header."
            )
        del values["FullFile"]
        notes.append(f"FullFile: false dropped: {schema.name} has no FullFile")
    unknown = [key for key in values if schema.field(key) is None]
    if unknown:
        hints = [_hint(key, schema.names) for key in unknown]
        raise ValueError(
            f"{where} has key(s) Norce's {schema.name} does not know: "
            + "; ".join(f"{key!r}{hint}" for key, hint in zip(unknown, hints, strict=True))
            + f". Norce ignores unknown keys silently. Known keys: {', '.join(schema.names)}."
        )
    _check_account(values, where)
    for name in list(values):
        spec = schema.field(name)
        assert spec is not None
        values[name] = _checked_value(spec, values[name], where)
    ignore = values.get(IGNORE_WHEN_EMPTY)
    if ignore is not None:
        bad = [code for code in ignore if code not in IGNORE_WHEN_EMPTY_CODES]
        if bad:
            enum = contracts().enum("SkuPriceListField")
            raise ValueError(
                f"{where}: {IGNORE_WHEN_EMPTY} accepts only "
                + ", ".join(f"{enum.name_of(c)} ({c})" for c in sorted(IGNORE_WHEN_EMPTY_CODES))
                + "; got "
                + ", ".join(f"{enum.name_of(c)} ({c})" for c in bad)
                + ". Remove them."
            )
    return ParsedHeader(contract=contract, task_id=task_id, values=values, full_file=full_file, notes=notes)


def _hint(key: str, known: tuple[str, ...]) -> str:
    if key in HEADER_KEY_HINTS:
        return f" (write {HEADER_KEY_HINTS[key]!r}: the docs spec spelling is not what Norce reads)"
    for name in known:
        if name.lower() == key.lower():
            return f" (did you mean {name!r}? names are case-sensitive)"
    return ""


def _check_account(values: dict[str, Any], where: str) -> None:
    account = values.get("AccountId")
    if account is None or account == "":
        raise ValueError(
            f"{where} lacks AccountId, which Norce Connect requires; set it to your Norce account id, "
            'e.g. {"AccountId": 1}'
        )
    if isinstance(account, str) and account.strip().isdigit():
        values["AccountId"] = account = int(account.strip())
    if not isinstance(account, int) or isinstance(account, bool):
        raise ValueError(f"{where}: AccountId must be an integer, got {account!r}")


def _checked_value(spec: HeaderField, value: Any, where: str) -> Any:
    name = spec.name
    if spec.kind == "enum_list":
        if not isinstance(value, (list, tuple)):
            raise ValueError(
                f"{where}: {name} must be a list of {spec.enum} codes or names, got {type(value).__name__}"
            )
        return _enum_codes(contracts().enum(str(spec.enum)), value, name, where)
    if spec.kind == "enum":
        enum = contracts().enum(str(spec.enum))
        code = enum.code_of(value)
        if code is None:
            raise ValueError(f"{where}: {name} {value!r} is not one of {_valid(enum)}")
        if name == "SerializationType" and code != 0:
            raise ValueError(
                f"{where}: SerializationType {value!r} announces XML, but this operator posts JSON; "
                "remove SerializationType (JSON is the default)"
            )
        return code
    if spec.kind == "integer":
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
        return value
    if spec.kind == "boolean" and not isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be true or false, got {value!r}")
    if spec.kind == "string" and not isinstance(value, str):
        raise ValueError(f"{where}: {name} must be a string, got {value!r}")
    if spec.kind == "id" and (isinstance(value, bool) or not isinstance(value, (int, str))):
        raise ValueError(f"{where}: {name} must be a string or an integer, got {value!r}")
    return value


def _valid(enum: EnumType) -> str:
    return f"{enum.name}: " + ", ".join(f"{name} ({code})" for code, name in enum.values)


def _enum_codes(enum: EnumType, values: Any, name: str, where: str) -> list[int]:
    codes: list[int] = []
    for value in values:
        code = enum.code_of(value)
        if code is None:
            raise ValueError(f"{where}: {name} holds {value!r}, which is not a value of {_valid(enum)}")
        if code not in codes:
            codes.append(code)
    return codes


# -- masks -----------------------------------------------------------------------------------------


def _key_for(enum: EnumType, code: int) -> str:
    """The item key a mask value writes (the reverse of the alias table)."""
    name = enum.name_of(code)
    for key, alias in MASK_ALIASES.get(enum.name, {}).items():
        if alias == name:
            return key
    return name


def _label(enum: EnumType, codes: list[int]) -> str:
    return "[" + ", ".join(f"{enum.name_of(c)} ({c})" for c in codes) + "]" if codes else "[] (keys only)"


def finish_header(parsed: ParsedHeader, usage: dict[str, MaskUsage]) -> HeaderPlan:
    """Complete ``parsed`` with the masks the user left out, derived from ``usage`` (per mask header field);
    check the given ones against it. The primary mask is always sent; nested ones when not empty."""
    contract = parsed.contract
    values = dict(parsed.values)
    info = list(parsed.notes)
    warnings: list[str] = []
    for binding in contract.masks:
        enum = contracts().enum(binding.enum)
        seen = usage.get(binding.header_field) or MaskUsage(0, Counter())
        given = values.get(binding.header_field)
        if given is None:
            codes = sorted({code for key in seen.keys if (code := mask_value_for_key(enum, key)) is not None})
            if codes or binding.primary:
                values[binding.header_field] = codes
                info.append(f"{binding.header_field} derived from the items: {_label(enum, codes)}")
        else:
            codes = list(given)
            info.append(f"{binding.header_field} as given: {_label(enum, codes)}")
            warnings += _left_out(binding, enum, codes, seen)
        _check_required_when_masked(parsed, binding, enum, codes, seen)
        warnings += _missing(binding, enum, codes, seen)
    ignore = values.get(IGNORE_WHEN_EMPTY)
    if ignore:
        price_mask = values.get("SkuPriceListFieldsThatAreSet") or []
        outside = [code for code in ignore if code not in price_mask]
        if outside:
            enum = contracts().enum("SkuPriceListField")
            raise ValueError(
                f"{_where(parsed.task_id, contract)}: {IGNORE_WHEN_EMPTY} holds {_label(enum, outside)}, "
                "which SkuPriceListFieldsThatAreSet does not list; Norce requires each of them there. Add "
                "them to SkuPriceListFieldsThatAreSet (or to the items), or remove them."
            )
    header = json.dumps(values, separators=(",", ":"), ensure_ascii=True)
    return HeaderPlan(header=header, values=values, full_file=parsed.full_file, info=info, warnings=warnings)


def _objects(binding: MaskBinding) -> str:
    return "items" if binding.paths == ("",) else " / ".join(f"{p} objects" for p in binding.paths)


def _left_out(binding: MaskBinding, enum: EnumType, codes: list[int], seen: MaskUsage) -> list[str]:
    """One warning per item field the given mask leaves out (Norce will not write it)."""
    names = {enum.name_of(c) for c in codes}
    warnings = []
    for key, count in sorted(seen.keys.items()):
        code = mask_value_for_key(enum, key)
        if code is None or code in codes:
            continue
        name = enum.name_of(code)
        if any(f"{name}{suffix}" in names for suffix in ("CreateOnly", "LimitedUpdate")):
            continue
        warnings.append(
            f"{key} is carried by {count} of {seen.objects} {_objects(binding)}, but the given "
            f"{binding.header_field} leaves out {name} ({code}): Norce will not write it. Add it to "
            f"{binding.header_field}, or leave {binding.header_field} out to have it derived."
        )
    return warnings


def _check_required_when_masked(
    parsed: ParsedHeader, binding: MaskBinding, enum: EnumType, codes: list[int], seen: MaskUsage
) -> None:
    """Refuse a mask listing a field that Norce then requires on every object while some objects lack it:
    Norce would refuse those items after the POST (a given mask is already checked item by item)."""
    for code in codes:
        key = _key_for(enum, code)
        lacking = seen.objects - seen.keys.get(key, 0)
        if (binding.header_field, enum.name_of(code)) in REQUIRED_WHEN_MASKED and seen.objects and lacking:
            raise ValueError(
                f"{_where(parsed.task_id, parsed.contract)}: {binding.header_field} lists "
                f"{enum.name_of(code)} ({code}) because {seen.keys.get(key, 0)} of {seen.objects} "
                f"{_objects(binding)} carry {key}, but Norce then requires {key} on every one of them and "
                f"{lacking} lack it. Nothing was posted. Give {key} to every item, or import the items "
                "without it in a task of their own."
            )


def _missing(binding: MaskBinding, enum: EnumType, codes: list[int], seen: MaskUsage) -> list[str]:
    """A warning per mask field that some objects lack: Norce writes it empty for those."""
    warnings = []
    for code in codes:
        if is_pseudo_value(enum.name_of(code)):
            continue
        key = _key_for(enum, code)
        lacking = seen.objects - seen.keys.get(key, 0)
        if seen.objects and lacking:
            warnings.append(
                f"{binding.header_field} lists {enum.name_of(code)} ({code}), but {lacking} of "
                f"{seen.objects} {_objects(binding)} lack {key}: Norce will write it empty for those."
            )
    return warnings
