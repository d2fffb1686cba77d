"""Apache Airflow provider for Norce Commerce.

Kept import-free on purpose: the DAG processor imports provider modules on every parse, so importing
the package must not pull in requests, tenacity or Airflow internals.
"""

__version__ = "0.1.0"
"""The one place the version is written: ``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``) and
``get_provider_info`` reports it, so a release changes this line and ``CHANGELOG.md`` only."""
