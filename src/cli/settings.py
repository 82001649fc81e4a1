"""`taskjet env-example` (every setting with its default and meaning, as a `.env` file) and
`taskjet config-env` (the settings the container entrypoint reads, resolved from the
environment, the `.env` file and the profile, as shell `export` lines it evaluates)."""

from __future__ import annotations

import shlex

import typer

from src.cli.common import fail
from src.config import ENV_PREFIX, ConfigError, Settings, load_settings
from src.profiles import env_example as render
from src.profiles import shown

# What docker-entrypoint.sh turns into command-line options of uvicorn and `taskiq worker`
# (and the format of its own few lines).
ENTRYPOINT_SETTINGS = (
    "log_level",
    "log_format",
    "worker_processes",
    "worker_modules",
    "worker_args",
    "worker_concurrency",
    "shutdown_grace_s",
    "http_keep_alive_s",
    "http_max_concurrency",
    "http_shutdown_timeout_s",
)


def env_example() -> None:
    """Print a `.env.example` listing every variable with its default and meaning."""
    typer.echo(render(Settings, ENV_PREFIX), nl=False)


def config_env() -> None:
    """Print `export TASKJET_...=...` lines of the settings the container entrypoint uses."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    for name in ENTRYPOINT_SETTINGS:
        value = shown(getattr(settings, name))
        typer.echo(f"export {ENV_PREFIX}{name.upper()}={shlex.quote(value)}")
