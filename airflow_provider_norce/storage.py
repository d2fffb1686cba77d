"""Where a file named by an operator argument lives: the local disk, or an object store.

Both the export writers and the Connect item reader take a local path, an ``ObjectStoragePath`` or a URI
(``file://``, ``s3://conn_id@bucket/key``); this module alone decides which and finds the file system,
so both behave the same on every Airflow version.
"""

from __future__ import annotations

from typing import Any


def is_remote(location: Any) -> bool:
    """An ``ObjectStoragePath`` or a URI string: opened through fsspec rather than the local ``open``."""
    return (isinstance(location, str) and "://" in location) or (
        hasattr(location, "fs") and hasattr(location, "path")
    )


def fs_and_path(location: Any) -> tuple[Any, str]:
    """The fsspec file system and path behind an ObjectStoragePath or a URI.

    A URI goes through Airflow's ObjectStoragePath first (it resolves ``scheme://conn_id@bucket/key`` to the
    connection's credentials). Airflow 3.0 with universal-pathlib >= 0.3 cannot build any ObjectStoragePath;
    plain fsspec then still serves URIs that need no Airflow connection (``file://``, public or
    environment-authenticated buckets).
    """
    if hasattr(location, "fs") and hasattr(location, "path"):
        return location.fs, location.path
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    try:
        storage_path = ObjectStoragePath(location)
        return storage_path.fs, storage_path.path
    except TypeError:
        import fsspec

        fs, path = fsspec.core.url_to_fs(location)
        return fs, path
