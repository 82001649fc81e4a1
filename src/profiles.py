"""Where settings come from besides the environment: a `.env` file and a profile.

Precedence, highest first: the environment; the `.env` file (`TASKJET_ENV_FILE`, default `.env`
in the working directory, read if it exists); the defaults of `TASKJET_PROFILE`; the built-in
defaults. A misspelt `TASKJET_*` name in the file is an error, as it is in the environment.

A profile only moves defaults: every value it sets can be set explicitly as well, and the
explicit value wins. The table is documented in the README (a test keeps them in step).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

ProfileName = Literal["development", "production", "high-throughput", "memory-constrained"]
DEFAULT_ENV_FILE = ".env"

# What each profile sets: worker shape (processes, concurrency, fetch batch), timeouts,
# recycling limits and connection pools.
PROFILES: dict[str, dict[str, Any]] = {
    "development": {
        "log_level": "DEBUG",
        "worker_processes": 1,
        "worker_concurrency": 10,
        "fetch_batch": 10,
        "shutdown_grace_s": 5.0,
    },
    "production": {
        "worker_processes": 2,
        "worker_concurrency": 100,
        "fetch_batch": 64,
        "shutdown_grace_s": 30.0,
        "default_timeout_s": 3600.0,
        "max_tasks_per_child": 100_000,
    },
    "high-throughput": {
        "log_level": "WARNING",
        "worker_processes": 4,
        "worker_concurrency": 500,
        "fetch_batch": 256,
        "max_ack_pending": 50_000,
        "redis_max_connections": 200,
        "shutdown_grace_s": 30.0,
    },
    "memory-constrained": {
        "worker_processes": 1,
        "worker_concurrency": 10,
        "fetch_batch": 8,
        "redis_max_connections": 10,
        "result_max_bytes": 256 * 1024,
        "shutdown_grace_s": 15.0,
        "max_tasks_per_child": 1000,
        "max_memory_per_child_mb": 256,
    },
}


def env_file(environ: dict[str, str] | None = None) -> Path | None:
    """The `.env` file to read, or None. One named by `TASKJET_ENV_FILE` must exist."""
    environ = dict(os.environ) if environ is None else environ
    named = environ.get("TASKJET_ENV_FILE")
    path = Path(named or DEFAULT_ENV_FILE)
    if path.is_file():
        return path
    if named:
        raise ValueError(f"TASKJET_ENV_FILE={named!r}: no such file")
    return None


def read_env_file(path: Path, known: set[str]) -> dict[str, str | None]:
    """The file's variables; a `TASKJET_*` name no setting has is an error naming the file."""
    values = dotenv_values(path)
    unknown = sorted(
        k for k in values if k.upper().startswith("TASKJET_") and k.upper() not in known
    )
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)} in {path} (check for typos)")
    return values


class ProfileDefaults(PydanticBaseSettingsSource):
    """The chosen profile's values, for the settings no higher source set."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for every field at once

    def __call__(self) -> dict[str, Any]:
        chosen = self.current_state.get("profile")
        if chosen is None or chosen not in PROFILES:
            return {}  # none, or a bad name the model's validation reports
        return {k: v for k, v in PROFILES[chosen].items() if k not in self.current_state}


def env_example(settings_cls: type[BaseSettings], prefix: str) -> str:
    """`.env.example`: every variable with its default and meaning (`taskjet env-example`)."""
    lines = [
        "# taskjet settings. Copy to .env (read from the working directory, or name another file",
        "# with TASKJET_ENV_FILE) and uncomment what you change. The environment wins over the",
        "# file; TASKJET_PROFILE sets documented defaults that both override. A misspelt",
        "# TASKJET_ name is an error.",
        "# Generated from the settings model: `taskjet env-example > .env.example`.",
    ]
    for name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        env_name = str(choices[0]) if choices else f"{prefix}{name}".upper()
        lines += ["", f"# {field.description or name}", f"# {env_name}={shown(field.default)}"]
    return "\n".join(lines) + "\n"


def shown(value: object) -> str:
    secret = getattr(value, "get_secret_value", None)
    if callable(secret):
        value = secret()
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
