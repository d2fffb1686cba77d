"""Apache Airflow provider for Norce Commerce.

Kept import-free on purpose: the DAG processor imports provider modules on every parse, so importing
the package must not pull in requests, tenacity or Airflow internals.
"""

__version__ = "0.1.0"
