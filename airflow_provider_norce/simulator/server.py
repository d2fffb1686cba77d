"""The Norce simulator: a real HTTP server on 127.0.0.1 that routes to identity, Query, Connect and faults.

Why a real server: the provider's hooks, operators, triggers and the stock HttpOperator must all be tested
through the same sockets, keep-alive pools and timeouts they use against Norce. ``ThreadingHTTPServer``
with HTTP/1.1 keep-alive is plenty for thousands of requests per second on two cores, and it keeps the
package stdlib-only. Every response is written in one ``send`` with a ``Content-Length`` (and
``TCP_NODELAY``), so there is no Nagle/delayed-ACK stall between headers and body.

Routes (everything but ``/identity`` and ``/_sim/`` passes the API gate first):

* ``POST /identity/1.0/connect/token`` -> :mod:`.identity`
* API gate: ``Authorization: Bearer <token>`` (missing, unknown, expired or revoked -> 401 with
  ``WWW-Authenticate: Bearer error="invalid_token"``), then the ``ApplicationId`` header (also
  ``application-id``; names are case-insensitive): missing or not numeric -> 400, another application than
  the simulator's -> 403 (an OAuth user only reaches the applications it was granted).
* ``GET /commerce/metadata/1.1/GetApplication`` -> the published Application shape (:mod:`.application`)
* ``GET /commerce/query/2.0/...`` -> :mod:`.query` (optional own rate limit: 429)
* ``/commerce/connect/4.0/...`` -> :mod:`.connect`: the 9 imports (``Product/...``, ``Customer/...``,
  ``Supplier/ImportProducts``), ``Job/Get`` and ``Job/GetLog``. Connect options: ``require_field_masks``
  (400 for a header without its main ``...FieldsThatAreSet``; a test aid, Norce accepts it and writes no
  field), ``job_insert_spelling`` (``Insert``, ``Inserts`` or ``both`` in Job/Get) and ``onhand_set`` (the
  Query name of the on-hand set, unpublished; default ``Products/ProductSkuOnHands``).
* ``/_sim/`` (no auth, not counted, not delayed by the simulated network): ``GET counters``, ``POST reset``
  (``?rate_limits=true`` also refills the rate-limit buckets), ``GET|POST|DELETE faults``, ``POST revoke``,
  ``POST expire`` (every token issued so far expires now), ``GET tokens`` (``{"tokens": [...]}``: every token
  ever issued, for secrets audits), ``GET info``, ``GET|POST network`` (the simulated link's ``latency``,
  ``latency_jitter`` and ``bandwidth``, see :mod:`.network`), ``POST orders/update`` (``{"id", "updated"}``:
  a late ``Updated`` for one order, see :meth:`NorceSimulator.update_order`), ``POST orders/add``
  (``{"count": n}`` or ``{"count": n, "created": "2026-12-01T10:00:00Z"}``: n new orders with the next Ids,
  see :meth:`NorceSimulator.add_orders`), ``GET|POST query-behaviour`` (the misbehaving-Query switches, a JSON
  object of :meth:`NorceSimulator.set_query_behaviour`'s arguments; ``POST reset`` turns them all off again).

The simulated network (``latency``, ``latency_jitter``, ``bandwidth``; :mod:`.network`) delays every other
answer in its own request thread and paces its bytes through one link-wide bucket.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from airflow_provider_norce.simulator import connect as connect_api
from airflow_provider_norce.simulator import query as query_api
from airflow_provider_norce.simulator.application import application_payload
from airflow_provider_norce.simulator.clock import SimTime
from airflow_provider_norce.simulator.counters import Counters
from airflow_provider_norce.simulator.data import DEFAULT_ONHAND_SET, Catalog
from airflow_provider_norce.simulator.faults import PROCESSED_KINDS, Fault, FaultRegistry, make_fault
from airflow_provider_norce.simulator.identity import (
    DEFAULT_SCOPES,
    TOKEN_PATH,
    IdentityService,
    TokenBucket,
    oauth_error,
    retry_after_seconds,
)
from airflow_provider_norce.simulator.network import UNCHANGED, Network
from airflow_provider_norce.simulator.orders import (
    DEFAULT_ORDERS_END,
    DEFAULT_ORDERS_START,
    OrderSource,
    updated_epoch,
)
from airflow_provider_norce.simulator.query_behaviour import make_query_behaviour
from airflow_provider_norce.simulator.replies import Reply, json_reply, message_error, odata_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import datetime
    from email.message import Message
    from types import TracebackType

METADATA_APPLICATION = "/commerce/metadata/1.1/getapplication"
_TOKEN_CATEGORIES = frozenset({"token"})
_QUERY_CATEGORIES = frozenset({"api", "query"})
_CONNECT_CATEGORIES = frozenset({"api", "connect"})
_JOB_CATEGORIES = frozenset({"api", "jobs"})
_API_CATEGORIES = frozenset({"api"})
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
_WWW_AUTHENTICATE_403 = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
_TOKEN_ERRORS = {
    "invalid_client": "Client authentication failed (simulated invalid_client).",
    "invalid_scope": "The requested scope is invalid, unknown or not granted to this client (simulated).",
    "unauthorized_client": "This client is not authorized to use the client_credentials grant (simulated).",
}
_EXPIRES_IN_VARIANTS: dict[str, Any] = {
    "expires_in_0": 0,
    "expires_in_negative": -60,
    "expires_in_string": "soon",
    "expires_in_ten_years": 315_360_000,
}
_PROXY_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} {phrase} - Web Gateway</title>
<style>
body {{ font-family: Arial, Helvetica, sans-serif; background: #f4f4f4; color: #333; margin: 0; }}
.box {{ max-width: 640px; margin: 60px auto; background: #fff; border: 1px solid #ddd; padding: 24px 32px; }}
h1 {{ font-size: 22px; color: #b00; }} .meta {{ font-size: 12px; color: #777; }}
</style>
</head>
<body>
<div class="box">
<h1>{status} {phrase}</h1>
<p>The web gateway could not complete your request to the upstream server. The server may be down
for maintenance or overloaded, or the request was blocked by the security policy of this network.</p>
<p>Please try again in a few minutes. If the problem persists, contact your network administrator and
quote the reference below.</p>
<p class="meta">Reference: 7f3a9c1e-5d2b-4e8f-a6c0-91b2d4e6f8a0 &middot; Gateway: gw-edge-03 &middot; Policy: default</p>
</div>
</body>
</html>
"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: NorceSimulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """Parses the request line and headers (stdlib) and hands over to the simulator."""

    protocol_version = "HTTP/1.1"
    server_version = "NorceSimulator/1.0"
    server: _Server
    #: the simulated link this request's answer crosses; None for ``/_sim/`` (steering is not traffic)
    link: Network | None = None
    #: whether this request's latency is still to be slept (once, before the first byte or the close)
    latency_due = False

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.simulator._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.simulator._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence: tests and benchmarks read counters, not access logs."""

    def do_GET(self) -> None:
        self.server.simulator._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.simulator._serve(self, "POST")

    def do_PUT(self) -> None:
        self.server.simulator._serve(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.simulator._serve(self, "DELETE")

    def do_PATCH(self) -> None:
        self.server.simulator._serve(self, "PATCH")

    def do_HEAD(self) -> None:
        self.server.simulator._serve(self, "HEAD")

    def read_body(self) -> bytes:
        """The request body from ``Content-Length`` or chunked transfer coding."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def write_reply(self, reply: Reply, method: str, cut_body_to: int | None = None) -> None:
        """Write status, headers and body in one send; ``cut_body_to`` sends only part of the announced body."""
        try:
            phrase = HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        head = [f"HTTP/1.1 {reply.status} {phrase}", f"Server: {self.server_version}"]
        head.append(f"Content-Type: {reply.content_type}")
        head.append(f"Content-Length: {len(reply.body)}")
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if method != "HEAD":
            data += reply.body if cut_body_to is None else reply.body[:cut_body_to]
        self.cross_link()
        if self.link is None:
            self.wfile.write(data)
        else:
            self.link.send(self.wfile.write, data)

    def cross_link(self) -> None:
        """Sleep this request's simulated latency, once, in this thread (no lock held: see :mod:`.network`)."""
        if self.latency_due and self.link is not None:
            self.latency_due = False
            self.link.wait_latency()

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), whatever was sent or is still unread."""
        self.cross_link()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.rfile.close()  # the makefile holds a reference: without this, close() would not close
        with contextlib.suppress(OSError):
            self.connection.close()

    def hang_up(self) -> None:
        """Close the connection without (the rest of) a response."""
        self.cross_link()
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class NorceSimulator:
    """A local Norce: identity, Query, Connect, rate limits and faults. See the package docs for the API."""

    def __init__(
        self,
        port: int = 0,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",
        application_id: int = 1234,
        expires_in: int = 600,
        orders: int = 10_000,
        products: int = 200,
        seed: int = 42,
        token_burst: int = 20,
        token_rate_per_minute: float = 3,
        retry_after: bool = True,
        query_rate_limit: tuple[float, int] | None = None,
        job_duration: float = 1.0,
        page_size: int = 500,
        clock: Callable[[], float] | None = None,
        *,
        host: str = "127.0.0.1",
        customers: int = 100,
        allowed_scopes: Iterable[str] = DEFAULT_SCOPES,
        clients: Mapping[str, str] | None = None,
        standard_jwt: bool = False,
        require_scope: bool = True,
        orders_start: str = DEFAULT_ORDERS_START,
        orders_end: str = DEFAULT_ORDERS_END,
        application_name: str = "Norce simulator",
        other_application_id: int | None = None,
        require_field_masks: bool = False,
        job_insert_spelling: str = "Insert",
        onhand_set: str = DEFAULT_ONHAND_SET,
        latency: float = 0.0,
        latency_jitter: float = 0.0,
        bandwidth: float | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.application_id = int(application_id)
        self.application_name = application_name
        self._application_cache: tuple[tuple[int, str], bytes] | None = None
        self.retry_after = retry_after
        self.time = SimTime(clock)
        self._counters = Counters()
        self._faults = FaultRegistry(seed)
        self.identity = IdentityService(
            self.time,
            {client_id: client_secret, **(clients or {})},
            allowed_scopes=allowed_scopes,
            expires_in=expires_in,
            burst=token_burst,
            rate_per_minute=token_rate_per_minute,
            retry_after=retry_after,
            standard_jwt=standard_jwt,
            require_scope=require_scope,
        )
        self.catalog = Catalog(products, customers, seed, onhand_set)
        self.orders = OrderSource(
            orders,
            seed,
            self.catalog.initial_part_nos,
            customers,
            self.application_id,
            other_application_id,
            orders_start,
            orders_end,
        )
        self.query = query_api.QueryService(
            query_api.build_entity_sets(self.orders, self.catalog),
            page_size,
            self._count_rows,
            self._count_empty_page,
        )
        self._on_query_page: Callable[[int], None] | None = None
        self._query_pages = 0
        self._query_pages_lock = threading.Lock()
        self.connect = connect_api.ConnectService(
            self.catalog,
            self.time,
            job_duration,
            require_field_masks=require_field_masks,
            insert_spelling=job_insert_spelling,
        )
        self.query_limiter = (
            TokenBucket(query_rate_limit[1], query_rate_limit[0], self.time.now) if query_rate_limit else None
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        #: the simulated link (real time; sleeps end at once when the simulator stops). Tests may replace it
        #: with a ``Network`` whose clock and sleep they control.
        self.link = Network(latency, latency_jitter, bandwidth, seed=seed, sleep=self._stopping.wait)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> NorceSimulator:
        """Bind (port 0 = a free port) and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self.identity.issuer = f"{self.base_url}/identity/1.0"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="norce-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close keep-alive connections and release the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        stopper = threading.Thread(target=server.shutdown, name="norce-simulator-stop", daemon=True)
        stopper.start()
        while stopper.is_alive():  # wake serve_forever's select() with a connection instead of waiting a poll
            with contextlib.suppress(OSError):
                socket.create_connection((self.host, self.port), timeout=0.2).close()
            stopper.join(0.01)
        with self._connections_lock:
            open_connections = list(self._connections)
        for conn in open_connections:  # idle keep-alive handlers would otherwise answer after stop()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> NorceSimulator:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- addresses -----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (valid after :meth:`start`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        """The identity endpoint clients post to."""
        return self.base_url + TOKEN_PATH

    def connection_dict(self) -> dict[str, Any]:
        """The Airflow connection in JSON form (for ``AIRFLOW_CONN_NORCE_DEFAULT``)."""
        return {
            "conn_type": "norce",
            "host": self.base_url,
            "login": self.client_id,
            "password": self.client_secret,
            "extra": {"application_id": str(self.application_id)},
        }

    def connection_uri(self) -> str:
        """The same connection as an Airflow URI (the base URL travels in the ``base_url`` extra)."""
        extras = urlencode({"base_url": self.base_url, "application_id": str(self.application_id)})
        user = quote(self.client_id, safe="")
        secret = quote(self.client_secret, safe="")
        return f"norce://{user}:{secret}@{self.host}:{self.port}/?{extras}"

    # -- steering ------------------------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """Snapshot: token_requests, tokens_issued, token_429, api_429, api_401, jobs_created, query_rows
        (rows in every Query answer served), query_empty_pages (empty pages the Query switches served), requests."""
        return self._counters.snapshot()

    def _count_rows(self, rows: int) -> None:
        self._counters.incr("query_rows", rows)

    def _count_empty_page(self) -> None:
        self._counters.incr("query_empty_pages")

    def set_query_behaviour(self, **switches: Any) -> None:
        """Make Query misbehave: replaces the whole switch set (no arguments = all normal again).

        Switches (see :mod:`.query_behaviour`): ``desc_ignored``, ``top_ignored``, ``key_bounds_ignored``,
        ``empty_page_chain`` (bools), ``empty_pages``, ``duplicate_rows`` (ints >= 0; ``duplicate_rows`` below
        ``page_size``). ValueError naming the switch for an unknown name or a bad value. ``POST /_sim/reset``
        turns them all off.
        """
        self.query.set_behaviour(make_query_behaviour(**switches))

    def query_behaviour(self) -> dict[str, Any]:
        """The Query misbehaviour switches in force, all of them."""
        return self.query.behaviour.as_dict()

    @property
    def on_query_page(self) -> Callable[[int], None] | None:
        """Called as ``on_query_page(n)`` for the n-th Query entity-set listing answered since it was set
        (empty pages of a switch included; not ``$metadata`` nor single-key reads), in the request's thread,
        after the page's body is built and before it is sent: a test adds or changes rows mid-export with it.
        An exception it raises breaks that request. None (the default) turns it off."""
        return self._on_query_page

    @on_query_page.setter
    def on_query_page(self, callback: Callable[[int], None] | None) -> None:
        with self._query_pages_lock:
            self._on_query_page, self._query_pages = callback, 0
        self.query.on_page = None if callback is None else self._query_page_served

    def _query_page_served(self) -> None:
        with self._query_pages_lock:
            callback = self._on_query_page
            self._query_pages += 1
            served = self._query_pages
        if callback is not None:
            callback(served)

    def network(self) -> dict[str, Any]:
        """The simulated link: ``{"latency": s, "latency_jitter": s, "bandwidth": bytes/s or None}``."""
        return self.link.settings()

    def set_network(
        self, *, latency: Any = UNCHANGED, latency_jitter: Any = UNCHANGED, bandwidth: Any = UNCHANGED
    ) -> dict[str, Any]:
        """Change the simulated link at run time (omitted settings stay; ``bandwidth=None`` = no cap).

        Validated together (ValueError: negative latency, jitter above latency, bandwidth <= 0); requests
        already sleeping finish with the old latency. Returns the new :meth:`network`.
        """
        return self.link.configure(latency, latency_jitter, bandwidth)

    def update_order(self, order_id: int, updated: str | datetime) -> None:
        """Set order ``order_id``'s ``Updated`` to ``updated``, as Norce writing a change late.

        ``updated`` is an ISO-8601 instant (``"2026-11-20T10:00:00Z"``) or a timezone-aware datetime, whole
        seconds; it may lie in the past, inside a window an export already read, and before ``Created``
        (only ``Updated`` changes). The last update of an order wins. Every Query read (pages, filters,
        ``$orderby``, ``$count``, single entities) sees it at once. Why: Norce writes ``Updated`` late and out
        of order under load (third-party: ``query.json entity_sets[Orders/Orders].fields_seen_elsewhere[Updated]
        .note``, ``query.json incremental_sync.recommended_by_third_party``), so a test needs to say "this row
        changed inside a window an export already read".
        """
        self.orders.set_updated(order_id, updated_epoch(updated))

    def add_orders(self, count: int, created: str | datetime | None = None) -> range:
        """Add ``count`` new orders, as shops placing them while a watcher polls; their Ids (a ``range``).

        They take the next Ids; ``Created`` and ``Updated`` are ``created`` (an ISO-8601 instant with a zone
        or an aware datetime, whole seconds), by default the simulator clock's now (raised to the newest
        order's ``Created`` if the clock lies before it). Existing orders keep every value. Every Query read
        (filters, ``$orderby``, ``$top``, keyset pages, single entities) sees them at once. ValueError for a
        ``count`` below 1, more than ``MAX_ORDERS`` in all, or a ``created`` before the newest order's.
        """
        if created is None:
            now = int(self.time.wall())
            newest = self.orders.newest_slot()
            epoch = now if newest is None else max(now, newest)
        else:
            epoch = updated_epoch(created)
        return self.orders.append(count, epoch)

    def reset_counters(self) -> None:
        """Zero the counters (tokens, jobs and data stay)."""
        self._counters.reset()

    def reset_rate_limits(self) -> None:
        """Refill the token and Query rate-limit buckets, as if a long pause had passed."""
        self.identity.limiter.reset()
        if self.query_limiter is not None:
            self.query_limiter.reset()

    def add_fault(
        self,
        endpoint: str,
        kind: str,
        count: int | None = None,
        ratio: float | None = None,
        status: int | None = None,
        retry_after: int | str | None = None,
        delay: float | None = None,
        after_processing: bool = False,
        variant: str | None = None,
        location: str | None = None,
    ) -> None:
        """Inject a failure; see :mod:`airflow_provider_norce.simulator.faults` for endpoints and kinds."""
        self._faults.add(
            make_fault(
                endpoint, kind, count, ratio, status, retry_after, delay, after_processing, variant, location
            )
        )

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._faults.clear()

    def revoke_tokens(self) -> None:
        """Make every issued token unknown: the next API call with one answers 401."""
        self.identity.revoke_all()

    def expire_tokens(self) -> None:
        """Expire every token issued so far (the next API call with one answers 401 "The access token
        expired."), without moving the simulator clock: rate limits and jobs are untouched, and tokens issued
        afterwards live their full ``expires_in``."""
        self.identity.expire_all()

    def issued_tokens(self) -> list[str]:
        """Every access token this simulator ever issued, in issue order (revoked and expired ones included)."""
        return self.identity.issued_tokens()

    # -- request handling ------------------------------------------------------------------------------------
    def _serve(self, handler: _Handler, method: str) -> None:
        path, _, query = handler.path.partition("?")
        if path == "/_sim" or path.startswith("/_sim/"):
            handler.link, handler.latency_due = None, False
            handler.write_reply(self._control(method, path, query, handler.read_body()), method)
            return
        handler.link, handler.latency_due = self.link, True
        self._counters.record_request(method, path)
        lowered = path.lower()
        is_token = path == TOKEN_PATH
        if is_token:  # every attempt counts, faulted ones included: that is what a rate limit sees
            self._counters.incr("token_requests")
        fault = self._faults.match(self._categories(lowered, is_token), path)
        if fault is not None and fault.kind == "reset" and not fault.after_processing:
            if fault.delay:
                self._stopping.wait(fault.delay)
            handler.reset()  # before reading the body: nothing of the request is processed
            return
        body = handler.read_body()
        if fault is not None and not fault.after_processing and fault.kind not in PROCESSED_KINDS:
            self._inject(handler, method, fault, None, lowered, is_token)
            return
        if fault is not None and fault.kind == "token_answer":
            if fault.delay:
                self._stopping.wait(fault.delay)
            handler.write_reply(self._token_answer(handler, fault, body), method)
            return
        reply = self._route(handler, method, path, lowered, query, body, is_token)
        if fault is not None:
            self._inject(handler, method, fault, reply, lowered, is_token)
            return
        handler.write_reply(reply, method)

    @staticmethod
    def _categories(lowered: str, is_token: bool) -> frozenset[str]:
        if is_token:
            return _TOKEN_CATEGORIES
        if lowered.startswith(query_api.PREFIX):
            return _QUERY_CATEGORIES
        if lowered.startswith(connect_api.PREFIX):
            return _JOB_CATEGORIES if lowered.startswith(connect_api.PREFIX + "job/") else _CONNECT_CATEGORIES
        return _API_CATEGORIES

    def _route(
        self, handler: _Handler, method: str, path: str, lowered: str, query: str, body: bytes, is_token: bool
    ) -> Reply:
        headers = handler.headers
        if is_token:
            if method != "POST":
                reply = json_reply(
                    405, {"error": "invalid_request", "error_description": "Use POST."}, {"Allow": "POST"}
                )
            else:
                reply = self.identity.handle(headers.get("Content-Type"), body, handler.client_address[0])
            if reply.status == 429:
                self._counters.incr("token_429")
            elif reply.status == 200:
                self._counters.incr("tokens_issued")
            return reply
        is_query = lowered.startswith(query_api.PREFIX)
        if is_query and self.query_limiter is not None:
            wait = self.query_limiter.take(handler.client_address[0])
            if wait is not None:
                self._counters.incr("api_429")
                extra = {"Retry-After": str(retry_after_seconds(wait))} if self.retry_after else {}
                return odata_error(429, "TooManyRequests", "Too many requests; slow down.", extra)
        denied = self._gate(headers)
        if denied is not None:
            return denied
        self.connect.settle()
        if is_query:
            if method not in ("GET", "HEAD"):
                return odata_error(405, "MethodNotAllowed", "The Query API is read-only.", {"Allow": "GET"})
            host = headers.get("Host")
            base = f"http://{host}" if host else self.base_url
            return self.query.handle(path[len(query_api.PREFIX) :], query, base)
        if lowered == METADATA_APPLICATION:
            if method != "GET":
                return message_error(405, "Use GET.", {"Allow": "GET"})
            return Reply(200, self._application_body())
        if lowered.startswith(connect_api.PREFIX):
            return self._connect(method, path[len(connect_api.PREFIX) :], query, headers, body)
        return message_error(404, f"No HTTP resource was found that matches the request URI '{path}'.")

    def _gate(self, headers: Message) -> Reply | None:
        """401 for a bad bearer token, 400/403 for a bad application id; None when the call may pass."""
        auth = headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        problem = "No bearer token was sent." if scheme.lower() != "bearer" or not token.strip() else None
        problem = problem or self.identity.check(token.strip())
        if problem is not None:
            self._counters.incr("api_401")
            return message_error(
                401, f"Authorization has been denied for this request. {problem}", _WWW_AUTHENTICATE
            )
        raw = headers.get("ApplicationId") or headers.get("application-id")
        if raw is None or not raw.strip():
            return message_error(400, "The ApplicationId header is missing; send the numeric application id.")
        if not raw.strip().isdigit():
            return message_error(400, f"The ApplicationId header {raw!r} is not numeric.")
        if int(raw) != self.application_id:
            return message_error(403, f"This client has no access to application {int(raw)}.")
        return None

    def _application_body(self) -> bytes:
        """GetApplication's body, encoded once: it is the cheapest authenticated call, so clients (and the
        benchmark) call it often, and the Application object is large."""
        key = (self.application_id, self.application_name)
        if self._application_cache is None or self._application_cache[0] != key:
            self._application_cache = (key, json_reply(200, application_payload(*key)).body)
        return self._application_cache[1]

    def _connect(self, method: str, rest: str, query: str, headers: Message, body: bytes) -> Reply:
        lowered = rest.lower()
        if lowered in ("job/get", "job/getlog"):
            if method != "GET":
                return message_error(405, "Use GET.", {"Allow": "GET"})
            raw = parse_qs(query).get("id", [""])[0]
            if not raw.strip().lstrip("-").isdigit():
                return message_error(400, f"The id parameter {raw!r} is not a job id (an integer).")
            job_id = int(raw)
            result: Any = (
                self.connect.job_status(job_id) if lowered == "job/get" else self.connect.job_log(job_id)
            )
            if result is None:
                return message_error(404, f"Job {job_id} was not found.")
            return json_reply(200, result)
        if method != "POST":
            return message_error(405, "Import methods take POST.", {"Allow": "POST"})
        reply, created = self.connect.post_import(rest, headers.get(connect_api.HEADER), body)
        if created:
            self._counters.incr("jobs_created")
        return reply

    def _inject(
        self, handler: _Handler, method: str, fault: Fault, reply: Reply | None, lowered: str, is_token: bool
    ) -> None:
        if fault.kind == "timeout":
            self._stopping.wait(10.0 if fault.delay is None else fault.delay)
            handler.hang_up()
            return
        if fault.delay:
            self._stopping.wait(fault.delay)
        if fault.kind == "drop":
            full = reply or json_reply(200, {"value": [{"Id": n} for n in range(50)]})
            handler.write_reply(full, method, cut_body_to=len(full.body) // 2)
            handler.hang_up()
            return
        if fault.kind == "truncated":
            assert reply is not None  # truncated faults always process the request first
            handler.write_reply(Reply(200, reply.body[: max(1, len(reply.body) // 2)], reply.headers), method)
            return
        if fault.kind == "reset":  # after processing: the job exists, the client never hears of it
            handler.reset()
            return
        if fault.kind == "next_link":
            assert reply is not None  # next_link faults always process the request first
            handler.write_reply(_with_next_link(reply, fault.location or ""), method)
            return
        answer = self._fault_answer(fault, lowered, is_token)
        if answer is not None:
            handler.write_reply(answer, method)
            return
        status = fault.http_status()
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if status == 429:
            self._counters.incr("token_429" if is_token else "api_429")
        if is_token:
            error = "rate_limited" if status == 429 else "server_error"
            answer = json_reply(status, {"error": error, "error_description": "Simulated fault."}, headers)
        elif status in (502, 503, 504):  # gateways answer with HTML, not JSON
            text = f"<html><body><h1>{status} {HTTPStatus(status).phrase}</h1></body></html>"
            answer = Reply(status, text.encode(), headers, "text/html; charset=utf-8")
        elif lowered.startswith(query_api.PREFIX):
            answer = odata_error(status, "SimulatedFault", f"Simulated {status}.", headers)
        else:
            answer = message_error(status, f"Simulated {status}.", headers)
        handler.write_reply(answer, method)

    def _fault_answer(self, fault: Fault, lowered: str, is_token: bool) -> Reply | None:
        """The answer of the kinds that are neither network faults nor 429/5xx; None for those."""
        kind, status = fault.kind, fault.http_status()
        extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if kind in _TOKEN_ERRORS:
            return oauth_error(status, kind, _TOKEN_ERRORS[kind])
        if kind in ("401", "403"):
            if is_token:
                error = "invalid_client" if kind == "401" else "unauthorized_client"
                return oauth_error(status, error, f"Simulated {kind}.")
            if kind == "401":
                if status == 401:
                    self._counters.incr("api_401")
                text = "Authorization has been denied for this request. The access token is unknown or was revoked."
                return message_error(status, text, {**_WWW_AUTHENTICATE, **extra})
            text = f"This client has no access to application {self.application_id}."
            return message_error(status, text, {**_WWW_AUTHENTICATE_403, **extra})
        if kind == "odata_error_200":
            envelope = {
                "error": {"code": "InternalServerError", "message": "Simulated error envelope in a 200."}
            }
            answer = json_reply(status, envelope, extra)
            answer.content_type = "application/json; odata.metadata=minimal"
            return answer
        if kind == "not_json":
            return Reply(status, b"Service temporarily unavailable", extra, "text/plain")
        if kind == "html":
            phrase = "Access Denied" if status == 200 else _phrase(status)
            page = _PROXY_PAGE.format(status=status, phrase=phrase).encode()
            return Reply(status, page, extra, "text/html; charset=utf-8")
        if kind == "redirect":
            return json_reply(status, {}, {"Location": fault.location or "", **extra})
        return None

    def _token_answer(self, handler: _Handler, fault: Fault, body: bytes) -> Reply:
        """A ``token_answer`` fault: a malformed success answer (see :mod:`.faults`)."""
        variant = fault.variant
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if variant == "no_access_token":
            payload = {"token_type": "Bearer", "expires_in": self.identity.expires_in, "scope": "prod"}
            return json_reply(200, payload, no_store)
        if variant == "not_json":
            page = _PROXY_PAGE.format(status=200, phrase="Sign in").encode()
            return Reply(200, page, no_store, "text/html; charset=utf-8")
        reply = self.identity.grant(handler.headers.get("Content-Type"), body)  # no rate-limit slot
        if reply.status != 200:
            return reply
        self._counters.incr("tokens_issued")
        payload = json.loads(reply.body)
        if variant == "expires_in_missing":
            payload.pop("expires_in", None)
        else:
            payload["expires_in"] = _EXPIRES_IN_VARIANTS[variant or ""]
        return json_reply(200, payload, reply.headers)

    def _control(self, method: str, path: str, query: str, body: bytes) -> Reply:
        """The ``/_sim/`` steering API for tests in other processes."""
        action = (method, path.rstrip("/"))
        try:
            if action == ("GET", "/_sim/counters"):
                return json_reply(200, self.counters())
            if action == ("POST", "/_sim/reset"):
                self.reset_counters()
                self.set_query_behaviour()
                if parse_qs(query).get("rate_limits", ["false"])[0].lower() in ("1", "true", "yes"):
                    self.reset_rate_limits()
                return json_reply(200, {"ok": True})
            if action == ("GET", "/_sim/faults"):
                return json_reply(200, self._faults.list())
            if action == ("POST", "/_sim/faults"):
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("send a JSON object with the add_fault arguments")
                self.add_fault(**spec)
                return json_reply(201, {"ok": True})
            if action == ("DELETE", "/_sim/faults"):
                self.clear_faults()
                return json_reply(200, {"ok": True})
            if action == ("POST", "/_sim/revoke"):
                self.revoke_tokens()
                return json_reply(200, {"ok": True})
            if action == ("POST", "/_sim/expire"):
                self.expire_tokens()
                return json_reply(200, {"ok": True})
            if action == ("GET", "/_sim/tokens"):
                return json_reply(200, {"tokens": self.issued_tokens()})
            if action == ("GET", "/_sim/info"):
                info = {
                    "base_url": self.base_url,
                    "token_url": self.token_url,
                    "connection": self.connection_dict(),
                    "network": self.network(),
                }
                return json_reply(200, info)
            if action == ("GET", "/_sim/network"):
                return json_reply(200, self.network())
            if action == ("POST", "/_sim/network"):
                return json_reply(200, self.link.configure_from(json.loads(body or b"{}")))
            if action == ("POST", "/_sim/orders/update"):
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict) or set(spec) != {"id", "updated"}:
                    raise ValueError('send a JSON object {"id": ORDER_ID, "updated": "2026-11-20T10:00:00Z"}')
                self.update_order(spec["id"], spec["updated"])
                return json_reply(200, {"ok": True, "id": spec["id"], "updated": spec["updated"]})
            if action == ("POST", "/_sim/orders/add"):
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict) or "count" not in spec or not set(spec) <= {"count", "created"}:
                    raise ValueError(
                        'send a JSON object {"count": N} or {"count": N, "created": "2026-12-01T10:00:00Z"}'
                    )
                ids = self.add_orders(spec["count"], spec.get("created"))
                return json_reply(200, {"ok": True, "first_id": ids.start, "last_id": ids.stop - 1})
            if action == ("GET", "/_sim/query-behaviour"):
                return json_reply(200, self.query_behaviour())
            if action == ("POST", "/_sim/query-behaviour"):
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError(
                        'send a JSON object of query behaviour switches, e.g. {"top_ignored": true}'
                    )
                self.set_query_behaviour(**spec)
                return json_reply(200, self.query_behaviour())
        except (TypeError, ValueError) as err:
            return json_reply(400, {"error": str(err)})
        return json_reply(404, {"error": f"no simulator control {method} {path}"})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _with_next_link(reply: Reply, location: str) -> Reply:
    """``reply`` with its page's ``@odata.nextLink`` set to ``location`` (added when missing); a non-200 or
    non-object answer unchanged."""
    if reply.status != 200:
        return reply
    try:
        page = json.loads(reply.body)
    except ValueError:
        return reply
    if not isinstance(page, dict):
        return reply
    page["@odata.nextLink"] = location
    rewritten = json_reply(200, page, reply.headers)
    rewritten.content_type = reply.content_type
    return rewritten
