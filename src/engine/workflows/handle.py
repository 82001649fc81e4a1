"""What `workflow.kiq()` returns: the workflow's id, its outcome when it ends, and cancel."""

from __future__ import annotations

import asyncio
import time

from taskiq.exceptions import TaskiqResultTimeoutError

from src.engine.workflows.canvas import Canvas
from src.engine.workflows.engine import Workflows
from src.engine.workflows.record import WorkflowRecord, WorkflowResult

_FIRST_POLL_S = 0.005
_MAX_POLL_S = 0.2


class WorkflowHandle:
    def __init__(self, workflow_id: str, workflows: Workflows) -> None:
        self.workflow_id = workflow_id
        self._workflows = workflows

    async def wait_result(self, timeout: float = -1.0) -> WorkflowResult:
        """Wait for the workflow to end (`TaskiqResultTimeoutError` after `timeout` s)."""
        deadline = time.monotonic() + timeout if timeout > 0 else None
        interval = _FIRST_POLL_S
        while (result := await self._workflows.result(self.workflow_id)) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskiqResultTimeoutError(timeout=timeout)
            await asyncio.sleep(interval)
            interval = min(interval * 2, _MAX_POLL_S)
        return result

    async def record(self) -> WorkflowRecord:
        return await self._workflows.get(self.workflow_id)

    async def cancel(self) -> WorkflowRecord:
        return await self._workflows.cancel(self.workflow_id)


class WorkflowStarter:
    """`broker.workflows`: starts canvases and reads, cancels workflows by id."""

    def __init__(self, workflows: Workflows) -> None:
        self.engine = workflows

    async def kiq(self, canvas: Canvas) -> WorkflowHandle:
        return WorkflowHandle(await self.engine.start(canvas), self.engine)

    def handle(self, workflow_id: str) -> WorkflowHandle:
        return WorkflowHandle(workflow_id, self.engine)
