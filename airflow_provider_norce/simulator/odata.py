"""A small OData v4 ``$filter`` parser, type checker and evaluator.

Why hand-written: the simulator must stay stdlib-only and cheap to import, and it must reject what Norce's
OData endpoint rejects (unknown properties, incompatible operand types, syntax errors) with a 400 instead of
silently returning everything, so that a pipeline's filter bugs surface offline.

Supported: ``eq ne gt ge lt le and or not``, parentheses, ``'strings'`` (``''`` escapes a quote), integers,
decimals, ``true``/``false``/``null``, unquoted DateTimeOffset literals (``2026-11-27T00:00:00Z``,
``2026-11-27T01:00:00+01:00``, fractions allowed) and dates (``2026-11-27``, taken as midnight UTC), and the
functions ``contains``, ``startswith``, ``endswith``, ``tolower``, ``toupper``. Datetimes are compared as
instants, never as strings.

:func:`parse_filter` gives an AST; :func:`compile_filter` type-checks it against an entity schema and returns
a predicate over row dicts; :func:`conjuncts` lets an entity set answer range conditions on monotonic fields
(``Updated ge X and Updated lt Y``) by bisection instead of a scan.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

#: Edm type names by the simulator's short type names, for error messages that read like OData's.
EDM_NAMES = {
    "int": "Edm.Int32",
    "decimal": "Edm.Decimal",
    "string": "Edm.String",
    "bool": "Edm.Boolean",
    "datetime": "Edm.DateTimeOffset",
    "null": "null",
}
_NUMERIC = {"int", "decimal"}


class ODataError(Exception):
    """A client error that the server answers with the OData error envelope."""

    def __init__(self, message: str, status: int = 400, code: str = "BadRequest") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Literal:
    """A constant; ``type`` is one of int, decimal, string, bool, datetime, null."""

    value: Any
    type: str


@dataclass(frozen=True)
class Field:
    """A property reference such as ``Updated``."""

    name: str


@dataclass(frozen=True)
class Compare:
    """``left op right`` with op in eq ne gt ge lt le."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class BoolOp:
    """``and`` / ``or`` over two or more operands."""

    op: str
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """``not operand``."""

    operand: Node


@dataclass(frozen=True)
class Call:
    """A canonical function call such as ``startswith(PartNo,'FAIL-')``."""

    name: str
    args: tuple[Node, ...]


Node = Literal | Field | Compare | BoolOp | Not | Call

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^']|'')*')
  | (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?(?![\w.]))
  | (?P<lp>\()
  | (?P<rp>\))
  | (?P<comma>,)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_COMPARE_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "contains": (("string", "string"), "bool"),
    "startswith": (("string", "string"), "bool"),
    "endswith": (("string", "string"), "bool"),
    "tolower": (("string",), "string"),
    "toupper": (("string",), "string"),
}
_OP_NAMES = {"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual"}
_OP_NAMES |= {"lt": "LessThan", "le": "LessThanOrEqual"}


def parse_datetime(text: str) -> float:
    """Epoch seconds of an ISO-8601 DateTimeOffset (``Z`` or an offset; up to 7 fraction digits)."""
    match = re.fullmatch(
        r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})?)?", text
    )
    if not match:
        raise ValueError(f"not a DateTimeOffset: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        stamp = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=timezone.utc,
        ).timestamp()
    except ValueError as err:
        raise ValueError(f"not a valid date: {text!r} ({err})") from None
    if fraction:
        stamp += int(fraction) / 10 ** len(fraction)
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        stamp -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    return stamp


