"""Issue 9 case 2 over real TLS sockets: the connection's ``verify`` wins over the CA-bundle environment.

A private CA signs a certificate for ``localhost``; a small HTTPS server answers the token request and
one GET. The worker's environment points ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``/``SSL_CERT_FILE`` at
certifi's public bundle, which does not know the private CA: only the connection's setting can make
the handshake succeed.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

SECRET = "tls-test-client-secret-value"
TOKEN = "tok-tls-test-0123456789"


def _pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA certificate, and a certificate and key for ``localhost`` signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Norce test private CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    def _answer(self, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 600})

    def do_GET(self) -> None:
        authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        self._answer({"value": [{"authorized": authorized}]})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    ca, cert, key = _pki(tmp_path_factory.mktemp("pki"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}", ca
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def connect(monkeypatch, tls_server):
    """Define ``norce_tls`` against the TLS server with the given ``verify`` extra (None: left out)."""
    import certifi

    base_url, ca = tls_server
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, certifi.where())  # a public bundle: it does not know our CA

    def define(verify: object) -> None:
        extra: dict[str, object] = {"application_id": "42", "token_cache": "process"}
        if verify is not None:
            extra["verify"] = str(ca) if verify == "ca" else verify
        conn = {
            "conn_type": "norce",
            "host": base_url,
            "login": "client-1",
            "password": SECRET,
            "extra": extra,
        }
        monkeypatch.setenv("AIRFLOW_CONN_NORCE_TLS", json.dumps(conn))

    return define


def _hook():
    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.tokens.cache import TokenCache

    return NorceHook("norce_tls", token_cache=TokenCache(), max_attempts=1)


@pytest.mark.parametrize("verify", ["ca", False], ids=["private-ca-bundle", "verify-false"])
def test_sync_hook_uses_the_connections_verify_over_the_environment(connect, verify):
    connect(verify)
    hook = _hook()
    assert hook.run_json("commerce/query/2.0/Orders/Orders") == {"value": [{"authorized": True}]}


def test_sync_hook_still_checks_certificates_by_default(connect):
    from airflow_provider_norce.exceptions import NorceError

    connect(None)
    with pytest.raises(NorceError, match="SSLError"):
        _hook().get_access_token()


@pytest.mark.parametrize("verify", ["ca", False], ids=["private-ca-bundle", "verify-false"])
def test_async_client_uses_the_connections_verify_over_the_environment(connect, verify):
    from airflow_provider_norce.hooks.async_client import NorceAsyncClient

    connect(verify)
    hook = _hook()

    async def read() -> object:
        async with NorceAsyncClient(hook.config, hook=hook) as client:
            return await client.get_json("commerce/query/2.0/Orders/Orders")

    assert asyncio.run(read()) == {"value": [{"authorized": True}]}


def test_async_client_trusts_the_same_environment_bundle_as_the_task(monkeypatch, connect, tls_server):
    """verify left at true: REQUESTS_CA_BUNDLE (read by requests in the task) also holds in the triggerer."""
    from airflow_provider_norce.hooks.async_client import NorceAsyncClient

    _, ca = tls_server
    connect(None)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    hook = _hook()
    assert hook.run_json("commerce/query/2.0/Orders/Orders") == {"value": [{"authorized": True}]}

    async def read() -> object:
        async with NorceAsyncClient(hook.config, hook=hook) as client:
            return await client.get_json("commerce/query/2.0/Orders/Orders")

    assert asyncio.run(read()) == {"value": [{"authorized": True}]}
