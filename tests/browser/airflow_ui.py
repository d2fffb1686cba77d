"""Airflow 3.3's API server (which serves the React UI) on 127.0.0.1, for a browser to drive.

One process group (``airflow api-server --workers 1``) on a free port, a SQLite metadata database and
``AIRFLOW_HOME`` in a work folder, the simple auth manager with everyone an admin (no login page to get
through), and ``[core] test_connection = Enabled`` (the Test button). The process handling (own process
group, SIGTERM then SIGKILL, waiting with the child's log in the error) is the local cluster's
(``tests/cluster/local_cluster.py``): reused, not repeated.

``airflow(...)`` runs the CLI against the same home and database, as a user would on that machine.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))

from local_cluster import Child, ClusterError, free_port, stop_children, tail, wait_for

#: How long the first start may take: ``db migrate`` on SQLite plus the API server loading every provider.
START_TIMEOUT = 180.0


class AirflowUI:
    """The API server and its CLI, in ``workdir``; a context manager that stops the server on every exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.home = workdir / "airflow-home"
        self.logs = workdir / "logs"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._child: Child | None = None
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        """The caller's environment without its Airflow/Norce settings (``AIRFLOW_CONN_*`` of a fixture,
        ``AIRFLOW_HOME`` of the test session), plus this server's own."""
        from cryptography.fernet import Fernet

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NORCE_"))}
        bin_dir = str(Path(sys.executable).parent)
        env.update(
            {
                "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "airflow"),
                # The CLI's `connections test` fetches a real token from the simulator: a store of its own.
                "NORCE_TOKEN_CACHE_DIR": str(self.workdir / "tokens"),
            }
        )
        return env

    def __enter__(self) -> AirflowUI:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for folder in (self.home / "dags", self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tokens").mkdir(mode=0o700, exist_ok=True)
        migrate = self.airflow("db", "migrate", timeout=START_TIMEOUT)
        if migrate.returncode:
            raise ClusterError(f"airflow db migrate failed ({migrate.returncode}):\n{migrate.stdout[-3000:]}")
        log = self.logs / "api-server.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=str(self.workdir),
                start_new_session=True,  # its own process group: stopped (and killed) as a whole
            )
        self._child = Child("api-server", process, log)
        wait_for(f"the API server at {self.url}", self._healthy, START_TIMEOUT, self._child, interval=0.5)

    def _healthy(self) -> bool:
        return requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200

    def stop(self) -> None:
        if self._child is not None:
            stop_children([self._child], grace=10)

    def log_tail(self) -> str:
        """The end of the API server's log, for a failure message."""
        return tail(self.logs / "api-server.log")

    def airflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``airflow <args>`` with this home and database; output merged into ``stdout``."""
        return subprocess.run(
            ["airflow", *args],
            env=self.env,
            cwd=str(self.workdir),
            capture_output=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )

    def rest(self, method: str, path: str, json: Any = None) -> requests.Response:
        """A REST call as the UI makes it (everyone is an admin: no token to fetch)."""
        return requests.request(method, self.url + path, json=json, timeout=60)
