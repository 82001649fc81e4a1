"""Task status and results."""

from __future__ import annotations

from fastapi import APIRouter

from src.api.deps import BrokerDep
from src.api.schemas import TaskError, TaskState, TaskStatus
from src.tasks.results import ResultMissingError

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


@router.get("/{task_id}", name="get_task")
async def get_task(task_id: str, broker: BrokerDep) -> TaskStatus:
    """The task's state and, once it finished, its result or error."""
    backend = broker.results
    try:
        result = await backend.get_result(task_id)
    except ResultMissingError:
        return TaskStatus(task_id=task_id, state=TaskState.PENDING)
    if result.is_err:
        error = result.error
        return TaskStatus(
            task_id=task_id,
            state=TaskState.FAILURE,
            error=TaskError(type=type(error).__name__, message=str(error)),
            execution_time_s=result.execution_time,
        )
    return TaskStatus(
        task_id=task_id,
        state=TaskState.SUCCESS,
        result=result.return_value,
        execution_time_s=result.execution_time,
    )
