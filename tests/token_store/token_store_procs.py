"""Starting task processes for the machine-store tests (a plain module, imported by name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

WORKER = str(Path(__file__).with_name("token_store_worker.py"))


class Task:
    """One worker process, started and held at the barrier until :meth:`go`."""

    #: The script the process runs (a subclass names another that speaks the same protocol).
    worker = WORKER

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, self.worker, *args],
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


def blocked_on(path: Path) -> set[int]:
    """Pids of the processes the kernel has queued for a ``flock`` on ``path`` (``->`` in /proc/locks).

    Why: a test that wants "every waiter is blocked on the lock" proves it instead of sleeping and hoping.
    """
    st = os.stat(path)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 7 and fields[1] == "->" and fields[2] == "FLOCK" and fields[6] == where:
            pids.add(int(fields[5]))
    return pids


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until true; ``timeout`` only bounds a hang, it never decides a pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.01)
