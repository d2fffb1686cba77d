"""The simulator's answer to ``GET /commerce/metadata/1.1/GetApplication``.

Shape copied from Norce's published Application type (``tests/norce_contracts/metadata.json response``):
PascalCase ``Id, ParentId, Key, Name, Url, SenderEmailAddress, Client{Id, Key, Name}``, and the
``{List, Default}`` pairs ``Cultures``, ``Currencies``, ``SalesAreas``, ``Roles``, ``Countries``, plus
``Pricelists{Ids, Default}`` and ``Authorizations`` (``IdValue`` list). Sub-type details (Currency
``Prefix``/``Suffix``, Role ``Description``, ``Pricelists.Default`` as an int) come from the legacy Storm client
XSD, as ``metadata.json notes`` says. The values are plausible, not Norce's: the currencies and countries are
the ones the simulator's orders use (:mod:`.orders`), so ``CurrencyId``/``DeliveryCountryId`` resolve here.
"""

from __future__ import annotations

import uuid
from typing import Any

from airflow_provider_norce.simulator.orders import CLIENT_ID, COUNTRIES, CURRENCIES

_CULTURES = (("sv-SE", "Swedish (Sweden)"), ("en-GB", "English (United Kingdom)"))
_PREFIX_SUFFIX = {"SEK": ("", " kr"), "NOK": ("", " kr"), "EUR": ("€", ""), "DKK": ("", " kr.")}


def _key(kind: str, number: int) -> str:
    """A stable UUID per simulated object, so a test may compare two answers."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"norce-simulator/{kind}/{number}"))


def application_payload(application_id: int, name: str) -> dict[str, Any]:
    """The Application object for the simulator's application (its only one: ``ParentId`` equals ``Id``)."""
    cultures = [{"Code": code, "Name": text} for code, text in _CULTURES]
    currencies = [
        {
            "Id": number,
            "Name": code,
            "Code": code,
            "Prefix": _PREFIX_SUFFIX[code][0],
            "Suffix": _PREFIX_SUFFIX[code][1],
        }
        for number, code in CURRENCIES
    ]
    countries = [{"Id": number, "Name": text, "Code": code} for number, code, text in COUNTRIES]
    sales_areas = [
        {"Id": number, "Name": text, "CurrencyId": number, "VatCodeId": 1}
        for number, _code, text in COUNTRIES
    ]
    roles = [{"Id": 1, "Name": "Customer", "Description": "Default role of web customers"}]
    return {
        "Id": application_id,
        "ParentId": application_id,
        "Key": _key("application", application_id),
        "Name": name[:50],
        "Url": f"https://shop{application_id}.example.com",
        "SenderEmailAddress": "noreply@example.com",
        "Client": {"Id": CLIENT_ID, "Key": _key("client", CLIENT_ID), "Name": "Norce simulator client"},
        "Cultures": {"List": cultures, "Default": cultures[0]},
        "Currencies": {"List": currencies, "Default": currencies[0]},
        "Pricelists": {"Ids": [1], "Default": 1},
        "SalesAreas": {"List": sales_areas, "Default": sales_areas[0]},
        "Roles": {"List": roles, "Default": roles[0]},
        "Countries": {"List": countries, "Default": countries[0]},
        "Authorizations": [{"Id": 1, "Value": "Read", "Code": "READ"}],
    }
