"""A local Airflow 3.3 cluster with the CeleryExecutor, started and stopped by one object (or one command).

What runs (all on 127.0.0.1, free ports, every file in one work folder)::

    postgres            the metadata database (OS package; as the ``postgres`` user when we are root)
    redis-broker        Celery's broker
    redis-tokens        the Norce token store (its own server: a test can stop it and keep Celery running)
    simulator           ``python -m airflow_provider_norce.simulator serve`` (Norce's token limit by default)
    scheduler, dag-processor, triggerer, api-server
    worker-1, worker-2  ``airflow celery worker``: each stands for a machine of its own (host name as Airflow
                        records it, Celery node name, HOME, NORCE_TOKEN_CACHE_DIR)

Every child runs in its own process group and is stopped with SIGTERM (SIGINT for PostgreSQL: its fast
shutdown), then SIGKILL after a grace period, on every exit path: ``stop()``, the context manager, ``atexit``,
and the CLI's SIGINT/SIGTERM handlers.

Usage from tests and benchmarks (``tests/cluster`` on ``sys.path``)::

    with LocalCluster() as cluster:
        run_id = cluster.trigger("norce_order_export", {"output_dir": str(cluster.output_dir)})
        assert cluster.wait("norce_order_export", run_id) == "success"

and from a shell: ``python tests/cluster/local_cluster.py demo [--keep]`` (see :func:`demo`).
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXAMPLES = ROOT / "dags_examples"
CLUSTER_DAGS = HERE / "dags"
#: How long a child gets between SIGTERM and SIGKILL (a Celery worker's warm shutdown waits for its tasks).
GRACE_SECONDS = 15.0
#: The login of the REST API (Airflow's simple auth manager; the password is drawn per cluster).
API_USER = "admin"
#: The Norce tenant the simulator serves and every ``norce_*`` connection uses.
CLIENT_ID = "cluster-client"
APPLICATION_ID = "1234"
#: The connections the cluster defines besides ``norce_default``, by their ``token_cache`` extra.
TOKEN_CACHE_CONNECTIONS = {"norce_process": "process", "norce_machine": "machine", "norce_redis": "redis"}
TOKEN_REDIS_CONN_ID = "redis_tokens"


class ClusterError(RuntimeError):
    """A component did not start (or answered an error); the message names it and quotes its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; a race with another binder is unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, for error messages (empty when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def process_tree_groups(root: int) -> set[int]:
    """The process groups of ``root`` and of all its descendants (``ps -e -o pid=,ppid=,pgid=``).

    Airflow 3.3's task supervisor puts each task process in a process group of its own (``os.setpgid`` in
    ``airflow.sdk.execution_time.supervisor``), so signalling a worker's group alone would leave its running
    tasks behind."""
    listing = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,pgid="], capture_output=True, text=True, check=False
    )
    children: dict[int, list[tuple[int, int]]] = {}
    for line in listing.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            pid, ppid, pgid = (int(p) for p in parts)
            children.setdefault(ppid, []).append((pid, pgid))
    groups, todo = {root}, [root]
    while todo:
        for pid, pgid in children.get(todo.pop(), []):
            groups.add(pgid)
            todo.append(pid)
    return groups


@dataclass
class Child:
    """One process the cluster started: the leader of its own process group, its output in ``log``.

    ``groups`` are the process groups of its tree seen so far (its own, and those its descendants made)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM
    groups: set[int] = field(default_factory=set)

    def alive(self) -> bool:
        """True while any process of its groups exists (the leader may have exited and left children)."""
        self.process.poll()  # reap the leader: a zombie still counts as a member of the group
        for group in self.groups | {self.process.pid}:
            try:
                os.killpg(group, 0)
                return True
            except ProcessLookupError:
                continue
            except PermissionError:
                return True
        return False

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to every process group of the tree (looked up now, and any seen before)."""
        if self.process.poll() is None:
            self.groups |= process_tree_groups(self.process.pid)
        for group in self.groups | {self.process.pid}:
            try:
                os.killpg(group, signum)
            except (ProcessLookupError, PermissionError):
                pass


