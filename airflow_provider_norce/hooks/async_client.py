"""``NorceAsyncClient``: the triggerer's way to read Norce, with the sync hook's rules and no blocking I/O.

The triggerer runs every trigger on one event loop, so a blocking call there stalls all of them. This
client sends its requests with ``httpx.AsyncClient`` and keeps everything else the sync hook decides in
one place by delegating to it:

* tokens: ``NorceHook.get_access_token`` in a worker thread, so the process-wide cache, the single
  flight, the token-request limiter and the production-scope fallback (``prod``/``production``, see
  ``NorceHook._token``) are the same code (and the same cache and scope memo) as in tasks;
* where the token may go: ``NorceHook.url_for`` refuses every origin but the configured Norce host;
* the attempt: :func:`~airflow_provider_norce.retries.attempt.attempt`, the same steps the sync hook drives
  (a 401 drops that token and repeats the call once with a new one; a second 401 is a ``NorceAuthError``;
  redirects are refused; answers are read by :mod:`~airflow_provider_norce.retries.answers`);
* retries: the same :class:`~airflow_provider_norce.retries.policy.RetryPolicy`, built from the connection, driven
  by ``tenacity.AsyncRetrying``.

It only reads (``GET``): everything a trigger does must be safe to repeat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_norce.connect.jobs import JOB_GET, JOB_GET_LOG, JobLog, JobState
from airflow_provider_norce.exceptions import NorceAPIError
from airflow_provider_norce.flows import drive_async
from airflow_provider_norce.retries.answers import final, transport_error
from airflow_provider_norce.retries.attempt import Answer, Call, Renew, Result, Send, Step, attempt

T = TypeVar("T")

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable, Mapping
    from types import TracebackType

    import httpx

    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.hooks.norce import NorceHook


class NorceAsyncClient:
    """Async reads from Norce for one connection; use as ``async with NorceAsyncClient(config) as c``.

    :param config: the validated connection (the trigger reads it with an async look-up).
    :param hook: the sync hook whose token logic and URL rule are reused; built from ``config`` by default.
    :param client: an ``httpx.AsyncClient`` to use instead of building one (it is then not closed here).
    :param sleep: the coroutine function the retries wait with (tests give one that records the waits);
        ``asyncio.sleep`` by default.
    """

    def __init__(
        self,
        config: NorceConnectionConfig,
        *,
        hook: NorceHook | None = None,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if hook is None:
            from airflow_provider_norce.hooks.norce import NorceHook

            hook = NorceHook(config.conn_id, config=config)
        self.config = config
        self.hook = hook
        self._client = client
        self._owns_client = client is None
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.config.conn_id!r})"

    async def __aenter__(self) -> NorceAsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = _build_client(self.config)
        return self._client

    # -- Connect jobs ------------------------------------------------------------------------------

    async def job_state(self, job_id: str) -> JobState:
        """``Job/Get`` for one job."""
        payload = await self.get_json(self.hook.service_url("connect") + JOB_GET, params={"id": str(job_id)})
        return JobState.from_response(str(job_id), payload)

    async def job_log(self, job_id: str) -> JobLog:
        """The Warning and Error lines of ``Job/GetLog`` for one job."""
        payload = await self.get_json(
            self.hook.service_url("connect") + JOB_GET_LOG, params={"id": str(job_id)}
        )
        return JobLog.from_response(payload)

    # -- requests ----------------------------------------------------------------------------------

    async def get_json(self, endpoint: str, params: dict[str, Any] | None = None) -> Any:
        """One authenticated GET, retried as the sync hook would; returns the parsed JSON body."""
        return await self.request_json("GET", endpoint, params=params)

    async def request_json(self, method: str, endpoint: str, params: dict[str, Any] | None = None) -> Any:
        """One authenticated request through the same attempt and retry policy as the sync hook."""
        import httpx

        config = self.config
        # url_for refuses any origin the token must not reach
        call = Call(config.conn_id, config.application_id, method.upper(), self.hook.url_for(endpoint), True)

        async def do(step: Step) -> Any:
            """The I/O of one step of :func:`~airflow_provider_norce.retries.attempt.attempt`."""
            if isinstance(step, Send):
                try:
                    return Answer.of(
                        await self.client.request(
                            call.method,
                            call.url,
                            params=params,
                            headers={"Authorization": f"Bearer {step.access_token}"},
                        )
                    )
                except httpx.TransportError as err:
                    never_sent = isinstance(err, (httpx.ConnectTimeout, httpx.ConnectError))
                    raise transport_error(
                        call.method, call.shown, type(err).__name__, never_sent=never_sent
                    ) from None
            if isinstance(step, Renew):  # drop it here and in the shared store, in a thread (file locks)
                await in_thread(self.hook.invalidate_token, step.refused)
            return await in_thread(self.hook.get_access_token)

        async def one_attempt() -> Result:
            return await drive_async(attempt(call), do)

        try:
            result: Result = await self.hook.retry_policy.async_retrying(sleep=self._sleep)(one_attempt)
        except NorceAPIError as err:
            raise final(err, config.conn_id) from None
        return result[1]  # the parsed body


def _build_client(config: NorceConnectionConfig) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with the connection's TLS, proxy and timeout settings; no redirects."""
    import httpx

    from airflow_provider_norce import __version__

    headers = {"Accept": "application/json", "User-Agent": f"airflow-provider-norce/{__version__}"}
    if config.application_id is not None:
        headers["ApplicationId"] = str(config.application_id)
    verify = _ssl_verify(config.verify)
    mounts: dict[str, httpx.AsyncBaseTransport | None] | None = None
    if config.proxies:
        mounts = {
            f"{scheme}://": httpx.AsyncHTTPTransport(proxy=proxy, verify=verify)
            for scheme, proxy in config.proxies.items()
            if scheme in ("http", "https") and proxy
        }
    return httpx.AsyncClient(
        headers=headers,
        timeout=config.timeout,
        verify=verify,
        follow_redirects=False,  # a redirect must never carry the bearer token elsewhere
        mounts=mounts,
        trust_env=True,
    )


