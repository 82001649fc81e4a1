"""Settings read from the environment, validated once, shared by server and worker.

Every duration carries its unit in its name (`_s`). Settings that depend on each other
(lease heartbeat, fetch expiry) are derived rather than set, so they can never disagree.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "TASKJET_"
_NATS_SCHEMES = {"nats", "tls", "ws", "wss"}
_REDIS_SCHEMES = {"redis", "rediss", "unix", "valkey", "valkeys"}
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

PositiveSeconds = Annotated[float, Field(gt=0)]


class ConfigError(ValueError):
    """The environment describes a configuration taskjet cannot run with."""


def _check_url(url: str, schemes: set[str], what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(
            f"{what} {url!r} must start with one of {sorted(s + '://' for s in schemes)}"
        )
    if parts.scheme != "unix":
        if not parts.hostname:
            raise ValueError(f"{what} {url!r} has no host")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"{what} {url!r} has an invalid port") from exc
    return url


class Settings(BaseSettings):
    """taskjet's configuration. Unknown `TASKJET_*` variables are rejected, not ignored."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

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
    env: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    stream: str = Field(default="TASKJET", description="JetStream stream holding queued tasks.")
    subject_prefix: str = Field(default="taskjet", description="Prefix of every NATS subject.")
    redis_prefix: str = Field(default="taskjet", description="Prefix of every Redis key.")
    default_queue: str = "default"
    queues: str = Field(
        default="",
        description="Queues a worker consumes, comma separated (empty: the default queue).",
    )
    stream_replicas: int = Field(default=1, ge=1, le=5)
    stream_max_bytes: int = Field(default=-1, ge=-1, description="-1: unlimited.")
    stream_max_msgs: int = Field(default=-1, ge=-1, description="-1: unlimited.")
    duplicate_window_s: PositiveSeconds = 120.0

    ack_wait_s: PositiveSeconds = Field(
        default=30.0, description="Lease of a delivered task; extended while it runs."
    )
    max_ack_pending: int = Field(default=20_000, ge=1)
    fetch_batch: int = Field(default=64, ge=1, le=10_000)
    worker_concurrency: int = Field(
        default=100, ge=1, description="Tasks one worker process holds at once."
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
    retry_jitter: Literal["full", "equal", "none"] = "full"
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
    worker_args: str = Field(default="", description="Extra arguments for `taskiq worker`.")

    result_ttl_s: int = Field(
        default=86_400, ge=1, description="Expiry of results and task records in Redis."
    )
    record_args_max_bytes: int = Field(
        default=4096, ge=0, description="Args/kwargs shown on a task record are cut at this size."
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

    api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="API keys, `role:key` comma separated; roles `read`, `submit`, `admin`.",
    )
    auth: Literal["enabled", "disabled"] = Field(
        default="enabled",
        description="`disabled` serves the API without keys (never in production).",
    )
    api_max_body_bytes: int = Field(
        default=524_288, ge=1024, description="Larger request bodies are refused with 413."
    )
    connect_timeout_s: PositiveSeconds = 5.0
    redis_timeout_s: PositiveSeconds = 5.0
    redis_max_connections: int = Field(default=50, ge=1, description="Per process.")
    health_timeout_s: PositiveSeconds = 1.0

    @field_validator("nats_url")
    @classmethod
    def _valid_nats_url(cls, value: str) -> str:
        for url in value.split(","):
            _check_url(url.strip(), _NATS_SCHEMES, "NATS_URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str) -> str:
        return _check_url(value, _REDIS_SCHEMES, "REDIS_URL")

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

    @field_validator("api_keys")
    @classmethod
    def _valid_api_keys(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())
        return value

    @field_validator("queues")
    @classmethod
    def _valid_queues(cls, value: str) -> str:
        for name in filter(None, (q.strip() for q in value.split(","))):
            if not set(name) <= _NAME_CHARS:
                raise ValueError(f"queue {name!r} may only hold letters, digits, '_' and '-'")
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

    @property
    def api_key_roles(self) -> dict[str, str]:
        """Key → role."""
        return parse_api_keys(self.api_keys.get_secret_value())


API_ROLES = ("read", "submit", "admin")


def parse_api_keys(spec: str) -> dict[str, str]:
    """`admin:k1,read:k2` → {"k1": "admin", "k2": "read"}; errors never echo a key."""
    keys: dict[str, str] = {}
    for number, item in enumerate(filter(None, (p.strip() for p in spec.split(","))), 1):
        role, sep, key = item.partition(":")
        if not sep or role.strip() not in API_ROLES:
            raise ValueError(
                f"API key #{number} must look like `role:key`, role one of {API_ROLES}"
            )
        if len(key.strip()) < 16:
            raise ValueError(f"API key #{number} ({role}) is shorter than 16 characters")
        keys[key.strip()] = role.strip()
    return keys


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning validation errors into one clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid taskjet configuration: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
