"""The misbehaving-Query switches (``set_query_behaviour``): each plays one OData guarantee broken, so export
tests can prove they write an exact file or fail. Real sockets, plain requests."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_norce.simulator.query_behaviour import QueryBehaviour

ORDERS = "Orders/Orders"
ALL_OFF = {
    "desc_ignored": False,
    "top_ignored": False,
    "key_bounds_ignored": False,
    "empty_pages": 0,
    "empty_page_chain": False,
    "duplicate_rows": 0,
}


def ids(page: dict) -> list[int]:
    return [row["Id"] for row in page["value"]]


def follow(client, first: requests.Response, limit: int = 100) -> list[dict]:
    """Every page of a listing, following nextLinks (at most ``limit`` pages)."""
    pages, response = [], first
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = pages[-1].get("@odata.nextLink")
        if not link or len(pages) >= limit:
            return pages
        response = client.session.get(link, headers=client.headers(), timeout=10)


# -- each switch ---------------------------------------------------------------------------------------------
def test_desc_ignored_answers_the_smallest_id(make_sim):
    sim, client = make_sim(orders=1000)
    assert ids(client.query(ORDERS, **{"$orderby": "Id desc", "$top": "1"}).json()) == [1000]
    sim.set_query_behaviour(desc_ignored=True)
    assert ids(client.query(ORDERS, **{"$orderby": "Id desc", "$top": "1"}).json()) == [1]
    ascending = client.query(ORDERS, **{"$orderby": "StatusId,Id", "$top": "3"}).json()
    assert client.query(ORDERS, **{"$orderby": "StatusId desc,Id desc", "$top": "3"}).json() == ascending


def test_top_ignored_pages_as_if_no_top(make_sim):
    sim, client = make_sim(orders=1200)
    sim.set_query_behaviour(top_ignored=True)
    page = client.query(ORDERS, **{"$top": "3", "$orderby": "Id"}).json()
    assert ids(page) == list(range(1, 501))
    link = page["@odata.nextLink"]
    assert "$top" not in parse_qs(urlsplit(link).query)
    pages = follow(client, client.query(ORDERS, **{"$top": "3"}))
    assert [len(p["value"]) for p in pages] == [500, 500, 200]


def test_key_bounds_ignored_drops_only_key_range_conjuncts(make_sim):
    sim, client = make_sim(orders=1000, products=5)
    window = {"$filter": "Id ge 100 and Id lt 110 and Id ne 3", "$orderby": "Id"}
    assert ids(client.query(ORDERS, **window).json()) == list(range(100, 110))
    sim.set_query_behaviour(key_bounds_ignored=True)
    rows = [i for page in follow(client, client.query(ORDERS, **window)) for i in ids(page)]
    assert rows == [i for i in range(1, 1001) if i != 3], "the bounds are dropped, the ne is kept"
    keyset = client.query(ORDERS, **{"$filter": "Id gt 990", "$orderby": "Id", "$top": "2"}).json()
    assert ids(keyset) == [1, 2]
    products = client.query("Products/Products", **{"$filter": "Id gt 7 and Id le 8"}).json()
    assert ids(products) == list(range(1, 10))
    bad = client.query(ORDERS, **{"$filter": "Id ge 'x'"})
    assert bad.status_code == 400, "the whole filter is still type-checked"


def test_empty_pages_lead_on_to_every_row(make_sim):
    sim, client = make_sim(orders=1200)
    sim.set_query_behaviour(empty_pages=1)
    pages = follow(client, client.query(ORDERS, **{"$orderby": "Id"}))
    assert [len(p["value"]) for p in pages] == [0, 500, 0, 500, 0, 200]
    assert [i for p in pages for i in ids(p)] == list(range(1, 1201))
    links = [p["@odata.nextLink"] for p in pages[:-1]]
    assert len(set(links)) == len(links)
    assert all("simempty=1" in link for link in links[::2])
    assert not any("simempty" in link for link in links[1::2]), "a real page's link does not carry it"
    assert sim.counters()["query_empty_pages"] == 3

    keyset = client.query(ORDERS, **{"$filter": "Id gt 700", "$orderby": "Id", "$top": "5"}).json()
    assert keyset["value"] == [] and "@odata.nextLink" in keyset, "a client's own request gets one first"
    link = keyset["@odata.nextLink"]
    assert parse_qs(urlsplit(link).query)["$top"] == ["5"]
    assert ids(client.session.get(link, headers=client.headers(), timeout=10).json()) == [
        701,
        702,
        703,
        704,
        705,
    ]

    sim.set_query_behaviour(empty_pages=2)
    pages = follow(client, client.query(ORDERS, **{"$top": "600"}))
    assert [len(p["value"]) for p in pages] == [0, 0, 500, 0, 0, 100]


def test_empty_page_chain_is_endless_and_new_each_time(make_sim):
    sim, client = make_sim(orders=100)
    sim.set_query_behaviour(empty_page_chain=True)
    pages = follow(client, client.query(ORDERS, **{"$filter": "Id gt 5"}), limit=50)
    assert len(pages) == 50
    assert all(page["value"] == [] for page in pages)
    links = [page["@odata.nextLink"] for page in pages]
    assert len(set(links)) == 50
    assert links[-1].endswith("simchain=50")
    assert sim.counters()["query_empty_pages"] == 50


def test_duplicate_rows_repeat_the_tail_of_the_page_before(make_sim):
    sim, client = make_sim(orders=1200)
    sim.set_query_behaviour(duplicate_rows=10)
    pages = follow(client, client.query(ORDERS, **{"$orderby": "Id"}))
    assert [ids(p)[0] for p in pages] == [1, 491, 981]
    assert ids(pages[1])[:10] == ids(pages[0])[-10:]
    assert ids(pages[2])[:10] == ids(pages[1])[-10:]
    rows = [i for p in pages for i in ids(p)]
    assert len(rows) == 1220 and sorted(set(rows)) == list(range(1, 1201))


# -- validation and control ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("switches", "named"),
    [
        ({"desc_ignored": 1}, "desc_ignored"),
        ({"top_ignored": "true"}, "top_ignored"),
        ({"empty_pages": -1}, "empty_pages"),
        ({"empty_pages": True}, "empty_pages"),
        ({"duplicate_rows": 1.5}, "duplicate_rows"),
        ({"duplicate_rows": 500}, "duplicate_rows"),
        ({"ignore_everything": True}, "ignore_everything"),
    ],
)
def test_bad_switches_are_refused_naming_the_switch(make_sim, switches, named):
    sim, _ = make_sim(orders=10)
    sim.set_query_behaviour(top_ignored=True)
    with pytest.raises(ValueError, match=named):
        sim.set_query_behaviour(**switches)
    assert sim.query_behaviour() == {**ALL_OFF, "top_ignored": True}, "a refused set changes nothing"


def test_set_replaces_the_whole_set(make_sim):
    sim, _ = make_sim(orders=10)
    assert sim.query_behaviour() == ALL_OFF
    sim.set_query_behaviour(desc_ignored=True, empty_pages=2)
    assert sim.query_behaviour() == {**ALL_OFF, "desc_ignored": True, "empty_pages": 2}
    sim.set_query_behaviour(top_ignored=True)
    assert sim.query_behaviour() == {**ALL_OFF, "top_ignored": True}
    sim.set_query_behaviour()
    assert sim.query_behaviour() == ALL_OFF == QueryBehaviour().as_dict()


def test_http_control_and_reset_clears_the_switches(make_sim):
    sim, client = make_sim(orders=1000)
    control = sim.base_url + "/_sim/query-behaviour"
    assert requests.get(control, timeout=5).json() == ALL_OFF
    answer = requests.post(control, json={"desc_ignored": True, "duplicate_rows": 3}, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {**ALL_OFF, "desc_ignored": True, "duplicate_rows": 3}
    assert sim.query_behaviour() == answer.json()
    assert ids(client.query(ORDERS, **{"$orderby": "Id desc", "$top": "1"}).json()) == [1]
    for body in ({"empty_pages": "2"}, {"nope": True}, [1]):
        refused = requests.post(control, json=body, timeout=5)
        assert refused.status_code == 400
        assert refused.json()["error"]
    assert "empty_pages" in requests.post(control, json={"empty_pages": "2"}, timeout=5).json()["error"]
    assert requests.get(control, timeout=5).json()["duplicate_rows"] == 3
    assert requests.post(sim.base_url + "/_sim/reset", timeout=5).status_code == 200
    assert requests.get(control, timeout=5).json() == ALL_OFF
    assert ids(client.query(ORDERS, **{"$orderby": "Id desc", "$top": "1"}).json()) == [1000]


# -- on_query_page -------------------------------------------------------------------------------------------
def test_on_query_page_counts_listings_and_may_add_rows_mid_export(make_sim):
    sim, client = make_sim(orders=1200, products=5)
    seen: list[int] = []

    def on_page(n: int) -> None:
        seen.append(n)
        if n == 1:
            sim.add_orders(10)

    assert sim.on_query_page is None
    sim.on_query_page = on_page
    rows, pages = client.all_pages(ORDERS, **{"$orderby": "Id"})
    assert pages == 3 and seen == [1, 2, 3]
    assert [row["Id"] for row in rows] == list(range(1, 1211)), "the first page is sent as it was chosen"
    assert client.get("/commerce/query/2.0/Orders/$metadata").status_code == 200
    assert client.get("/commerce/query/2.0/Orders/Orders(5)").status_code == 200
    assert client.query(ORDERS, **{"$filter": "Nope eq 1"}).status_code == 400
    assert seen == [1, 2, 3], "not for $metadata, single-key reads or refused requests"

    sim.set_query_behaviour(empty_pages=1)
    again: list[int] = []
    sim.on_query_page = again.append
    client.all_pages("Products/Products")
    assert again == [1, 2], "counted afresh once set again; empty pages are listings too"
    sim.on_query_page = None
    client.query(ORDERS)
    assert again == [1, 2]


# -- switches off --------------------------------------------------------------------------------------------
def test_all_switches_off_answers_byte_identical(make_sim):
    sim, client = make_sim(orders=1200, products=5)
    requests_to_compare = [
        (ORDERS, {"$orderby": "Id desc", "$top": "700", "$count": "true"}),
        (ORDERS, {"$filter": "Id gt 100 and Id le 900", "$orderby": "Id", "$expand": "Items"}),
        (ORDERS, {"$filter": "Id ge 5", "$select": "Id,Updated", "$skip": "10", "simempty": "1"}),
        ("Products/Products", {"$filter": "Id gt 2", "$orderby": "Id desc", "$top": "3"}),
    ]

    def bodies() -> list[bytes]:
        out = []
        for entity, params in requests_to_compare:
            first = client.query(entity, **params)
            out.append(first.content)
            link = first.json().get("@odata.nextLink")
            if link:
                out.append(client.session.get(link, headers=client.headers(), timeout=10).content)
        return out

    before = bodies()
    sim.set_query_behaviour(
        desc_ignored=True,
        top_ignored=True,
        key_bounds_ignored=True,
        empty_pages=2,
        duplicate_rows=7,
    )
    assert bodies() != before
    sim.set_query_behaviour(empty_page_chain=True)
    assert bodies() != before
    sim.set_query_behaviour()
    assert bodies() == before
    assert sim.counters()["query_empty_pages"] > 0
