"""A task module that brings FastAPI: a task whose argument comes from FastAPI's `Depends`
(taskiq's dependency injection accepts it as its own)."""

from __future__ import annotations

from fastapi import Depends

from src.tasks.broker import register_task


def _forty_one() -> int:
    return 41


@register_task()
async def with_fastapi_depends(answer: int = Depends(_forty_one)) -> int:
    return answer + 1
