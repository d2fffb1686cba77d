"""The token extras renamed (``token_url`` -> ``auth_url`` ...) so Airflow does not mask them as secrets.

Airflow's secrets masker hides every extra whose key contains ``token``: the UI's form showed the old
fields as ``***``. The former names are still read; giving both with different values is refused.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from airflow_provider_norce import connection as connection_module
from airflow_provider_norce.connection import KNOWN_EXTRAS, RENAMED_EXTRAS, NorceConnectionConfig
from airflow_provider_norce.exceptions import NorceConnectionConfigError

#: A usable value under each renamed extra, and what the config holds for it.
VALUES = {
    "auth_url": ("https://id.example.com/connect/token", "token_url"),
    "auth_cache": ("redis", "token_cache"),
    "auth_cache_conn_id": ("redis_tokens", "token_cache_conn_id"),
}


def config(conn_id: str = "norce_renamed", **extra: object) -> NorceConnectionConfig:
    conn = SimpleNamespace(
        conn_id=conn_id, host="acme", login="cid", password="secret-123", extra_dejson=extra
    )
    return NorceConnectionConfig.from_connection(conn)


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    """Each test sees the first warning of its connection (the module warns once per connection and name)."""
    monkeypatch.setattr(connection_module, "_WARNED_RENAMES", set())


@pytest.mark.parametrize("old", sorted(RENAMED_EXTRAS))
@pytest.mark.parametrize("prefix", ["", "extra__norce__"])
def test_the_new_and_the_former_name_configure_the_same(old, prefix):
    new = RENAMED_EXTRAS[old]
    value, attribute = VALUES[new]
    by_new = config(**{prefix + new: value})
    by_old = config(**{prefix + old: value})
    assert getattr(by_new, attribute) == value
    assert by_old == by_new


@pytest.mark.parametrize("old", sorted(RENAMED_EXTRAS))
def test_a_former_name_warns_once_naming_the_connection_and_the_new_name(old, caplog):
    new = RENAMED_EXTRAS[old]
    with caplog.at_level(logging.WARNING, logger=connection_module.__name__):
        config("norce_old_names", **{old: VALUES[new][0]})
        config("norce_old_names", **{old: VALUES[new][0]})
    (record,) = [r for r in caplog.records if r.name == connection_module.__name__]
    message = record.getMessage()
    assert "'norce_old_names'" in message and f"'{old}'" in message and f"'{new}'" in message


def test_the_new_names_do_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger=connection_module.__name__):
        config(**{new: value for new, (value, _) in VALUES.items()})
    assert not [r for r in caplog.records if r.name == connection_module.__name__]


@pytest.mark.parametrize("old", sorted(RENAMED_EXTRAS))
def test_both_names_with_different_values_are_refused_naming_both(old):
    new = RENAMED_EXTRAS[old]
    with pytest.raises(NorceConnectionConfigError) as info:
        config(**{new: VALUES[new][0], old: "something-else"})
    message = str(info.value)
    assert "'norce_renamed'" in message and f"'{old}'" in message and f"'{new}'" in message
    assert "keep only" in message


@pytest.mark.parametrize("old", sorted(RENAMED_EXTRAS))
def test_both_names_with_the_same_value_or_one_empty_are_read(old):
    new = RENAMED_EXTRAS[old]
    value, attribute = VALUES[new]
    assert getattr(config(**{new: value, old: value}), attribute) == value
    assert getattr(config(**{new: value, old: None}), attribute) == value
    assert getattr(config(**{new: None, old: value}), attribute) == value


def test_json_null_in_every_extra_is_unset():
    """The UI's form saves every field left empty as null: that means the provider's default."""
    nulls = dict.fromkeys((*KNOWN_EXTRAS, *RENAMED_EXTRAS))
    assert config(**nulls) == config()


#: An extra of each kind the connection reads, with two different values each.
CONFLICTS = {
    "auth_url": ("https://id.example.com/connect/token", "https://evil.example.com/connect/token"),
    "auth_cache": ("redis", "machine"),
    "auth_cache_conn_id": ("redis_tokens", "redis_other"),
    "token_url": ("https://id.example.com/connect/token", "https://evil.example.com/connect/token"),
    "environment": ("stage", "production"),
    "scope": ("stage", "prod"),
    "application_id": ("42", "43"),
}


@pytest.mark.parametrize("name", sorted(CONFLICTS))
@pytest.mark.parametrize("prefixed_first", [True, False])
def test_prefixed_and_unprefixed_extras_with_different_values_are_refused_naming_both(name, prefixed_first):
    """Which one won depended on the JSON's key order: where the client secret is posted, for ``auth_url``."""
    a, b = CONFLICTS[name]
    pairs = [(f"extra__norce__{name}", a), (name, b)]
    extra = dict(pairs if prefixed_first else pairs[::-1])
    with pytest.raises(NorceConnectionConfigError) as info:
        config(**extra)
    message = str(info.value)
    assert "'norce_renamed'" in message and f"'{name}'" in message and f"'extra__norce__{name}'" in message
    assert "different values" in message and a not in message and b not in message
    assert info.value.field == name


@pytest.mark.parametrize("name", sorted(CONFLICTS))
def test_prefixed_and_unprefixed_extras_with_one_value_or_one_unset_are_read(name):
    value = CONFLICTS[name][0]
    expected = config(**{name: value})
    assert config(**{f"extra__norce__{name}": value, name: value}) == expected
    assert config(**{f"extra__norce__{name}": None, name: value}) == expected
    assert config(**{name: "", f"extra__norce__{name}": value}) == expected


def test_a_url_error_never_shows_a_password_holding_a_slash():
    with pytest.raises(NorceConnectionConfigError) as info:
        config(auth_url="https://user:pa55/word@id.example.com/connect/token")
    assert "pa55" not in str(info.value) and "word" not in str(info.value)
