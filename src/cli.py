"""`taskjet` command line: run the embedded default, check a configuration.

taskjet run      private NATS + Redis from pip packages, then server and worker (RUN_MODE=both)
taskjet check    load the settings and reach NATS and Redis, or say exactly what is wrong
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from src.config import ConfigError, load_settings
from src.embedded import EmbeddedServerError, EmbeddedServers, free_port

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
    base = f"http://127.0.0.1:{http_port}"
    typer.echo(
        f"taskjet is starting\n"
        f"  API     {base}\n  docs    {base}/docs\n  health  {base}/health\n"
        f"  NATS    {servers.nats.url}  (data in {servers.nats.data_dir})\n"
        f"  Redis   {servers.redis.url}  (data in {servers.redis.data_dir})\n"
        f"  try     curl -X POST {base}/process -H 'content-type: application/json' "
        f'-d \'{{"data": {{"hello": "world"}}}}\'\n'
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
def check() -> None:
    """Validate the configuration and reach NATS (JetStream) and Redis."""
    try:
        problems = asyncio.run(_check())
    except (ConfigError, ConnectionError) as exc:
        raise _fail(str(exc)) from None
    except RuntimeError as exc:  # provisioning and version errors
        raise _fail(str(exc)) from None
    if problems:
        raise _fail("; ".join(problems))
    typer.echo("ok: NATS and Redis reachable, stream and consumer in place")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
