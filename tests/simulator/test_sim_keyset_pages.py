"""Keyset pages (``Id gt <last>``, ``$orderby=Id``) and the last-key probe are answered exactly.

The simulator answers such a page by scanning only until it has the page and one more row (an indexed Norce
pays about a page for it). These tests hold that shortcut to the answer of the full listing, for the filters a
concurrent export sends: the window, its ``Created`` fallback (an ``or``, so every row is tested) and key bounds.
"""

from __future__ import annotations

import pytest

A, B = "2026-11-05T00:00:00Z", "2026-11-25T00:00:00Z"
WINDOW = f"Updated ge {A} and Updated lt {B}"
FALLBACK = f"({WINDOW}) or (Updated eq null and Created ge {A} and Created lt {B})"


def keyset(client, condition: str, low: int, high: int) -> tuple[list[int], int]:
    """Every key of ``[low, high)`` matching ``condition``, read page by page by keyset; and the pages."""
    keys: list[int] = []
    bound, pages = f"Id ge {low}", 0
    while True:
        response = client.query(
            "Orders/Orders", **{"$filter": f"({condition}) and {bound} and Id lt {high}", "$orderby": "Id"}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        keys += [row["Id"] for row in page["value"]]
        if "@odata.nextLink" not in page or not page["value"]:
            return keys, pages
        bound = f"Id gt {keys[-1]}"


@pytest.mark.parametrize("condition", [WINDOW, FALLBACK, "StatusId eq 5"])
def test_keyset_pages_give_the_rows_of_the_full_listing(make_sim, condition):
    _, client = make_sim(orders=3000, page_size=50)
    everything, _ = client.all_pages("Orders/Orders", **{"$filter": condition})
    expected = [row["Id"] for row in everything if 400 <= row["Id"] < 2600]
    keys, pages = keyset(client, condition, 400, 2600)
    assert keys == expected
    assert pages == max(1, -(-len(expected) // 50))  # a nextLink only while rows remain: no empty page


@pytest.mark.parametrize("condition", [WINDOW, FALLBACK])
def test_the_last_key_probe_answers_the_largest_matching_key(make_sim, condition):
    _, client = make_sim(orders=3000, page_size=50)
    everything, _ = client.all_pages("Orders/Orders", **{"$filter": condition})
    response = client.query(
        "Orders/Orders", **{"$filter": condition, "$orderby": "Id desc", "$top": "1", "$select": "Id"}
    )
    page = response.json()
    assert page["value"] == [{"Id": max(row["Id"] for row in everything)}]
    assert "@odata.nextLink" not in page
    first = client.query("Orders/Orders", **{"$filter": condition, "$orderby": "Id"}).json()
    assert [row["Id"] for row in first["value"]] == [row["Id"] for row in everything[:50]]
    assert first["@odata.nextLink"].endswith("$skip=50")
