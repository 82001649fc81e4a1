"""The web dashboard at `/dashboard`: server-rendered pages over the REST API.

Pages are Jinja2 templates (`templates/`) and one small plain script (`static/`), all served
by this app, so it works without a network beyond it. The pages hold no queries: their script
reads and acts through the same `/api/v1` routes as every other client, authenticated by the
session cookie `src/api/sessions.py` issues at sign-in (and its CSRF token on every change).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from src.api.dashboard import pages, signin

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the dashboard's routes and static files to the app."""
    app.state.sign_in_guard = signin.SignInGuard()
    app.add_exception_handler(pages.SignInRequired, pages.sign_in_redirect)
    app.include_router(signin.router)
    app.include_router(pages.router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard_static")
