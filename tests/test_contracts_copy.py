"""The copy of Norce's published contracts in ``tests/norce_contracts`` is the one the project was given.

Both sides (the operators and the simulator) are tested against this copy, so CI can run them on a machine
without the steering repository. Where ``../shared/reference/norce-contracts`` exists beside the checkout,
the copy must be identical: a newer reference must be copied in (and the code checked against it), never
silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

COPY = Path(__file__).parent / "norce_contracts"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "norce-contracts"


def test_copy_has_every_contract() -> None:
    names = {p.name for p in COPY.iterdir()}
    assert {"connect.json", "query.json", "identity.json", "metadata.json", "README.md"} <= names


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="no shared/reference beside this checkout")
def test_copy_matches_reference() -> None:
    stale = [
        p.name
        for p in sorted(REFERENCE.iterdir())
        if p.is_file() and (not (COPY / p.name).is_file() or (COPY / p.name).read_bytes() != p.read_bytes())
    ]
    assert stale == [], f"copy these from {REFERENCE} into {COPY}: {stale}"
