"""`taskjet purge QUEUE` and `taskjet queues list|pause|resume`: whole queues, cluster-wide.

A pause is kept in Redis and broadcast: every worker stops fetching from the queue within a
second, running tasks go on, and it holds across restarts until resumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from src.cli.common import JsonOption, fail, print_json_lines, print_table, run_with_engine
from src.engine.core.labels import QUEUE_NAME
from src.engine.core.priority import LANES

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker

app = typer.Typer(no_args_is_help=True, help="Queues: list, pause, resume.")

QueueArg = Annotated[str, typer.Argument(help="The queue's name.")]


def _checked(queue: str) -> str:
    if not QUEUE_NAME.fullmatch(queue):
        raise fail(f"{queue!r} is not a queue name (letters, digits, _ and -)")
    return queue


def purge(
    queue: QueueArg,
    lane: Annotated[
        str | None, typer.Option(help=f"Only this priority lane ({', '.join(LANES)}).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm dropping the tasks.")] = False,
) -> None:
    """Drop the queued (not running) tasks of a queue; each is recorded CANCELLED."""
    _checked(queue)
    if lane is not None and lane not in LANES:
        raise fail(f"no lane {lane!r}: one of {', '.join(LANES)}")
    if not yes:
        raise fail(f"purging drops every queued task of {queue!r} for good: add --yes")

    async def go(broker: JetStreamBroker) -> None:
        result = await broker.queues.purge(queue, lane)
        typer.echo(
            f"purged {result.purged} queued task(s) from {queue} ({', '.join(result.lanes)}); "
            f"{result.running} running or finished left alone"
        )

    run_with_engine(go)


@app.command("list")
def list_queues(json_lines: Annotated[bool, JsonOption] = False) -> None:
    """Every known queue with its depth, and whether it is paused."""

    async def show(broker: JetStreamBroker) -> None:
        named = (await broker.monitor.status()).named_queues
        if json_lines:
            print_json_lines(
                {"queue": name, "messages": d.messages, "paused": d.paused, "consumed": d.consumed}
                for name, d in named.items()
            )
            return
        print_table(
            ("queue", "messages", "consumed", "state"),
            (
                (name, d.messages, "yes" if d.consumed else "no", "PAUSED" if d.paused else "open")
                for name, d in named.items()
            ),
        )

    run_with_engine(show)


@app.command()
def pause(queue: QueueArg) -> None:
    """Every worker stops fetching from the queue within a second (running tasks go on)."""
    _checked(queue)

    async def go(broker: JetStreamBroker) -> None:
        await broker.queues.pause(queue)
        typer.echo(f"paused {queue}: workers fetch nothing from it until it is resumed")

    run_with_engine(go)


@app.command()
def resume(queue: QueueArg) -> None:
    """Workers fetch from the queue again."""
    _checked(queue)

    async def go(broker: JetStreamBroker) -> None:
        await broker.queues.resume(queue)
        typer.echo(f"resumed {queue}")

    run_with_engine(go)
