"""Which URLs taskjet may send webhooks to: http(s) only, and hosts on an allow-list.

The allow-list (`TASKJET_WEBHOOK_ALLOW`) keeps a per-task `notify_url` from being turned
against internal services: it is checked when the task is sent and again at delivery.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from src.engine.core.errors import LabelError

MAX_URL_CHARS = 2048
_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


def parse_allowed_hosts(spec: str) -> frozenset[str]:
    """`a.example.com, *.example.org` → the set, lower case; `*.d` allows d's subdomains."""
    hosts = frozenset(h.strip().lower() for h in spec.split(",") if h.strip())
    for host in hosts:
        if not _HOST.fullmatch(host):
            raise ValueError(f"webhook host {host!r} must be a host name, `*.domain` or an IP")
    return hosts


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    host = host.lower().rstrip(".")
    if not allowed:
        return True
    return host in allowed or any(
        pattern.startswith("*.") and host.endswith(pattern[1:]) for pattern in allowed
    )


def webhook_url(name: str, value: object, allowed: frozenset[str]) -> str:
    """`value` if it is an http(s) URL to an allowed host; else `LabelError` naming `name`."""
    if not isinstance(value, str) or len(value) > MAX_URL_CHARS:
        raise LabelError(f"{name} must be a URL of at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        raise LabelError(f"{name} {value!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise LabelError(f"{name} {value!r} must be an http:// or https:// URL with a host")
    if not host_allowed(host, allowed):
        raise LabelError(f"{name}: host {host!r} is not in TASKJET_WEBHOOK_ALLOW")
    return value
