"""Webhook URLs: http(s) only, hosts from the allow-list (exact or `*.domain`)."""

from __future__ import annotations

import pytest

from src.engine.core.errors import LabelError
from src.engine.core.urls import host_allowed, parse_allowed_hosts, webhook_url


def test_allow_list_parsing_and_matching() -> None:
    allowed = parse_allowed_hosts(" Hooks.Example.com, *.corp.example ,")
    assert allowed == {"hooks.example.com", "*.corp.example"}
    assert host_allowed("hooks.example.com", allowed)
    assert host_allowed("ci.corp.example", allowed)
    assert not host_allowed("corp.example.evil", allowed)
    assert not host_allowed("evilcorp.example", allowed), "a suffix is not a subdomain"
    assert host_allowed("anything", frozenset()), "an empty list allows every host"
    with pytest.raises(ValueError, match="host name"):
        parse_allowed_hosts("http://x.com")


@pytest.mark.parametrize(
    "url",
    ["ftp://a.com/x", "a.com/x", "http:///x", "https://a.com:99999/", 42, "http://" + "a" * 2050],
)
def test_bad_urls_are_refused(url: object) -> None:
    with pytest.raises(LabelError, match="notify_url"):
        webhook_url("notify_url", url, frozenset())


def test_a_host_off_the_list_is_refused() -> None:
    allowed = frozenset({"hooks.example.com"})
    assert webhook_url("notify_url", "https://hooks.example.com/x?y=1", allowed)
    with pytest.raises(LabelError, match="TASKJET_WEBHOOK_ALLOW"):
        webhook_url("notify_url", "http://127.0.0.1/x", allowed)
