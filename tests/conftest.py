"""Test-session set-up: a throwaway Airflow home before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="norce-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# The machine-wide token store of this test session: never the user's real one, never shared between runs.
os.environ.setdefault("NORCE_TOKEN_CACHE_DIR", tempfile.mkdtemp(prefix="norce-tokens-"))
