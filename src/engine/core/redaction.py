"""Secrets hidden from view: values under keys named like secrets, at any depth.

A key is sensitive when its name, lower-cased with `-` read as `_`, contains one of
`SENSITIVE_WORDS` (`Password`, `API_KEY`, `X-Api-Key`, `db_token` ...). Its value is shown as
`REDACTED`, whatever it is. Dicts inside lists inside dicts are walked all the way down; a
structure deeper than `MAX_DEPTH` is hidden whole rather than shown unchecked.

Pure functions: what is stored stays whole (a retry or requeue needs the real arguments); only
what is shown goes through here.
"""

from __future__ import annotations

from typing import Any

SENSITIVE_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "credential",
    "authorization",
    "private_key",
    "cookie",
)
REDACTED = "***"
MAX_DEPTH = 100


def is_sensitive(key: object) -> bool:
    """Whether a mapping key names a secret."""
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return any(word in name for word in SENSITIVE_WORDS)


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON-like value with every sensitive key's value replaced."""
    if _depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {k: REDACTED if is_sensitive(k) else redact(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, _depth + 1) for item in value]
    return value


def redact_arguments(args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """A task's positional and keyword arguments as they may be shown."""
    return redact(args), redact(kwargs)
