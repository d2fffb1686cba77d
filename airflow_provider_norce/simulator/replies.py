"""The one response type every part of the simulator returns, and the JSON helpers around it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """An HTTP answer before it is written: status, body bytes and extra headers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    """A JSON reply; compact separators because page bodies are large and sent often."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Reply(status, body, dict(headers or {}))


def odata_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """The OData v4 error envelope ``{"error": {"code", "message"}}``."""
    return json_reply(status, {"error": {"code": code, "message": message}}, headers)


def message_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An ASP.NET-style error body, as the Connect and Services APIs answer: ``{"Message": "..."}``."""
    return json_reply(status, {"Message": message}, headers)
