"""Norce Query (OData v4, read-only) under ``/commerce/query/2.0/``.

Entity sets (Query 2.0 names and PascalCase fields of ``tests/norce_contracts/query.json``): ``Orders/Orders``
(lazy, see :mod:`.orders`; lines only via ``$expand=Items``); the catalog (:func:`catalog_entity_sets`):
``Products/Products``, ``Products/ProductSkus`` (navigation ``PriceLists``, and ``OnHand`` as a simulator
convenience, both only through ``$expand``), ``Products/ProductSkuPriceLists``, the stock set (its 2.0 name is
unpublished: ``Products/ProductSkuOnHands`` by default, the simulator's ``onhand_set`` option),
``Application/ClientPriceLists``, ``Application/ClientWarehouses``, ``Core/Currencies``, ``Customers/Customers``,
``Customers/Companies``. A single entity is addressed by key: ``Products/ProductSkus('100011')``,
``Orders/Orders(42)`` (a composite key by its first field only). ``{Namespace}/$metadata`` answers a small CSDL
document.

Query options: ``$filter`` (see :mod:`.odata`), ``$select``, ``$orderby`` (``Field [asc|desc]``, comma list),
``$top``, ``$skip``, ``$count=true``, ``$expand=Nav`` or ``Nav($filter=..;$select=..)``, ``$format=json``.
Any other ``$`` option is a 400. Paging is server-driven: at most ``page_size`` rows per response and, while
rows remain, an absolute ``@odata.nextLink`` carrying the same options with ``$skip`` advanced (and ``$top``
reduced). Errors use the OData envelope ``{"error": {"code", "message"}}``: 400 for bad options, 404 for an
unknown entity set or key.

Speed: ``Id`` bounds on orders are answered exactly by arithmetic, ``Updated``/``Created`` bounds narrow the
candidate range by bisection (``and``, and ``or`` to the span of its operands); the rest of the filter scans
that range once and the matching indices are cached per query, so following nextLinks stays linear.

Late updates: orders whose ``Updated`` a test moved (``OrderSource.overridden``) escape the bisection, so a
filtered answer is the bisected result without them plus those of them the full filter matches (each tested on
its row); every cache key holds the source's ``version``, so an update is seen by the very next request.

Misbehaving on purpose: :mod:`.query_behaviour`'s switches (``NorceSimulator.set_query_behaviour``) ignore
``desc``, ``$top`` or key bounds, serve empty pages or endless chains, or overlap pages; all off by default.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, quote

from airflow_provider_norce.simulator import data as d
from airflow_provider_norce.simulator import orders as o
from airflow_provider_norce.simulator.odata import (
    BoolOp,
    Literal,
    Node,
    ODataError,
    compile_filter,
    conjuncts,
    field_bound,
    parse_filter,
    split_top_level,
)
from airflow_provider_norce.simulator.query_behaviour import (
    CHAIN_OPTION,
    EMPTY_OPTION,
    NORMAL,
    QueryBehaviour,
)
from airflow_provider_norce.simulator.replies import Reply, json_reply, odata_error

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

PREFIX = "/commerce/query/2.0/"
_ALLOWED_OPTIONS = {"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand", "$format"}
#: options a nextLink sets itself rather than carries on
_NOT_CARRIED = ("$skip", "$top", EMPTY_OPTION, CHAIN_OPTION)
_KEY_BOUND_OPS = ("gt", "ge", "lt", "le")
_CACHE_SIZE = 16
#: characters left unescaped in nextLink values, so links stay readable (``$filter=Updated%20ge%20...``)
_QUOTE_SAFE = "$'(),:;*"


class Source(Protocol):
    """Rows addressable by index: the lazy orders or a snapshot list."""

    def __len__(self) -> int: ...

    def row(self, index: int) -> dict[str, Any]: ...

    def index_range(self, field: str, op: str, value: float) -> range | None: ...


class ListSource:
    """A snapshot of catalog rows; no bisection, never cached (imports change it)."""

    monotonic: dict[str, Any] = {}

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def index_range(self, field: str, op: str, value: float) -> range | None:
        return None


@dataclass
class EntitySet:
    """One OData entity set: its schema, key, navigation properties and where rows come from."""

    namespace: str
    name: str
    type_name: str
    schema: Mapping[str, str]
    key: str
    source: Callable[[], Source]
    #: navigation property -> schema of its items (only present with $expand)
    navigation: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: complex collections always present in a row (not filterable)
    complex_fields: tuple[str, ...] = ()
    #: immutable rows: scan and sort results may be cached
    cacheable: bool = False


@dataclass
class _Options:
    filter_text: str | None
    select: list[str] | None
    orderby: list[tuple[str, bool]]
    top: int | None
    skip: int
    count: bool
    expand: dict[str, tuple[Callable[[Mapping[str, Any]], bool] | None, list[str] | None]]
    raw: list[tuple[str, str]]


def build_entity_sets(orders: o.OrderSource, catalog: d.Catalog) -> dict[str, EntitySet]:
    """The simulator's entity sets keyed by ``Namespace/Name``: the order sets and the catalog sets."""
    return {**order_entity_sets(orders), **catalog_entity_sets(catalog)}


