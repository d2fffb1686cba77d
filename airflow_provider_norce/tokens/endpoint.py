"""Norce's token endpoint: the request it takes, and what each of its answers means. Free of I/O.

The hook sends the request (its only I/O); everything it must decide about the answer is here, next to the
token cache: a 429 is Norce's rate limit (its ``Retry-After`` feeds the limiter), a 5xx is worth
repeating (a token request changes nothing), a redirect is never followed (the form carries the client
secret), a refusal is an OAuth error a human must fix, and a 200 without a usable ``access_token`` is a
proxy or portal answering in Norce's place. No message ever holds the client secret, whatever the server
echoed of the form.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_norce.exceptions import NorceAPIError, NorceAuthError, excerpt
from airflow_provider_norce.retries.answers import api_error, refused_redirect, reworded
from airflow_provider_norce.tokens.cache import BadTokenAnswer, Token, scrub_secret, token_from_response

if TYPE_CHECKING:
    from airflow_provider_norce.connection import NorceConnectionConfig
    from airflow_provider_norce.retries.attempt import Answer

#: What to do about each OAuth error code (RFC 6749 §5.2) a token request can get.
OAUTH_ERRORS_NEEDING_A_HUMAN = {
    "invalid_client": "the client id or secret is wrong, or the OAuth user was removed in Norce Admin; "
    "check the connection's Client ID (login) and Client Secret (password) against the OAuth user in Norce "
    "Admin (Settings > Users > OAUTH), and create a new secret there if it was lost",
    "unauthorized_client": "the OAuth user may not use the client-credentials grant; ask an administrator to "
    "allow it for this OAuth user in Norce Admin (Settings > Users > OAUTH), or use a client that has it",
    "invalid_scope": "the scope is not one this OAuth user may ask for",
    "invalid_request": "the token request was malformed",
    "unsupported_grant_type": "the token endpoint does not accept client_credentials",
}


def token_form(config: NorceConnectionConfig, scope: str) -> dict[str, str]:
    """The form of a token request, exactly as Norce's page shows it: the credentials in the body."""
    return {
        "grant_type": "client_credentials",
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "scope": scope,
    }


def token_from_answer(config: NorceConnectionConfig, scope: str, answer: Answer, now: float) -> Token:
    """The token of a 200 answer, or the error the answer means (a ``NorceRateLimitError`` for a 429:
    the caller tells its limiter about ``retry_after``)."""
    url = config.token_url
    if answer.status == 429:
        raise api_error("POST", url, 429, answer.retry_after, None)
    if answer.status >= 500:
        body = scrub_secret(answer.content.decode("utf-8", errors="replace"), config.client_secret)
        error = api_error("POST", url, answer.status, None, body)
        error.retryable = True  # a token request changes nothing: repeating it is safe
        raise error
    if 300 <= answer.status < 400:
        raise refused_redirect(config.conn_id, "POST", url, answer.status, answer.location)
    if answer.status != 200:
        raise refused(config, answer, scope)
    try:
        try:
            payload = json.loads(answer.content)
        except ValueError:
            raise BadTokenAnswer("its body is not JSON") from None
        return token_from_response(payload, now)
    except BadTokenAnswer as err:
        content_type = answer.raw.headers.get("Content-Type") if answer.raw is not None else None
        shown = f"{len(answer.content)} bytes, content type {content_type!r}"  # it may still hold a token
        raise NorceAuthError(
            f"Norce connection {config.conn_id!r}: the token endpoint {url} answered 200 without a usable "
            f"access_token: {err} ({excerpt(shown, 120)}); nothing was sent with it. Check that the "
            "connection's host or base_url points at Norce's identity service and not at a proxy or portal "
            "page, then retry the task.",
            conn_id=config.conn_id,
            status_code=200,
        ) from None


def refused(config: NorceConnectionConfig, answer: Answer, scope: str) -> NorceAuthError:
    """The error for a refused token request: the OAuth error code, Norce's description, what to do."""

    def scrubbed(text: str) -> str:
        return scrub_secret(text, config.client_secret)

    try:
        body: Any = json.loads(answer.content)
        code = scrubbed(str(body.get("error") or ""))
        description = scrubbed(str(body.get("error_description") or "")).strip().rstrip(".")
    except (ValueError, AttributeError):
        text = answer.content.decode("utf-8", errors="replace")
        code, description = "", excerpt(scrubbed(text), 120)
    hint = OAUTH_ERRORS_NEEDING_A_HUMAN.get(code, "check the connection's credentials")
    message = (
        f"Norce connection {config.conn_id!r}: the token endpoint {config.token_url} refused client "
        f"{config.client_id!r} with {answer.status} {code or '(no error code)'}"
        f"{': ' + description if description else ''}; {hint}."
    )
    if code == "invalid_scope":
        from airflow_provider_norce.connection import SCOPE_ALTERNATIVES

        others = SCOPE_ALTERNATIVES.get(scope, ())
        message += f" The connection asked for scope {scope!r}"
        if others:
            message += f"; Norce's material also spells it {', '.join(repr(o) for o in others)}"
        message += ": set the extra 'scope' to the one your OAuth user was granted."
    return NorceAuthError(
        scrubbed(message), conn_id=config.conn_id, error=code or None, status_code=answer.status
    )


def no_slot(config: NorceConnectionConfig, max_wait: float) -> NorceAPIError:
    """No token request may be sent within the retry budget (the limiter's answer)."""
    return NorceAPIError(
        f"Norce connection {config.conn_id!r}: no token request slot within the retry budget "
        f"({max_wait:.0f} s) for {config.token_url}: this machine's tasks spent Norce's "
        "3 token requests a minute per IP address, or Norce answered 429 with a longer "
        "Retry-After. The task's retry will get one; or raise the connection's max_retry_wait",
        status_code=429,
    )


def request_failed(config: NorceConnectionConfig, err: NorceAPIError) -> NorceAPIError:
    """The token endpoint's failure once its retries are spent, naming the connection and what to do;
    the same status and flags."""
    if err.url != config.token_url:
        return err  # already says it (no slot within the budget)
    if err.status_code == 429:
        hint = (
            "Norce admits 3 token requests a minute per IP address and other clients behind this address "
            "are using them; the task's retry asks again, and with the connection's auth_cache 'machine' "
            "the tasks of a worker share one token"
        )
    else:
        hint = (
            "Norce's identity service did not give a token; the task's retry asks again. If it persists, "
            "check Norce's status and the connection's host, base_url and proxy settings"
        )
    text = Exception.__str__(err)  # "gave up after" travels as gave_up_after and ends the message
    return reworded(
        err,
        f"Norce connection {config.conn_id!r}: no access token from {config.token_url}: {text}; {hint}.",
    )
