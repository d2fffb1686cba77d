"""Switches that make the simulator's Query service misbehave, one per OData behaviour a client may rely on.

Why: the export's fast path (concurrent keyset slices) trusts ``$orderby desc``, ``$top``, ``Id`` bounds,
non-empty pages that lead somewhere and pages that do not overlap. Norce publishes none of that, so tests turn
each guarantee off here and prove the export still writes an exact file or fails. All switches are off by
default; :func:`make_query_behaviour` validates them (a ValueError names the switch).

* ``desc_ignored``: ``desc`` in ``$orderby`` is read as ``asc`` (``$orderby=Id desc&$top=1`` answers the
  smallest Id).
* ``top_ignored``: ``$top`` is ignored (full pages and nextLinks while rows remain).
* ``key_bounds_ignored``: top-level ``and`` conjuncts comparing the set's key with ``gt ge lt le`` are dropped.
* ``empty_pages=n``: before each real page, n pages ``"value": []`` whose nextLink leads on ("filter after
  paging"); the link carries the custom option ``simempty=k``, the real page's own nextLink does not.
* ``empty_page_chain``: every listing answers an empty page with a new nextLink (``simchain=k``), forever.
* ``duplicate_rows=n``: every nextLink's ``$skip`` advances by ``page_size - n``: each page repeats the last n
  rows of the page before.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: the custom query options the switches carry in nextLinks (never carried on by a real page's nextLink)
EMPTY_OPTION = "simempty"
CHAIN_OPTION = "simchain"


@dataclass(frozen=True)
class QueryBehaviour:
    """One immutable switch set; replaced whole, so a request reads one consistent set without a lock."""

    desc_ignored: bool = False
    top_ignored: bool = False
    key_bounds_ignored: bool = False
    empty_pages: int = 0
    empty_page_chain: bool = False
    duplicate_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able view (for ``GET /_sim/query-behaviour``)."""
        return asdict(self)


#: everything normal; the Query service compares against this one object, so the normal path costs one check
NORMAL = QueryBehaviour()
_INT_SWITCHES = ("empty_pages", "duplicate_rows")


def make_query_behaviour(**switches: Any) -> QueryBehaviour:
    """Validate ``set_query_behaviour``'s arguments (also ``POST /_sim/query-behaviour``); unnamed switches are
    off. All off gives :data:`NORMAL` itself."""
    names = [f.name for f in fields(QueryBehaviour)]
    for name, value in switches.items():
        if name not in names:
            raise ValueError(f"unknown query behaviour switch {name!r}; one of {', '.join(names)}")
        if name in _INT_SWITCHES:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"query behaviour switch {name!r} must be an integer >= 0, not {value!r}")
        elif not isinstance(value, bool):
            raise ValueError(f"query behaviour switch {name!r} must be true or false, not {value!r}")
    behaviour = QueryBehaviour(**switches)
    return NORMAL if behaviour == NORMAL else behaviour
