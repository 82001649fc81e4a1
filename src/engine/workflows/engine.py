"""Driving workflows: start one, advance it when a step ends, cancel it.

`step_ended` is called by the worker that settles a step's delivery, before the delivery is
acked; if it raises, the delivery is handed back and the call repeats on redelivery. Every call
records the step (once) and dispatches what its snapshot says is ready, under deterministic task
ids and de-duplication ids: a second publish of the same step is dropped by JetStream (or, past
its window, skipped by the record), so a chord's callback runs once even when the worker that
recorded the last member died before publishing it.

Starting one is three writes: a start message (`taskjet.workflow`, carrying the plan, on the
first step's queue), then the workflow's hash, then the first steps. Whatever the starting
process manages before it dies, the start message, run by a worker, stores the hash if it is
missing and dispatches what is not yet dispatched, under the same ids (so, when the starter got
that far, to no effect): a workflow is never stored without its steps being sent, nor steps
sent without a hash. A starter that dies before the start message is sent started nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from src.engine.core.errors import TaskConflictError, TaskNotFoundError, WorkflowNotFoundError
from src.engine.core.labels import QUEUE, WorkflowStep
from src.engine.state.records import TaskRecords
from src.engine.state.results import load_result
from src.engine.workflows.canvas import Canvas, StepSpec, compile_plan
from src.engine.workflows.join import (
    CANCELLED,
    SKIPPED,
    Snapshot,
    dump_plan,
    final_state,
    next_steps,
)
from src.engine.workflows.record import WorkflowRecord, WorkflowResult, WorkflowSummary
from src.engine.workflows.store import WorkflowStore

logger = logging.getLogger("taskjet.workflows")

_NAMESPACE = uuid.UUID("0b7e6f5c-51a4-4f0e-9d8c-3f2a1c6e7b90")
# Publishes a step: (its spec, its task id, the arguments before its own, the workflow label).
Send = Callable[[StepSpec, str, list[Any], dict[str, str]], Awaitable[None]]
CancelTask = Callable[[str], Awaitable[Any]]
# Publishes the start message: (workflow id, its plan as stored, the queue of its first step).
Announce = Callable[[str, str, str | None], Awaitable[None]]
START_TASK = "taskjet.workflow"


def step_task_id(workflow_id: str, step: str) -> str:
    """The task id a step always runs under: the same in every process that dispatches it."""
    return uuid.uuid5(_NAMESPACE, f"{workflow_id}\x00{step}").hex


class Workflows:
    def __init__(
        self,
        store: WorkflowStore,
        records: TaskRecords,
        send: Send,
        cancel_task: CancelTask,
        announce: Announce,
    ) -> None:
        self._store = store
        self._records = records
        self._send = send
        self._cancel_task = cancel_task
        self._announce = announce

    async def start(self, canvas: Canvas) -> str:
        """Send the start message, store the workflow, dispatch the steps that wait for
        nothing; its id."""
        workflow_id, spec = await self.announce(canvas)
        await self.drive(workflow_id, spec)
        return workflow_id

    async def announce(self, canvas: Canvas) -> tuple[str, str]:
        """Send a new workflow's start message (on its first step's queue): from then on it
        will run. Its id, and its plan as stored."""
        plan = compile_plan(canvas)
        workflow_id = uuid.uuid4().hex
        spec = dump_plan(plan, time.time()).decode()
        first = next((s for s in plan.steps if not s.depends_on), plan.steps[0])
        queue = first.labels.get(QUEUE)
        await self._announce(workflow_id, spec, queue if isinstance(queue, str) else None)
        return workflow_id, spec

    async def store(self, workflow_id: str, spec: str) -> bool:
        """Store the workflow RUNNING unless it is stored; False if it was."""
        return await self._store.create(workflow_id, spec, float(orjson.loads(spec)["created_at"]))

    async def drive(self, workflow_id: str, spec: str) -> None:
        """Store the workflow unless it is, and dispatch what is ready and not dispatched:
        the start, and its start message run by a worker (a no-op when the start got through)."""
        await self.store(workflow_id, spec)
        snapshot = await self._store.snapshot(workflow_id)
        if snapshot is not None:
            await self._advance(workflow_id, snapshot)

    async def page(
        self, state: str | None, limit: int, cursor: str | None
    ) -> tuple[list[WorkflowSummary], str | None]:
        """Workflows newest first (of one state), without their steps' live states."""
        found, next_cursor = await self._store.page(state, limit, cursor)
        return [WorkflowSummary.of(w, snap) for w, snap in found], next_cursor

    async def step_ended(self, task_id: str, step: WorkflowStep) -> None:
        """Record a step's final outcome (read back from its record and result) and move on."""
        record = await self._records.get(task_id)
        if record is None or not record.state.terminal:
            return
        value: Any = None
        if record.state.value == "SUCCESS":
            raw = await self._records.redis.get(self._records.layout.result_key(task_id))
            value = load_result(raw).return_value if raw is not None else None
        error = f"{record.error.type}: {record.error.message}" if record.error else None
        outcome = {"state": record.state.value, "task_id": task_id, "error": error}
        snapshot = await self._store.record(step.workflow_id, step.step, outcome, value)
        if snapshot is None:
            logger.warning("task %s names workflow %s, which is gone", task_id, step.workflow_id)
            return
        await self._advance(step.workflow_id, snapshot)

    async def _advance(self, workflow_id: str, snapshot: Snapshot) -> None:
        decisions = next_steps(snapshot)
        while decisions:
            for decision in decisions:
                spec = decision.step
                if decision.skip_reason is not None:
                    outcome = {"state": SKIPPED, "task_id": None, "error": decision.skip_reason}
                    again = await self._store.record(workflow_id, spec.id, outcome, None)
                    snapshot = again or snapshot
                    continue
                await self._dispatch(workflow_id, spec, list(decision.input))
            # Skipping a step may make others ready (or skipped): decide again.
            decisions = [d for d in next_steps(snapshot) if d.skip_reason is not None]
        if snapshot.all_done and snapshot.state == "RUNNING":
            state = final_state(snapshot)
            if await self._store.finish(workflow_id, state, snapshot.failed_step):
                logger.info("workflow %s ended %s", workflow_id, state)

    async def _dispatch(self, workflow_id: str, spec: StepSpec, given: list[Any]) -> None:
        task_id = step_task_id(workflow_id, spec.id)
        await self._send(spec, task_id, given, {"id": workflow_id, "step": spec.id})
        state = await self._store.mark_dispatched(workflow_id, spec.id, task_id)
        if state == CANCELLED:  # cancelled while this step was being sent: stop it too
            await self._cancel_quietly(task_id)

    async def cancel(self, workflow_id: str) -> WorkflowRecord:
        """Cancel the workflow: steps not started never will be; running ones are cancelled."""
        snapshot = await self._snapshot(workflow_id)
        await self._store.finish(workflow_id, CANCELLED, None)
        for spec in snapshot.plan.steps:
            if snapshot.done(spec.id):
                continue
            if spec.id in snapshot.dispatched:
                await self._cancel_quietly(snapshot.dispatched[spec.id])
            else:
                outcome = {"state": CANCELLED, "task_id": None, "error": "workflow cancelled"}
                await self._store.record(workflow_id, spec.id, outcome, None)
        return await self.get(workflow_id)

    async def _cancel_quietly(self, task_id: str) -> None:
        # Ended meanwhile, or not recorded yet (then its step is recorded as it ends).
        with contextlib.suppress(TaskConflictError, TaskNotFoundError):
            await self._cancel_task(task_id)

    async def _snapshot(self, workflow_id: str) -> Snapshot:
        snapshot = await self._store.snapshot(workflow_id)
        if snapshot is None:
            raise WorkflowNotFoundError(workflow_id)
        return snapshot

    async def get(self, workflow_id: str) -> WorkflowRecord:
        snapshot = await self._snapshot(workflow_id)
        task_ids = [snapshot.dispatched.get(s.id) for s in snapshot.plan.steps]
        live = await self._records.get_many([t for t in task_ids if t])
        states = {r.task_id: r.state.value for r in live if r is not None}
        return WorkflowRecord.of(workflow_id, snapshot, states)

    async def result(self, workflow_id: str) -> WorkflowResult | None:
        """The outcome once the workflow ended, else None."""
        snapshot = await self._snapshot(workflow_id)
        return None if snapshot.state == "RUNNING" else WorkflowResult.of(workflow_id, snapshot)
