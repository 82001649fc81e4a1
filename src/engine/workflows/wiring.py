"""Puts the workflow engine together from the broker's parts: steps are sent by taskjet's own
kicker (so labels are checked and the PENDING record written as for any task), and cancelled
through the same path as `POST /api/v1/tasks/{id}/cancel`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from src.engine.core.labels import QUEUE, WORKFLOW
from src.engine.sending.kicker import TaskjetKicker
from src.engine.workflows.canvas import StepSpec
from src.engine.workflows.engine import START_TASK, Workflows, step_task_id
from src.engine.workflows.handle import WorkflowStarter
from src.engine.workflows.store import WorkflowStore

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker


def workflows_of(broker: JetStreamBroker) -> WorkflowStarter:
    """The broker's workflows; its settlement tells them of each step's end."""

    async def send(spec: StepSpec, task_id: str, given: list[Any], label: dict[str, str]) -> None:
        kicker: TaskjetKicker[Any, Any] = TaskjetKicker(
            task_name=spec.task_name, broker=broker, labels={**spec.labels, WORKFLOW: label}
        )
        await kicker.with_task_id(task_id).kiq(*given, *spec.args, **spec.kwargs)

    async def announce(workflow_id: str, spec: str, queue: str | None) -> None:
        kicker: TaskjetKicker[Any, Any] = TaskjetKicker(
            task_name=START_TASK, broker=broker, labels={QUEUE: queue} if queue else {}
        )
        task_id = step_task_id(workflow_id, ":start")  # a name no step can have
        await kicker.with_task_id(task_id).kiq(workflow_id, spec)

    store = WorkflowStore(broker.redis, lambda: broker.layout, lambda: broker.settings.result_ttl_s)
    engine = Workflows(store, broker.records, send, broker.control.cancel, announce)
    broker.settlement.step_ended = engine.step_ended

    async def drive(workflow_id: str, spec: str) -> None:
        """Store a workflow whose starter died, and dispatch its first steps."""
        await engine.drive(workflow_id, spec)

    broker.register_task(drive, task_name=START_TASK, retry_on_error=True)
    return WorkflowStarter(engine)
