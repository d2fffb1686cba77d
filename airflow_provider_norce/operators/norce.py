"""``NorceOperator``: one authenticated Norce call, like the http provider's ``HttpOperator``.

Everything Norce-specific (token, ``ApplicationId`` header, retries honouring ``Retry-After``, a POST never
repeated once it may have reached Norce, OData paging) lives in :class:`~airflow_provider_norce.hooks.norce.NorceHook`;
this operator only renders the arguments, makes the call, checks and filters the answer and hands the parsed
JSON to XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

from airflow_provider_norce.arguments import as_bool, conn_id, http_method, mapping_or_none

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import requests
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_norce.hooks.norce import NorceHook

#: Above this many items a paginated result is too big for XCom; the log says what to use instead.
LARGE_RESULT_ITEMS = 10_000


class NorceOperator(BaseOperator):
    """Call one Norce endpoint and push the parsed JSON answer (or ``response_filter``'s result) to XCom.

    :param endpoint: a path under the connection's base URL (``commerce/connect/4.0/Job/Get``,
        ``commerce/query/2.0/Orders/Orders``) or an absolute URL on the configured Norce host.
    :param method: HTTP method, default ``GET``.
    :param request_params: URL query parameters (``{"$filter": "...", "id": 1001}``). Named
        ``request_params`` because ``params`` is every Airflow operator's task-parameter argument.
    :param json: a JSON body (Connect imports take a JSON array).
    :param data: a raw or form body.
    :param headers: extra headers, e.g. ``{"X-StormConnect-Header": '{"AccountId": 1, "FullFile": false}'}``.
    :param response_check: ``callable(result, **context) -> bool``; ``False`` fails the task. ``result`` is
        the parsed JSON (with ``paginate=True`` the combined list of items).
    :param response_filter: ``callable(result, **context) -> Any``; its return value goes to XCom instead.
    :param paginate: follow OData ``@odata.nextLink`` pages (GET only) and return all items in one list.
        For large listings use ``NorceQueryExportOperator``, which streams to a file.
    :param norce_conn_id: the Airflow connection of type ``norce``.

    A ``GET`` answer must be JSON (a cut-off JSON body is retried like a 5xx); other methods may also answer
    with an empty body (``None``) or text.
    """

    template_fields: Sequence[str] = (
        "endpoint",
        "method",
        "request_params",
        "json",
        "data",
        "headers",
        "paginate",
        "norce_conn_id",
    )
    template_fields_renderers = {"json": "json", "request_params": "json", "headers": "json", "data": "py"}
    ui_color = "#cfe3f7"

    def __init__(
        self,
        *,
        endpoint: str,
        method: str = "GET",
        request_params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        response_check: Callable[..., bool] | None = None,
        response_filter: Callable[..., Any] | None = None,
        paginate: bool | str = False,
        norce_conn_id: str = "norce_default",
        **kwargs: Any,
    ) -> None:
        task_params = kwargs.get("params") or {}
        odata_options = sorted(key for key in task_params if str(key).startswith("$"))
        if odata_options:
            raise ValueError(
                f"Task {kwargs.get('task_id')!r}: params={{{', '.join(map(repr, odata_options))}: ...}} are "
                "Airflow task parameters, not URL query parameters; pass request_params= instead"
            )
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.method = method
        self.request_params = request_params
        self.json = json
        self.data = data
        self.headers = headers
        self.response_check = response_check
        self.response_filter = response_filter
        self.paginate = paginate
        self.norce_conn_id = norce_conn_id

    def get_hook(self) -> NorceHook:
        from airflow_provider_norce.hooks.norce import NorceHook

        return NorceHook(norce_conn_id=self.norce_conn_id)

    def execute(self, context: Context) -> Any:
        # Every rendered argument is checked before the first request (token included).
        method = http_method(self.method, self.task_id)
        paginate = as_bool(self.paginate, "paginate", self.task_id)
        if not isinstance(self.endpoint, str) or not self.endpoint.strip():
            raise ValueError(
                f"Task {self.task_id!r}: endpoint is {self.endpoint!r}; give a path such as "
                "'commerce/metadata/1.1/GetApplication'"
            )
        example = '{"$top": 10}'
        self.request_params = mapping_or_none(self.request_params, "request_params", self.task_id, example)
        example = '{"X-StormConnect-Header": "{...}"}'
        self.headers = mapping_or_none(self.headers, "headers", self.task_id, example)
        self.norce_conn_id = conn_id(self.norce_conn_id, self.task_id)
        hook = self.get_hook()
        if paginate:
            if method != "GET":
                raise ValueError(
                    f"Task {self.task_id!r}: paginate=True follows OData pages of a GET listing; "
                    f"method is {method}"
                )
            self.log.info("Norce GET %s, following @odata.nextLink", self.endpoint)
            result: Any = list(hook.paginate(self.endpoint, params=self.request_params))
            self.log.info("Norce GET %s: %d items", self.endpoint, len(result))
            if len(result) > LARGE_RESULT_ITEMS and self.response_filter is None:
                self.log.warning(
                    "%d items go to XCom; XCom is meant for small results: use NorceQueryExportOperator to "
                    "stream a listing this size to a file, or a response_filter to keep what you need",
                    len(result),
                )
        elif method == "GET":
            self.log.info("Norce GET %s", self.endpoint)
            result = hook.run_json(self.endpoint, params=self.request_params, headers=self.headers)
        else:
            self.log.info("Norce %s %s", method, self.endpoint)
            response = hook.run(
                self.endpoint,
                method=method,
                params=self.request_params,
                json=self.json,
                data=self.data,
                headers=self.headers,
            )
            result = _parsed(response)
        check = self.response_check
        if check is not None and not check(result, **_kwargs_for(check, result, context)):
            raise AirflowException(
                f"Task {self.task_id!r}: response_check returned False for Norce {method} "
                f"{self.endpoint}; the answer did not pass the check"
            )
        if self.response_filter is not None:
            return self.response_filter(result, **_kwargs_for(self.response_filter, result, context))
        return result

    def get_openlineage_facets_on_start(self) -> Any:
        """OpenLineage (when its provider is installed): the Norce dataset this call reads (``GET``) or
        writes (:mod:`airflow_provider_norce.lineage`); the same on complete."""
        from airflow_provider_norce.lineage import call_lineage

        return call_lineage(self)


def _kwargs_for(func: Callable[..., Any], result: Any, context: Context) -> dict[str, Any]:
    """The context entries ``func`` asks for by name, as ``HttpOperator`` passes them."""
    from airflow.providers.common.compat.sdk import determine_kwargs

    return dict(determine_kwargs(func, [result], context))


def _parsed(response: requests.Response) -> Any:
    if not response.content:
        return None
    content_type = response.headers.get("Content-Type", "")
    try:
        return response.json()
    except ValueError:
        if "json" in content_type.lower():
            raise AirflowException(
                f"Norce answered {response.request.method} {response.url.split('?')[0]} with "
                f"{response.status_code} and a body that is not complete JSON ({len(response.content)} bytes)"
            ) from None
        return response.text
