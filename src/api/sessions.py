"""Dashboard sessions: an API key exchanged once for a signed cookie that expires.

The cookie holds the key's role, the digest that names it (never the key) and a CSRF token,
signed with `TASKJET_DASHBOARD_SECRET`. It is HttpOnly (scripts cannot read it), SameSite=Strict
(other sites' requests do not carry it) and Secure over HTTPS. Every request it authenticates
checks that a key with that digest and role is still configured, so removing a key ends its
sessions. A state-changing request must also send the session's CSRF token in `X-CSRF-Token`
(or the `csrf_token` form field): the token is in the page, which another origin cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cache

from itsdangerous import BadSignature, URLSafeTimedSerializer

from src.api.errors import ForbiddenError, UnauthorizedError
from src.config import Settings

COOKIE = "taskjet_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_S = 8 * 3600  # a working day: sign in again after it


@dataclass(frozen=True, slots=True)
class Session:
    role: str
    key_id: str
    csrf: str


@cache
def _process_secret() -> str:
    """Used when no secret is configured: sessions last as long as this process."""
    return secrets.token_urlsafe(32)


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    secret = settings.dashboard_secret.get_secret_value() or _process_secret()
    return URLSafeTimedSerializer(secret, salt="taskjet-dashboard-session")


def key_id(key: str) -> str:
    """The digest a key is known by (the same as `Caller.key_id`)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def issue(settings: Settings, role: str, digest: str) -> tuple[str, Session]:
    """A new session for a key that was just checked: the cookie value and what it holds."""
    session = Session(role=role, key_id=digest, csrf=secrets.token_urlsafe(24))
    value = _serializer(settings).dumps([session.role, session.key_id, session.csrf])
    return value, session


def read(settings: Settings, cookie: str | None, max_age_s: int = SESSION_S) -> Session | None:
    """The session a cookie stands for, or None when it is absent, forged, expired, or its key
    is gone or has another role now."""
    if not cookie:
        return None
    try:
        role, digest, csrf = _serializer(settings).loads(cookie, max_age=max_age_s)
    except (BadSignature, ValueError, TypeError):
        return None
    if settings.auth == "enabled" and not any(
        hmac.compare_digest(key_id(key), str(digest)) and key_role == role
        for key, key_role in settings.api_key_roles.items()
    ):
        return None
    return Session(role=str(role), key_id=str(digest), csrf=str(csrf))


def require_session(settings: Settings, cookie: str | None) -> Session:
    session = read(settings, cookie)
    if session is None:
        raise UnauthorizedError("sign in again: the dashboard session is missing or has expired")
    return session


def check_csrf(session: Session, method: str, presented: str | None) -> None:
    """A state-changing request made with a session cookie must carry its CSRF token."""
    if method.upper() in SAFE_METHODS:
        return
    if not presented or not hmac.compare_digest(presented, session.csrf):
        raise ForbiddenError("missing or wrong CSRF token (send the page's `X-CSRF-Token`)")