def _row_datetime(value: Any) -> float | None:
    """Epoch seconds of a row's timestamp string; rows carry canonical ``...Z`` strings."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value).timestamp()
    except (TypeError, ValueError, AttributeError):
        return None


class _Parser:
    """Recursive descent over the token list: or < and < not < comparison < primary."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match:
                raise ODataError(f"Syntax error at position {pos} in $filter '{text}'.")
            kind = match.lastgroup or ""
            if kind != "ws":
                self.tokens.append((kind, match.group(), pos))
            pos = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def keyword(self, *words: str) -> str | None:
        token = self.peek()
        if token and token[0] == "ident" and token[1] in words:
            self.index += 1
            return token[1]
        return None

    def expect(self, kind: str) -> tuple[str, str, int]:
        token = self.peek()
        if token is None or token[0] != kind:
            where = f"position {token[2]}" if token else "the end"
            raise ODataError(f"Syntax error at {where} in $filter '{self.text}': expected {kind}.")
        self.index += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise ODataError("The $filter expression is empty.")
        node = self.or_expr()
        token = self.peek()
        if token is not None:
            raise ODataError(f"Syntax error at position {token[2]} in $filter '{self.text}': '{token[1]}'.")
        return node

    def or_expr(self) -> Node:
        return self._joined("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._joined("and", self.not_expr)

    def _joined(self, word: str, operand: Callable[[], Node]) -> Node:
        """``operand (word operand)*``: one operand alone, or a :class:`BoolOp` over all of them."""
        items = [operand()]
        while self.keyword(word):
            items.append(operand())
        return items[0] if len(items) == 1 else BoolOp(word, tuple(items))

    def not_expr(self) -> Node:
        if self.keyword("not"):
            return Not(self.not_expr())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.primary()
        op = self.keyword(*_COMPARE_OPS)
        if op is None:
            return left
        return Compare(op, left, self.primary())

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise ODataError(f"Syntax error in $filter '{self.text}': the expression ends too early.")
        kind, text, pos = token
        self.index += 1
        if kind == "lp":
            node = self.or_expr()
            self.expect("rp")
            return node
        if kind == "str":
            return Literal(text[1:-1].replace("''", "'"), "string")
        if kind in ("dt", "date"):
            try:
                return Literal(parse_datetime(text), "datetime")
            except ValueError as err:
                raise ODataError(f"Invalid DateTimeOffset literal '{text}': {err}.") from None
        if kind == "num":
            number = text.rstrip("mMdDfFlL")
            if re.fullmatch(r"-?\d+", number):
                return Literal(int(number), "int")
            return Literal(float(number), "decimal")
        if kind == "ident":
            if text in ("true", "false"):
                return Literal(text == "true", "bool")
            if text == "null":
                return Literal(None, "null")
            if text in _COMPARE_OPS or text in ("and", "or", "not"):
                raise ODataError(
                    f"Syntax error at position {pos} in $filter '{self.text}': unexpected '{text}'."
                )
            nxt = self.peek()
            if nxt is not None and nxt[0] == "lp":
                return self.call(text, pos)
            return Field(text)
        raise ODataError(f"Syntax error at position {pos} in $filter '{self.text}': unexpected '{text}'.")

    def call(self, name: str, pos: int) -> Node:
        if name not in _FUNCTIONS:
            raise ODataError(f"Unknown function '{name}' at position {pos} in $filter '{self.text}'.")
        self.expect("lp")
        args = [self.or_expr()]
        while self.peek() is not None and self.peek()[0] == "comma":  # type: ignore[index]
            self.index += 1
            args.append(self.or_expr())
        self.expect("rp")
        return Call(name, tuple(args))


def parse_filter(text: str) -> Node:
    """Parse a ``$filter`` value into an AST, raising :class:`ODataError` (400) on bad syntax."""
    return _Parser(text).parse()


def _typed(
    node: Node, schema: Mapping[str, str], entity: str
) -> tuple[Callable[[Mapping[str, Any]], Any], str]:
    """A getter for ``node`` plus its type, rejecting what OData rejects."""
    if isinstance(node, Literal):
        value = node.value
        return (lambda _row: value), node.type
    if isinstance(node, Field):
        field_type = schema.get(node.name)
        if field_type is None:
            raise ODataError(f"Could not find a property named '{node.name}' on type '{entity}'.")
        name = node.name
        if field_type == "datetime":
            return (lambda row: _row_datetime(row.get(name))), "datetime"
        return (lambda row: row.get(name)), field_type
    if isinstance(node, Call):
        wanted, result = _FUNCTIONS[node.name]
        if len(node.args) != len(wanted):
            raise ODataError(f"Function '{node.name}' takes {len(wanted)} argument(s), got {len(node.args)}.")
        getters = []
        for arg, want in zip(node.args, wanted, strict=True):
            getter, got = _typed(arg, schema, entity)
            if got not in (want, "null"):
                raise ODataError(f"Function '{node.name}' expects {EDM_NAMES[want]}, got {EDM_NAMES[got]}.")
            getters.append(getter)
        return _function(node.name, getters), result
    predicate = _predicate(node, schema, entity)
    return predicate, "bool"


def _function(
    name: str, getters: list[Callable[[Mapping[str, Any]], Any]]
) -> Callable[[Mapping[str, Any]], Any]:
    if name in ("tolower", "toupper"):
        (get,) = getters
        method = str.lower if name == "tolower" else str.upper

        def case(row: Mapping[str, Any]) -> Any:
            value = get(row)
            return None if value is None else method(value)

        return case
    first, second = getters
    test: Callable[[str, str], bool] = {
        "contains": lambda a, b: b in a,
        "startswith": str.startswith,
        "endswith": str.endswith,
    }[name]

    def string_test(row: Mapping[str, Any]) -> bool:
        a, b = first(row), second(row)
        return a is not None and b is not None and test(a, b)

    return string_test


def _compatible(left: str, right: str) -> bool:
    if "null" in (left, right) or left == right:
        return True
    return left in _NUMERIC and right in _NUMERIC


def _predicate(node: Node, schema: Mapping[str, str], entity: str) -> Callable[[Mapping[str, Any]], bool]:
    if isinstance(node, BoolOp):
        parts = [_predicate(item, schema, entity) for item in node.items]
        if node.op == "and":
            return lambda row: all(part(row) for part in parts)
        return lambda row: any(part(row) for part in parts)
    if isinstance(node, Not):
        inner = _predicate(node.operand, schema, entity)
        return lambda row: not inner(row)
    if isinstance(node, Compare):
        left, left_type = _typed(node.left, schema, entity)
        right, right_type = _typed(node.right, schema, entity)
        if not _compatible(left_type, right_type):
            raise ODataError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{EDM_NAMES[left_type]}' and '{EDM_NAMES[right_type]}' for operator kind '{_OP_NAMES[node.op]}'."
            )
        if node.op in ("eq", "ne"):
            if node.op == "eq":
                return lambda row: left(row) == right(row)
            return lambda row: left(row) != right(row)
        if "null" in (left_type, right_type) or left_type == "bool":
            raise ODataError(
                f"Operator '{node.op}' cannot compare {EDM_NAMES[left_type]} and {EDM_NAMES[right_type]}."
            )
        compare = getattr(operator, node.op)

        def ordered(row: Mapping[str, Any]) -> bool:
            a, b = left(row), right(row)
            return a is not None and b is not None and bool(compare(a, b))

        return ordered
    getter, node_type = _typed(node, schema, entity)
    if node_type != "bool":
        raise ODataError(f"The $filter expression must be Edm.Boolean, not {EDM_NAMES[node_type]}.")
    return lambda row: getter(row) is True


def compile_filter(node: Node, schema: Mapping[str, str], entity: str) -> Callable[[Mapping[str, Any]], bool]:
    """Type-check ``node`` against ``schema`` (field -> type) and return a row predicate."""
    return _predicate(node, schema, entity)


def conjuncts(node: Node) -> list[Node]:
    """The top-level ``and`` operands of ``node`` (``[node]`` when it is not an ``and``)."""
    if isinstance(node, BoolOp) and node.op == "and":
        out: list[Node] = []
        for item in node.items:
            out.extend(conjuncts(item))
        return out
    return [node]


def field_bound(node: Node) -> tuple[str, str, Any, str] | None:
    """``(field, op, value, type)`` when ``node`` is ``Field op Literal`` (either side), else None."""
    if not isinstance(node, Compare):
        return None
    if isinstance(node.left, Field) and isinstance(node.right, Literal):
        return node.left.name, node.op, node.right.value, node.right.type
    if isinstance(node.right, Field) and isinstance(node.left, Literal):
        return node.right.name, _FLIPPED[node.op], node.left.value, node.left.type
    return None


def split_top_level(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` outside parentheses and quotes (for ``$expand``/``$orderby``)."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
