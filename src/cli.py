"""`taskjet` command line: run the embedded default, check a configuration.

taskjet run      private NATS + Redis from pip packages, then server and worker (RUN_MODE=both)
taskjet check    load the settings and reach NATS and Redis, or say exactly what is wrong
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from src.config import ConfigError, load_settings
from src.embedded import EmbeddedServerError, EmbeddedServers, free_port
from src.tasks.dlq import DeadLetterQueue

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

ENTRYPOINT = Path(__file__).resolve().parent.parent / "docker-entrypoint.sh"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@app.command()
def run(
    data_dir: Annotated[Path, typer.Option(help="Where NATS and Redis keep their data.")] = Path(
        ".taskjet"
    ),
    port: Annotated[int, typer.Option(help="HTTP port (the next free one if taken).")] = 8000,
    nats_port: Annotated[int, typer.Option(help="Preferred NATS port.")] = 14222,
    redis_port: Annotated[int, typer.Option(help="Preferred Redis port.")] = 16379,
) -> None:
    """Start private NATS and Redis servers, then the API and a worker, until Ctrl-C."""
    servers = EmbeddedServers.create(data_dir.resolve(), nats_port, redis_port, persistent=True)
    try:
        servers.start()
    except EmbeddedServerError as exc:
        raise _fail(str(exc)) from None
    http_port = free_port(port)
    env = servers.environ()
    env.update(RUN_MODE="both", HOST="127.0.0.1", PORT=str(http_port), PYTHON=sys.executable)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    key = _embedded_api_key(data_dir.resolve(), env)
    base = f"http://127.0.0.1:{http_port}"
    auth = f"-H 'Authorization: Bearer {key}' " if key else ""
    typer.echo(
        f"taskjet is starting\n"
        f"  API     {base}\n  docs    {base}/docs\n  health  {base}/health\n"
        f"  NATS    {servers.nats.url}  (data in {servers.nats.data_dir})\n"
        f"  Redis   {servers.redis.url}  (data in {servers.redis.data_dir})\n"
        + (f"  API key {key}  (admin; kept in {data_dir / 'api-key'})\n" if key else "")
        + f"  try     curl -X POST {base}/api/v1/tasks {auth}"
        f"-H 'content-type: application/json' "
        f'-d \'{{"task": "add", "args": [1, 2]}}\'\n'
        f"Press Ctrl-C to stop."
    )
    # Its own session, so one Ctrl-C becomes one orderly SIGTERM to server and worker.
    service = subprocess.Popen([str(ENTRYPOINT)], env=env, start_new_session=True)
    signal.signal(signal.SIGTERM, lambda *_: service.send_signal(signal.SIGTERM))
    status = 0
    try:
        while True:
            try:
                status = service.wait()
                break
            except KeyboardInterrupt:
                typer.echo("stopping...")
                service.send_signal(signal.SIGTERM)
    finally:
        servers.stop()
    raise typer.Exit(code=status)


def _embedded_api_key(data_dir: Path, env: dict[str, str]) -> str | None:
    """The admin key of the embedded service: made once, kept beside its data."""
    if env.get("TASKJET_API_KEYS") or env.get("TASKJET_AUTH") == "disabled":
        return None
    path = data_dir / "api-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    key = path.read_text().strip()
    env["TASKJET_API_KEYS"] = f"admin:{key}"
    return key


async def _check() -> list[str]:
    from src.tasks.jetstream import JetStreamBroker

    settings = load_settings()
    broker = JetStreamBroker(settings)
    await broker.startup()
    try:
        await broker.results.redis.ping()
    except Exception as exc:
        return [f"cannot reach Redis at {settings.redis_url}: {exc}"]
    finally:
        await broker.shutdown()
    return []


@app.command()
def check(
    server: Annotated[
        bool, typer.Option(help="Also check what the HTTP server needs (API keys).")
    ] = False,
) -> None:
    """Validate the configuration and reach NATS (JetStream) and Redis."""
    try:
        if server:
            from src.api.auth import check_auth_configured

            check_auth_configured(load_settings())
        problems = asyncio.run(_check())
    except (ConfigError, ConnectionError) as exc:
        raise _fail(str(exc)) from None
    except RuntimeError as exc:  # provisioning and version errors
        raise _fail(str(exc)) from None
    if problems:
        raise _fail("; ".join(problems))
    typer.echo("ok: NATS and Redis reachable, stream and consumer in place")


dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: list, requeue, purge.")
app.add_typer(dlq_app, name="dlq")


@asynccontextmanager
async def _dead_letters() -> AsyncIterator[DeadLetterQueue]:
    from src.tasks.jetstream import JetStreamBroker

    broker = JetStreamBroker(load_settings())
    await broker.startup()
    try:
        yield broker.dlq
    finally:
        await broker.shutdown()


def _run_dlq(action: Callable[[DeadLetterQueue], Awaitable[None]]) -> None:
    async def go() -> None:
        async with _dead_letters() as dlq:
            await action(dlq)

    try:
        asyncio.run(go())
    except (ConfigError, ConnectionError, RuntimeError) as exc:
        raise _fail(str(exc)) from None


@dlq_app.command("list")
def dlq_list(
    task: Annotated[str | None, typer.Option(help="Only this task name.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Dead letters, oldest first: when, why, which task, its last error."""

    async def show(dlq: DeadLetterQueue) -> None:
        entries = await dlq.entries(task_name=task, limit=limit)
        if json_lines:
            for entry in entries:
                typer.echo(entry.model_dump_json())
            return
        table = Table("failed at (UTC)", "reason", "task", "task id", "attempts", "error")
        for e in entries:
            when = datetime.fromtimestamp(e.failed_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
            error = f"{e.error_type}: {e.error_message}" if e.error_type else ""
            table.add_row(when, e.reason, e.task_name, e.task_id, str(e.attempts), error[:80])
        Console().print(table)
        typer.echo(f"{len(entries)} shown, {await dlq.count()} in the dead-letter queue")

    _run_dlq(show)


@dlq_app.command("requeue")
def dlq_requeue(
    task_id: Annotated[list[str] | None, typer.Option("--id", help="Task id (repeatable).")] = None,
    task: Annotated[str | None, typer.Option(help="Every dead letter of this task name.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
) -> None:
    """Run dead tasks again, with fresh attempt counters."""
    if not (task_id or task or all_):
        raise _fail("say which: --id ID, --task NAME or --all")

    async def requeue(dlq: DeadLetterQueue) -> None:
        done = await dlq.requeue(task_ids=task_id, task_name=task)
        typer.echo(f"requeued {len(done)} task(s)")

    _run_dlq(requeue)


@dlq_app.command("purge")
def dlq_purge(
    task: Annotated[str | None, typer.Option(help="Only this task name.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm deletion.")] = False,
) -> None:
    """Delete dead letters for good."""
    if not yes:
        raise _fail("purging deletes dead letters for good: add --yes")

    async def purge(dlq: DeadLetterQueue) -> None:
        typer.echo(f"purged {await dlq.purge(task_name=task)} dead letter(s)")

    _run_dlq(purge)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
