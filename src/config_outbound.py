"""Settings of what taskjet sends out of itself: outcomes in live events, and webhooks.

Kept apart from `config.py` so each file reads in one screen; `Settings` inherits them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from src.engine.core.urls import parse_allowed_hosts


class OutboundSettings(BaseModel):
    event_result_max_bytes: int = Field(
        default=16_384,
        ge=0,
        description="A final event carries the task's result up to this size as JSON; a larger "
        "one is left out (`result_omitted`) and read from the record.",
    )
    webhook_url: str = Field(
        default="", description="Every task's final state is POSTed here (empty: none)."
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Key of the HMAC-SHA256 signature in `X-Taskjet-Signature` (empty: unsigned).",
    )
    webhook_allow: str = Field(
        default="",
        description="Hosts webhooks may be sent to, comma separated (`*.example.com` for a "
        "domain; empty: any host).",
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, description="A receiver must answer within this, else retried."
    )
    webhook_max_retries: int = Field(
        default=8, ge=0, description="Retries of a failed delivery (exponential backoff)."
    )

    @field_validator("webhook_url")
    @classmethod
    def _valid_webhook_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError(f"webhook URL {value!r} must look like https://host[:port]/path")
        return value

    @field_validator("webhook_allow")
    @classmethod
    def _valid_webhook_allow(cls, value: str) -> str:
        parse_allowed_hosts(value)
        return value

    @property
    def webhook_hosts(self) -> frozenset[str]:
        """The allow-list (empty: every host)."""
        return parse_allowed_hosts(self.webhook_allow)

    def webhook_key(self) -> bytes:
        """The signing key (empty: webhooks go unsigned)."""
        return self.webhook_secret.get_secret_value().encode()