def order_entity_sets(orders: o.OrderSource) -> dict[str, EntitySet]:
    """``Orders/Orders``: lazily computed, immutable rows; order lines only through ``$expand=Items``.

    There is deliberately no ``Orders/OrderItems`` set: a third party observed that the standalone set
    answers 404 (``query.json entity_sets[(OrderItem, via $expand=Items only)]``).
    """
    sets = [
        EntitySet(
            "Orders", "Orders", o.ORDER_TYPE, o.ORDER_SCHEMA, "Id", lambda: orders,
            {"Items": o.ORDER_ITEM_SCHEMA}, (), True,
        ),
    ]  # fmt: skip
    return {f"{s.namespace}/{s.name}": s for s in sets}


def catalog_entity_sets(catalog: d.Catalog) -> dict[str, EntitySet]:
    """The catalog sets in Query 2.0 shape (``tests/norce_contracts/query.json``): snapshots that imports change.

    ``Products/Products`` (one row per Connect variant), ``Products/ProductSkus`` (navigation ``PriceLists``,
    documented, and ``OnHand``, a simulator convenience), ``Products/ProductSkuPriceLists``, the on-hand set
    (name NOT published: ``catalog.onhand_set``, default ``Products/ProductSkuOnHands``),
    ``Application/ClientPriceLists``, ``Application/ClientWarehouses`` (fields not published: minimal),
    ``Core/Currencies``, ``Customers/Customers`` and ``Customers/Companies`` (2.0 names not confirmed).
    Sets with a composite key on Norce (prices, stock, warehouses) are addressed by their first key field.
    """

    def snapshot(rows: Callable[[], list[dict[str, Any]]]) -> Callable[[], Source]:
        """Catalog rows are read afresh for each request: imports change them."""
        return lambda: ListSource(rows())

    namespace, _, onhand_name = catalog.onhand_set.partition("/")
    sets = [
        EntitySet("Products", "Products", "Norce.Products.Product", d.PRODUCT_SCHEMA, "Id", snapshot(catalog.product_rows)),
        EntitySet(
            "Products", "ProductSkus", "Norce.Products.ProductSku", d.SKU_SCHEMA, "PartNo", snapshot(catalog.sku_rows),
            {"PriceLists": d.SKU_PRICE_SCHEMA, "OnHand": d.ONHAND_SCHEMA},
        ),
        EntitySet(
            "Products", "ProductSkuPriceLists", "Norce.Products.ProductSkuPricelist", d.SKU_PRICE_SCHEMA, "PartNo",
            snapshot(catalog.price_rows),
        ),
        EntitySet(
            namespace, onhand_name, "Norce.Products.ProductSkuOnHand", d.ONHAND_SCHEMA, "PartNo",
            snapshot(catalog.onhand_rows),
        ),
        EntitySet(
            "Application", "ClientPriceLists", "Norce.Application.PriceListClient", d.PRICE_LIST_SCHEMA, "PriceListId",
            snapshot(catalog.price_list_rows),
        ),
        EntitySet(
            "Application", "ClientWarehouses", "Norce.Application.ClientWarehouse", d.WAREHOUSE_SCHEMA, "WarehouseId",
            snapshot(catalog.warehouse_rows),
        ),
        EntitySet("Core", "Currencies", "Norce.Core.Currency", d.CURRENCY_SCHEMA, "Id", snapshot(catalog.currency_rows)),
        EntitySet("Customers", "Customers", "Norce.Customers.Customer", d.CUSTOMER_SCHEMA, "Id", snapshot(catalog.customer_rows)),
        EntitySet("Customers", "Companies", "Norce.Customers.Company", d.COMPANY_SCHEMA, "Id", snapshot(catalog.company_rows)),
    ]  # fmt: skip
    return {f"{s.namespace}/{s.name}": s for s in sets}


