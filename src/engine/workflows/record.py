"""What the API, the CLI and `wait_result` show of a workflow."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from src.engine.workflows.join import RUNNING, SUCCESS, Snapshot


class WorkflowStepView(BaseModel):
    id: str
    task_name: str
    task_id: str | None = Field(default=None, description="Set once the step was dispatched.")
    state: str = Field(
        description="WAITING (not dispatched), a task state, or SKIPPED (see `reason`)."
    )
    depends_on: list[str]
    condition: str | None = None
    error: str | None = Field(default=None, description="Why it failed or was skipped.")


class WorkflowRecord(BaseModel):
    workflow_id: str
    kind: str = Field(description="chain, group, chord or dag.")
    state: str = Field(description="RUNNING, SUCCESS, FAILURE or CANCELLED.")
    created_at: float | None = None
    finished_at: float | None = None
    failed_step: str | None = None
    output: list[str] = Field(description="The steps whose results are the workflow's result.")
    steps: list[WorkflowStepView]

    @classmethod
    def of(cls, workflow_id: str, snap: Snapshot, live: dict[str, str]) -> WorkflowRecord:
        """`live`: the current state of dispatched steps' tasks, by task id."""
        steps = []
        for spec in snap.plan.steps:
            outcome = snap.outcomes.get(spec.id) or {}
            task_id = snap.dispatched.get(spec.id) or outcome.get("task_id")
            state = outcome.get("state") or (live.get(task_id, "PENDING") if task_id else "WAITING")
            steps.append(
                WorkflowStepView(
                    id=spec.id,
                    task_name=spec.task_name,
                    task_id=task_id,
                    state=state,
                    depends_on=spec.depends_on,
                    condition=spec.when,
                    error=outcome.get("error"),
                )
            )
        return cls(**_heading(workflow_id, snap), output=snap.plan.output, steps=steps)


class WorkflowSummary(BaseModel):
    """A workflow in a listing: its state and how far its steps got."""

    workflow_id: str
    kind: str
    state: str
    created_at: float | None = None
    finished_at: float | None = None
    failed_step: str | None = None
    steps: int = Field(description="How many steps it has.")
    steps_ended: int = Field(description="Of those, how many ended (or were skipped).")

    @classmethod
    def of(cls, workflow_id: str, snap: Snapshot) -> WorkflowSummary:
        return cls(
            **_heading(workflow_id, snap),
            steps=len(snap.plan.steps),
            steps_ended=sum(1 for s in snap.plan.steps if snap.done(s.id)),
        )


class StepResult(BaseModel):
    step: str
    state: str
    return_value: Any = None
    error: str | None = None

    @property
    def is_err(self) -> bool:
        return self.state != SUCCESS


class WorkflowResult(BaseModel):
    """A finished workflow: `return_value` is the last step's result (a chain, a chord), the
    list of the members' results in order (a group; None where one failed), or the list of
    the final steps' results (a DAG with several). `results` has each of those with its state
    and error; `failed_step` names the first step that failed."""

    workflow_id: str = ""
    state: str
    failed_step: str | None = None
    error: str | None = None
    return_value: Any = None
    results: list[StepResult]

    @property
    def is_err(self) -> bool:
        return self.state != SUCCESS

    @classmethod
    def of(cls, workflow_id: str, snap: Snapshot) -> WorkflowResult:
        results = [
            StepResult(
                step=step,
                state=(snap.outcomes.get(step) or {}).get("state", RUNNING),
                return_value=snap.results.get(step),
                error=(snap.outcomes.get(step) or {}).get("error"),
            )
            for step in snap.plan.output
        ]
        values = [r.return_value for r in results]
        kind = snap.plan.kind
        single = kind in {"chain", "chord"} or (kind == "dag" and len(values) == 1)
        failed = snap.fields.get("failed_step") or snap.failed_step
        return cls(
            workflow_id=workflow_id,
            state=snap.state,
            failed_step=failed,
            error=(snap.outcomes.get(failed) or {}).get("error") if failed else None,
            return_value=values[0] if single and values else values,
            results=results,
        )


def _heading(workflow_id: str, snap: Snapshot) -> dict[str, Any]:
    """What a workflow's record and its listing entry both show about it."""
    fields = snap.fields
    return {
        "workflow_id": workflow_id,
        "kind": snap.plan.kind,
        "state": snap.state,
        "created_at": float(fields["created_at"]) if fields.get("created_at") else None,
        "finished_at": float(fields["finished_at"]) if fields.get("finished_at") else None,
        "failed_step": fields.get("failed_step") or snap.failed_step,
    }
