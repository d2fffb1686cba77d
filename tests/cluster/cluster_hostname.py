"""The host name Airflow records for a process of the local cluster (``[core] hostname_callable``).

The local cluster runs its two Celery workers on one machine but they stand for two machines; Airflow 3.3
resolves the name it writes on a task instance with ``conf.getimport("core", "hostname_callable")()`` (both
in ``airflow.utils.net.get_hostname`` and in the Task SDK's ``airflow.sdk.api.client.get_hostname``), so
pointing that option at :func:`hostname` gives each component the name in its ``$NORCE_CLUSTER_HOSTNAME``.
Outside the cluster (variable unset) it answers what Airflow's default would.
"""

from __future__ import annotations

import os
import socket

ENV = "NORCE_CLUSTER_HOSTNAME"


def hostname() -> str:
    """``$NORCE_CLUSTER_HOSTNAME``, or the machine's fully qualified name when it is unset or empty."""
    return os.environ.get(ENV, "").strip() or socket.getfqdn()
