"""Choosing the token store shared beyond one process, from the connection's ``token_cache`` extra."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_norce.token_cache import SharedTokenStore


def store_for(kind: str) -> SharedTokenStore | None:
    """``process``: none (the in-process cache alone). ``machine``: the machine-wide store, once it exists."""
    if kind == "process":
        return None
    return None
