"""The sync hook and the async client drive one request flow: the same answers give the same decisions.

Each row of the table is a sequence of Norce answers to one ``GET``. It runs three ways: through the
I/O-free flow itself (:func:`~airflow_provider_norce.retries.attempt.attempt` under the retry policy,
with scripted steps), through ``NorceHook.run_json`` on requests-mock, and through
``NorceAsyncClient.get_json`` on an httpx ``MockTransport``. All three must send the same requests
with the same tokens, drop the same tokens, wait the same seconds and end the same way (the same
result, or an error of the same type, status, retry flag and message).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
from norce_wire import BASE, TOKEN_URL, WIRE_EPOCH, token_body

from airflow_provider_norce.exceptions import NorceAPIError, NorceError
from airflow_provider_norce.flows import drive
from airflow_provider_norce.retries.attempt import Answer, Call, GetToken, Renew, Send, attempt
from airflow_provider_norce.retries.policy import RetryPolicy
from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.tokens.cache import TokenCache

URL = f"{BASE}/commerce/query/2.0/Orders/Orders"
SHOWN = URL
POLICY = {"max_attempts": 3, "max_retry_wait": 60}
DATA = {"value": [{"OrderNo": "1"}]}


@dataclass(frozen=True)
class Reply:
    """One answer (or a failure to answer) of the API."""

    status: int = 200
    json: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    fail: str | None = None  # "ConnectTimeout" or "ReadTimeout": no answer at all


CASES: dict[str, list[Reply]] = {
    "data": [Reply(json=DATA)],
    "401 renews the token once": [Reply(401, text="expired"), Reply(json=DATA)],
    "401 to a fresh token": [Reply(401), Reply(401)],
    "redirect is refused": [Reply(302, headers={"Location": "https://elsewhere.example/x?token=abc"})],
    "404 is final": [Reply(404, text="no such entity set")],
    "503 then data": [Reply(503, text="busy"), Reply(json=DATA)],
    "429 with Retry-After then data": [Reply(429, headers={"Retry-After": "7"}), Reply(json=DATA)],
    "HTML 200 until the budget ends": [Reply(text="<html><title>Login</title></html>")] * 3,
    "OData error in a 200, then data": [
        Reply(json={"error": {"code": "E1", "message": "busy"}}),
        Reply(json=DATA),
    ],
    "error body echoing the token": [Reply(400, text="bad request with header Bearer tok-1")],
    "read timeout then data": [Reply(fail="ReadTimeout"), Reply(json=DATA)],
    "connect timeouts until the budget ends": [Reply(fail="ConnectTimeout")] * 3,
}


@dataclass
class Seen:
    """What a driver did: the tokens it sent, the tokens it dropped, its waits, and how it ended."""

    sent: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    outcome: Any = None


def outcome_of(run: Any) -> Any:
    """The result, or the error reduced to what a user and the task see of it."""
    random.seed(7)  # the backoff's jitter: the same draws for every driver
    try:
        return ("result", run())
    except NorceError as err:
        return (
            type(err).__name__,
            getattr(err, "status_code", None),
            getattr(err, "retryable", None),
            str(err),
        )


def body(reply: Reply) -> bytes:
    if reply.json is not None:
        import json

        return json.dumps(reply.json).encode()
    return (reply.text or "").encode()


# -- the flow itself, with scripted steps -------------------------------------------------------------


def run_flow(replies: list[Reply]) -> Seen:
    from airflow_provider_norce.retries.answers import final, transport_error

    seen = Seen()
    answers = iter(replies)
    tokens = iter(f"tok-{n}" for n in range(1, 10))
    current = [next(tokens)]
    call = Call("norce_default", 42, "GET", URL, parse=True)

    def do(step: Any) -> Any:
        if isinstance(step, Send):
            seen.sent.append(step.access_token)
            reply = next(answers)
            if reply.fail:
                never_sent = reply.fail == "ConnectTimeout"
                raise transport_error("GET", SHOWN, reply.fail, never_sent=never_sent)
            return Answer(
                reply.status, body(reply), reply.headers.get("Retry-After"), reply.headers.get("Location")
            )
        if isinstance(step, Renew):
            seen.dropped.append(step.refused)
            current[0] = next(tokens)
        assert isinstance(step, (GetToken, Renew))
        return current[0]

    policy = RetryPolicy(max_attempts=POLICY["max_attempts"], max_wait=POLICY["max_retry_wait"])

    def run() -> Any:
        try:
            return policy.retrying(sleep=seen.waits.append)(lambda: drive(attempt(call), do))[1]
        except NorceAPIError as err:
            raise final(err, "norce_default") from None

    seen.outcome = outcome_of(run)
    return seen


# -- the sync hook on requests-mock -------------------------------------------------------------------


def register(requests_mock: Any, replies: list[Reply], seen: Seen) -> None:
    """The token endpoint issues tok-1, tok-2, ...; the API answers ``replies`` in turn."""
    issued = iter(range(1, 10))
    requests_mock.post(TOKEN_URL, json=lambda request, context: token_body(f"tok-{next(issued)}"))
    answers = iter(replies)

    def api(request: Any, context: Any) -> bytes:
        seen.sent.append(request.headers["Authorization"].removeprefix("Bearer "))
        reply = next(answers)
        if reply.fail:
            raise getattr(requests.exceptions, reply.fail)(reply.fail)
        context.status_code = reply.status
        context.headers.update(reply.headers)
        return body(reply)

    requests_mock.get(URL, content=api)


def dropped_tokens(cache: TokenCache, seen: Seen) -> TokenCache:
    """Record which tokens the driver drops (the cache's own rule runs as always)."""
    invalidate = cache.invalidate

    def recording(key: str, access_token: str, *args: Any, **kwargs: Any) -> Any:
        seen.dropped.append(access_token)
        return invalidate(key, access_token, *args, **kwargs)

    cache.invalidate = recording  # type: ignore[method-assign]
    return cache


def run_sync(requests_mock: Any, hook_factory: Any, replies: list[Reply]) -> Seen:
    seen = Seen()
    register(requests_mock, replies, seen)
    clock = FakeClock(start=WIRE_EPOCH)
    hook = hook_factory(
        token_cache=dropped_tokens(TokenCache(clock=clock), seen),
        sleep=seen.waits.append,
        max_attempts=POLICY["max_attempts"],
        max_retry_wait=POLICY["max_retry_wait"],
    )
    seen.outcome = outcome_of(lambda: hook.run_json(URL))
    return seen


# -- the async client on httpx's MockTransport ---------------------------------------------------------


def run_async(requests_mock: Any, hook_factory: Any, replies: list[Reply]) -> Seen:
    from airflow_provider_norce.hooks.async_client import NorceAsyncClient

    seen = Seen()
    register(requests_mock, [], seen)  # the token endpoint (the client gets tokens through the hook)
    answers = iter(replies)

    def api(request: httpx.Request) -> httpx.Response:
        seen.sent.append(request.headers["Authorization"].removeprefix("Bearer "))
        reply = next(answers)
        if reply.fail:
            raise getattr(httpx, reply.fail)(reply.fail, request=request)
        return httpx.Response(reply.status, content=body(reply), headers=reply.headers)

    async def recorded_sleep(seconds: float) -> None:
        seen.waits.append(seconds)

    clock = FakeClock(start=WIRE_EPOCH)
    hook = hook_factory(
        token_cache=dropped_tokens(TokenCache(clock=clock), seen),
        max_attempts=POLICY["max_attempts"],
        max_retry_wait=POLICY["max_retry_wait"],
    )

    async def call() -> Any:
        client = httpx.AsyncClient(transport=httpx.MockTransport(api))
        async with NorceAsyncClient(hook.config, hook=hook, client=client, sleep=recorded_sleep) as norce:
            result = await norce.get_json(URL)
        await client.aclose()
        return result

    seen.outcome = outcome_of(lambda: asyncio.run(call()))
    return seen


@pytest.mark.parametrize("case", list(CASES))
def test_sync_and_async_drivers_decide_alike(case, requests_mock, hook_factory):
    replies = CASES[case]
    expected = run_flow(replies)
    sync = run_sync(requests_mock, hook_factory, replies)
    asynchronous = run_async(requests_mock, hook_factory, replies)
    assert sync == expected
    assert asynchronous == expected


def test_the_table_covers_every_decision():
    """The rows reach each way an attempt ends, so agreeing on them means agreeing on the rules."""
    outcomes = {name: run_flow(replies) for name, replies in CASES.items()}
    assert outcomes["data"].outcome == ("result", DATA)
    renewed = outcomes["401 renews the token once"]
    assert (renewed.sent, renewed.dropped, renewed.outcome) == (
        ["tok-1", "tok-2"],
        ["tok-1"],
        ("result", DATA),
    )
    fresh = outcomes["401 to a fresh token"].outcome
    assert fresh[:3] == ("NorceAuthError", 401, False) and "freshly issued token" in fresh[3]
    redirect = outcomes["redirect is refused"].outcome
    assert redirect[:3] == ("NorceAPIError", 302, False) and "abc" not in redirect[3]
    assert outcomes["404 is final"].outcome[:3] == ("NorceAPIError", 404, False)
    assert outcomes["503 then data"].outcome == ("result", DATA) and len(outcomes["503 then data"].waits) == 1
    assert outcomes["429 with Retry-After then data"].waits == [7.0]
    html = outcomes["HTML 200 until the budget ends"]
    assert html.outcome[:3] == ("NorceAPIError", 200, True) and "HTML page titled 'Login'" in html.outcome[3]
    assert len(html.sent) == 3
    assert outcomes["OData error in a 200, then data"].outcome == ("result", DATA)
    echoed = outcomes["error body echoing the token"].outcome
    assert echoed[:2] == ("NorceAPIError", 400) and "tok-1" not in echoed[3] and "***" in echoed[3]
    assert outcomes["read timeout then data"].outcome == ("result", DATA)
    connect = outcomes["connect timeouts until the budget ends"]
    assert connect.outcome[:3] == ("NorceAPIError", None, True) and len(connect.sent) == 3
