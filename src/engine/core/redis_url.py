"""Redis URLs: the plain ones redis-py reads, and Sentinel ones it does not.

    redis+sentinel://[user:password@]host:port[,host:port...]/<service>[/<db>]
    rediss+sentinel://...   (TLS to the data nodes)

The hosts are the sentinels; `service` is the name they monitor (`sentinel monitor <service>`);
the password, if any, is the data nodes' (the sentinels themselves are asked without one).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    tls: bool


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0] in SENTINEL_SCHEMES


def parse_sentinel(url: str) -> SentinelTarget:
    """Raises `ValueError` saying what is wrong with `url`."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"REDIS_URL {url!r} is not a {' or '.join(SENTINEL_SCHEMES)} URL")
    credentials, at, hosts_and_path = rest.rpartition("@")
    if not at:
        credentials, hosts_and_path = "", rest
    hosts, _, path = hosts_and_path.partition("/")
    sentinels: list[tuple[str, int]] = []
    for item in filter(None, hosts.split(",")):
        parts = urlsplit(f"//{item}")
        try:
            port = parts.port or 26379
        except ValueError:
            raise ValueError(f"REDIS_URL sentinel {item!r} has an invalid port") from None
        if not parts.hostname:
            raise ValueError(f"REDIS_URL sentinel {item!r} has no host")
        sentinels.append((parts.hostname, port))
    if not sentinels:
        raise ValueError(f"REDIS_URL {url!r} names no sentinel (host:port, comma separated)")
    service, _, db = path.partition("/")
    if not service:
        raise ValueError(f"REDIS_URL {url!r} names no service (…/<service>/<db>)")
    if db and not db.isdigit():
        raise ValueError(f"REDIS_URL database {db!r} is not a number")
    username, _, password = credentials.partition(":")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        service=unquote(service),
        db=int(db or 0),
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=scheme == "rediss+sentinel",
    )
