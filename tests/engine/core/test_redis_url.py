"""Sentinel URLs (`redis+sentinel://`): every form the README documents reads as meant, and a
malformed one is refused saying what is wrong."""

from __future__ import annotations

import re

import pytest

from src.config import ConfigError, load_settings
from src.engine.core.redis_url import SentinelTarget, is_sentinel, parse_sentinel


def test_sentinels_service_and_database() -> None:
    assert parse_sentinel("redis+sentinel://s1:26380,s2,10.0.0.3:26381/cache/2") == SentinelTarget(
        sentinels=(("s1", 26380), ("s2", 26379), ("10.0.0.3", 26381)),
        service="cache",
        db=2,
        username=None,
        password=None,
        tls=False,
    )


def test_credentials_are_the_data_nodes_and_may_be_quoted() -> None:
    target = parse_sentinel("rediss+sentinel://app:p%40ss%2Fw@s1:26379/main")
    assert (target.username, target.password, target.db, target.tls) == ("app", "p@ss/w", 0, True)
    only_password = parse_sentinel("redis+sentinel://:secret@s1/main/0")
    assert (only_password.username, only_password.password) == (None, "secret")


def test_plain_urls_are_not_sentinel_ones() -> None:
    assert is_sentinel("redis+sentinel://s1/main")
    assert is_sentinel("rediss+sentinel://s1/main")
    assert not is_sentinel("redis://cache.internal:6380/0")
    assert not is_sentinel("rediss://cache.example:6380")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://s1/main", "is not a redis+sentinel or rediss+sentinel URL"),
        ("redis+sentinel:///main", "names no sentinel"),
        ("redis+sentinel://s1:26379", "names no service"),
        ("redis+sentinel://s1:26379//0", "names no service"),
        ("redis+sentinel://s1:port/main", "has an invalid port"),
        ("redis+sentinel://s1:99999/main", "has an invalid port"),
        ("redis+sentinel://:26379/main", "has no host"),
        ("redis+sentinel://s1/main/first", "database 'first' is not a number"),
    ],
)
def test_a_malformed_url_is_refused_saying_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_sentinel(url)


def test_settings_refuse_a_malformed_sentinel_url_at_startup() -> None:
    with pytest.raises(ConfigError, match="names no service"):
        load_settings(redis_url="redis+sentinel://s1:26379")
