"""Settings of the HTTP face: keys, limits on what clients send, and the server's guards.

Kept apart from `config.py` so each file reads in one screen; `Settings` inherits them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from src.config_checks import check_public_url, parse_api_keys
from src.engine.core.labels import Rate

PositiveSeconds = Annotated[float, Field(gt=0)]


class ApiSettings(BaseModel):
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
    api_max_json_depth: int = Field(
        default=32, ge=2, le=512, description="Deeper nested JSON bodies are refused with 422."
    )
    api_tracebacks: Literal["admin", "all"] = Field(
        default="admin", description="Who sees tracebacks of failed tasks: admin keys, or all."
    )
    public_url: str = Field(
        default="",
        description="External base URL for links in answers (empty: relative links).",
    )
    dashboard: bool = Field(default=True, description="The web dashboard at /dashboard.")
    dashboard_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Signs dashboard sessions; the same on every replica (empty: random per "
        "process, so sessions end with it).",
    )
    stream_idle_timeout_s: PositiveSeconds = Field(
        default=300.0, description="An event stream that carried no task event this long ends."
    )
    streams_per_key: int = Field(
        default=100, ge=1, description="Open event streams (SSE, WebSocket) per API key."
    )
    api_submit_rate: str = Field(
        default="500/s",
        description="Task submissions per API key and server process, e.g. `500/s`, `20000/m` "
        "(`off`: no limit); beyond it 429 with Retry-After.",
    )
    api_queues: str = Field(
        default="",
        description="Queues the API may send tasks to, comma separated (empty: the default "
        "queue, TASKJET_QUEUES and the queues registered tasks name).",
    )
    http_header_timeout_s: PositiveSeconds = Field(
        default=10.0, description="A request's headers must arrive within this (else 408)."
    )
    http_body_timeout_s: PositiveSeconds = Field(
        default=30.0, description="A request's body must arrive within this after its headers."
    )
    http_max_header_bytes: int = Field(
        default=65_536, ge=1024, description="Larger request headers are refused with 431."
    )
    http_keep_alive_s: int = Field(
        default=5, ge=1, description="Idle keep-alive connections are closed after this."
    )
    http_max_concurrency: int = Field(
        default=1000, ge=1, description="Connections and requests at once; beyond it 503."
    )
    http_shutdown_timeout_s: int = Field(
        default=10, ge=1, description="Longest wait for open requests after SIGTERM."
    )

    @field_validator("public_url")
    @classmethod
    def _valid_public_url(cls, value: str) -> str:
        return check_public_url(value)

    @field_validator("api_keys")
    @classmethod
    def _valid_api_keys(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())
        return value

    @field_validator("api_submit_rate")
    @classmethod
    def _valid_submit_rate(cls, value: str) -> str:
        if value.strip().lower() != "off":
            Rate.parse(value)  # the same rule as the `rate_limit` label
        return value.strip()

    @property
    def api_queue_names(self) -> list[str]:
        return [q.strip() for q in self.api_queues.split(",") if q.strip()]

    @property
    def submit_rate(self) -> Rate | None:
        """`api_submit_rate` parsed; None when submissions are not limited."""
        return None if self.api_submit_rate.lower() == "off" else Rate.parse(self.api_submit_rate)

    @property
    def api_key_roles(self) -> dict[str, str]:
        """Key → role."""
        return parse_api_keys(self.api_keys.get_secret_value())
