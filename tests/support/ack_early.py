"""A task declared with an ack type that would settle it before its result is saved: a worker
importing this module must refuse to start."""

from __future__ import annotations

from src.tasks.broker import register_task


@register_task(ack_type="when_received")
async def acked_early() -> None:
    """Never runs."""
