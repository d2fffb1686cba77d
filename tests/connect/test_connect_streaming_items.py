"""The items-file reader: JSON arrays and JSON lines, streamed in chunks, memory bounded whatever the size."""

from __future__ import annotations

import io
import json
import tracemalloc

import pytest

from airflow_provider_norce.connect.items import FileItems, iter_json_items

ITEMS = [
    {"PartNo": "100001", "Name": 'Å \u00e9 \u4e2d \U0001f600 \\"quoted\\"', "OnhandValue": 12.5},
    {"PartNo": "100002", "Nested": {"list": [1, 2, {"deep": None}]}, "OnhandValue": 1234567890123},
    {"PartNo": "100003", "Flag": True, "Empty": "", "Number": -1e-5},
]


def read(text: str, chunk_bytes: int) -> list:
    return list(iter_json_items(io.BytesIO(text.encode("utf-8")), "test", chunk_bytes))


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 64, 1 << 16])
def test_array_across_every_chunk_boundary(chunk_bytes):
    text = "\ufeff  [\n" + " ,\n".join(json.dumps(i, ensure_ascii=False, indent=2) for i in ITEMS) + "\n]\n"
    assert read(text, chunk_bytes) == ITEMS


@pytest.mark.parametrize("chunk_bytes", [1, 5, 1 << 16])
def test_json_lines_across_chunk_boundaries(chunk_bytes):
    text = "\n".join(json.dumps(i, ensure_ascii=False) for i in ITEMS) + "\n\n"
    assert read(text, chunk_bytes) == ITEMS
    assert read(text.rstrip("\n"), chunk_bytes) == ITEMS  # no final newline
    assert read(text.replace("\n", "\r\n"), chunk_bytes) == ITEMS


def test_a_number_cut_by_a_chunk_boundary_is_not_cut_short():
    assert read("[12345678]", 3) == [12345678]
    assert read("123\n456", 2) == [123, 456]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1} {"b": 2}]', "expected ',' or ']' after item 1"),
        ('[{"a": 1},]', "expected an item after ','"),
        ('[{"a": 1}', "ends without its closing"),
        ('[{"a": 1}] trailing', "after the JSON array"),
        ('[{"a": tru}]', "item 1 is not valid JSON"),
        ('{"a": 1}\n{"a": \n', "line 2 is not valid JSON"),
    ],
)
def test_malformed_input_names_the_place(text, message):
    with pytest.raises(ValueError, match=message):
        read(text, 4)


def test_empty_inputs():
    assert read("", 8) == [] and read("   \n", 8) == [] and read("[ ]", 1) == []


def test_non_utf8_is_a_clear_error():
    with pytest.raises(ValueError, match="not UTF-8"):
        list(iter_json_items(io.BytesIO(b'[{"a": "\xff"}]'), "test"))


def test_non_object_items_are_refused_with_their_number(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('[{"a": 1}, 5]')
    with pytest.raises(ValueError, match=r"item 2 of items_path .* is a int, not a JSON object"):
        FileItems(str(path), "t").count()


@pytest.mark.parametrize("fmt", ["array", "jsonl"])
def test_memory_stays_bounded_for_a_large_file(tmp_path, fmt):
    n = 60_000
    path = tmp_path / f"big.{fmt}"
    with path.open("w") as handle:
        if fmt == "array":
            handle.write("[")
        for i in range(n):
            item = json.dumps(
                {"PartNo": f"{i:08d}", "WarehouseCode": "MAIN", "OnhandValue": i, "Pad": "x" * 80}
            )
            handle.write(("," if i and fmt == "array" else "") + item + ("\n" if fmt == "jsonl" else ""))
        if fmt == "array":
            handle.write("]")
    size = path.stat().st_size
    assert size > 7_000_000

    source = FileItems(str(path), "t")
    tracemalloc.start()
    try:
        count = source.count()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == n
    assert peak < 1_000_000, f"peak {peak} bytes for a {size}-byte file"
