"""What the docs example tests share (a plain module: test directories are not packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def load(name: str) -> ModuleType:
    """Import ``docs/examples/<name>`` as a module of its own (the folder is no package)."""
    spec = importlib.util.spec_from_file_location(f"docs_example_{Path(name).stem}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
