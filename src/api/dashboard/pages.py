"""The dashboard's pages: each a template; its script reads the REST API.

Every page needs a signed-in session (or `TASKJET_AUTH=disabled`); without one the browser is
sent to the sign-in form. The page is told the role, so a read key is shown no action controls
(the API refuses their requests all the same) and the CSRF token its script sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from src.api import sessions
from src.api.auth import RoleCheck
from src.api.dashboard.rendering import render
from src.config import Settings

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Viewer:
    role: str
    csrf: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    @property
    def submits(self) -> bool:
        return self.role in ("submit", "admin")


class SignInRequired(Exception):  # a redirect, not a failure
    """Raised by a page without a session: answered with a redirect to the sign-in form."""


class PageCheck(RoleCheck):
    """Pages are for every role; a browser without a session is sent to sign in."""

    def __init__(self) -> None:
        super().__init__("read", query_token=False)

    async def __call__(self, request: Request) -> Viewer:  # type: ignore[override]
        settings: Settings = request.app.state.broker.settings
        if settings.auth == "disabled":
            return Viewer("admin", "")
        session = sessions.read(settings, request.cookies.get(sessions.COOKIE))
        if session is None:
            raise SignInRequired
        return Viewer(session.role, session.csrf)


ViewerDep = Annotated[Viewer, Depends(PageCheck())]
TaskId = Annotated[str, Path(min_length=1, max_length=200)]


async def sign_in_redirect(_: Request, __: Exception) -> Response:
    return RedirectResponse("/dashboard/login", status.HTTP_303_SEE_OTHER)


def _page(request: Request, viewer: Viewer, template: str, **context: object) -> HTMLResponse:
    settings: Settings = request.app.state.broker.settings
    shared = {
        "admin": viewer.admin,
        "submits": viewer.submits,
        "role": viewer.role,
        "csrf": viewer.csrf,
        "signed_in": settings.auth == "enabled",
    }
    return render(request, template, {**shared, **context})


@router.get("")
async def overview(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "overview.html", section="overview")


@router.get("/tasks")
async def tasks(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "tasks.html", section="tasks", query=dict(request.query_params))


@router.get("/submit")
async def submit(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "submit.html", section="tasks")


@router.get("/tasks/{task_id}")
async def task(task_id: TaskId, request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "task.html", section="tasks", task_id=task_id)


@router.get("/workers")
async def workers(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "workers.html", section="workers")


@router.get("/queues")
async def queues(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "queues.html", section="queues")


@router.get("/schedules")
async def schedules(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "schedules.html", section="schedules")


@router.get("/workflows")
async def workflows(request: Request, viewer: ViewerDep) -> HTMLResponse:
    state = request.query_params.get("state", "")
    return _page(request, viewer, "workflows.html", section="workflows", state=state)


@router.get("/workflows/{workflow_id}")
async def workflow(workflow_id: TaskId, request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "workflow.html", section="workflows", workflow_id=workflow_id)


@router.get("/dead-letters")
async def dead_letters(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _page(request, viewer, "dead_letters.html", section="dead-letters")
