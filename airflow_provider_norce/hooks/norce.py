"""``NorceHook``: authenticated, rate-limit-aware calls to Norce Commerce from Airflow.

Data flows one way: Connection -> :class:`~airflow_provider_norce.connection.NorceConnectionConfig`
-> token (:mod:`~airflow_provider_norce.tokens.cache`) -> request -> retry
(:mod:`~airflow_provider_norce.retries.policy`) -> response. The hook owns all I/O; operators compose its calls.

Nothing happens in ``__init__``: the DAG processor builds hooks while parsing, so the connection is
read on first use and no request is sent before a method asks for one.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
from airflow.providers.common.compat.sdk import BaseHook
from requests.auth import AuthBase

from airflow_provider_norce.connection import NorceConnectionConfig, canonical_origin
from airflow_provider_norce.exceptions import (
    NorceAPIError,
    NorceAuthError,
    NorceError,
    NorceRateLimitError,
    excerpt,
)
from airflow_provider_norce.flows import drive
from airflow_provider_norce.retries.answers import (
    final,
    mark_retries_spent,
    shown_link,
    strip_query,
    transport_error,
)
from airflow_provider_norce.retries.attempt import Answer, Call, Renew, Result, Send, Step, attempt
from airflow_provider_norce.retries.policy import RetryPolicy
from airflow_provider_norce.tokens import endpoint
from airflow_provider_norce.tokens.cache import (
    MASKED_TOKENS,
    PROCESS_TOKEN_CACHE,
    WORKING_SCOPES,
    NoteRateLimited,
    Reserve,
    SharedTokenStore,
    Token,
    TokenCache,
    scope_memo_key,
    token_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

#: A chain of empty pages that each link to another is ended after this many pages in a row, or this many
#: seconds, whichever comes first: OData servers that filter after paging answer some empty pages with a
#: nextLink, but never an endless run of them (a broken server, or a link that only changes a counter).
EMPTY_PAGE_CHAIN_LIMIT = 100
EMPTY_PAGE_CHAIN_SECONDS = 300.0

#: The cheap authenticated call ``test_connection`` makes (Norce's Postman examples use it).
TEST_ENDPOINT = "commerce/metadata/1.1/GetApplication"


class NorceHook(BaseHook):
    """Calls Norce Commerce APIs with a cached OAuth2 client-credentials token.

    :param norce_conn_id: the Airflow connection (type ``norce``) holding client id, secret and tenant.
    :param timeout: seconds per request; overrides the connection's ``timeout`` extra.
    :param max_attempts: attempts per request, retries included; overrides ``max_attempts``.
    :param max_retry_wait: seconds a request may spend waiting between retries in all; overrides
        ``max_retry_wait``. A wait that would overrun it is not started.
    :param token_cache: the process cache to use (tests inject one with a fake clock).
    :param shared_store: a token store shared beyond this process; by default chosen from the
        connection's ``auth_cache`` extra.
    :param config: an already validated configuration, for callers that must not look the connection
        up synchronously (the triggerer reads it with an async look-up and hands it over).
    :param retry_listener: told ``(error, wait)`` before each retry of an API request; a concurrent export
        narrows its requests in flight on a 429 with it.
    """

    conn_name_attr = "norce_conn_id"
    default_conn_name = "norce_default"
    conn_type = "norce"
    hook_name = "Norce Commerce"

    def __init__(
        self,
        norce_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        max_retry_wait: float | None = None,
        token_cache: TokenCache | None = None,
        shared_store: SharedTokenStore | None = None,
        sleep: Callable[[float], None] = time.sleep,
        config: NorceConnectionConfig | None = None,
        retry_listener: Callable[[BaseException, float], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if config is not None:
            self.__dict__["config"] = config  # fills the cached_property: no look-up
        self.norce_conn_id = norce_conn_id
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        self.token_cache = token_cache or PROCESS_TOKEN_CACHE
        self._shared_store = shared_store
        self._sleep = sleep
        self.retry_listener = retry_listener

    def __repr__(self) -> str:
        return f"{type(self).__name__}(norce_conn_id={self.norce_conn_id!r})"

    # -- configuration ---------------------------------------------------------------------------

    @cached_property
    def config(self) -> NorceConnectionConfig:
        """The validated connection; read once, on first use."""
        try:
            conn = self.get_connection(self.norce_conn_id)
        except Exception as err:  # Airflow's AirflowNotFoundException lives in another module per version
            if "AirflowNotFoundException" not in {cls.__name__ for cls in type(err).__mro__}:
                raise
            raise _unknown_connection(self.norce_conn_id) from None
        config = NorceConnectionConfig.from_connection(conn, self.norce_conn_id)
        _mask(config.client_secret)
        return config

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        config = self.config
        return RetryPolicy(
            max_attempts=self.max_attempts if self.max_attempts is not None else config.max_attempts,
            max_wait=self.max_retry_wait if self.max_retry_wait is not None else config.max_retry_wait,
        )

    @property
    def request_timeout(self) -> float:
        return self.timeout if self.timeout is not None else self.config.timeout

    @cached_property
    def shared_store(self) -> SharedTokenStore | None:
        """Where tokens are shared beyond this process, per the connection's ``auth_cache`` extra."""
        if self._shared_store is not None:
            return self._shared_store
        from airflow_provider_norce.tokens.store import store_for

        return store_for(self.config)

    def service_url(self, service: str) -> str:
        """Absolute URL prefix of a Norce service (``connect``, ``query``, ``metadata`` ...)."""
        return self.config.service_url(service)

    # -- tokens ----------------------------------------------------------------------------------

    @property
    def _token_key(self) -> str:
        """The cache key of this connection's token, under the scope currently in use."""
        return self._key_for(self.scope)

    @cached_property
    def _token_keys(self) -> dict[str, str]:
        """Cache keys by scope: a SHA-256 of the secret per call would show in the hot path."""
        return {}

    def _key_for(self, scope: str) -> str:
        """The token cache key of this connection under ``scope``."""
        key = self._token_keys.get(scope)
        if key is None:
            c = self.config
            key = self._token_keys[scope] = token_key(c.token_url, c.client_id, scope, c.client_secret)
        return key

    @cached_property
    def _scope_memo_key(self) -> tuple[str, ...]:
        """This connection's key in :data:`WORKING_SCOPES`: never shared with another environment or scope."""
        c = self.config
        return scope_memo_key(c.token_url, c.client_id, c.platform, c.environment, c.scope)

    @property
    def scope(self) -> str:
        """The scope tokens are asked for: the connection's, or the spelling found to work in this process."""
        config = self.config
        if config.scope_explicit:
            return config.scope
        return WORKING_SCOPES.get(self._scope_memo_key) or config.scope

    def invalidate_token(self, access_token: str) -> None:
        """Drop a token Norce refused (401), in this process and in the shared store."""
        self.token_cache.invalidate(self._token_key, access_token, self.shared_store)

    def get_access_token(self) -> str:
        """A valid bearer token, from the cache when one is fresh."""
        return self._token().access_token

    def _token(self, force: bool = False) -> Token:
        """The token, applying the scope rule; the sync hook and the async client both get tokens here.

        An explicit ``scope`` extra is used as is. Without one, the first token of the process finds the
        production spelling that works (``prod`` or ``production``, :meth:`NorceConnectionConfig.fallback_scope`):
        a fresh token already cached or shared under either spelling settles it without a request; else
        the default is asked for and, on ``invalid_scope``, the other spelling once (through the same
        limiter). The spelling that worked is remembered in :data:`WORKING_SCOPES` for the process.
        """
        config = self.config
        if config.scope_explicit or WORKING_SCOPES.get(self._scope_memo_key) is not None:
            return self._token_for(self.scope, force)
        first = config.scope
        second = config.fallback_scope(first)
        if not force:
            candidates = (first, second) if second is not None else (first,)
            for candidate in candidates:  # memory first: a warm process never builds the shared store
                found = self.token_cache.peek(self._key_for(candidate))
                if found is not None:
                    WORKING_SCOPES.remember(self._scope_memo_key, candidate)
                    return self._handed_out(found)
            for candidate in candidates:
                found = self.token_cache.find(self._key_for(candidate), self.shared_store)
                if found is not None:
                    WORKING_SCOPES.remember(self._scope_memo_key, candidate)
                    return self._handed_out(found)
        try:
            token = self._token_for(first, force)
        except NorceAuthError as err:
            if err.error != "invalid_scope" or second is None:
                raise
            token = self._token_with_fallback(first, second, force)
        else:
            WORKING_SCOPES.remember(self._scope_memo_key, first)
        return token

    def _token_with_fallback(self, refused: str, second: str, force: bool) -> Token:
        """Ask once more with the other production spelling after ``refused`` got ``invalid_scope``."""
        config = self.config
        try:
            token = self._token_for(second, force)
        except NorceAuthError as err:
            if err.error != "invalid_scope":
                raise
            raise NorceAuthError(
                f"Norce connection {config.conn_id!r}: the token endpoint {config.token_url} refused client "
                f"{config.client_id!r} both production scope spellings, {refused!r} and {second!r} "
                "(invalid_scope); set the extra 'scope' to the one your OAuth user was granted in Norce Admin "
                "(Settings > Users > OAUTH), for example 'stage' or 'playground' with the matching environment.",
                conn_id=config.conn_id,
                error="invalid_scope",
                status_code=err.status_code,
            ) from None
        WORKING_SCOPES.remember(self._scope_memo_key, second)
        log.warning(
            "Norce connection %r: the token endpoint refused scope %r (invalid_scope) and accepted %r; "
            "set the connection's extra 'scope' to %r so no request is spent on the other spelling",
            config.conn_id,
            refused,
            second,
            second,
        )
        return token

    def _token_for(self, scope: str, force: bool) -> Token:
        """The cached (or shared, or newly fetched) token under ``scope``."""

        def fetch(reserve: Reserve, note_rate_limited: NoteRateLimited) -> Token:
            return self._fetch_token(reserve, note_rate_limited, scope)

        key = self._key_for(scope)
        if not force and (warm := self.token_cache.peek(key)) is not None:
            # Why before ``shared_store``: evaluating it may look up a Redis connection and build a
            # client; a warm process answers from memory and makes no such call.
            return self._handed_out(warm)
        return self._handed_out(self.token_cache.get(key, fetch, self.shared_store, force=force))

    @staticmethod
    def _handed_out(token: Token) -> Token:
        """Every token the hook hands out passes here: registered with Airflow's masker once per process.

        Why: a token read from the machine store (or any cache) was masked only in the process that
        fetched it; the next task would log it in clear when an error body echoes the header.
        """
        if MASKED_TOKENS.first_time(token.access_token):
            _mask(token.access_token)
        return token

    def _fetch_token(self, reserve: Reserve, note_rate_limited: NoteRateLimited, scope: str) -> Token:
        """One token from Norce (:mod:`~airflow_provider_norce.tokens.endpoint` reads the answer), within a
        slot of the token-request limiter and the token endpoint's retry policy."""
        config = self.config
        policy = self.retry_policy.for_token_endpoint()
        waited = 0.0

        def attempt() -> Token:
            nonlocal waited
            wait = reserve(max(0.0, policy.max_wait - waited))
            if wait is None:
                raise endpoint.no_slot(config, policy.max_wait)
            if wait > 0:
                log.warning("Norce token request limit: waiting %.1f s for a free slot", wait)
                self._sleep(wait)
                waited += wait
            try:
                response = self.get_conn().post(
                    config.token_url,
                    data=endpoint.token_form(config, scope),
                    headers={"Accept": "application/json", "ApplicationId": None},
                    auth=_NoAuth(),
                    timeout=self.request_timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as err:
                raise _transport_error("POST", config.token_url, err, changes_nothing=True) from None
            try:
                token = endpoint.token_from_answer(
                    config, scope, Answer.of(response), self.token_cache.clock()
                )
            except NorceRateLimitError as err:
                note_rate_limited(err.retry_after)
                raise
            return self._handed_out(token)  # masked before it is saved or used anywhere

        try:
            return policy.retrying(sleep=self._sleep)(attempt)
        except NorceAPIError as err:
            # The token request spent its own retries: the API call around it (sync or async) ends now
            # with this error instead of retrying it again (no max_attempts x max_attempts requests).
            raise mark_retries_spent(endpoint.request_failed(config, err)) from None
        except NorceError as err:
            raise mark_retries_spent(err) from None

    # -- requests --------------------------------------------------------------------------------

    def get_conn(self) -> requests.Session:
        """A ``requests.Session`` that authenticates itself, but only towards the configured Norce host."""
        return self._session

    @cached_property
    def _session(self) -> requests.Session:
        config = self.config
        session = _NorceSession()
        session.auth = _BearerAuth(self)
        session.verify = config.verify
        session.trust_env = True
        if config.proxies:
            session.proxies.update(config.proxies)
        session.headers["Accept"] = "application/json"
        session.headers["User-Agent"] = f"airflow-provider-norce/{_version()}"
        if config.application_id is not None:
            session.headers["ApplicationId"] = str(config.application_id)
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def url_for(self, endpoint: str) -> str:
        """The absolute URL of ``endpoint``; refuses any origin the token must not be sent to."""
        config = self.config
        url = endpoint if "://" in endpoint else f"{config.base_url}/{endpoint.lstrip('/')}"
        origin = canonical_origin(url)
        if origin not in config.api_hosts:
            raise NorceError(
                f"Norce connection {config.conn_id!r}: refusing to send the Norce token to "
                f"{origin or 'a URL with credentials or an unreadable port'}; "
                f"only {', '.join(sorted(config.api_hosts))} receive it"
            )
        return url

    def run(
        self,
        endpoint: str,
        method: str = "GET",
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send one authenticated request, retried as the policy allows; raises on a non-2xx answer."""
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ValueError(
                f"Norce connection {self.norce_conn_id!r}: the endpoint must be a non-empty path or URL such as "
                f"'commerce/metadata/1.1/GetApplication', got {endpoint!r}"
            )
        if not isinstance(method, str) or not method.strip().isalpha():
            raise ValueError(
                f"Norce connection {self.norce_conn_id!r}: method must be an HTTP method such as 'GET' or "
                f"'POST', got {method!r}"
            )
        response, _ = self._send(method, endpoint, params=params, json=json, data=data, headers=headers)
        return response

    def run_json(
        self,
        endpoint: str,
        method: str = "GET",
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Like :meth:`run`, returning the parsed JSON; a cut-off body of a GET is retried like a 5xx."""
        _, parsed = self._send(
            method, endpoint, params=params, json=json, data=data, headers=headers, parse=True
        )
        return parsed

    def paginate_pages(
        self, endpoint: str, params: dict[str, Any] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """The ``value`` of each page of an OData listing, following ``@odata.nextLink``, one page at a time.

        A nextLink that leads back to a page already read (itself, relative or absolute, or A -> B -> A)
        fails before that page's rows are handed on, so an export never writes the same rows again; a
        nextLink that is not a string, or leads to another origin, fails too (the token never follows it). A
        chain of empty pages with new links each time ends after ``EMPTY_PAGE_CHAIN_LIMIT`` pages or
        ``EMPTY_PAGE_CHAIN_SECONDS``, whichever comes first.
        """
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ValueError(
                f"Norce connection {self.norce_conn_id!r}: the listing endpoint must be a non-empty path or "
                f"URL such as 'commerce/Query/2.0/Orders/Orders', got {endpoint!r}"
            )
        first = self.url_for(endpoint)
        listing = strip_query(first)
        seen = {_page_key(requests.Request("GET", first, params=params).prepare().url or first)}
        url: str | None = first
        empty, empty_since = 0, 0.0
        while url is not None:
            rows, next_link = self.odata_page(url, params=params)
            url = self._next_page(listing, url, next_link, seen) if next_link not in (None, "") else None
            params = None  # the server's nextLink already carries the whole query
            if rows or url is None:
                empty = 0
            else:
                empty, empty_since = empty + 1, empty_since if empty else time.monotonic()
                waited = time.monotonic() - empty_since
                if empty >= EMPTY_PAGE_CHAIN_LIMIT or waited >= EMPTY_PAGE_CHAIN_SECONDS:
                    raise NorceAPIError(
                        f"Norce connection {self.config.conn_id!r}: GET {listing} answered {empty} empty pages "
                        f"in a row in {waited:.0f} s, each with an @odata.nextLink to yet another page; the "
                        "listing was stopped (limit: "
                        f"{EMPTY_PAGE_CHAIN_LIMIT} pages or {EMPTY_PAGE_CHAIN_SECONDS:.0f} s) and the export "
                        "keeps no file. Check the filter; if Norce keeps answering so, report it to Norce support",
                        status_code=200,
                        method="GET",
                        url=listing,
                    )
            yield rows

    def odata_page(
        self, endpoint: str, params: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], Any]:
        """One OData page: its ``value`` rows and its ``@odata.nextLink`` (``None`` on the last page).

        A 200 that is not an OData page (an HTML proxy page, an object without ``value``) is an error, never
        rows, so an export cannot write a gateway's answer as data.
        """
        page = self.run_json(endpoint, params=params)
        if not isinstance(page, dict) or not isinstance(page.get("value"), list):
            shown = strip_query(self.url_for(endpoint))
            raise NorceAPIError(
                f"Norce connection {self.config.conn_id!r}: GET {shown} answered 200 with "
                f"something other than an OData page ({_page_shape(page)}), so the listing was stopped "
                "and none of it was taken as data; the task's retry asks again. If it persists, check the "
                "entity set and query options, and the connection's host and base_url",
                status_code=200,
                method="GET",
                url=shown,
            )
        return page["value"], page.get("@odata.nextLink")

    def _next_page(self, listing: str, url: str, next_link: Any, seen: set[bytes]) -> str:
        """The absolute URL of ``next_link``; refuses a link that is not a string, leaves the configured
        origins, or leads back to a page of this listing already read."""
        conn_id = self.config.conn_id
        if not isinstance(next_link, str):
            raise NorceAPIError(
                f"Norce connection {conn_id!r}: GET {listing} answered with an @odata.nextLink that is not a "
                f"link ({type(next_link).__name__} {excerpt(repr(next_link), 80)}); the listing cannot be "
                "followed. Check the query options, and report it to Norce support if it persists.",
                method="GET",
                url=listing,
            )
        absolute = urljoin(url, next_link.strip())
        try:
            absolute = self.url_for(absolute)
        except NorceError as err:
            raise NorceAPIError(
                f"Norce connection {conn_id!r}: GET {listing} answered with an @odata.nextLink to another "
                f"host, port or scheme ({strip_query(absolute)}); not following it, the Norce token is never "
                f"sent there. {err}",
                method="GET",
                url=listing,
            ) from None
        key = _page_key(absolute)
        if key in seen:
            raise NorceAPIError(
                f"Norce connection {conn_id!r}: GET {listing} answered with an @odata.nextLink that leads back "
                f"to a page already read ({shown_link(absolute)}), after {len(seen)} page(s); following it "
                "would repeat the same rows forever, so the listing was stopped and nothing more was read. "
                "Check the query options ($orderby, $skip, $top); if Norce keeps answering so, report it to "
                "Norce support.",
                method="GET",
                url=listing,
            )
        seen.add(key)
        return absolute

    def paginate(self, endpoint: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The items of an OData listing across pages (``@odata.nextLink``), one page in memory at a time."""
        for page in self.paginate_pages(endpoint, params):
            yield from page

    def _send(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None,
        json: Any,
        data: Any,
        headers: dict[str, str] | None,
        parse: bool = False,
    ) -> tuple[requests.Response, Any]:
        config = self.config
        call = Call(config.conn_id, config.application_id, method.upper(), self.url_for(endpoint), parse)
        session = self.get_conn()

        def do(step: Step) -> Any:
            """The I/O of one step of :func:`~airflow_provider_norce.retries.attempt.attempt`."""
            if isinstance(step, Send):
                try:
                    return Answer.of(
                        session.request(
                            call.method,
                            call.url,
                            params=params,
                            json=json,
                            data=data,
                            headers=headers,
                            auth=_BearerAuth(self, step.access_token),
                            timeout=self.request_timeout,
                            allow_redirects=False,  # never: the token or a Connect batch must not go elsewhere
                        )
                    )
                except requests.RequestException as err:
                    raise _transport_error(call.method, call.shown, err) from None
            if isinstance(step, Renew):
                self.invalidate_token(step.refused)
            return self._token().access_token

        def one_attempt() -> Result:
            return drive(attempt(call), do)

        try:
            return self.retry_policy.retrying(sleep=self._sleep, listener=self.retry_listener)(one_attempt)
        except NorceAPIError as err:
            raise final(err, config.conn_id) from None

    # -- Airflow integration ---------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Ask the token endpoint afresh (it tests the stored secret, not the cache), then make one call."""
        try:
            config = self.config
            self._token(force=True)
            if config.layout == "storm":
                return (
                    True,
                    f"Norce [Storm] issued a token to client {config.client_id!r} (scope {self.scope!r})",
                )
            app = self.run_json(TEST_ENDPOINT, params={"format": "json"})
            name = app.get("Name") if isinstance(app, dict) else None  # the Application's Name
            return True, (
                f"Norce issued a token to client {config.client_id!r} (scope {self.scope!r}) and "
                f"GetApplication answered for application {config.application_id}"
                + (f" ({name})" if name else "")
            )
        except NorceError as err:
            return False, str(err)
        except Exception as err:  # the UI shows this text; never let a traceback through
            return False, f"{type(err).__name__}: {err}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Legacy (Airflow 3.0/3.1) form behaviour, derived from the declarative provider info."""
        from airflow_provider_norce.get_provider_info import legacy_ui_field_behaviour

        return legacy_ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Legacy (Airflow 3.0/3.1) form widgets, derived from the declarative provider info."""
        from airflow_provider_norce.get_provider_info import legacy_connection_form_widgets

        return legacy_connection_form_widgets()


class _BearerAuth(AuthBase):
    """Adds the bearer token to requests for the configured Norce origins, and to nothing else."""

    def __init__(self, hook: NorceHook, access_token: str | None = None) -> None:
        self.hook = hook
        self.access_token = access_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.url and canonical_origin(request.url) in self.hook.config.api_hosts:
            access_token = self.access_token or self.hook._token().access_token
            request.headers["Authorization"] = f"Bearer {access_token}"
        else:
            request.headers.pop("Authorization", None)
        return request

    def __repr__(self) -> str:
        return "<NorceBearerAuth>"


class _NorceSession(requests.Session):
    """A session whose own ``verify`` and ``proxies`` (the connection's) win over the environment.

    Why: with ``trust_env`` on, requests merges ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` and the
    ``*_PROXY`` variables over the session's settings (``Session.merge_environment_settings``), so a
    worker with such a variable set would ignore ``verify: false``, a private CA bundle, or the
    connection's ``proxies``. Settings passed to one request still win; the environment still fills
    in what the connection leaves open (``verify`` left at true, schemes without a proxy).
    """

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        asked = dict(proxies or {})  # requests adds the environment's proxies to this dict in place
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        if self.proxies:
            settings["proxies"] = {**settings["proxies"], **self.proxies, **asked}
        return settings


class _NoAuth(AuthBase):
    """The token request carries its credentials in the body, never a bearer header."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        return request


def _transport_error(
    method: str, url: str, err: requests.RequestException, *, changes_nothing: bool = False
) -> NorceAPIError:
    """A connection failure as :func:`~airflow_provider_norce.retries.answers.transport_error` reads it;
    requests' way of saying the request never left: a connect timeout, or a refused connection."""
    never_sent = isinstance(err, requests.exceptions.ConnectTimeout) or _refused(err)
    return transport_error(
        method, url, type(err).__name__, never_sent=never_sent, changes_nothing=changes_nothing
    )


def _refused(err: requests.RequestException) -> bool:
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason = err.args[0] if err.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)


def _page_shape(page: Any) -> str:
    """What a Query answer held instead of ``{"value": [...]}``, without echoing its data."""
    if isinstance(page, dict):
        keys = ", ".join(sorted(str(k) for k in page)[:8])
        return f"an object with {keys}" if keys else "an empty object"
    return f"a JSON {type(page).__name__}"


def _page_key(url: str) -> bytes:
    """A digest of ``url`` that is equal for the same page however it is spelt: scheme and host in lower
    case, the default port dropped, the query decoded and sorted (a digest keeps a long listing small)."""
    import hashlib
    from urllib.parse import parse_qsl

    parts = urlsplit(url)
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    text = "\n".join([canonical_origin(url), parts.path or "/", *(f"{k}={v}" for k, v in query)])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _unknown_connection(conn_id: str) -> NorceError:
    """No connection ``conn_id``: say where Airflow looked and what to do (Airflow only says "isn't defined";
    Airflow 3.0 also says so of a connection it could not read, e.g. one whose extra is not JSON)."""
    from airflow_provider_norce.exceptions import NorceConnectionConfigError

    env = "AIRFLOW_CONN_" + "".join(c if c.isalnum() else "_" for c in conn_id).upper()
    return NorceConnectionConfigError(
        conn_id,
        "conn_id",
        "Airflow has no usable connection with this id (none in its connections, secrets backends or "
        "environment, or one it could not read: see Airflow's error above); create or fix a connection of "
        f"type norce with this id (Admin > Connections, or the variable {env}), or fix norce_conn_id",
    )


def _mask(secret: str) -> None:
    """Register a secret with Airflow's masker (only effective inside Airflow processes).

    Under ``dag.test()`` (and ``airflow dags test``) the supervisor is this very process, and its
    in-process comms log every message at DEBUG, a ``MaskSecret`` with the secret in clear
    (apache/airflow#63921: 3.0 sends before it masks, and 3.3's redaction does not look inside the
    message). There the secret goes to this process's masker only: it is the one that masks those logs.
    A real worker's supervisor is another process and omits the body of ``MaskSecret`` from its log.
    """
    try:
        local = _in_process_masker()
        if local is not None:
            local.add_mask(secret)
            return
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(secret)
    except Exception:  # masking is defence in depth; we never log secrets in the first place
        log.debug("Airflow's secrets masker is not available here")


def _in_process_masker() -> Any:
    """This process's secrets masker when the task's supervisor runs in this process, else None.

    Looks only at the task runner already imported (never imports it): outside a task there is no
    supervisor to talk to.
    """
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if type(comms).__name__ != "InProcessSupervisorComms":
        return None
    for module in ("airflow.sdk._shared.secrets_masker", "airflow.sdk.execution_time.secrets_masker"):
        try:
            return importlib.import_module(module)._secrets_masker()  # 3.1+, then 3.0
        except (ImportError, AttributeError):
            continue
    return None


def _version() -> str:
    from airflow_provider_norce import __version__

    return __version__
