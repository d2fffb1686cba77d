"""Deprecated name of :mod:`airflow_provider_norce.simulator`, kept for tests written for 0.1.

``from airflow_provider_norce.testing import NorceSimulator`` and ``python -m airflow_provider_norce.testing``
still work, with a warning that names the new path.
"""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = "airflow_provider_norce.testing moved to airflow_provider_norce.simulator; import from there"


def __getattr__(name: str) -> Any:
    if name in ("NorceSimulator", "FakeClock"):
        warnings.warn(_MOVED, DeprecationWarning, stacklevel=2)
        from airflow_provider_norce import simulator

        return getattr(simulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    import sys

    from airflow_provider_norce.simulator.__main__ import main

    warnings.warn(_MOVED, DeprecationWarning, stacklevel=1)
    sys.exit(main())
