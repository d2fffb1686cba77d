"""Issue 9, case 10: the items-file reader on hostile input.

Parsing is linear in the size of an item (a 12 MB item used to take 23.5 s: every chunk re-parsed the item
from its start and copied the buffer), and a file that cannot be an items file (empty, not JSON, one JSON
object, a line too long, invalid UTF-8) is refused before any request with one error naming the file and
the line. Linearity is measured by counting the characters the parser examines and copies, not by timing.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from norce_airflow_testlib import use_mock_connection

from airflow_provider_norce.connect import items as connect_items
from airflow_provider_norce.connect.items import FileItems, iter_json_items
from airflow_provider_norce.operators.connect import NorceConnectImportOperator
from airflow_provider_norce.tokens.cache import PROCESS_TOKEN_CACHE

BASE = "https://acme.api-se.norce.tech"
TOKEN_URL = f"{BASE}/identity/1.0/connect/token"
CONNECT = re.compile(re.escape(f"{BASE}/commerce/connect/4.0/") + ".*")
SECRET = "fault-item-files-client-secret"


# -- linear parsing ------------------------------------------------------------------------------------


class Work:
    """Counts the characters handed to ``raw_decode`` (from the start index on) and the characters of
    the buffer built by each read: the two costs that were quadratic in the size of one item."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoded = 0
        self.built = 0
        real_decoder = connect_items._DECODER
        real_more = connect_items._Buffer.more
        work = self

        class CountingDecoder:
            def raw_decode(self, text: str, idx: int = 0):
                work.decoded += len(text) - idx
                return real_decoder.raw_decode(text, idx)

        def more(buf, *args, **kwargs):
            result = real_more(buf, *args, **kwargs)
            work.built += len(buf.text)
            return result

        monkeypatch.setattr(connect_items, "_DECODER", CountingDecoder())
        monkeypatch.setattr(connect_items._Buffer, "more", more)

    @property
    def total(self) -> int:
        return self.decoded + self.built


def big_string_item(size: int) -> dict:
    return {"PartNo": "1", "Text": "x" * size}


