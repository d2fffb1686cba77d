"""Credentials out of URL-ish text: what may be shown, logged or emitted of a URI that may carry a password.

Why a module of its own: a URL with ``user:password@`` turns up where no password field is (a Redis
connection whose host field holds ``redis://:PW@host:6379/0``, an export destination
``s3://KEY:SECRET@bucket/key``), so Airflow's masker knows nothing to hide, and ``urlsplit`` cuts the
authority at the first ``/``, so a password holding ``/`` (AWS secret keys do) stays in what it calls
the host. These helpers never rely on ``urlsplit`` to find where credentials end.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

#: ``scheme://``, as RFC 3986 spells a scheme, not preceded by another scheme character.
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]*://)")
#: ``scheme://`` up to the last ``@`` of the same whitespace-delimited word: all of it may be userinfo.
_URL_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]*://)[^\s'\"<>]*@")
#: ``user:password@host`` without a scheme (a host field holding ``:PW@host``): a word with a ``:`` before
#: its last ``@``. An e-mail address (no ``:``) is left alone.
_BARE_USERINFO = re.compile(r"(?<![^\s'\"(\[=,])[^\s'\"<>@/:(\[=,]*:(?!//)[^\s'\"<>]*@(?=[^\s'\"<>@]+)")
#: Where a URI's authority ends when no credentials are involved (RFC 3986).
_AUTHORITY_END = re.compile(r"[/?#]")


class UnseparableCredentials(ValueError):
    """A URI whose credentials cannot be told apart from its host and path; the text names none of them."""


def strip_userinfo(text: str) -> str:
    """``text`` with the userinfo of every URL-ish word in it replaced by ``***@``.

    Everything from ``scheme://`` to the last ``@`` of the word goes (a password may hold ``/``, ``?``,
    ``#`` or ``@``), and so does a ``user:password@`` without a scheme. Over-eager on purpose: a path
    holding ``@`` loses its start in the message, a password is never shown.
    """
    text = _URL_USERINFO.sub(r"\1***@", text)
    return _BARE_USERINFO.sub("***@", text)


def userinfo_secrets(text: str) -> list[str]:
    """The passwords of the ``user:password@`` parts of the words of ``text`` (as written and
    percent-decoded), to register with Airflow's masker; empty when there are none. User names are not
    secrets (and a short one would mask every occurrence of a common word)."""
    found: list[str] = []
    for word in text.split():
        scheme = _SCHEME.search(word)
        rest = word[scheme.end() :] if scheme else word
        userinfo = rest.rpartition("@")[0]
        if ":" not in userinfo:
            continue
        password = userinfo.partition(":")[2]
        for spelling in (password, unquote(password)):
            if spelling and spelling != "***" and spelling not in found:
                found.append(spelling)
    return found


def split_authority(rest: str) -> tuple[str, str]:
    """``(authority, path)`` of what follows ``scheme://``, any userinfo removed; raises
    :class:`UnseparableCredentials` when where the credentials end cannot be known.

    * ``user:pw@host/path``: the userinfo ends at the last ``@`` before the first ``/``, ``?`` or ``#``;
    * ``KEY:SE/CRET@bucket/key``: a ``:`` in what ``urlsplit`` takes for the authority and one ``@`` after
      it is a password holding ``/`` (``?``, ``#``): it ends at that ``@``;
    * ambiguous shapes (more than one ``@`` after such a password, a port-like number before the
      ``/``, an ``@`` in the path after a userinfo with a password) are refused rather than guessed,
      since a wrong guess would emit part of the password as a host or a path.
    """
    match = _AUTHORITY_END.search(rest)
    end = match.start() if match else len(rest)
    head, tail = rest[:end], rest[end:]
    if "@" in head:
        userinfo, _, authority = head.rpartition("@")
        if ":" in userinfo and "@" in tail:
            raise UnseparableCredentials("an '@' after a user:password@ part")
        return authority, tail
    if ":" not in head or "@" not in tail:
        return head, tail  # no credentials (host, host:port)
    after_colon = head.rpartition(":")[2]
    if tail.count("@") != 1 or (after_colon.isdigit() and 0 < int(after_colon) <= 65535):
        raise UnseparableCredentials("a password holding '/', '?' or '#' cannot be told from a path")
    remainder = tail.partition("@")[2]
    match = _AUTHORITY_END.search(remainder)
    end = match.start() if match else len(remainder)
    return remainder[:end], remainder[end:]
