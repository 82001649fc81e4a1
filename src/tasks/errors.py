"""Errors taskjet records as a task's result when the task itself did not produce one.

Plain exceptions with one message argument, so a result read back from Redis rebuilds them as
their own type (`isinstance(result.error, TaskExpiredError)` works in the caller's process).
"""

from __future__ import annotations


class TaskjetTaskError(Exception):
    """Base of the errors below."""


class SoftTimeLimitExceeded(TaskjetTaskError):
    """The task ran past its `soft_timeout` and did not handle the cancellation."""

    @classmethod
    def after(cls, seconds: float) -> SoftTimeLimitExceeded:
        return cls(f"task exceeded its soft time limit of {seconds}s")


class TaskExpiredError(TaskjetTaskError):
    """The task waited in the queue longer than its `max_age` and was not run."""

    @classmethod
    def after(cls, age_s: float, max_age_s: float) -> TaskExpiredError:
        return cls(f"task waited {age_s:.1f}s in the queue, over its max_age of {max_age_s}s")


class PoisonTaskError(TaskjetTaskError):
    """The task was started again and again without ever finishing (a worker crashed or was
    killed each time), so it was set aside instead of taking more workers down."""

    @classmethod
    def after(cls, starts: int) -> PoisonTaskError:
        return cls(f"task started {starts} times without finishing")


class UnknownTaskError(TaskjetTaskError):
    """No worker knew the task's name for longer than `TASKJET_UNKNOWN_TASK_DLQ_AFTER_S`."""

    @classmethod
    def after(cls, task_name: str, age_s: float) -> UnknownTaskError:
        return cls(f"no worker knows task {task_name!r} (waited {age_s:.0f}s)")


class TaskCancelledError(TaskjetTaskError):
    """The task was cancelled (API, CLI or `cancel()`) before it finished."""

    @classmethod
    def before_start(cls) -> TaskCancelledError:
        return cls("task was cancelled before it started")

    @classmethod
    def while_running(cls) -> TaskCancelledError:
        return cls("task was cancelled while it ran")
