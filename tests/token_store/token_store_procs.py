"""Starting task processes for the machine-store tests (a plain module, imported by name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = str(Path(__file__).with_name("token_store_worker.py"))


class Task:
    """One worker process, started and held at the barrier until :meth:`go`."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def wait_for(self, line: str, timeout: float = 60.0) -> None:
        """Read stdout up to ``line`` (Airflow may log to stdout before it)."""
        seen = []
        for got in self.proc.stdout:
            if got.strip() == line:
                return
            seen.append(got)
        _, err = self.proc.communicate(timeout=timeout)
        raise AssertionError(f"worker ended before {line!r}: {''.join(seen)[-2000:]}\nstderr:\n{err[-3000:]}")

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 120.0) -> dict:
        out, err = self.proc.communicate(timeout=timeout)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert self.proc.returncode == 0 and lines, f"worker failed ({self.proc.returncode}):\n{err[-3000:]}"
        return json.loads(lines[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_together(tasks: list[Task], timeout: float = 120.0) -> list[dict]:
    """Wait until every task is ready, release them at once, collect their results."""
    try:
        for task in tasks:
            task.wait_for("ready")
        for task in tasks:
            task.go()
        return [task.result(timeout) for task in tasks]
    finally:
        for task in tasks:
            task.kill()