def stop_children(children: Sequence[Child], grace: float = GRACE_SECONDS) -> None:
    """Stop the groups together: their stop signal, up to ``grace`` seconds, then SIGKILL what is left."""
    for child in children:
        if child.alive():
            child.signal_group(child.stop_signal)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(child.alive() for child in children):
        time.sleep(0.2)
    for child in children:
        if child.alive():
            child.signal_group(signal.SIGKILL)
    for child in children:
        try:
            child.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, child: Child | None = None, interval: float = 0.5
) -> Any:
    """Poll ``check`` until it returns something truthy; a ClusterError naming ``what`` (and quoting the log
    of ``child``) when the time is up or ``child`` exited first."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as err:  # not ready yet: the last error goes into the message
            last_error = err
        if child is not None and child.process.poll() is not None:
            raise ClusterError(
                f"{child.name} exited with code {child.process.returncode} while waiting for {what}; "
                f"its log {child.log} ends:\n{tail(child.log)}"
            )
        if time.monotonic() > deadline:
            log = f"; the log {child.log} of {child.name} ends:\n{tail(child.log)}" if child else ""
            error = f" (last error: {last_error})" if last_error else ""
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}{error}{log}")
        time.sleep(interval)


class LocalCluster:
    """PostgreSQL, two Redis servers, the Norce simulator and Airflow 3.3 with two Celery workers.

    :param workdir: the folder for every file of the cluster (created; a fresh temporary one when None)
    :param workers: number of Celery workers, each standing for a machine (``worker_hostnames``)
    :param worker_concurrency: task slots of each worker (``airflow celery worker --concurrency``)
    :param norce_default_token_cache: the ``token_cache`` extra of ``norce_default`` (the connection the
        example DAGs use): ``redis`` (one token store for the whole cluster), ``machine`` or ``process``
    :param sim_args: extra ``simulator serve`` options, e.g. ``("--token-burst", "5")``; they come after the
        defaults (Norce's real token limit: a burst of 20, then 3 a minute), so they override them
    :param env: extra environment variables for every Airflow component and worker (applied last)
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        workers: int = 2,
        worker_concurrency: int = 16,
        norce_default_token_cache: str = "redis",
        sim_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workdir = (
            Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="norce-cluster-"))
        )
        self.workers = workers
        self.worker_concurrency = worker_concurrency
        self.norce_default_token_cache = norce_default_token_cache
        self.sim_args = tuple(sim_args)
        self.extra_env = dict(env or {})
        self.bin = Path(sys.executable).parent
        self.logs_dir = self.workdir / "logs"
        self.output_dir = self.workdir / "output"
        self.dags_dir = self.workdir / "dags"
        self.airflow_home = self.workdir / "airflow"
        self.worker_hostnames = [f"norce-worker-{n}" for n in range(1, workers + 1)]
        self.sim_url = ""
        self.api_url = ""
        self.import_errors: list[dict[str, Any]] = []
        self._children: dict[str, Child] = {}
        self._ports: dict[str, int] = {}
        self._password = secrets.token_urlsafe(16)
        self._client_secret = "cluster-secret-" + secrets.token_hex(8)
        self._api_token = ""
        self._env: dict[str, str] = {}
        self._started = False
        self._session = requests.Session()

    # -- paths -----------------------------------------------------------------------------------------------
    @property
    def worker_token_dirs(self) -> list[Path]:
        """Each worker's ``NORCE_TOKEN_CACHE_DIR`` (its machine-wide token store)."""
        return [self.workdir / "machines" / name / "tokens" for name in self.worker_hostnames]

    def worker_homes(self) -> list[Path]:
        return [self.workdir / "machines" / name / "home" for name in self.worker_hostnames]

    def log_of(self, name: str) -> Path:
        """Where the output of component ``name`` (``scheduler``, ``worker-1``, ...) is written."""
        return self.logs_dir / f"{name}.log"

    # -- life cycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start everything and wait until the API answers, the DAGs are parsed and every worker is up.

        On any failure everything started so far is stopped before the error propagates."""
        if self._started:
            return
        self._started = True
        atexit.register(self.stop)
        try:
            self._prepare_folders()
            self._start_postgres()
            self._start_redis("redis-broker")
            self._start_redis("redis-tokens")
            self._start_simulator()
            self._env = self._airflow_env()
            self._migrate()
            self._start_airflow()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every child (Airflow first, PostgreSQL last); safe to call again, and from ``atexit``."""
        if not self._children:
            return
        airflow = [c for name, c in self._children.items() if name not in ("postgres",)]
        stop_children(airflow)
        if "postgres" in self._children:
            stop_children([self._children["postgres"]])
        self._children.clear()
        self._session.close()

    def remove_workdir(self) -> None:
        """Delete the work folder (after :meth:`stop`)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the services ----------------------------------------------------------------------------------------
    def _prepare_folders(self) -> None:
        for folder in (self.logs_dir, self.output_dir, self.dags_dir, self.airflow_home):
            folder.mkdir(parents=True, exist_ok=True)
        for folder in self.worker_homes():
            folder.mkdir(parents=True, exist_ok=True)
        for folder in self.worker_token_dirs:
            # A machine's token store holds bearer tokens: only its owner may list or read it. chmod after
            # mkdir, since mkdir's mode is masked by the umask and ignored for a folder that already exists.
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
        if os.geteuid() == 0:
            # PostgreSQL runs as the postgres user and must reach its data folder inside ours.
            self.workdir.chmod(0o755)
        # The DAGs: links to the examples (with their data/) and to every DAG file of tests/cluster/dags.
        sources = [p for p in sorted(EXAMPLES.iterdir()) if p.suffix == ".py" or p.name == "data"]
        sources += sorted(CLUSTER_DAGS.glob("*.py")) if CLUSTER_DAGS.is_dir() else []
        for source in sources:
            link = self.dags_dir / source.name
            if not link.is_symlink():  # a reused work folder keeps its links
                link.symlink_to(source)
        (self.airflow_home / "passwords.json").write_text(json.dumps({API_USER: self._password}))

    def _spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        cwd: Path | None = None,
    ) -> Child:
        log = self.log_of(name)
        with open(log, "ab") as out:
            process = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=str(cwd or self.workdir),
                start_new_session=True,  # its own process group: stopped (and killed) as a whole
            )
        child = Child(name, process, log, stop_signal)
        self._children[name] = child
        return child

    def _as_postgres_user(self, argv: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: run it as the ``postgres`` OS user then (same process, no
        extra parent: ``setpriv`` execs), as ourselves otherwise."""
        if os.geteuid() != 0:
            return argv
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]

    def _start_postgres(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not binaries:
            raise ClusterError(
                "PostgreSQL is not installed: run `bash .ci/os-packages` (it installs postgresql)"
            )
        pg_bin = binaries[-1].parent
        base = self.workdir / "postgres"
        data, sockets = base / "data", base / "sockets"
        sockets.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
        init_log = self.log_of("postgres-initdb")
        with open(init_log, "wb") as out:
            code = subprocess.call(
                self._as_postgres_user(
                    [str(pg_bin / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"]
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd="/",
            )
        if code:
            raise ClusterError(f"initdb failed (exit {code}); {init_log} ends:\n{tail(init_log)}")
        port = self._ports["postgres"] = free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(sockets),
            "max_connections": "300",
            "fsync": "off",  # throwaway data: no need to survive a power cut
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        argv = [str(pg_bin / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
        child = self._spawn(
            "postgres", self._as_postgres_user(argv), stop_signal=signal.SIGINT, cwd=Path("/")
        )

        import psycopg2

        def create_database() -> bool:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user="airflow", dbname="postgres")
            try:
                conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute("CREATE DATABASE airflow")
            finally:
                conn.close()
            return True

        wait_for("PostgreSQL to accept connections", create_database, 60, child)

    def _start_redis(self, name: str, port: int | None = None) -> None:
        port = port or free_port()
        self._ports[name] = port
        folder = self.workdir / name
        folder.mkdir(exist_ok=True)
        argv = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        argv += ["--dir", str(folder)]
        if not shutil.which("redis-server"):
            raise ClusterError("redis-server is not installed: run `bash .ci/os-packages`")
        child = self._spawn(name, argv)

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_for(f"{name} (redis-server on port {port})", ping, 30, child, interval=0.1)

    def _start_simulator(self) -> None:
        argv = [sys.executable, "-m", "airflow_provider_norce.simulator", "serve", "--port", "0"]
        argv += ["--client-id", CLIENT_ID, "--client-secret", self._client_secret]
        argv += ["--application-id", APPLICATION_ID, "--token-burst", "20", "--token-rate", "3"]
        argv += list(self.sim_args)
        child = self._spawn("simulator", argv, env=self._base_env())
        prefix = "Norce simulator listening on "

        def url() -> str:
            first = child.log.read_text(errors="replace").splitlines()[:1]
            return first[0][len(prefix) :].strip() if first and first[0].startswith(prefix) else ""

        self.sim_url = wait_for("the Norce simulator's address", url, 30, child, interval=0.1)

    # -- Airflow ---------------------------------------------------------------------------------------------
    @staticmethod
    def _base_env() -> dict[str, str]:
        """Our environment without any Airflow or Norce setting of the caller (e.g. the test session's
        ``NORCE_TOKEN_REQUEST_LIMIT`` or ``AIRFLOW_HOME``): the cluster configures those itself."""
        return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NORCE_"))}

    def norce_connection(self, token_cache: str) -> dict[str, Any]:
        """A Norce connection (JSON form) to the simulator with the given ``token_cache`` extra."""
        return {
            "conn_type": "norce",
            "host": self.sim_url,
            "login": CLIENT_ID,
            "password": self._client_secret,
            "extra": {
                "base_url": self.sim_url,
                "application_id": APPLICATION_ID,
                "token_cache": token_cache,
                "token_cache_conn_id": TOKEN_REDIS_CONN_ID,
            },
        }

    def _airflow_env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        pg = f"airflow@127.0.0.1:{self._ports['postgres']}/airflow"
        api_port = self._ports["api"] = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        pythonpath = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
        env = self._base_env()
        env.update(
            {
                "PYTHONPATH": pythonpath,
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_dir),
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cluster_hostname.hostname",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{API_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.airflow_home / "passwords.json"
                ),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self._ports['redis-broker']}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                # A killed worker's tasks are failed (and retried) after 30 s without a heartbeat.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                # No scheduled runs: unpausing a DAG to trigger it would also start its latest interval's run
                # (catchup=False still runs that one), doubling the imports the tests count.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # Every Connect import and Norce sensor waits in the triggerer (their `deferrable` default).
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.workdir / "task-logs"),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # Where the example DAGs read and write by default (their env-var defaults).
                "NORCE_EXPORT_DIR": str(self.output_dir / "exports"),
                "NORCE_ETL_DIR": str(self.output_dir / "etl"),
                # Machine-wide token store of the non-worker components (the triggerer's async hook).
                "NORCE_TOKEN_CACHE_DIR": str(self.workdir / "machines" / "controller" / "tokens"),
                "NORCE_CLUSTER_HOSTNAME": "norce-controller",
                f"AIRFLOW_CONN_{TOKEN_REDIS_CONN_ID.upper()}": json.dumps(
                    {
                        "conn_type": "redis",
                        "host": "127.0.0.1",
                        "port": self._ports["redis-tokens"],
                        "extra": {"db": 0},
                    }
                ),
                "AIRFLOW_CONN_NORCE_DEFAULT": json.dumps(
                    self.norce_connection(self.norce_default_token_cache)
                ),
            }
        )
        for conn_id, token_cache in TOKEN_CACHE_CONNECTIONS.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(self.norce_connection(token_cache))
        env.update(self.extra_env)
        return env

    def _airflow(self, *args: str) -> list[str]:
        return [str(self.bin / "airflow"), *args]

    def _migrate(self) -> None:
        log = self.log_of("db-migrate")
        with open(log, "wb") as out:
            code = subprocess.call(
                self._airflow("db", "migrate"),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=str(self.workdir),
                timeout=600,
            )
        if code:
            raise ClusterError(f"airflow db migrate failed (exit {code}); {log} ends:\n{tail(log)}")

    def _component_env(self, hostname: str) -> dict[str, str]:
        return {**self._env, "NORCE_CLUSTER_HOSTNAME": hostname}

    def _start_airflow(self) -> None:
        for name in ("scheduler", "dag-processor", "triggerer"):
            self._spawn(name, self._airflow(name), env=self._component_env(f"norce-{name}"))
        api_argv = self._airflow("api-server", "--host", "127.0.0.1", "--port", str(self._ports["api"]))
        self._spawn("api-server", [*api_argv, "--workers", "1"], env=self._component_env("norce-api-server"))
        for index in range(self.workers):
            self._start_worker(index)

    def _worker_env(self, index: int) -> dict[str, str]:
        name = self.worker_hostnames[index]
        env = self._component_env(name)
        env.update(
            {
                "HOME": str(self.worker_homes()[index]),
                "NORCE_TOKEN_CACHE_DIR": str(self.worker_token_dirs[index]),
                # Each worker's log server on a port of its own (two "machines" share 127.0.0.1 here).
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            }
        )
        env.update(self.extra_env)
        return env

    def _start_worker(self, index: int) -> Child:
        name = self.worker_hostnames[index]
        argv = self._airflow("celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency")
        argv += [str(self.worker_concurrency), "--without-mingle", "--without-gossip"]
        return self._spawn(f"worker-{index + 1}", argv, env=self._worker_env(index))

    def _wait_worker(self, index: int, since: int = 0, timeout: float = 300) -> None:
        """Wait for Celery's ``<node> ready.`` line in the worker's log, after byte ``since``."""
        worker = self._children[f"worker-{index + 1}"]

        def ready() -> bool:
            with open(worker.log, "rb") as log:
                log.seek(since)
                return b" ready." in log.read()

        wait_for(f"Celery worker {self.worker_hostnames[index]}", ready, timeout, worker, interval=1)

    def start_worker(self, index: int) -> None:
        """Start worker ``index`` (0-based) again after :meth:`kill_worker`, same host name and folders, and
        wait until Celery reports it ready. Does nothing while it runs."""
        name = f"worker-{index + 1}"
        if name in self._children and self._children[name].alive():
            return
        since = self.log_of(name).stat().st_size if self.log_of(name).exists() else 0
        self._start_worker(index)
        self._wait_worker(index, since)

    def ensure_workers(self) -> list[int]:
        """Restart every worker that is not running (killed by a test); the indexes restarted."""
        dead = [i for i in range(self.workers) if not self._children[f"worker-{i + 1}"].alive()]
        for index in dead:
            self.start_worker(index)
        return dead

    def _wait_ready(self, timeout: float = 300) -> None:
        api = self._children["api-server"]
        wait_for(f"the API server at {self.api_url}", lambda: self._login() or True, timeout, api, interval=1)
        for index in range(self.workers):
            self._wait_worker(index, 0, timeout)
        expected = {p.name for p in self.dags_dir.glob("*.py")}
        wait_for(
            f"the DAG processor to parse {sorted(expected)}",
            lambda: self._parsed_files() >= expected,
            timeout,
            self._children["dag-processor"],
            interval=2,
        )
        for child in self._children.values():  # nothing died while we waited on the others
            if child.process.poll() is not None:
                raise ClusterError(
                    f"{child.name} exited with code {child.process.returncode}; {child.log} ends:\n"
                    f"{tail(child.log)}"
                )

    def _parsed_files(self) -> set[str]:
        """Names of the DAG files the DAG processor has handled: a DAG of theirs is listed, or an import error."""
        dags = self.rest("GET", "/api/v2/dags?limit=1000")["dags"]
        errors = self.rest("GET", "/api/v2/importErrors?limit=1000")["import_errors"]
        self.import_errors = errors
        return {Path(d["fileloc"]).name for d in dags} | {Path(e["filename"]).name for e in errors}

    # -- REST ------------------------------------------------------------------------------------------------
    def _login(self) -> str:
        answer = self._session.post(
            f"{self.api_url}/auth/token", json={"username": API_USER, "password": self._password}, timeout=30
        )
        if answer.status_code not in (200, 201):
            raise ClusterError(f"login to the API server failed: {answer.status_code} {answer.text[:300]}")
        self._api_token = answer.json()["access_token"]
        return self._api_token

    def rest(self, method: str, path: str, json: Any = None, *, accept: str = "application/json") -> Any:
        """An authenticated call of Airflow's REST API (``path`` from ``/api/v2/...``): the decoded JSON, or
        the text for a non-JSON answer; a ClusterError quoting the body on any status >= 400."""
        if not self._api_token:
            self._login()
        for attempt in (1, 2):
            answer = self._session.request(
                method,
                self.api_url + path,
                json=json,
                headers={"Authorization": f"Bearer {self._api_token}", "Accept": accept},
                timeout=60,
            )
            if answer.status_code == 401 and attempt == 1:  # the token expired: log in again, once
                self._login()
                continue
            break
        if answer.status_code >= 400:
            raise ClusterError(f"{method} {path} answered {answer.status_code}: {answer.text[:2000]}")
        if answer.status_code == 204 or not answer.content:  # Airflow labels its empty 204 bodies JSON
            return None
        if "json" in answer.headers.get("content-type", ""):
            return answer.json()
        return answer.text

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: dt.datetime | None = None) -> str:
        """Unpause ``dag_id`` and create a run of it through the REST API, as a user would; the run id.

        ``logical_date`` defaults to now (each trigger a distinct run)."""
        self.rest("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        when = logical_date or dt.datetime.now(dt.timezone.utc)
        body = {"logical_date": when.isoformat(), "conf": conf or {}}
        return str(self.rest("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.rest("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_quote(run_id)}")["state"])

    def wait(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        """Wait until the run is ``success`` or ``failed`` and return that; a ClusterError listing the task
        states when ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                tasks = [
                    (t["task_id"], t["map_index"], t["state"]) for t in self.task_instances(dag_id, run_id)
                ]
                raise ClusterError(
                    f"run {run_id} of {dag_id} is still {state} after {timeout:.0f} s: {tasks}"
                )
            self._check_children()
            time.sleep(2)

    def _check_children(self) -> None:
        """A ClusterError when a component other than a worker (workers may be killed on purpose) died."""
        for child in self._children.values():
            if not child.name.startswith("worker-") and child.name != "redis-tokens":
                if child.process.poll() is not None:
                    raise ClusterError(
                        f"{child.name} exited with code {child.process.returncode}; {child.log} ends:\n"
                        f"{tail(child.log)}"
                    )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """The run's task instances as the REST API lists them (``task_id``, ``map_index``, ``state``,
        ``hostname``, ``try_number``, ``start_date``, ...), mapped ones one entry per index."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances?limit=1000"
        return list(self.rest("GET", path)["task_instances"])

    def task_tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict]:
        """Every try of one task instance (REST ``.../tries``): state and hostname of each try."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}/tries?map_index={map_index}"
        return list(self.rest("GET", path)["task_instances"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        """The log of one try of a task as the REST API serves it (the trigger's lines included), one line
        per event: ``timestamp [level] event key=value ...``."""
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}/logs/{try_number}"
            f"?map_index={map_index}&full_content=true"
        )
        lines = []
        for entry in self.rest("GET", path).get("content") or []:
            if not isinstance(entry, dict):
                lines.append(str(entry))
                continue
            extra = {k: v for k, v in entry.items() if k not in ("timestamp", "level", "event")}
            details = " ".join(f"{k}={v}" for k, v in extra.items())
            lines.append(
                f"{entry.get('timestamp', '')} [{entry.get('level', '')}] {entry.get('event', '')} {details}"
            )
        return "\n".join(lines)

    def deferrals(self, dag_id: str, run_id: str) -> dict[str, int]:
        """Task id -> how many deferrals of it the triggerer served, for the tasks of the run that deferred.

        Source: the trigger logs the triggerer writes next to the task logs
        (``{base_log_folder}/dag_id=.../run_id=.../task_id=.../[map_index=N/]attempt=T.log.trigger.J.log``, one
        JSON event a line). For each trigger whose event it fires, Airflow 3.3's trigger runner logs the event
        ``Trigger fired event`` with the trigger's name ``{dag_id}/{run_id}/{task_id}/{map_index}/{try} (ID n)``
        (``TriggerRunner.run_trigger``): one line per deferral the triggerer completed, i.e. that resumed the
        task. The REST API has no such count (resuming a deferral adds no try) and the triggerer's own output
        does not carry these lines.
        """
        prefix = f"{dag_id}/{run_id}/"
        run_folder = self.workdir / "task-logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        counts: dict[str, int] = {}
        for path in sorted(run_folder.glob("task_id=*/**/*.log.trigger.*.log")):
            for line in path.read_text(errors="replace").splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                name = str(event.get("name", ""))
                if event.get("event") == "Trigger fired event" and name.startswith(prefix):
                    task_id = name[len(prefix) :].split("/")[0]
                    counts[task_id] = counts.get(task_id, 0) + 1
        return counts

    # -- the simulator ---------------------------------------------------------------------------------------
    def sim(self, method: str, path: str, json: Any = None) -> Any:
        """A call of the simulator (``/_sim/...`` steering, or a Norce path): decoded JSON; raises on >= 400."""
        answer = requests.request(method, self.sim_url + path, json=json, timeout=30)
        if answer.status_code >= 400:
            raise ClusterError(
                f"simulator {method} {path} answered {answer.status_code}: {answer.text[:500]}"
            )
        return answer.json() if answer.content else None

    def sim_counters(self) -> dict:
        """The simulator's counters (token_requests, token_429, api_429, jobs_created, query_rows, requests)."""
        return dict(self.sim("GET", "/_sim/counters"))

    def sim_reset(self) -> None:
        """Zero the simulator's counters (not its token limiter: a refill takes Norce's time)."""
        self.sim("POST", "/_sim/reset")

    # -- faults ----------------------------------------------------------------------------------------------
    def kill_worker(self, index: int) -> None:
        """SIGKILL worker ``index`` (0-based) and every process of its tree, the task processes in their own
        groups included: a machine that disappeared. :meth:`start_worker` brings it back."""
        child = self._children[f"worker-{index + 1}"]
        child.signal_group(signal.SIGKILL)
        child.process.wait(timeout=30)
        wait_for(f"every process of {child.name} to be gone", lambda: not child.alive(), 30)

    def restart_triggerer(self) -> None:
        """SIGKILL the triggerer and every process of its tree (a crash: no clean shutdown, nothing flushed),
        then start it again with the same settings. Its triggers move to the new one once the dead one's
        heartbeat is older than ``[triggerer] triggerer_health_check_threshold``."""
        child = self._children["triggerer"]
        child.signal_group(signal.SIGKILL)
        child.process.wait(timeout=30)
        wait_for("every process of the triggerer to be gone", lambda: not child.alive(), 30)
        self._spawn("triggerer", self._airflow("triggerer"), env=self._component_env("norce-triggerer"))

    def variable(self, key: str) -> str | None:
        """The value of Airflow Variable ``key`` through the REST API; None when it does not exist."""
        try:
            return str(self.rest("GET", f"/api/v2/variables/{_quote(key)}")["value"])
        except ClusterError as err:
            if " answered 404" in str(err):
                return None
            raise

    def stop_token_redis(self) -> None:
        """Stop the token-store Redis (Celery's broker keeps running)."""
        child = self._children.pop("redis-tokens", None)
        if child is not None:
            stop_children([child])

    def start_token_redis(self) -> None:
        """Start the token-store Redis again, on the same port, empty."""
        if "redis-tokens" not in self._children:
            self._start_redis("redis-tokens", self._ports["redis-tokens"])

    def pids(self) -> dict[str, int]:
        """Process group id of each running component (for measuring memory with ``ps``)."""
        return {name: child.process.pid for name, child in self._children.items() if child.alive()}


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def memory_mb(pgids: Sequence[int]) -> tuple[float, float]:
    """Memory (MB) of every process in the given process groups, summed: (RSS as ``ps`` reports it, PSS).

    RSS counts the pages a Celery worker's forked children share with their parent once per child; PSS
    (``/proc/PID/smaps_rollup``) splits shared pages between their users, so it is what the cluster costs."""
    listing = subprocess.run(
        ["ps", "-e", "-o", "pid=,pgid=,rss="], capture_output=True, text=True, check=True
    )
    wanted = set(pgids)
    rss = pss = 0
    for line in listing.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3 or int(parts[1]) not in wanted:
            continue
        rss += int(parts[2])
        try:
            rollup = Path(f"/proc/{parts[0]}/smaps_rollup").read_text()
        except OSError:
            continue
        found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
        pss += int(found.group(1)) if found else 0
    return rss / 1024, pss / 1024


class MemoryPeak:
    """Samples :func:`memory_mb` of the cluster every ``interval`` seconds in a thread; ``peak`` = the
    highest (RSS, PSS) seen."""

    def __init__(self, cluster: LocalCluster, interval: float = 2.0) -> None:
        import threading

        self.cluster, self.interval = cluster, interval
        self.peak = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-peak", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                groups: set[int] = set()
                for pid in self.cluster.pids().values():
                    groups |= process_tree_groups(pid)
                rss, pss = memory_mb(sorted(groups))
            except (OSError, subprocess.SubprocessError, RuntimeError):
                rss = pss = 0.0
            self.peak = (max(self.peak[0], rss), max(self.peak[1], pss))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# -- the demo ----------------------------------------------------------------------------------------------------
#: The runs the demo triggers: each example DAG, with the logical date its checks assume and its conf.
DEMO_DATES = {
    "norce_nightly_catalog_sync": dt.datetime(2026, 11, 20, 2, 30, tzinfo=dt.timezone.utc),
    "norce_order_export": dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc),
    "norce_product_etl": dt.datetime(2026, 11, 20, 4, tzinfo=dt.timezone.utc),
}


#: Example DAGs scheduled on an asset watcher: events start them, so the demo does not trigger them by hand.
EVENT_DRIVEN_EXAMPLES = frozenset({"norce_order_events"})


def example_dag_ids() -> list[str]:
    """The dag ids of ``dags_examples/`` (read from their ``dag_id="..."``, without importing Airflow), but
    the event-driven ones (:data:`EVENT_DRIVEN_EXAMPLES`)."""
    ids = []
    for path in sorted(EXAMPLES.glob("*.py")):
        ids += re.findall(r"dag_id=\"([^\"]+)\"", path.read_text())
    return [dag_id for dag_id in ids if dag_id not in EVENT_DRIVEN_EXAMPLES]


def run_examples(cluster: LocalCluster, timeout: float = 900) -> dict[str, tuple[str, str]]:
    """Trigger every example DAG through the REST API (all at once, as three users might), wait for them:
    dag id -> (run id, final state)."""
    runs = {}
    for dag_id in example_dag_ids():
        when = DEMO_DATES.get(dag_id, dt.datetime.now(dt.timezone.utc))
        runs[dag_id] = cluster.trigger(dag_id, {}, logical_date=when)
    return {dag_id: (run_id, cluster.wait(dag_id, run_id, timeout)) for dag_id, run_id in runs.items()}


def report(cluster: LocalCluster, results: Mapping[str, tuple[str, str]]) -> str:
    """Per run: its state; per task: state, try, the host it ran on and the deferrals the triggerer served."""
    lines = []
    for dag_id, (run_id, state) in results.items():
        lines.append(f"{dag_id}  {run_id}: {state}")
        deferred = cluster.deferrals(dag_id, run_id)
        for ti in sorted(
            cluster.task_instances(dag_id, run_id), key=lambda t: (t["start_date"] or "", t["task_id"])
        ):
            index = f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""
            lines.append(
                f"  {ti['task_id'] + index:<24} {ti['state'] or '-':<10} try {ti['try_number']}  "
                f"on {ti['hostname'] or '-':<16} deferrals {deferred.get(ti['task_id'], 0)}"
            )
    c = cluster.sim_counters()
    lines.append(
        f"simulator: token requests {c['token_requests']}, token 429s {c['token_429']}, API 429s "
        f"{c.get('api_429', 0)}, Connect jobs {c['jobs_created']}, Query rows {c.get('query_rows', 0)}, "
        f"calls {sum(c['requests'].values())}"
    )
    return "\n".join(lines)


def demo(argv: Sequence[str] | None = None) -> int:
    """``demo``: start the cluster, run every example DAG through the REST API, print what happened, stop.

    Exit code 0 only when every run succeeded. The work folder (every component's log) is kept on failure
    and removed on success unless ``--keep``."""
    parser = argparse.ArgumentParser(prog="local_cluster.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="start the cluster, run the example DAGs, stop")
    run.add_argument("--keep", action="store_true", help="keep the work folder (logs, outputs) on success")
    run.add_argument("--workdir", type=Path, default=None, help="work folder (default: a new temporary one)")
    run.add_argument(
        "--token-cache", default="redis", help="token_cache of norce_default (redis, machine, process)"
    )
    run.add_argument("--timeout", type=float, default=900, help="seconds each run may take")
    options = parser.parse_args(argv)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = LocalCluster(options.workdir, norce_default_token_cache=options.token_cache)
    print(f"Work folder (logs in {cluster.logs_dir}): {cluster.workdir}", flush=True)
    ok = False
    try:
        began = time.monotonic()
        cluster.start()
        started = time.monotonic() - began
        print(
            f"Cluster up in {started:.0f} s: API {cluster.api_url}, simulator {cluster.sim_url}, "
            f"workers {', '.join(cluster.worker_hostnames)}",
            flush=True,
        )
        for error in cluster.import_errors:
            print(f"DAG import error in {error['filename']}:\n{error['stack_trace']}", flush=True)
        began = time.monotonic()
        with MemoryPeak(cluster) as memory:
            results = run_examples(cluster, options.timeout)
        print(report(cluster, results))
        ok = all(state == "success" for _, state in results.values()) and not cluster.import_errors
        rss, pss = memory.peak
        print(
            f"Example DAGs ran in {time.monotonic() - began:.0f} s; peak memory of the cluster: "
            f"{pss:.0f} MB PSS ({rss:.0f} MB RSS summed over its processes)"
        )
    except KeyboardInterrupt:
        print("Interrupted: stopping the cluster", file=sys.stderr, flush=True)
    except ClusterError as err:
        print(f"CLUSTER FAILED: {err}", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        cluster.stop()
    if ok and not options.keep and options.workdir is None:
        cluster.remove_workdir()
        print("Demo OK; the work folder was removed (--keep keeps it)")
    else:
        print(f"{'Demo OK' if ok else 'DEMO FAILED'}; logs kept in {cluster.logs_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(demo())
