"""Task states, and the event status each one is announced with."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    PENDING = "PENDING"  # queued (or handed back), not running
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"  # running, and reported progress
    RETRYING = "RETRYING"  # failed, runs again after its backoff
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"
    DEAD = "DEAD"  # in the dead-letter queue

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def active(self) -> bool:
        return self in (TaskState.STARTED, TaskState.PROGRESS)


TERMINAL_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILURE, TaskState.CANCELLED, TaskState.DEAD}
)

# The `status` of a published event, by the state it announces.
EVENT_STATUS: dict[TaskState, str] = {
    TaskState.STARTED: "started",
    TaskState.PROGRESS: "processing",
    TaskState.RETRYING: "retrying",
    TaskState.SUCCESS: "completed",
    TaskState.FAILURE: "error",
    TaskState.DEAD: "error",
    TaskState.CANCELLED: "cancelled",
}
TERMINAL_EVENTS = frozenset({"completed", "error", "cancelled"})
