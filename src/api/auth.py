"""API keys and roles: `read` may only read, `submit` may also create tasks, `admin` may do all.

Keys come from `TASKJET_API_KEYS` (`role:key,...`) and are sent as `Authorization: Bearer <key>`
(streams, which browsers open without headers, also take `?token=<key>`). Every configured
key is compared in constant time, and keys are never logged or echoed.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from src.api.errors import ForbiddenError, UnauthorizedError
from src.config import ConfigError, Settings

Role = Literal["read", "submit", "admin"]
_RANK: dict[str, int] = {"read": 0, "submit": 1, "admin": 2}

_bearer = HTTPBearer(auto_error=False, description="An API key from TASKJET_API_KEYS.")


def check_auth_configured(settings: Settings) -> None:
    """An API without keys is refused unless that is asked for explicitly."""
    if settings.auth == "enabled" and not settings.api_key_roles:
        raise ConfigError(
            "no API keys configured: set TASKJET_API_KEYS='admin:<key>,submit:<key>,read:<key>' "
            "or, only for local development, TASKJET_AUTH=disabled"
        )


def role_of(settings: Settings, token: str | None) -> str:
    """The role a presented key grants; raises 401 for a missing or unknown key."""
    if settings.auth == "disabled":
        return "admin"
    if not token:
        raise UnauthorizedError("missing API key: send `Authorization: Bearer <key>`")
    found: str | None = None
    presented = token.encode()
    for key, role in settings.api_key_roles.items():
        if hmac.compare_digest(key.encode(), presented):  # no early exit: same time for all
            found = role
    if found is None:
        raise UnauthorizedError("invalid API key")
    return found


def authorize(settings: Settings, token: str | None, needed: Role) -> str:
    role = role_of(settings, token)
    if _RANK[role] < _RANK[needed]:
        raise ForbiddenError(f"this needs the {needed!r} role; the key has {role!r}")
    return role


def require(needed: Role) -> params.Depends:
    """A route dependency granting access to keys with at least the `needed` role."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        settings: Settings = request.app.state.broker.settings
        token = credentials.credentials if credentials else request.query_params.get("token")
        return authorize(settings, token, needed)

    return Depends(check)  # type: ignore[no-any-return]


def bearer_token(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header, if that is what it holds."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
