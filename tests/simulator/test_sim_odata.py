"""The $filter parser and evaluator on their own (no server): syntax, types, datetimes."""

from __future__ import annotations

import pytest

from airflow_provider_norce.simulator.odata import (
    ODataError,
    compile_filter,
    conjuncts,
    field_bound,
    parse_datetime,
    parse_filter,
)

SCHEMA = {"Id": "int", "Name": "string", "Price": "decimal", "IsActive": "bool", "Updated": "datetime"}
ROW = {"Id": 7, "Name": "O'Brien", "Price": 9.5, "IsActive": True, "Updated": "2026-11-27T12:00:00Z"}


def matches(text: str, row: dict | None = None) -> bool:
    return compile_filter(parse_filter(text), SCHEMA, "Test.Row")(row or ROW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Id eq 7", True),
        ("Id ne 7", False),
        ("Id gt 6 and Id lt 8", True),
        ("Id ge 8 or Id le 6", False),
        ("(Id eq 1 or Id eq 7) and IsActive eq true", True),
        ("not (Id eq 7)", False),
        ("IsActive", True),
        ("Name eq 'O''Brien'", True),
        ("Price gt 9", True),
        ("Price le 9.49", False),
        ("Updated ge 2026-11-27T00:00:00Z and Updated lt 2026-11-28T00:00:00Z", True),
        ("Updated eq 2026-11-27T13:00:00+01:00", True),
        ("Updated gt 2026-11-27T12:00:00.5Z", False),
        ("Updated lt 2026-11-28", True),
        ("Name ne null", True),
        ("Name eq null", False),
        ("startswith(Name,'O''B')", True),
        ("contains(tolower(Name),'brien')", True),
        ("endswith(Name,'x')", False),
        ("2026-11-27T00:00:00Z le Updated", True),
    ],
)
def test_filter_semantics(text, expected):
    assert matches(text) is expected


def test_null_field_values_never_satisfy_ordering_comparisons():
    row = {**ROW, "Updated": None, "Price": None}
    assert not matches("Updated ge 2026-01-01T00:00:00Z", row)
    assert not matches("Price lt 100", row)
    assert matches("Price eq null", row)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Id eq",
        "Id eq 1 and",
        "(Id eq 1",
        "Id eq 1)",
        "Id = 1",
        "Id eq 1 Name eq 'x'",
        "Name eq 'unterminated",
        "Unknown eq 1",
        "Id eq 'seven'",
        "Updated ge '2026-11-27'",
        "Name gt 5",
        "Id",
        "IsActive gt true",
        "nosuchfunc(Name)",
        "startswith(Id,'1')",
        "Updated ge 2026-13-45T00:00:00Z",
    ],
)
def test_bad_filters_raise_400(text):
    with pytest.raises(ODataError) as caught:
        compile_filter(parse_filter(text), SCHEMA, "Test.Row")
    assert caught.value.status == 400
    assert caught.value.message


def test_conjuncts_and_bounds_expose_range_conditions():
    tree = parse_filter("Updated ge 2026-11-27T00:00:00Z and (Id lt 5 and Name eq 'x') and 3 lt Id")
    parts = conjuncts(tree)
    assert len(parts) == 4
    bounds = [field_bound(part) for part in parts]
    assert bounds[0] == ("Updated", "ge", parse_datetime("2026-11-27T00:00:00Z"), "datetime")
    assert bounds[3] == ("Id", "gt", 3, "int")  # literal on the left is flipped


def test_parse_datetime_handles_offsets_and_fractions():
    assert parse_datetime("2026-11-27T01:00:00+01:00") == parse_datetime("2026-11-27T00:00:00Z")
    assert parse_datetime("2026-11-27T00:00:00.25Z") - parse_datetime(
        "2026-11-27T00:00:00Z"
    ) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        parse_datetime("yesterday")
