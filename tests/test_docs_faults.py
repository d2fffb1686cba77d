"""docs/faults.md names a test for every fault: each named test must exist (a renamed test breaks the table)."""

from __future__ import annotations

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "faults.md")
#: `path.py::name`, `file.py::name[param]`, `::name` (same file), `…_middle_…` / `…[param]` (same file, elided).
REFERENCE = re.compile(r"`((?:[\w/]+\.py)?::[\w…]+(?:\[[^\]`]*\])?|…[\w…]*(?:\[[^\]`]*\])?)`")


def _test_files() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for folder, _, files in os.walk(os.path.join(ROOT, "tests")):
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                found.setdefault(name, []).append(os.path.relpath(os.path.join(folder, name), ROOT))
    return found


def _test_names(path: str) -> set[str]:
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
    }


def _references() -> list[tuple[int, str, str]]:
    """``(line, file, name pattern)`` for every test the table names."""
    files = _test_files()
    refs: list[tuple[int, str, str]] = []
    with open(DOC, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.startswith("|") or line.startswith("|---"):
            continue
        test_cell = line.rstrip().rstrip("|").rsplit("|", 1)[-1]
        current = previous = None
        for match in REFERENCE.finditer(test_cell):
            text = match.group(1).split("[", 1)[0]
            if "::" in text:
                file_part, name = text.split("::", 1)
                if file_part:
                    paths = [file_part] if "/" in file_part else files.get(file_part, [])
                    assert len(paths) == 1, (
                        f"docs/faults.md:{number}: {file_part} names {len(paths)} test files"
                    )
                    current = paths[0]
                previous = name
            else:  # an elision continues the previous reference's name
                name = text if text.strip("…") else previous or ""
            assert current, f"docs/faults.md:{number}: {match.group(1)} has no file before it"
            refs.append((number, current, name or previous or ""))
    return refs


def test_every_test_named_in_the_faults_table_exists():
    refs = _references()
    assert len(refs) > 100, "the table's references were not found: has its format changed?"
    names: dict[str, set[str]] = {}
    missing = []
    for number, path, name in refs:
        if path not in names:
            assert os.path.exists(os.path.join(ROOT, path)), f"docs/faults.md:{number}: no file {path}"
            names[path] = _test_names(path)
        pattern = re.compile(".*".join(re.escape(part) for part in name.split("…")))
        if not any(pattern.fullmatch(candidate) for candidate in names[path]):
            missing.append(f"docs/faults.md:{number}: {path}::{name}")
    assert not missing, "\n".join(missing)


def test_every_table_row_names_a_test():
    with open(DOC, encoding="utf-8") as handle:
        rows = [
            (number, line)
            for number, line in enumerate(handle.read().splitlines(), 1)
            if line.startswith("| ") and not line.startswith(("| fault", "|---"))
        ]
    assert rows
    bare = [
        f"docs/faults.md:{n}" for n, line in rows if "::" not in line.rstrip().rstrip("|").rsplit("|", 1)[-1]
    ]
    assert not bare, bare
