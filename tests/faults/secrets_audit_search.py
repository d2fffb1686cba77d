"""The search of the secrets audit: exact substrings (no regex) of every secret in every spelling it can take.

A secret is looked for as itself, base64 (standard and URL-safe, with and without padding), URL-encoded
(``quote`` and ``quote_plus``) and JSON-escaped. An access token (a JWT) is also looked for by its payload and
signature segments alone, so a token cut short in an excerpt is still found (its header segment is the same
for every token and proves nothing).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator


@dataclass(frozen=True)
class Secret:
    label: str  # "client secret", "token 3", "canary token"
    value: str


@dataclass(frozen=True)
class Finding:
    secret: str  # the label
    form: str  # "raw", "base64", "url-encoded", "signature segment", ...
    channel: str  # "stdout", "stderr", "log file", "database", "exceptions", "objects"
    where: str  # the file, table or dump entry
    line: str  # the line, every secret in it replaced by <label>

    def __str__(self) -> str:
        return f"{self.secret} ({self.form}) in {self.channel} {self.where}: {self.line}"


def spellings(secret: Secret) -> dict[str, str]:
    """``{form: text}`` of every spelling of ``secret`` the audit searches for."""
    value = secret.value
    raw = value.encode()
    forms = {
        "raw": value,
        "base64": base64.b64encode(raw).decode(),
        "base64 url-safe": base64.urlsafe_b64encode(raw).decode(),
        "url-encoded": quote(value, safe=""),
        "form-encoded": quote_plus(value),
        "json-escaped": json.dumps(value)[1:-1],
    }
    for name in ("base64", "base64 url-safe"):
        forms[name + " unpadded"] = forms[name].rstrip("=")
    if value.count(".") == 2:  # a JWT: header.payload.signature
        _, payload, signature = value.split(".")
        forms["payload segment"] = payload
        forms["signature segment"] = signature
    return {form: text for form, text in forms.items() if len(text) >= 8}


class Search:
    """Finds every spelling of every secret in texts; ``findings`` collects them."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.needles = [
            (secret, form, text) for secret in secrets for form, text in spellings(secret).items()
        ]
        self.findings: list[Finding] = []

    def text(self, text: str, channel: str, where: str) -> None:
        """One finding per secret and line: the first spelling found (raw first)."""
        reported: set[tuple[str, str]] = set()
        for secret, form, needle in self.needles:
            if needle not in text:
                continue
            for line in text.splitlines():
                if needle in line and (secret.label, line) not in reported:
                    reported.add((secret.label, line))
                    self.findings.append(Finding(secret.label, form, channel, where, self._shown(line)))

    def _shown(self, line: str) -> str:
        for secret, _, needle in sorted(self.needles, key=lambda n: -len(n[2])):
            line = line.replace(needle, f"<{secret.label}>")
        return line if len(line) <= 600 else line[:600] + "..."

    def files(self, folder: str, channel: str) -> int:
        """Every file under ``folder`` (bytes decoded leniently); returns how many were read."""
        count = 0
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                count += 1
                self.text(data.decode("utf-8", "replace"), channel, os.path.relpath(path, folder))
        return count

    def database(self) -> dict[str, int]:
        """Every row of every table of Airflow's metadata database (Fernet-encrypted values decrypted);
        returns the row count per table."""
        import sqlalchemy as sa
        from airflow import settings

        fernet = _fernet()
        rows_per_table: dict[str, int] = {}
        with settings.engine.connect() as connection:
            for table in sa.inspect(connection).get_table_names():
                rows = connection.execute(sa.text(f'SELECT * FROM "{table}"')).fetchall()
                rows_per_table[table] = len(rows)
                parts = []
                for row in rows:
                    parts.append(" | ".join(_cell(value, fernet) for value in row))
                self.text("\n".join(parts), "database", table)
        return rows_per_table


def _fernet() -> Any:
    try:
        from airflow.models.crypto import get_fernet

        return get_fernet()
    except Exception:
        return None


def _cell(value: Any, fernet: Any) -> str:
    if isinstance(value, memoryview):
        value = value.tobytes()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    if fernet is not None and text.startswith("gAAAAA"):
        try:
            text += " [decrypted] " + fernet.decrypt(text.encode()).decode("utf-8", "replace")
        except Exception:
            pass
    return text.replace("\n", "\\n")


def findings_by_secret(findings: Iterable[Finding]) -> Iterator[tuple[str, list[Finding]]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.secret, []).append(finding)
    yield from grouped.items()
