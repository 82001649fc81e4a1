"""Tasks behind circuit breakers, run by real worker processes in the tests."""

from __future__ import annotations

from src.tasks.broker import circuit_breaker, register_task


class ServiceDownError(ConnectionError):
    """The outside service the task calls did not answer."""


@register_task()
async def call_service(breaker: str, fail: bool, open_s: float = 3600.0) -> str:
    """Calls a pretend outside service behind the shared breaker `breaker` (opens after 3
    failures); `fail` says whether the service is down."""
    async with circuit_breaker(breaker, failure_threshold=3, window_s=600, open_s=open_s):
        if fail:
            raise ServiceDownError(f"{breaker} is down")
    return "answered"


@register_task(retry_on_error=True, max_retries=5, retry_for=(ValueError,))
async def call_service_with_retries(breaker: str) -> str:
    """Like `call_service` (service up) but retried: an open breaker waits its open time."""
    async with circuit_breaker(breaker, failure_threshold=3, window_s=600, open_s=3600):
        return "answered"


guarded = circuit_breaker("decorated", failure_threshold=1, open_s=3600)


@register_task()
@guarded
async def decorated_call(fail: bool) -> str:
    if fail:
        raise ServiceDownError("decorated is down")
    return "answered"
