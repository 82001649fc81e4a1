"""Settings read from the environment, validated once, shared by server and worker.

Every duration carries its unit in its name (`_s`). Settings that depend on each other
(lease heartbeat, fetch expiry) are derived rather than set, so they can never disagree.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from src.config_api import ApiSettings, PositiveSeconds
from src.config_checks import check_nats_url, check_redis_url
from src.config_outbound import OutboundSettings
from src.engine.core.labels import queue_of
from src.profiles import ProfileDefaults, ProfileName, env_file, read_env_file

ENV_PREFIX = "TASKJET_"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class ConfigError(ValueError):
    """The environment describes a configuration taskjet cannot run with."""


class Settings(BaseSettings, ApiSettings, OutboundSettings):
    """taskjet's configuration. Unknown `TASKJET_*` variables are rejected, not ignored."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, dotenv_filtering="only_existing"
    )

    nats_url: str = Field(
        default="nats://localhost:4222",
        validation_alias=AliasChoices("NATS_URL", "TASKJET_NATS_URL"),
        description="NATS server URL(s), comma separated for a cluster.",
    )
    redis_url: str = Field(
        default="redis://localhost:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "TASKJET_REDIS_URL"),
        description="Redis (or Valkey) URL for results and task state.",
    )
    env: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses settings meant only for a developer's machine.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Worker and server log level."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per line; a line logged by a running task has its id.",
    )
    profile: ProfileName | None = Field(default=None, description="Deployment defaults (README).")
    env_file: str = Field(
        default=".env", description="File of settings read if it exists; the environment wins."
    )

    stream: str = Field(default="TASKJET", description="JetStream stream holding queued tasks.")
    subject_prefix: str = Field(default="taskjet", description="Prefix of every NATS subject.")
    redis_prefix: str = Field(default="taskjet", description="Prefix of every Redis key.")
    default_queue: str = Field(default="default", description="Queue of tasks that name none.")
    queues: str = Field(
        default="",
        description="Queues a worker consumes, comma separated (empty: the default queue).",
    )
    stream_replicas: int = Field(default=1, ge=1, le=5, description="3 in a NATS cluster.")
    stream_max_bytes: int = Field(
        default=1 << 30,
        ge=-1,
        description="Queued tasks may take this many bytes; beyond it new tasks are refused "
        "(-1: unlimited).",
    )
    stream_max_msgs: int = Field(default=-1, ge=-1, description="-1: unlimited.")
    duplicate_window_s: PositiveSeconds = Field(
        default=120.0, description="How long a re-sent task id is recognised as a duplicate."
    )
    publish_retry_s: float = Field(
        default=10.0,
        ge=0,
        description="How long a publish that got no answer (a cluster electing a leader) is "
        "sent again, with the same de-duplication id, before it fails.",
    )

    ack_wait_s: PositiveSeconds = Field(
        default=30.0, description="Lease of a delivered task; extended while it runs."
    )
    max_ack_pending: int = Field(
        default=20_000, ge=1, description="Delivered, unfinished tasks across a queue's workers."
    )
    fetch_batch: int = Field(default=64, ge=1, le=10_000, description="Largest batch of a fetch.")
    worker_concurrency: int = Field(
        default=100, ge=1, description="Tasks one worker process holds at once."
    )
    retry_share: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="Largest share of a worker's fetches given to retries while new tasks wait.",
    )
    redelivery_delay_s: PositiveSeconds = Field(
        default=2.0, description="Delay before a task whose result could not be saved runs again."
    )
    unknown_task_delay_s: PositiveSeconds = Field(
        default=5.0, description="Delay before a task no local worker knows is offered again."
    )

    unknown_task_dlq_after_s: PositiveSeconds = Field(
        default=3600.0, description="Age after which a task no worker knows is dead-lettered."
    )
    max_redeliveries: int = Field(
        default=5,
        ge=0,
        description="Extra starts allowed after crashes or lost workers before a task is "
        "dead-lettered as poison.",
    )
    shutdown_grace_s: PositiveSeconds = Field(
        default=30.0, description="Time running tasks get to finish after SIGTERM."
    )

    retry_on_error: bool = Field(default=False, description="Retry failed tasks by default.")
    max_retries: int = Field(default=3, ge=0, description="Default retries of a failing task.")
    retry_backoff_s: PositiveSeconds = Field(default=1.0, description="First retry delay.")
    retry_backoff_factor: float = Field(default=2.0, ge=1.0, description="Growth per retry.")
    retry_backoff_max_s: PositiveSeconds = Field(default=600.0, description="Retry delay cap.")
    retry_jitter: Literal["full", "equal", "none"] = Field(
        default="full", description="Random part of a retry delay."
    )
    default_timeout_s: float = Field(
        default=0, ge=0, description="Hard time limit of tasks without `timeout` (0: none)."
    )
    default_max_age_s: float = Field(
        default=0, ge=0, description="Queue age after which a task is dead-lettered (0: none)."
    )
    dlq_max_age_s: float = Field(
        default=30 * 86_400, ge=0, description="How long dead letters are kept (0: forever)."
    )

    worker_processes: int = Field(default=1, ge=1, description="Worker processes per container.")
    worker_modules: str = Field(
        default="src.tasks.example", description="Task modules a worker imports (space separated)."
    )
    worker_args: str = Field(
        default="", description="Extra arguments for `taskjet worker` (`taskiq worker` options)."
    )
    max_tasks_per_child: int = Field(
        default=0,
        ge=0,
        description="Tasks a worker process starts before it is replaced (0: never).",
    )
    max_memory_per_child_mb: int = Field(
        default=0,
        ge=0,
        description="Resident MiB past which a worker process is replaced (0: never).",
    )

    result_ttl_s: int = Field(
        default=86_400, ge=1, description="Expiry of results and task records in Redis."
    )
    record_args_max_bytes: int = Field(
        default=4096, ge=0, description="Args/kwargs shown on a task record are cut at this size."
    )
    result_max_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        description="A larger result is not stored: the task fails with ResultTooLargeError.",
    )
    record_payload_max_bytes: int = Field(
        default=65_536,
        ge=0,
        description="Largest task kept whole on its record, so it can be retried by id.",
    )
    events_max_age_s: PositiveSeconds = Field(
        default=3600.0, description="How long task events are kept for live updates and resume."
    )
    throttle_retry_s: PositiveSeconds = Field(
        default=1.0, description="Delay before a task held back by its concurrency limit retries."
    )
    scheduler: bool = Field(
        default=True, description="Run periodic schedules in this process (workers, servers)."
    )
    scheduler_tick_s: PositiveSeconds = Field(
        default=0.5, description="How often due schedule ticks are looked for."
    )
    worker_ttl_s: PositiveSeconds = Field(
        default=15.0, description="A worker that has not reported for this long counts as gone."
    )
    worker_heartbeat_dir: str = Field(default="", description="Workers touch <dir>/<pid>.")
    stats_retention_s: int = Field(default=86_400, ge=60, description="Task counters kept.")
    metrics_port: int = Field(default=0, ge=0, le=65_535, description="/metrics without a key.")

    connect_timeout_s: PositiveSeconds = Field(
        default=5.0, description="The first connection to NATS must succeed within about this."
    )
    redis_timeout_s: PositiveSeconds = Field(default=5.0, description="Connect and command.")
    redis_max_connections: int = Field(default=50, ge=1, description="Per process.")
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        description="Replicas every result and record write must reach (Redis WAIT) before a "
        "task is acknowledged; with Sentinel, 1 keeps a failover from losing a stored result.",
    )
    redis_wait_timeout_s: PositiveSeconds = Field(
        default=1.0, description="How long a write waits for those replicas (else retried)."
    )
    health_timeout_s: PositiveSeconds = Field(
        default=1.0, description="Time /health gives each dependency."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment, then the `.env` file, then the profile's defaults (src/profiles.py)."""
        profile = ProfileDefaults(settings_cls)
        return init_settings, env_settings, dotenv_settings, profile, file_secret_settings

    @field_validator("nats_url")
    @classmethod
    def _valid_nats_url(cls, value: str) -> str:
        return check_nats_url(value)

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str) -> str:
        return check_redis_url(value)

    @field_validator("stream", "subject_prefix", "default_queue")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not value or not set(value) <= _NAME_CHARS:
            raise ValueError(f"{value!r} may only hold letters, digits, '_' and '-'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_env(cls, data: object) -> object:
        known = {f"{ENV_PREFIX}{name}".upper() for name in cls.model_fields}
        unknown = sorted(
            key for key in os.environ if key.startswith(ENV_PREFIX) and key not in known
        )
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)} (check for typos)")
        return data

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        if self.env == "production" and self.auth == "disabled":
            raise ValueError(
                "TASKJET_AUTH=disabled serves the API without keys: not allowed with "
                "TASKJET_ENV=production"
            )
        return self

    @field_validator("queues", "api_queues")
    @classmethod
    def _valid_queues(cls, value: str) -> str:
        for name in filter(None, (q.strip() for q in value.split(","))):
            queue_of({"queue_name": name}, "default")  # the rule every queue name follows
        return value

    @property
    def queue_names(self) -> list[str]:
        names = [q.strip() for q in self.queues.split(",") if q.strip()]
        return list(dict.fromkeys(names)) or [self.default_queue]

    @property
    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",")]

    @property
    def heartbeat_interval_s(self) -> float:
        """How often running tasks' leases are extended: three chances per lease."""
        return self.ack_wait_s / 3

    @property
    def fetch_timeout_s(self) -> float:
        """Pull requests stay short so shutdown and reconnects are noticed quickly."""
        return min(2.0, self.heartbeat_interval_s)

    @property
    def worker_report_interval_s(self) -> float:
        """Workers report alive three times per `worker_ttl_s`."""
        return min(self.heartbeat_interval_s, self.worker_ttl_s / 3)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and the `.env` file, turning validation errors into
    one clear message."""
    try:
        path = env_file()
        if path is not None:
            read_env_file(path, {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields})
        return Settings(_env_file=path, **overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise _config_error(exc) from None
        raise ConfigError(f"invalid taskjet configuration: {exc}") from None


def _config_error(exc: ValidationError) -> ConfigError:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors()
    )
    return ConfigError(f"invalid taskjet configuration: {problems}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
