"""What a caller is shown: secrets redacted for everyone, tracebacks for admin keys only.

Arguments, results, labels and schedule arguments go through `engine.core.redaction` on the
way out, whatever the key (what is stored stays whole, for retries and requeues). Tracebacks
name server paths and may quote connection strings, so read and submit keys get the error's
type and message only, unless `TASKJET_API_TRACEBACKS=all`. The raw body of an undecodable
dead letter cannot be redacted: it is shown to admin keys only.
"""

from __future__ import annotations

from typing import Any

from src.api.auth import Caller
from src.config import Settings
from src.engine.core.redaction import redact
from src.engine.scheduling.schedules import ScheduleState
from src.engine.state.dead_letters import DeadLetter
from src.engine.state.record import TaskRecord


def sees_tracebacks(caller: Caller, settings: Settings) -> bool:
    return caller.admin or settings.api_tracebacks == "all"


def record_view(record: TaskRecord, caller: Caller, settings: Settings) -> TaskRecord:
    update: dict[str, Any] = {}
    if record.args is not None:
        update["args"] = redact(record.args)
    if record.kwargs is not None:
        update["kwargs"] = redact(record.kwargs)
    if record.error is not None and not sees_tracebacks(caller, settings):
        update["error"] = record.error.model_copy(update={"traceback": None})
    return record.model_copy(update=update)


def dead_letter_view(entry: DeadLetter, caller: Caller, settings: Settings) -> DeadLetter:
    update: dict[str, Any] = {
        "args": redact(entry.args),
        "kwargs": redact(entry.kwargs),
        "labels": redact(entry.labels),
    }
    if not sees_tracebacks(caller, settings):
        update["traceback"] = None
    if not caller.admin:
        update["payload_b64"] = None
    return entry.model_copy(update=update)


def schedule_view(schedule: ScheduleState) -> ScheduleState:
    return schedule.model_copy(
        update={"args": redact(schedule.args), "kwargs": redact(schedule.kwargs)}
    )
