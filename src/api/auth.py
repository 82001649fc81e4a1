"""API keys and roles: `read` may only read, `submit` may also create tasks, `admin` may do all.

Keys come from `TASKJET_API_KEYS` (`role:key,...`) and are sent as `Authorization: Bearer <key>`.
Event streams, which browsers open without headers, also take `?token=<key>`; no other route
does, and an `Authorization` header of another scheme is refused rather than passed over for
the query. A request without an `Authorization` header may carry a dashboard session cookie
instead (`sessions.py`; a state-changing one then needs the session's CSRF token). Every
configured key is compared in constant time, and keys are never logged or echoed: a caller is
known by a digest of its key.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request, params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from src.api import sessions
from src.api.errors import ForbiddenError, UnauthorizedError
from src.config import ConfigError, Settings

Role = Literal["read", "submit", "admin"]
_RANK: dict[str, int] = {"read": 0, "submit": 1, "admin": 2}

# Only for the OpenAPI document (the "Authorize" button); the header is read by `presented_key`.
_bearer = HTTPBearer(auto_error=False, description="An API key from TASKJET_API_KEYS.")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the key's role and a digest that tells keys apart without holding one."""

    role: str
    key_id: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def check_auth_configured(settings: Settings) -> None:
    """An API without keys is refused unless that is asked for explicitly."""
    if settings.auth == "enabled" and not settings.api_key_roles:
        raise ConfigError(
            "no API keys configured: set TASKJET_API_KEYS='admin:<key>,submit:<key>,read:<key>' "
            "or, only for local development, TASKJET_AUTH=disabled"
        )


def presented_key(
    authorization: str | None, query_token: str | None, allow_query: bool
) -> str | None:
    """The key a request presents: the Bearer header, else (streams only) `?token=`.

    Any other scheme (`Basic ...`) is a 401 of its own, so a header meant for something else
    never lets a query token through."""
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise UnauthorizedError("only `Authorization: Bearer <key>` is accepted")
        return value.strip() or None
    return query_token if allow_query else None


def authenticate(settings: Settings, token: str | None, allow_query: bool = False) -> Caller:
    """The caller a presented key stands for; raises 401 for a missing or unknown key."""
    if settings.auth == "disabled":
        return Caller("admin", "")
    if not token:
        hint = " (or `?token=<key>` on event streams)" if allow_query else ""
        raise UnauthorizedError(f"missing API key: send `Authorization: Bearer <key>`{hint}")
    found: str | None = None
    presented = token.encode()
    for key, role in settings.api_key_roles.items():
        if hmac.compare_digest(key.encode(), presented):  # no early exit: same time for all
            found = role
    if found is None:
        raise UnauthorizedError("invalid API key")
    return Caller(found, sessions.key_id(token))


def authorize(
    settings: Settings, token: str | None, needed: Role, allow_query: bool = False
) -> Caller:
    caller = authenticate(settings, token, allow_query)
    if _RANK[caller.role] < _RANK[needed]:
        raise ForbiddenError(f"this needs the {needed!r} role; the key has {caller.role!r}")
    return caller


class RoleCheck:
    """The dependency `require` makes; it names the role it grants, so the routing table can
    be read back (a test checks that every route asks for the role it should)."""

    def __init__(self, needed: Role, query_token: bool) -> None:
        self.needed = needed
        self.query_token = query_token

    async def __call__(
        self,
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        settings: Settings = request.app.state.broker.settings
        if settings.auth == "disabled":
            return Caller("admin", "")
        if "authorization" not in request.headers and sessions.COOKIE in request.cookies:
            return self.from_session(settings, request)
        token = presented_key(
            request.headers.get("authorization"),
            request.query_params.get("token"),
            self.query_token,
        )
        return authorize(settings, token, self.needed, allow_query=self.query_token)

    def from_session(self, settings: Settings, request: Request) -> Caller:
        """The dashboard's own requests: its session cookie, and on a state-changing request
        the session's CSRF token."""
        session = sessions.require_session(settings, request.cookies.get(sessions.COOKIE))
        sessions.check_csrf(session, request.method, request.headers.get(sessions.CSRF_HEADER))
        if _RANK[session.role] < _RANK[self.needed]:
            raise ForbiddenError(
                f"this needs the {self.needed!r} role; the key has {session.role!r}"
            )
        return Caller(session.role, session.key_id)


def require(needed: Role, query_token: bool = False) -> params.Depends:
    """A route dependency granting access to keys with at least the `needed` role; it gives
    the `Caller`. `query_token=True` (event streams only) also takes `?token=<key>`."""
    return Depends(RoleCheck(needed, query_token))  # type: ignore[no-any-return]


ReadCaller = Annotated[Caller, require("read")]
StreamCaller = Annotated[Caller, require("read", query_token=True)]
AdminCaller = Annotated[Caller, require("admin")]