def _ssl_verify(verify: bool | str, environ: Mapping[str, str] | None = None) -> bool | ssl.SSLContext:
    """The connection's ``verify`` as httpx takes it: a CA bundle path becomes an ``SSLContext``.

    Why: httpx deprecates a path for ``verify``; a context built here also makes plain that the
    connection's bundle (or ``false``) is used whatever ``SSL_CERT_FILE``/``SSL_CERT_DIR`` say. Left at
    ``true``, the worker's bundle applies as in the sync hook: ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``,
    which requests (so the task) reads, come first, so a deferred wait trusts the same CAs as the task
    that deferred it; without them httpx's own default (``SSL_CERT_FILE``/``SSL_CERT_DIR``, certifi) holds.
    """
    import os
    import ssl

    if verify is False:
        return False
    if verify is True:
        env = os.environ if environ is None else environ
        bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")
        if not bundle or not os.path.exists(bundle):
            return True
        verify = bundle
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking ``function`` in a thread, as Airflow's own async code does (``asgiref``'s
    ``sync_to_async``), never with ``asyncio.to_thread``.

    Why: a fetched token is masked (``mask_secret``), and in the triggerer masking is a message to the
    triggerer's supervisor. From a plain thread, Airflow 3.0's comms answer that with an event loop of the
    thread's own, next to the triggerer's loop reading the same pipe: answers get read by the wrong caller
    and the trigger runner dies with "Response read out of order!", taking every trigger of the triggerer
    with it (seen under a real 3.0.6 triggerer). In a ``sync_to_async`` thread the message goes through the
    triggerer's own loop and its lock.
    """
    from asgiref.sync import sync_to_async

    return await sync_to_async(function, thread_sensitive=False)(*args)