class QueryService:
    """Answers ``GET /commerce/query/2.0/...``."""

    def __init__(
        self,
        sets: dict[str, EntitySet],
        page_size: int = 500,
        on_rows: Callable[[int], None] | None = None,
        on_empty_page: Callable[[], None] | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.sets = sets
        self.page_size = page_size
        #: told the number of rows of every answer served (the ``query_rows`` counter)
        self._on_rows = on_rows
        #: told of every empty page a switch made (the ``query_empty_pages`` counter)
        self._on_empty_page = on_empty_page
        #: called once per entity-set listing answered, after its body is built (``on_query_page``)
        self.on_page: Callable[[], None] | None = None
        self._behaviour = NORMAL
        self._cache: OrderedDict[tuple[Any, ...], Sequence[int]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def behaviour(self) -> QueryBehaviour:
        """The misbehaviour switches in force (:mod:`.query_behaviour`)."""
        return self._behaviour

    def set_behaviour(self, behaviour: QueryBehaviour) -> None:
        """Replace the switches; ValueError when ``duplicate_rows`` would not let a nextLink advance."""
        if behaviour.duplicate_rows >= self.page_size:
            raise ValueError(
                f"query behaviour switch 'duplicate_rows' must be below the page size ({self.page_size})"
            )
        self._behaviour = behaviour

    def handle(self, subpath: str, query: str, base_url: str) -> Reply:
        """Answer one Query request; ``subpath`` is the path after ``/commerce/query/2.0/``."""
        try:
            return self._handle(subpath, query, base_url)
        except ODataError as err:
            return odata_error(err.status, err.code, err.message)

    def _handle(self, subpath: str, query: str, base_url: str) -> Reply:
        namespace, _, rest = subpath.partition("/")
        if rest == "$metadata":
            return self._metadata(namespace)
        name, key_text = rest, None
        if rest.endswith(")") and "(" in rest:
            name, _, key_text = rest[:-1].partition("(")
        entity = self.sets.get(f"{namespace}/{name}")
        if entity is None:
            known = ", ".join(sorted(self.sets))
            raise ODataError(f"No entity set '{subpath}' exists; known: {known}.", 404, "NotFound")
        behaviour = self._behaviour  # read once: a request sees one switch set
        options = self._options(entity, query, behaviour)
        context = f"{base_url}{PREFIX}{namespace}/$metadata#{entity.name}"
        if options.select:
            context += "(" + ",".join(options.select) + ")"
        if key_text is not None:
            return self._single(entity, key_text, options, context)
        reply = self._listing(entity, subpath, query, options, behaviour, context, base_url)
        if self.on_page is not None:
            self.on_page()
        return reply

    def _listing(
        self,
        entity: EntitySet,
        subpath: str,
        query: str,
        options: _Options,
        behaviour: QueryBehaviour,
        context: str,
        base_url: str,
    ) -> Reply:
        """One page of an entity-set listing (or an empty page, when a switch says so)."""
        source = entity.source()
        indices = self._select_indices(entity, source, options, behaviour)
        total = len(indices)
        payload: dict[str, Any] = {"@odata.context": context}
        if options.count:
            payload["@odata.count"] = total
        if behaviour is not NORMAL and (behaviour.empty_page_chain or behaviour.empty_pages):
            empty = self._empty_page(subpath, query, options, behaviour, payload, base_url)
            if empty is not None:
                return empty
        start = min(options.skip, total)
        end = total if options.top is None else min(total, start + options.top)
        page_end = min(end, start + self.page_size)
        project = self._projector(entity, options)
        next_skip = page_end - behaviour.duplicate_rows
        next_link = self._next_link(base_url, subpath, options, next_skip, end) if page_end < end else None
        if self._on_rows is not None:
            self._on_rows(page_end - start)
        row_json = getattr(source, "row_json", None)
        plain_expand = all(nested == (None, None) for nested in options.expand.values())
        if row_json is not None and options.select is None and plain_expand:  # the fast path for order pages
            expand = tuple(options.expand)
            head = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)[:-1]
            tail = "" if next_link is None else ',"@odata.nextLink":' + json.dumps(next_link)
            rows_text = ",".join(row_json(i, expand) for i in indices[start:page_end])
            text = head + ',"value":[' + rows_text + "]" + tail + "}"
            return Reply(200, text.encode("utf-8"))
        rows = [source.row(i) for i in indices[start:page_end]]
        payload["value"] = rows if project is None else [project(row) for row in rows]
        if next_link is not None:
            payload["@odata.nextLink"] = next_link
        return json_reply(200, payload)

    def _empty_page(
        self,
        subpath: str,
        query: str,
        options: _Options,
        behaviour: QueryBehaviour,
        payload: dict[str, Any],
        base_url: str,
    ) -> Reply | None:
        """The empty page ``empty_page_chain`` or ``empty_pages`` answers instead of this request's page;
        None when the real page is due. Its nextLink asks for the same rows again, one step further on."""
        custom = dict(parse_qsl(query, keep_blank_values=True))
        if behaviour.empty_page_chain:
            option = CHAIN_OPTION
        else:
            option = EMPTY_OPTION
            if _step(custom.get(option)) >= behaviour.empty_pages:
                return None
        step = [(option, str(_step(custom.get(option)) + 1))]
        end = options.skip + (options.top or 0)  # the link keeps $top as sent
        payload["value"] = []
        payload["@odata.nextLink"] = self._next_link(base_url, subpath, options, options.skip, end, step)
        if self._on_empty_page is not None:
            self._on_empty_page()
        return json_reply(200, payload)

    # -- options ----------------------------------------------------------------------------------------
    def _options(self, entity: EntitySet, query: str, behaviour: QueryBehaviour = NORMAL) -> _Options:
        raw = parse_qsl(query, keep_blank_values=True)
        seen: dict[str, str] = {}
        for name, value in raw:
            if not name.startswith("$"):
                continue  # custom query options are allowed by OData and ignored here
            lowered = name.lower()
            if lowered not in _ALLOWED_OPTIONS:
                raise ODataError(f"The query parameter '{name}' is not supported.")
            if lowered in seen:
                raise ODataError(f"The query parameter '{name}' is specified more than once.")
            seen[lowered] = value
        fmt = seen.get("$format")
        if fmt is not None and fmt.split(";")[0].strip().lower() not in ("json", "application/json"):
            raise ODataError(f"The $format '{fmt}' is not supported; use json.")
        allowed = {*entity.schema, *entity.complex_fields, *entity.navigation}
        select = _select_list(allowed, entity.type_name, seen.get("$select"))
        orderby = self._orderby(entity, seen.get("$orderby"))
        top = _non_negative("$top", seen.get("$top"))
        if behaviour is not NORMAL:
            if behaviour.desc_ignored:
                orderby = [(name, False) for name, _ in orderby]
            if behaviour.top_ignored:
                top = None
        return _Options(
            filter_text=seen.get("$filter"),
            select=select,
            orderby=orderby,
            top=top,
            skip=_non_negative("$skip", seen.get("$skip")) or 0,
            count=_boolean("$count", seen.get("$count")),
            expand=self._expand(entity, seen.get("$expand")),
            raw=[(name, value) for name, value in raw if name.lower() not in _NOT_CARRIED],
        )

    @staticmethod
    def _orderby(entity: EntitySet, text: str | None) -> list[tuple[str, bool]]:
        if not text:
            return []
        keys = []
        for part in split_top_level(text, ","):
            words = part.split()
            if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise ODataError(f"Syntax error in $orderby '{text}'.")
            if words[0] not in entity.schema:
                raise ODataError(
                    f"Could not find a property named '{words[0]}' on type '{entity.type_name}'."
                )
            keys.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
        return keys

    @staticmethod
    def _expand(
        entity: EntitySet, text: str | None
    ) -> dict[str, tuple[Callable[[Mapping[str, Any]], bool] | None, list[str] | None]]:
        if not text:
            return {}
        expand: dict[str, tuple[Callable[[Mapping[str, Any]], bool] | None, list[str] | None]] = {}
        items = list(entity.navigation) if text.strip() == "*" else split_top_level(text, ",")
        for item in items:
            name, _, inner = item.strip().partition("(")
            name = name.strip()
            schema = entity.navigation.get(name)
            if schema is None:
                raise ODataError(
                    f"Could not find a navigation property named '{name}' on type '{entity.type_name}'."
                )
            predicate, select = None, None
            if inner:
                if not inner.endswith(")"):
                    raise ODataError(f"Syntax error in $expand '{text}'.")
                for option in split_top_level(inner[:-1], ";"):
                    option_name, _, value = option.partition("=")
                    option_name = option_name.strip().lower()
                    type_name = f"{entity.type_name}.{name}"
                    if option_name == "$filter":
                        predicate = compile_filter(parse_filter(value), schema, type_name)
                    elif option_name == "$select":
                        select = _select_list(set(schema), type_name, value)
                    else:
                        raise ODataError(f"The nested option '{option_name}' in $expand is not supported.")
            expand[name] = (predicate, select)
        return expand

    # -- evaluation ---------------------------------------------------------------------------------------
    def _select_indices(
        self, entity: EntitySet, source: Source, options: _Options, behaviour: QueryBehaviour = NORMAL
    ) -> Sequence[int]:
        indices: Sequence[int] = range(len(source))
        version = getattr(source, "version", 0)  # read once: the keys below name the data they were built on
        overridden: Sequence[int] = getattr(source, "overridden", ())
        #: what the cache keys call this filter: its text, unless a switch changed what it means
        filter_id: Any = options.filter_text
        tree: Node | None = None
        if options.filter_text is not None:
            tree = parse_filter(options.filter_text)
            full = compile_filter(tree, entity.schema, entity.type_name)  # type-checks the whole expression
            if behaviour.key_bounds_ignored:
                tree = _without_key_bounds(tree, entity.key)
                filter_id = ("key bounds ignored", options.filter_text)
                if tree is not None:
                    full = compile_filter(tree, entity.schema, entity.type_name)
        if tree is not None:
            tests: list[Callable[[int], bool]] = []
            window, rest = _narrow(source, tree, range(len(source)), tests)
            indices = window
            if (rest is not None or tests) and len(window):
                predicate = None if rest is None else compile_filter(rest, entity.schema, entity.type_name)
                scan = getattr(source, "scan_row", source.row)  # the row without navigation properties

                def matches(index: int) -> bool:
                    if not all(test(index) for test in tests):
                        return False
                    return predicate is None or predicate(scan(index))

                needed = _first_needed(source, options, self.page_size, overridden)
                if needed is not None:  # a keyset page: scan only as far as the page (and one more row)
                    descending = bool(options.orderby) and options.orderby[0][1]
                    order = reversed(window) if descending else window
                    found = list(itertools.islice((i for i in order if matches(i)), needed))
                    indices = found[::-1] if descending else found  # _ordered reverses a descending key
                else:
                    key = (entity.name, "filter", filter_id, window.start, window.stop, version)
                    indices = self._cached(entity, key, lambda: [i for i in window if matches(i)])
            if overridden:
                scan_row = getattr(source, "scan_row", source.row)
                base = indices
                late_key = (entity.name, "late", filter_id, version)
                indices = self._cached(
                    entity,
                    late_key,
                    lambda: _patched(base, overridden, [i for i in overridden if full(scan_row(i))]),
                )
        if options.orderby:
            indices = self._ordered(entity, source, indices, options, version, filter_id)
        return indices

    def _ordered(
        self,
        entity: EntitySet,
        source: Source,
        indices: Sequence[int],
        options: _Options,
        version: int,
        filter_id: Any,
    ) -> Sequence[int]:
        keys = options.orderby
        monotonic = getattr(source, "monotonic", {})
        if len(keys) == 1 and keys[0][0] in monotonic:
            return indices[::-1] if keys[0][1] else indices
        cache_key = (entity.name, "order", filter_id, tuple(keys), len(indices), version)

        scan = getattr(source, "scan_row", source.row)

        def sort() -> list[int]:
            ordered = list(indices)
            for name, descending in reversed(keys):  # stable sorts, least significant key first
                ordered.sort(key=lambda i: _sort_key(scan(i).get(name)), reverse=descending)
            return ordered

        return self._cached(entity, cache_key, sort)

    def _cached(
        self, entity: EntitySet, key: tuple[Any, ...], compute: Callable[[], Sequence[int]]
    ) -> Sequence[int]:
        if not entity.cacheable:
            return compute()
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        value = compute()
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return value

    @staticmethod
    def _projector(entity: EntitySet, options: _Options) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        if options.select is None and not options.expand and not entity.navigation:
            return None  # rows are already exactly what is sent
        fields = options.select or [*entity.schema, *entity.complex_fields]
        fields = [name for name in fields if name not in entity.navigation]
        expand = options.expand

        def project(row: dict[str, Any]) -> dict[str, Any]:
            out = {name: row.get(name) for name in fields}
            for nav, (predicate, sub_select) in expand.items():
                items = row.get(nav) or []
                if predicate is not None:
                    items = [item for item in items if predicate(item)]
                if sub_select is not None:
                    items = [{name: item.get(name) for name in sub_select} for item in items]
                out[nav] = items
            return out

        return project

    def _single(self, entity: EntitySet, key_text: str, options: _Options, context: str) -> Reply:
        key = parse_filter(key_text)
        if not isinstance(key, Literal):
            raise ODataError(f"'{key_text}' is not a key literal.")
        source = entity.source()
        if isinstance(source, o.OrderSource):
            found = (
                [source.row(key.value - 1)]
                if isinstance(key.value, int) and 0 < key.value <= len(source)
                else []
            )
        else:
            found = [row for row in source.rows if row.get(entity.key) == key.value]  # type: ignore[attr-defined]
        if not found:
            raise ODataError(f"No {entity.name} entity with key {key_text}.", 404, "NotFound")
        if self._on_rows is not None:
            self._on_rows(1)
        project = self._projector(entity, options)
        row = found[0] if project is None else project(found[0])
        return json_reply(200, {"@odata.context": context + "/$entity", **row})

    @staticmethod
    def _next_link(
        base_url: str,
        subpath: str,
        options: _Options,
        skip: int,
        end: int,
        extra: Sequence[tuple[str, str]] = (),
    ) -> str:
        params = list(options.raw)
        if options.top is not None:
            params.append(("$top", str(end - skip)))
        params.append(("$skip", str(skip)))
        params.extend(extra)
        query = "&".join(
            f"{quote(name, safe='$')}={quote(value, safe=_QUOTE_SAFE)}" for name, value in params
        )
        return f"{base_url}{PREFIX}{subpath}?{query}"

    def _metadata(self, namespace: str) -> Reply:
        sets = [s for s in self.sets.values() if s.namespace == namespace]
        if not sets:
            raise ODataError(f"No namespace '{namespace}' exists.", 404, "NotFound")
        edm = {"int": "Edm.Int32", "decimal": "Edm.Decimal", "string": "Edm.String", "bool": "Edm.Boolean"}
        edm["datetime"] = "Edm.DateTimeOffset"
        lines = ['<?xml version="1.0" encoding="utf-8"?>']
        lines.append(
            '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
        )
        lines.append(
            f'<Schema Namespace="Norce.{namespace}" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        )
        for s in sets:
            lines.append(
                f'<EntityType Name="{s.type_name.rsplit(".", 1)[1]}"><Key><PropertyRef Name="{s.key}"/></Key>'
            )
            lines += [f'<Property Name="{n}" Type="{edm[t]}"/>' for n, t in s.schema.items()]
            lines.append("</EntityType>")
        lines.append("</Schema></edmx:DataServices></edmx:Edmx>")
        return Reply(200, "\n".join(lines).encode(), content_type="application/xml; charset=utf-8")


def _narrow(
    source: Source, node: Node, full: range, tests: list[Callable[[int], bool]]
) -> tuple[range, Node | None]:
    """The index window that can hold rows matching ``node``, and what is left to test on each row.

    ``and`` operands on fields the source can bound narrow the window: exactly (``index_range``, the
    operand is then dropped) or as a superset (``candidate_range``, the operand is kept). A bound on a field
    in the source's ``null_tests`` (``Updated`` of orders: within its candidate range the bound holds exactly
    when the value is not null) becomes a cheap per-index test appended to ``tests`` instead of a row test.
    An ``or`` narrows to the span of its operands' windows and is always kept. Anything else is kept and
    scanned: a ``$filter`` with ``or`` or ``eq null`` stays correct, it only reads more rows.
    """
    if isinstance(node, BoolOp) and node.op == "or":
        spans = [w for w in (_narrow(source, item, full, [])[0] for item in node.items) if len(w)]
        if not spans:
            return range(0), None
        return range(min(w.start for w in spans), max(w.stop for w in spans)), node
    window = full
    residual: list[Node] = []
    for part in conjuncts(node):
        bound = field_bound(part)
        narrowed: range | None = None
        exact = False
        if bound is not None and bound[3] in ("int", "decimal", "datetime"):
            narrowed = source.index_range(bound[0], bound[1], bound[2])
            exact = narrowed is not None
            candidate = getattr(source, "candidate_range", None)
            if narrowed is None and candidate is not None:
                narrowed = candidate(bound[0], bound[1], bound[2])
                null_test = getattr(source, "null_tests", {}).get(bound[0])
                if narrowed is not None and null_test is not None:
                    exact = True
                    if null_test not in tests:
                        tests.append(null_test)
        elif isinstance(part, BoolOp) and part.op == "or":
            narrowed = _narrow(source, part, full, [])[0]
        if narrowed is not None:  # an empty range when the bounds do not overlap
            window = range(
                max(window.start, narrowed.start), max(window.start, min(window.stop, narrowed.stop))
            )
        if not exact:
            residual.append(part)
    if not residual:
        return window, None
    return window, residual[0] if len(residual) == 1 else BoolOp("and", tuple(residual))


def _without_key_bounds(tree: Node, key: str) -> Node | None:
    """``tree`` without its top-level ``and`` operands that bound ``key`` (``key_bounds_ignored``); None when
    nothing is left."""
    kept = [
        part
        for part in conjuncts(tree)
        if not ((bound := field_bound(part)) is not None and bound[0] == key and bound[1] in _KEY_BOUND_OPS)
    ]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else BoolOp("and", tuple(kept))


def _step(text: str | None) -> int:
    """The counter a switch's custom option carries in a nextLink (0 when absent or not a number)."""
    return int(text) if text is not None and text.isdigit() else 0


def _patched(base: Sequence[int], overridden: Sequence[int], matching: list[int]) -> Sequence[int]:
    """``base`` (ascending indices found by bisection) without the ``overridden`` indices, plus those of them
    that match (``matching``, ascending), in index order.

    Why: a late ``Updated`` breaks the slot rule the bisection relies on, for those indices only; the rest of
    ``base`` stays exact. A range with no overridden index inside and nothing to add is returned as is.
    """
    if isinstance(base, range) and not matching and not any(i in base for i in overridden):
        return base
    drop = set(overridden)
    kept = [i for i in base if i not in drop]
    return list(heapq.merge(kept, matching))


def _select_list(allowed: set[str], type_name: str, text: str | None) -> list[str] | None:
    if text is None or text.strip() in ("", "*"):
        return None
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if name not in allowed:
            raise ODataError(f"Could not find a property named '{name}' on type '{type_name}'.")
    return names


def _sort_key(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)


def _non_negative(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit():
        raise ODataError(f"Invalid value '{text}' for {name}: expected a non-negative integer.")
    return int(text)


def _boolean(name: str, text: str | None) -> bool:
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise ODataError(f"Invalid value '{text}' for {name}: expected true or false.")
    return text.lower() == "true"


def _first_needed(source: Any, options: _Options, page_size: int, overridden: Any) -> int | None:
    """How many matches a page needs when the rows come in index order and nothing counts them all.

    Why: a keyset page (``Id gt <last> and ...``, ``$orderby=Id``) has a new filter text each time, so the
    per-query cache never hits, and scanning the whole candidate range for one page made each page cost
    what a full listing costs. Norce answers such a page from an index, at the cost of a page; so does the
    simulator now, by scanning only until it has the page and one more row (which says a nextLink follows).
    Not with ``$count`` (it needs every match), ``$skip`` (served from the cached full scan) or late updates.
    """
    if options.count or overridden or options.skip:
        return None
    keys = options.orderby
    monotonic = getattr(source, "monotonic", {})
    if keys and not (len(keys) == 1 and keys[0][0] in monotonic):
        return None
    page = page_size if options.top is None else min(options.top, page_size)
    return options.skip + page + 1
