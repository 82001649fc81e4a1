"""One write to a task's record (`transitions.py` runs them), and what became of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from src.engine.core.labels import TaskLabels
from src.engine.core.states import TaskState

# create: a dispatch (the sender's PENDING). start: a worker starting a delivery. advance:
# progress, retrying, hand-back, cancel. final: the outcome of a run, with its result. drop: a
# queued task purged from its queue (only while PENDING or RETRYING, or with no record yet).
Mode = Literal["create", "start", "advance", "final", "drop"]
# What the script did with a write.
Code = Literal["applied", "filled", "stale", "finished", "older", "ignored"]


@dataclass(slots=True)
class Transition:
    """One write to a task's record.

    `dispatch` and `attempt` say what the write describes (0: whatever the record describes
    now, for writes that do not come from a dispatch or a run, such as a cancel); `seq` is the
    stream sequence of the message a worker starts; `result` is stored with a final state.
    """

    task_id: str
    task_name: str
    state: TaskState | None
    mode: Mode = "advance"
    fields: dict[str, str | float | int] = field(default_factory=dict)
    clear: Sequence[str] = ()
    dispatch: int = 0
    attempt: int = 0
    seq: int = 0
    result: bytes | None = None
    # The task's labels, for those told it ended (None: read from its record if needed).
    labels: TaskLabels | None = None

    @property
    def outcome(self) -> bool:
        """A final state stored with its result: how a task's end is written, once per end (a
        cancel of a running task writes CANCELLED without one; its worker then writes it)."""
        return self.state is not None and self.state.terminal and self.result is not None


@dataclass(frozen=True, slots=True)
class Written:
    """The record's state before a write, and what the write did."""

    before: TaskState | None
    code: Code

    @property
    def applied(self) -> bool:
        return self.code == "applied"


# Told of each write applied, in one round trip: the transitions and what became of each.
AfterWrite = Callable[[Sequence[Transition], Sequence[Written]], Awaitable[None]]
