"""Shared helpers for the simulator's own tests: a tiny HTTP client that speaks to it like a pipeline would."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest
import requests

from airflow_provider_norce.simulator import FakeClock, NorceSimulator


class SimClient:
    """A ``requests`` session with the simulator's credentials; caches one token like a real client."""

    def __init__(self, sim: NorceSimulator) -> None:
        self.sim = sim
        self.session = requests.Session()
        self._token: str | None = None

    def token_response(self, **form: str) -> requests.Response:
        data = {
            "grant_type": "client_credentials",
            "client_id": self.sim.client_id,
            "client_secret": self.sim.client_secret,
            "scope": "production",
        }
        data.update(form)
        return self.session.post(
            self.sim.token_url, data={k: v for k, v in data.items() if v is not None}, timeout=5
        )

    def token(self) -> str:
        if self._token is None:
            response = self.token_response()
            assert response.status_code == 200, response.text
            self._token = response.json()["access_token"]
        return self._token

    def headers(self, **extra: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token()}",
            "ApplicationId": str(self.sim.application_id),
            **extra,
        }

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", None)
        if headers is None:
            headers = self.headers()
        return self.session.get(
            self.sim.base_url + path, headers=headers, timeout=kwargs.pop("timeout", 10), **kwargs
        )

    def query(self, entity: str, **params: Any) -> requests.Response:
        return self.get("/commerce/query/2.0/" + entity, params=params)

    def all_pages(self, entity: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
        """Every row of a query, following nextLinks; also the number of pages."""
        response = self.query(entity, **params)
        rows, pages = [], 0
        while True:
            assert response.status_code == 200, response.text
            page = response.json()
            rows += page["value"]
            pages += 1
            link = page.get("@odata.nextLink")
            if not link:
                return rows, pages
            response = self.session.get(link, headers=self.headers(), timeout=10)

    def import_(self, method: str, items: Any, header: Any = None, **kwargs: Any) -> requests.Response:
        value = {"AccountId": 1, "FullFile": False} if header is None else header
        headers = self.headers()
        if value is not False:
            headers["X-StormConnect-Header"] = value if isinstance(value, str) else json.dumps(value)
        body = json.dumps(items) if isinstance(items, (list, dict)) else items
        return self.session.post(
            f"{self.sim.base_url}/commerce/connect/4.0/{method}",
            data=body,
            headers=headers,
            timeout=10,
            **kwargs,
        )

    def job(self, job_id: str | int) -> dict[str, Any]:
        response = self.get(f"/commerce/connect/4.0/Job/Get?id={job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def job_log(self, job_id: str | int) -> list[dict[str, Any]]:
        response = self.get(f"/commerce/connect/4.0/Job/GetLog?id={job_id}")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sim(clock: FakeClock):
    """Build and start simulators (fake clock by default); all are stopped after the test."""
    started: list[NorceSimulator] = []

    def make(**kwargs: Any) -> tuple[NorceSimulator, SimClient]:
        kwargs.setdefault("clock", clock)
        sim = NorceSimulator(**kwargs).start()
        started.append(sim)
        return sim, SimClient(sim)

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def serve_cli():
    """Start ``python -m airflow_provider_norce.simulator serve ARGS`` as a real subprocess; returns its URL
    (read from the one line it prints) and the process. Every process started is stopped afterwards."""
    started: list[subprocess.Popen[str]] = []

    def serve(*args: str) -> tuple[str, subprocess.Popen[str]]:
        command = [sys.executable, "-m", "airflow_provider_norce.simulator", "serve", *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"Norce simulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        return match.group(1), process

    yield serve
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
