"""A task only workers started later know: a rolling deploy in miniature."""

from __future__ import annotations

from src.tasks.broker import register_task


@register_task()
async def late_task(value: str) -> str:
    return f"late: {value}"
