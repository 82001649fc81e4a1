"""Checks of single setting values that need more than a type: URLs and API key lists."""

from __future__ import annotations

from urllib.parse import urlsplit

from src.engine.core.redis_url import SENTINEL_SCHEMES, is_sentinel, parse_sentinel

_NATS_SCHEMES = {"nats", "tls", "ws", "wss"}
_REDIS_SCHEMES = {"redis", "rediss", "unix", "valkey", "valkeys", *SENTINEL_SCHEMES}


def check_nats_url(value: str) -> str:
    """One URL, or several comma separated (a cluster)."""
    for url in value.split(","):
        check_url(url.strip(), _NATS_SCHEMES, "NATS_URL")
    return value


def check_redis_url(value: str) -> str:
    """A Redis URL, or a `redis+sentinel://` one."""
    if is_sentinel(value):
        parse_sentinel(value)
        return value
    return check_url(value, _REDIS_SCHEMES, "REDIS_URL")


def check_url(url: str, schemes: set[str], what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(
            f"{what} {url!r} must start with one of {sorted(s + '://' for s in schemes)}"
        )
    if parts.scheme != "unix":
        if not parts.hostname:
            raise ValueError(f"{what} {url!r} has no host")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"{what} {url!r} has an invalid port") from exc
    return url


API_ROLES = ("read", "submit", "admin")


def parse_api_keys(spec: str) -> dict[str, str]:
    """`admin:k1,read:k2` → {"k1": "admin", "k2": "read"}; errors never echo a key."""
    keys: dict[str, str] = {}
    for number, item in enumerate(filter(None, (p.strip() for p in spec.split(","))), 1):
        role, sep, key = item.partition(":")
        if not sep or role.strip() not in API_ROLES:
            raise ValueError(
                f"API key #{number} must look like `role:key`, role one of {API_ROLES}"
            )
        if len(key.strip()) < 16:
            raise ValueError(f"API key #{number} ({role}) is shorter than 16 characters")
        keys[key.strip()] = role.strip()
    return keys


def check_public_url(value: str) -> str:
    """`https://host[:port][/path]` without a trailing slash, or empty."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"public URL {value!r} must look like https://host[:port][/path]")
    if parts.query or parts.fragment:
        raise ValueError(f"public URL {value!r} may not have a query or fragment")
    return value.rstrip("/")
