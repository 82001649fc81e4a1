"""`taskjet dlq list|requeue|purge`: the dead-letter queue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from src.cli.common import JsonOption, fail, print_json_lines, print_table, run_with_engine, when

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker

app = typer.Typer(no_args_is_help=True, help="Dead letters: list, requeue, purge.")


@app.command("list")
def dlq_list(
    task: Annotated[str | None, typer.Option(help="Only this task name.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    json_lines: Annotated[bool, JsonOption] = False,
) -> None:
    """Dead letters, oldest first: when, why, which task, its last error."""

    async def show(broker: JetStreamBroker) -> None:
        entries = await broker.dlq.entries(task_name=task, limit=limit)
        if json_lines:
            print_json_lines(entries)
            return
        print_table(
            ("failed at (UTC)", "reason", "task", "task id", "attempts", "error"),
            (
                (
                    when(e.failed_at),
                    e.reason,
                    e.task_name,
                    e.task_id,
                    e.attempts,
                    (f"{e.error_type}: {e.error_message}" if e.error_type else "")[:80],
                )
                for e in entries
            ),
        )
        typer.echo(f"{len(entries)} shown, {await broker.dlq.count()} in the dead-letter queue")

    run_with_engine(show)


@app.command("requeue")
def dlq_requeue(
    task_id: Annotated[list[str] | None, typer.Option("--id", help="Task id (repeatable).")] = None,
    task: Annotated[str | None, typer.Option(help="Every dead letter of this task name.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
) -> None:
    """Run dead tasks again, with fresh attempt counters."""
    if not (task_id or task or all_):
        raise fail("say which: --id ID, --task NAME or --all")

    async def requeue(broker: JetStreamBroker) -> None:
        done = await broker.dlq.requeue(task_ids=task_id, task_name=task)
        typer.echo(f"requeued {len(done)} task(s)")

    run_with_engine(requeue)


@app.command("purge")
def dlq_purge(
    task: Annotated[str | None, typer.Option(help="Only this task name.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm deletion.")] = False,
) -> None:
    """Delete dead letters for good."""
    if not yes:
        raise fail("purging deletes dead letters for good: add --yes")

    async def purge(broker: JetStreamBroker) -> None:
        typer.echo(f"purged {await broker.dlq.purge(task_name=task)} dead letter(s)")

    run_with_engine(purge)
