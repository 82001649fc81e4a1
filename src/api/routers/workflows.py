"""Workflows: list them, read one (its state and steps) and cancel it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from src.api.auth import AdminCaller, ReadCaller
from src.api.deps import BrokerDep
from src.engine.workflows.record import WorkflowRecord, WorkflowSummary

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])


class WorkflowPage(BaseModel):
    items: list[WorkflowSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


@router.get("")
async def list_workflows(
    broker: BrokerDep,
    _: ReadCaller,
    state: Literal["RUNNING", "SUCCESS", "FAILURE", "CANCELLED"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> WorkflowPage:
    """Workflows newest first, of one state if asked; follow `next_cursor` for more. A
    workflow is listed until it expires with its steps' results (`TASKJET_RESULT_TTL_S`)."""
    items, next_cursor = await broker.workflows.engine.page(state, limit, cursor)
    return WorkflowPage(items=items, next_cursor=next_cursor)


@router.get("/{workflow_id}", responses={404: {"description": "Unknown or expired workflow"}})
async def get_workflow(workflow_id: str, broker: BrokerDep, _: ReadCaller) -> WorkflowRecord:
    """The workflow's state and each step: its task id, state, and why it failed or was
    skipped."""
    return await broker.workflows.engine.get(workflow_id)


@router.post(
    "/{workflow_id}/cancel", responses={404: {"description": "Unknown or expired workflow"}}
)
async def cancel_workflow(workflow_id: str, broker: BrokerDep, _: AdminCaller) -> WorkflowRecord:
    """Steps not yet sent never run; sent ones are cancelled like `POST /tasks/{id}/cancel`.
    A workflow that already ended is left as it is."""
    return await broker.workflows.engine.cancel(workflow_id)
