"""GetApplication answers Norce's published Application shape (tests/norce_contracts/metadata.json)."""

from __future__ import annotations

import json
from pathlib import Path

CONTRACT = Path(__file__).resolve().parents[1] / "norce_contracts" / "metadata.json"
PATH = "/commerce/metadata/1.1/GetApplication?format=json&cultureCode="


def _names(contract: dict, type_name: str) -> set[str]:
    return {field["name"] for field in contract["response"][type_name]}


def test_get_application_has_every_published_field_and_sub_type(make_sim):
    contract = json.loads(CONTRACT.read_text())
    _, client = make_sim(application_id=4321, application_name="Webshop SE")
    response = client.get(PATH)
    assert response.status_code == 200
    app = response.json()
    assert set(app) == _names(contract, "Application")
    assert app["Id"] == 4321 and app["ParentId"] == 4321 and app["Name"] == "Webshop SE"
    assert set(app["Client"]) == _names(contract, "Client")
    for pair, item_type in [
        ("Cultures", "Culture"),
        ("Currencies", "Currency"),
        ("SalesAreas", "SalesArea"),
        ("Roles", "Role"),
        ("Countries", "Country"),
    ]:
        assert set(app[pair]) == _names(contract, pair) == {"List", "Default"}
        assert app[pair]["List"] and app[pair]["Default"] in app[pair]["List"]
        assert all(set(item) == _names(contract, item_type) for item in app[pair]["List"])
    assert set(app["Pricelists"]) == _names(contract, "Pricelists")
    assert app["Pricelists"]["Default"] in app["Pricelists"]["Ids"]
    assert all(set(item) == _names(contract, "IdValue") for item in app["Authorizations"])


def test_order_currency_and_country_ids_resolve_in_the_application(make_sim):
    _, client = make_sim(orders=300)
    app = client.get(PATH).json()
    currencies = {c["Id"] for c in app["Currencies"]["List"]}
    countries = {c["Id"] for c in app["Countries"]["List"]}
    orders = client.query("Orders/Orders", **{"$select": "CurrencyId,DeliveryCountryId"}).json()["value"]
    assert {o["CurrencyId"] for o in orders} <= currencies
    assert {o["DeliveryCountryId"] for o in orders} <= countries
