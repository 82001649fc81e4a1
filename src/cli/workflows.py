"""`taskjet workflow list|show|cancel`: workflows, a workflow's state and steps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from src.cli.common import JsonOption, fail, print_json_lines, print_table, run_with_engine
from src.engine.core.errors import WorkflowNotFoundError

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker
    from src.engine.workflows.record import WorkflowRecord, WorkflowSummary

app = typer.Typer(no_args_is_help=True, help="Workflows: list, show, cancel.")


def _print(record: WorkflowRecord, json_out: bool) -> None:
    if json_out:
        print_json_lines([record])
        return
    failed = f", failed at {record.failed_step}" if record.failed_step else ""
    typer.echo(f"workflow {record.workflow_id} ({record.kind}): {record.state}{failed}")
    print_table(
        ("step", "task", "state", "after", "task id", "error"),
        (
            (s.id, s.task_name, s.state, ", ".join(s.depends_on), s.task_id, (s.error or "")[:80])
            for s in record.steps
        ),
    )


def _on_record(workflow_id: str, json_out: bool, cancel: bool) -> None:
    async def act(broker: JetStreamBroker) -> WorkflowRecord | None:
        engine = broker.workflows.engine
        try:
            return await (engine.cancel if cancel else engine.get)(workflow_id)
        except WorkflowNotFoundError:
            return None

    record = run_with_engine(act)
    if record is None:
        raise fail(f"no workflow {workflow_id!r} (unknown, or expired)")
    _print(record, json_out)


@app.command("show")
def show(workflow_id: str, json_out: Annotated[bool, JsonOption] = False) -> None:
    """A workflow's state and its steps: task, state, what each waits for, why it failed."""
    _on_record(workflow_id, json_out, cancel=False)


@app.command("cancel")
def cancel(workflow_id: str) -> None:
    """Cancel a workflow: steps not started never run, running ones are cancelled."""
    _on_record(workflow_id, json_out=False, cancel=True)


@app.command("list")
def list_workflows(
    state: Annotated[
        str | None, typer.Option(help="RUNNING, SUCCESS, FAILURE or CANCELLED.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    json_out: Annotated[bool, JsonOption] = False,
) -> None:
    """Workflows newest first (of one state): kind, state, steps ended, failed step."""
    if state is not None and state not in {"RUNNING", "SUCCESS", "FAILURE", "CANCELLED"}:
        raise fail(f"no workflow state {state!r}: RUNNING, SUCCESS, FAILURE or CANCELLED")

    async def read(broker: JetStreamBroker) -> list[WorkflowSummary]:
        return (await broker.workflows.engine.page(state, limit, None))[0]

    found = run_with_engine(read)
    if json_out:
        print_json_lines(found)
        return
    print_table(
        ("workflow", "kind", "state", "steps ended", "failed step", "created"),
        (
            (
                w.workflow_id,
                w.kind,
                w.state,
                f"{w.steps_ended}/{w.steps}",
                w.failed_step or "",
                _when(w.created_at),
            )
            for w in found
        ),
    )


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S") if t else ""
