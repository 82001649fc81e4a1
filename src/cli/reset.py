"""`taskjet reset`: show taskjet's streams, consumers and keys; with `--confirm`, delete them.

It connects without provisioning anything (looking changes nothing), deletes only the streams
taskjet names and the Redis keys under `TASKJET_REDIS_PREFIX` (never `FLUSHALL`), and refuses
while workers report alive unless `--force`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from src.cli.common import fail, print_json_lines, print_table
from src.config import ConfigError, load_settings

if TYPE_CHECKING:
    from src.engine.operations.reset import Reset, Survey


def reset(
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Delete it all (without it: only show).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Even while workers are alive.")] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", help="What exists (or existed) as one JSON object.")
    ] = False,
) -> None:
    """Show taskjet's streams, consumers and keys; delete them with --confirm."""
    from src.engine.core.errors import WorkersAliveError

    async def go() -> tuple[Survey, bool]:
        async with _reset_tool() as tool:
            if not confirm:
                return await tool.survey(), False
            return await tool.wipe(force=force), True

    try:
        survey, deleted = asyncio.run(go())
    except WorkersAliveError as exc:
        raise fail(f"{exc}, or add --force") from None
    except (ConfigError, ConnectionError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    if json_lines:
        print_json_lines([{**survey.model_dump(mode="json"), "deleted": deleted}])
        return
    _show(survey, load_settings().redis_prefix)
    if deleted:
        typer.echo("deleted: every stream and key above")
    elif survey.empty:
        typer.echo("nothing to delete")
    else:
        alive = " (workers are alive: stop them, or add --force)" if survey.workers else ""
        typer.echo(f"nothing changed: add --confirm to delete all of it{alive}")


def _show(survey: Survey, prefix: str) -> None:
    print_table(
        ("stream", "messages", "bytes", "consumers"),
        ((s.name, s.messages, s.bytes, ", ".join(s.consumers)) for s in survey.streams),
        title="NATS streams",
    )
    typer.echo(f"Redis keys under {prefix}: {sum(survey.keys.values())}")
    print_table(("kind", "keys"), survey.keys.items())
    typer.echo(f"{len(survey.workers)} worker(s) alive")


@asynccontextmanager
async def _reset_tool() -> AsyncIterator[Reset]:
    """A `Reset` over its own NATS and Redis connections (nothing provisioned)."""
    from src.engine.backends.nats import connect_nats
    from src.engine.backends.redis import RedisConnection
    from src.engine.core.layout import Layout
    from src.engine.operations.reset import Reset
    from src.engine.worker.registry import WorkerRegistry

    settings = load_settings()
    layout = Layout.from_settings(settings)
    nc = await connect_nats(settings)
    redis = RedisConnection(lambda: settings)
    redis.open()
    js = nc.jetstream(timeout=settings.connect_timeout_s)
    try:
        workers = WorkerRegistry(redis, lambda: layout, lambda: settings)
        yield Reset(js=lambda: js, redis=redis, layout=lambda: layout, workers=workers)
    finally:
        await redis.close()
        await nc.close()