def big_nested_item(size: int) -> dict:
    return {"PartNo": "1", "Values": list(range(size // 7))}


def parse_work(monkeypatch, text: str, chunk_bytes: int) -> tuple[int, list]:
    with monkeypatch.context() as patch:
        work = Work(patch)
        items = list(iter_json_items(io.BytesIO(text.encode("utf-8")), "test", chunk_bytes))
    return work.total, items


@pytest.mark.parametrize("make_item", [big_string_item, big_nested_item])
@pytest.mark.parametrize("fmt", ["array", "jsonl"])
def test_one_big_item_is_parsed_in_linear_work(monkeypatch, make_item, fmt):
    chunk = 1024
    sizes = (64 * 1024, 256 * 1024)
    works = []
    for size in sizes:
        item = make_item(size)
        line = json.dumps(item)
        text = f"[{line}]" if fmt == "array" else f'{{"PartNo": "0"}}\n{line}\n{{"PartNo": "2"}}\n'
        work, items = parse_work(monkeypatch, text, chunk)
        assert items[-2 if fmt == "jsonl" else 0] == item
        assert work <= 8 * len(text), f"{work} characters of work for a {len(text)}-character item"
        works.append(work)
    ratio = works[1] / works[0]
    assert ratio < 6, f"work grew {ratio:.1f}x for a 4x larger item (quadratic is 16x)"


def test_a_12_mb_item_costs_a_few_times_its_size(monkeypatch):
    text = json.dumps([big_string_item(12 << 20)])
    work, items = parse_work(monkeypatch, text, connect_items.CHUNK_BYTES)
    assert len(items) == 1 and len(items[0]["Text"]) == 12 << 20
    assert work <= 8 * len(text)  # the buffer doubles: a few passes over the item, not one per chunk


def test_many_small_items_still_cost_their_size(monkeypatch):
    text = json.dumps([{"PartNo": str(i), "Pad": "y" * 50} for i in range(5000)])
    work, items = parse_work(monkeypatch, text, 64)
    assert len(items) == 5000
    assert work <= 4 * len(text)


def test_each_pass_reads_the_file_once(tmp_path, monkeypatch):
    path = tmp_path / "items.json"
    path.write_text(json.dumps([{"PartNo": str(i), "Text": "z" * 3000} for i in range(100)]))
    read_bytes = []
    real_open = FileItems._open

    def counting_open(self):
        stream = real_open(self)
        real_read = stream.read

        def read(size=-1):
            data = real_read(size)
            read_bytes.append(len(data))
            return data

        stream.read = read
        return stream

    monkeypatch.setattr(FileItems, "_open", counting_open)
    source = FileItems(str(path), "t")
    assert source.count() == 100
    assert len(list(source)) == 100
    assert sum(read_bytes) == 2 * path.stat().st_size  # validate, then post: each byte once per pass


# -- files that are not items files: refused with the file and the line -------------------------------


def file_error(tmp_path, content: bytes, name: str = "items.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        FileItems(str(path), "load_items").count()
    message = str(err.value)
    assert "'load_items'" in message and name in message, message
    return message


@pytest.mark.parametrize("content", [b"", b"   \n\n\t", b"\xef\xbb\xbf\n"])
def test_an_empty_file_is_refused(tmp_path, content):
    message = file_error(tmp_path, content)
    assert "is empty" in message and "JSON array" in message


def test_an_empty_json_array_is_zero_items_not_an_error(tmp_path):
    path = tmp_path / "none.json"
    path.write_text("[]\n")
    assert FileItems(str(path), "t").count() == 0


def test_a_file_that_is_not_json_names_the_line(tmp_path):
    message = file_error(tmp_path, b'{"PartNo": "1"}\nPartNo;Name\n')
    assert "line 2 is not valid JSON" in message


def test_one_json_object_over_several_lines_says_what_the_file_must_be(tmp_path):
    content = json.dumps({"Items": [{"PartNo": "1"}]}, indent=2).encode()
    message = file_error(tmp_path, content, "items.json")
    assert "line 1 is not valid JSON" in message
    assert "one JSON object" in message and "JSON array of objects" in message


@pytest.mark.parametrize("chunk_bytes", [1, 7, 1 << 16])
def test_a_line_longer_than_the_limit_is_refused_with_its_number(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(connect_items, "MAX_ITEM_CHARS", 1000)
    monkeypatch.setattr(connect_items, "CHUNK_BYTES", chunk_bytes)
    lines = [json.dumps({"PartNo": "1"}), json.dumps({"PartNo": "2"}), json.dumps({"Text": "w" * 5000})]
    message = file_error(tmp_path, "\n".join(lines).encode())
    assert "line 3 is longer than" in message


def test_an_array_item_longer_than_the_limit_is_refused_with_its_number(tmp_path, monkeypatch):
    monkeypatch.setattr(connect_items, "MAX_ITEM_CHARS", 1000)
    monkeypatch.setattr(connect_items, "CHUNK_BYTES", 64)  # chunks far smaller than the limit, as in real use
    items = [{"PartNo": "1"}, {"PartNo": "2", "Text": "w" * 5000}]
    message = file_error(tmp_path, json.dumps(items).encode(), "items.json")
    assert "item 2 is larger than" in message


@pytest.mark.parametrize("chunk_bytes", [1, 7, 1 << 16])
def test_invalid_utf8_names_its_line(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(connect_items, "CHUNK_BYTES", chunk_bytes)
    content = "\ufeff".encode() + b'{"PartNo": "1"}\n{"PartNo": "\xc3\xa5"}\n{"PartNo": "\xff"}\n'
    message = file_error(tmp_path, content)
    assert "not UTF-8 text" in message and "line 3" in message


def test_a_bad_file_is_refused_before_any_request(tmp_path, monkeypatch, requests_mock):
    use_mock_connection(monkeypatch, SECRET)
    requests_mock.post(TOKEN_URL, json={"access_token": "tok", "token_type": "Bearer", "expires_in": 600})
    requests_mock.post(CONNECT, json={"JobId": 1})
    path = tmp_path / "stock.jsonl"
    path.write_bytes(b"")
    op = NorceConnectImportOperator(
        task_id="import_stock",
        import_method="Product/ImportOnhands",
        connect_header={"AccountId": 1},
        items_path=str(path),
        deferrable=False,
    )
    try:
        with pytest.raises(ValueError, match=r"'import_stock'.*stock\.jsonl.* is empty") as err:
            op.execute({})
    finally:
        PROCESS_TOKEN_CACHE.clear()
    assert requests_mock.request_history == []
    assert SECRET not in str(err.value)
