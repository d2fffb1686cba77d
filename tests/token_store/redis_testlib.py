"""A real ``redis-server`` for the Redis token-store tests (a plain module, imported by name).

Started on 127.0.0.1 on a free port, without persistence, with its files in a temporary folder, and
stopped (killed) on every exit path by the fixtures in ``conftest.py``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """One ``redis-server`` process; :meth:`stop` and :meth:`start` again keep the same port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._stats_client: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = redis_server_binary()
        assert binary, "redis-server is not installed (bash .ci/os-packages installs it)"
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")  # handed to the child, closed here after
        try:
            args = ["--port", str(self.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
            args += ["--dir", str(self.directory), "--daemonize", "no"]
            self.proc = subprocess.Popen([binary, *args], stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return self
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    text = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    raise AssertionError(f"redis-server did not start on port {self.port}:\n{text}") from None
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGKILL: as a crashed or unplugged Redis (no goodbye to its clients)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        self._stats_client = None  # its connection died with the server

    def client(self, **kwargs: Any) -> Any:
        import redis

        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5, **kwargs
        )

    def command_counts(self) -> dict[str, int]:
        """``INFO commandstats`` as ``{command: calls}``, the ``info`` this asks with left out.

        Asked on one long-lived connection: a new client per call would add its own handshake (``HELLO``,
        ``CLIENT SETINFO``: redis-py 7 and later send them on every new connection) to what it counts.
        """
        if self._stats_client is None:
            self._stats_client = self.client()
        stats = self._stats_client.info("commandstats")
        return {
            name[len("cmdstat_") :]: int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info"
        }
