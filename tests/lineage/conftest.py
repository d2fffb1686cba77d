"""Fixtures of the lineage tests."""

from __future__ import annotations

import os
import shutil

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "dags_examples")


@pytest.fixture(scope="session")
def examples_in_dags_folder(dags_folder: str) -> str:
    """The example DAGs copied where ``dag.test()`` finds them (the folder tests/dags loads them from)."""
    target = os.path.join(dags_folder, "norce_examples")
    shutil.copytree(EXAMPLES, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return target
