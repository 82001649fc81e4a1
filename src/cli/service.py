"""`taskjet run` (private NATS + Redis from pip packages, then server and worker, RUN_MODE=both)
`taskjet check` (load the settings and reach NATS and Redis, or say exactly what is wrong) and
`taskjet alive` (the worker liveness probe: its processes' loops and lease loops still beat).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from src.cli.common import fail
from src.config import ENV_PREFIX, ConfigError, Settings, load_settings
from src.embedded import EmbeddedServerError, EmbeddedServers, Watchdog, free_port

ENTRYPOINT = Path(__file__).resolve().parents[2] / "docker-entrypoint.sh"


def run(
    data_dir: Annotated[Path, typer.Option(help="Where NATS and Redis keep their data.")] = Path(
        ".taskjet"
    ),
    port: Annotated[int, typer.Option(help="HTTP port (the next free one if taken).")] = 8000,
    nats_port: Annotated[int, typer.Option(help="Preferred NATS port.")] = 14222,
    redis_port: Annotated[int, typer.Option(help="Preferred Redis port.")] = 16379,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="Three NATS nodes in a cluster, streams with three replicas (as in production).",
        ),
    ] = False,
) -> None:
    """Start private NATS and Redis servers, then the API and a worker, until Ctrl-C."""
    stop = _StopSignals()  # first: a Ctrl-C at any moment stops what has started so far
    watchdog = Watchdog()  # stops everything if this process dies without doing it
    servers = EmbeddedServers.create(
        data_dir.resolve(), nats_port, redis_port, persistent=True, cluster=cluster
    )
    status = 0
    try:
        try:
            servers.start(watchdog)
        except EmbeddedServerError as exc:
            raise fail(str(exc)) from None
        http_port = free_port(port)
        env = servers.environ()
        env.update(RUN_MODE="both", HOST="127.0.0.1", PORT=str(http_port), PYTHON=sys.executable)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        key = _embedded_api_key(data_dir.resolve(), env)
        if not stop.count:  # not stopped while the servers started
            _print_banner(servers, data_dir, http_port, key)
            status = _serve(env, stop, watchdog)
    finally:
        servers.stop()
        watchdog.close()
    raise typer.Exit(code=status)


def _print_banner(
    servers: EmbeddedServers, data_dir: Path, http_port: int, key: str | None
) -> None:
    base = f"http://127.0.0.1:{http_port}"
    auth = f"-H 'Authorization: Bearer {key}' " if key else ""
    # Nobody reading stdout any more (`taskjet run | head -1`) is no reason not to serve.
    with contextlib.suppress(OSError):
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


def _serve(env: dict[str, str], stop: _StopSignals, watchdog: Watchdog) -> int:
    """The entrypoint with RUN_MODE=both until it exits; its status."""
    # Its own session: the terminal's Ctrl-C reaches only this process, which asks the
    # entrypoint to stop the worker and then the API, and stops the servers after them.
    service = subprocess.Popen(
        [str(ENTRYPOINT)], env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    grace_s = float(
        env.get(f"{ENV_PREFIX}SHUTDOWN_GRACE_S")
        or Settings.model_fields["shutdown_grace_s"].default
    )
    watchdog.register(service.pid, grace_s + 30)
    stop.forward_to(service)
    return service.wait()


class _StopSignals:
    """SIGINT, SIGTERM and SIGHUP (Ctrl-C, `kill`, the terminal closing) all stop the service in
    order. The first asks the entrypoint to stop, the second cuts the worker's grace period short
    (running tasks are handed back), a third kills the service at once. The servers stop after
    the service has exited."""

    def __init__(self) -> None:
        self.count = 0
        self.service: subprocess.Popen[bytes] | None = None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._received)

    def forward_to(self, service: subprocess.Popen[bytes]) -> None:
        self.service = service
        if self.count:  # asked to stop while the service was starting
            self._forward()

    def _received(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 1:
            _say("stopping the worker, the API, then NATS and Redis (again: cancel running tasks)")
        self._forward()

    def _forward(self) -> None:
        service = self.service
        if service is None or service.returncode is not None:
            return
        if self.count < 3:
            service.send_signal(signal.SIGTERM)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.pid, signal.SIGKILL)


def _say(message: str) -> None:
    """To stderr, from a signal handler: unbuffered, and quiet when the terminal is gone."""
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), f"{message}\n".encode())


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
    from src.engine.broker import JetStreamBroker

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
        raise fail(str(exc)) from None
    except RuntimeError as exc:  # provisioning and version errors
        raise fail(str(exc)) from None
    if problems:
        raise fail("; ".join(problems))
    typer.echo("ok: NATS and Redis reachable, stream and consumer in place")


def alive(
    max_age_s: Annotated[
        float, typer.Option(help="Oldest heartbeat (seconds) a live worker process may have.")
    ] = 30.0,
) -> None:
    """Exit 0 when every worker process of this container touched its heartbeat file
    (`TASKJET_WORKER_HEARTBEAT_DIR`) within `--max-age-s`; NATS and Redis are not asked."""
    from src.engine.worker.vitals import stale_heartbeats

    try:
        folder = load_settings().worker_heartbeat_dir
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if not folder:
        raise fail("TASKJET_WORKER_HEARTBEAT_DIR is not set: workers write no heartbeat")
    problems = stale_heartbeats(folder, max_age_s)
    if problems:
        raise fail("; ".join(problems))
    typer.echo("ok: every worker process beats")
