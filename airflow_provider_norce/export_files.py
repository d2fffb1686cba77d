"""Deprecated path of :mod:`airflow_provider_norce.query.files`, kept for DAG files written for 0.1.

Why a module and not a re-export in ``__init__``: importing the package stays free of everything, and
only a DAG that still names this path pays for it (with a warning that says where it moved).
"""

from __future__ import annotations

import warnings

from airflow_provider_norce.query.files import *  # noqa: F403
from airflow_provider_norce.query.files import write_rows_atomically  # noqa: F401

warnings.warn(
    "airflow_provider_norce.export_files moved to airflow_provider_norce.query.files; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
