"""The retry policy's pieces on their own: Retry-After parsing, the wait, the stop, the limiter."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from airflow_provider_norce.exceptions import NorceAPIError
from airflow_provider_norce.retries.answers import parse_retry_after, status_is_retryable
from airflow_provider_norce.retries.policy import RetryPolicy
from airflow_provider_norce.simulator.clock import FakeClock
from airflow_provider_norce.tokens.cache import TokenRequestLimiter, token_from_response, token_key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize(
    ("method", "status", "retryable"),
    [
        ("GET", 429, True),
        ("POST", 429, True),
        ("GET", 503, True),
        ("DELETE", 500, True),
        ("POST", 500, False),
        ("POST", 503, False),
        ("GET", 404, False),
        ("GET", 400, False),
    ],
)
def test_status_is_retryable(method, status, retryable):
    assert status_is_retryable(method, status) is retryable


def test_policy_stops_on_attempts_and_honours_retry_after():
    sleeps: list[float] = []
    calls = 0

    def attempt():
        nonlocal calls
        calls += 1
        raise NorceAPIError("429", status_code=429, retry_after=1.5, retryable=True)

    with pytest.raises(NorceAPIError) as info:
        RetryPolicy(max_attempts=3, max_wait=100).retrying(sleep=sleeps.append)(attempt)
    assert calls == 3 and sleeps == [1.5, 1.5]
    assert info.value.gave_up_after is not None and info.value.gave_up_after[0] == 3


def test_token_endpoint_policy_floors_429_waits_at_a_slot():
    sleeps: list[float] = []
    outcomes = iter([NorceAPIError("429", status_code=429, retryable=True), None])

    def attempt():
        exc = next(outcomes)
        if exc:
            raise exc
        return "ok"

    assert RetryPolicy().for_token_endpoint().retrying(sleep=sleeps.append)(attempt) == "ok"
    assert sleeps == [20.0]


def test_limiter_admits_a_burst_of_20_then_one_per_20_seconds():
    clock = FakeClock()
    limiter = TokenRequestLimiter(clock=clock)
    assert [limiter.reserve(1000) for _ in range(20)] == [0.0] * 20
    assert limiter.reserve(1000) == 20.0
    assert limiter.reserve(1000) == 40.0
    assert limiter.reserve(10) is None  # 60 s away: over the budget, and not reserved
    clock.advance(60)
    assert limiter.reserve(1000) == 0.0
    clock.advance(3600)  # an idle hour refills the burst, and no more
    assert [limiter.reserve(0) for _ in range(20)] == [0.0] * 20
    assert limiter.reserve(0) is None


def test_limiter_backs_off_when_norce_says_429():
    clock = FakeClock()
    limiter = TokenRequestLimiter(clock=clock)
    limiter.note_rate_limited(None)
    assert limiter.reserve(1000) == 20.0
    limiter.note_rate_limited(45)
    assert limiter.reserve(1000) == pytest.approx(45.0)


def test_token_key_is_stable_and_separates_secrets():
    a = token_key("https://t", "cid", "production", "secret")
    assert a == token_key("https://t", "cid", "production", "secret")
    assert a != token_key("https://t", "cid", "production", "other")
    assert a != token_key("https://t", "cid", "stage", "secret")
    assert "secret" not in a


def test_refresh_margin_scales_with_short_lifetimes():
    long = token_from_response({"access_token": "x", "expires_in": 3600}, now=0)
    short = token_from_response({"access_token": "x", "expires_in": 2}, now=0)
    assert long.refresh_at == 3540
    assert short.refresh_at == pytest.approx(1.8)
    assert token_from_response({"access_token": "opaque"}, now=0).expires_at == 300
