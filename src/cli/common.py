"""What every `taskjet` command shares: errors as one red line, the started engine, output.

Commands that read or steer the system use the same engine code as the API (no HTTP): the
application's broker, with the task modules workers run imported (`TASKJET_WORKER_MODULES`),
so schedules in code and the tasks' labels are known here too.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from src.config import ConfigError, load_settings

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker

T = TypeVar("T")
PIPED_WIDTH = 250


def fail(message: str) -> typer.Exit:
    """Say what is wrong on stderr; the caller raises the returned exit (status 2)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@asynccontextmanager
async def engine() -> AsyncIterator[JetStreamBroker]:
    """The application's broker, started as a client, with the workers' task modules loaded."""
    from src.tasks.broker import broker

    # The command reports what it did; the engine's operational log lines are for services.
    logging.getLogger("taskjet").setLevel(logging.ERROR)
    settings = load_settings()
    broker.configure(settings)
    for module in settings.worker_modules.split():
        importlib.import_module(module)
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()


def run_with_engine(action: Callable[[JetStreamBroker], Awaitable[T]]) -> T:
    """Run `action` on a started engine; configuration and connection errors end the command
    with one line (status 2)."""

    async def go() -> T:
        async with engine() as broker:
            return await action(broker)

    try:
        return asyncio.run(go())
    except (ConfigError, ConnectionError, RuntimeError, ImportError) as exc:
        raise fail(str(exc)) from None


def when(timestamp: float | None) -> str:
    """A Unix time as `YYYY-MM-DD HH:MM:SS` UTC ('' for none)."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_json_lines(items: Iterable[Any]) -> None:
    """One JSON object per line (pydantic models or plain values)."""
    for item in items:
        value = item.model_dump(mode="json") if hasattr(item, "model_dump") else item
        typer.echo(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


def print_table(columns: Sequence[str], rows: Iterable[Sequence[object]], title: str = "") -> None:
    """A table on stdout; piped or redirected, lines are not cut to a terminal's width."""
    table = Table(*columns, title=title or None)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console = Console()
    if not console.is_terminal:
        console = Console(width=PIPED_WIDTH)
    console.print(table)


JsonOption = typer.Option("--json", help="One JSON object per line instead of a table.")
