"""`taskjet schedules list|pause|resume|run|delete`: periodic schedules by id.

Schedules declared in code are listed but not changed from here (they change with the code).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from src.cli.common import JsonOption, fail, print_json_lines, print_table, run_with_engine, when
from src.engine.core.errors import ScheduleError, ScheduleNotFoundError, ScheduleReadOnlyError

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker

T = TypeVar("T")

app = typer.Typer(
    no_args_is_help=True, help="Periodic schedules: list, pause, resume, run, delete."
)

ScheduleArg = Annotated[str, typer.Argument(help="The schedule's id.")]


def _steer(action: Callable[[JetStreamBroker], Awaitable[T]]) -> T:
    """Run `action`; an unknown, read-only or broken schedule ends the command with one line."""
    try:
        return run_with_engine(action)
    except (ScheduleNotFoundError, ScheduleReadOnlyError, ScheduleError) as exc:
        raise fail(str(exc)) from None


@app.command("list")
def list_schedules(json_lines: Annotated[bool, JsonOption] = False) -> None:
    """Every schedule, from code and from the API, with its next and last run."""
    from src.api.views import schedule_view

    async def show(broker: JetStreamBroker) -> None:
        stored = await broker.schedules.stored()
        items = [
            schedule_view(await broker.schedules.state(s))
            for s in broker.schedules.declared() + stored.schedules
        ]
        if json_lines:
            print_json_lines(items)
            return
        print_table(
            (
                "schedule",
                "task",
                "rule",
                "zone",
                "source",
                "next run (UTC)",
                "last run (UTC)",
                "last task id",
            ),
            (
                (
                    s.id,
                    s.task,
                    s.cron or f"every {s.interval:g}s",
                    s.timezone,
                    s.source,
                    "paused" if s.paused else when(s.next_run),
                    when(s.last_run),
                    s.last_task_id,
                )
                for s in items
            ),
        )
        for bad in stored.invalid:
            typer.echo(f"cannot run (delete it): {bad.id}: {bad.describe()}")

    _steer(show)


@app.command()
def pause(schedule_id: ScheduleArg) -> None:
    """No more ticks until resumed (a run asked for with `run` still happens)."""

    async def go(broker: JetStreamBroker) -> None:
        await broker.schedule_control.set_paused(schedule_id, True)
        typer.echo(f"paused {schedule_id}")

    _steer(go)


@app.command()
def resume(schedule_id: ScheduleArg) -> None:
    """Ticks again from the next one due (missed ticks are not made up)."""

    async def go(broker: JetStreamBroker) -> None:
        state = await broker.schedule_control.set_paused(schedule_id, False)
        typer.echo(f"resumed {schedule_id}: next run {when(state.next_run)} UTC")

    _steer(go)


@app.command()
def run(schedule_id: ScheduleArg) -> None:
    """Run the schedule's task once now, outside its cadence (paused or not)."""

    async def go(broker: JetStreamBroker) -> None:
        task_id = await broker.schedule_control.run_now(schedule_id)
        typer.echo(f"dispatched {task_id}")

    _steer(go)


@app.command()
def delete(
    schedule_id: ScheduleArg,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm deletion.")] = False,
) -> None:
    """Delete a schedule made over the API (also one whose stored definition cannot run)."""
    if not yes:
        raise fail(f"deleting removes schedule {schedule_id!r} for good: add --yes")

    async def go(broker: JetStreamBroker) -> None:
        await broker.schedule_control.delete(schedule_id)
        typer.echo(f"deleted {schedule_id}")

    _steer(go)
