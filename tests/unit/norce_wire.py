"""Shared constants and fakes of the wire tests (a plain module, so tests can import it by name)."""

from __future__ import annotations

import threading

BASE = "https://acme.api-se.norce.tech"
TOKEN_URL = f"{BASE}/identity/1.0/connect/token"
SECRET = "s3cr3t-client-secret-value"


class FakeClock:
    """Wall clock and sleep the tests control; every sleep the code asks for is recorded."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def token_body(token: str = "tok-1", expires_in: int | None = 600) -> dict[str, object]:
    body: dict[str, object] = {"access_token": token, "token_type": "Bearer", "scope": "production"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return body
