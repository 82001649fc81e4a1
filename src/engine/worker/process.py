"""The worker process itself: what taskiq's CLI was asked for, and how the process behaves.

`taskiq worker ... --max-async-tasks N` sizes taskiq's receiver; taskjet's fetches must not hold
more than the receiver can run, so the broker reads N from the receiver that starts it (found
on the call stack: the stock CLI gives the broker no other way to learn it). An `--ack-type`
other than `when_saved` would settle messages before their results are stored; it is refused.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass
from types import FrameType

from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from src.config import Settings
from src.engine.core.errors import WorkerOptionError

logger = logging.getLogger("taskjet.worker")


@dataclass(frozen=True, slots=True)
class ReceiverOptions:
    max_async_tasks: int | None  # None: unlimited
    ack_type: AcknowledgeType
    max_tasks: int | None = None  # --max-tasks-per-child


def tasks_per_child(settings: Settings, options: ReceiverOptions | None) -> int | None:
    """How many tasks this process may still take in its life (None: no end): the lower of
    `TASKJET_MAX_TASKS_PER_CHILD` and `--max-tasks-per-child`, so it never fetches more than
    it will run (whatever it would hand back at the end counts as another start)."""
    limits = [n for n in (settings.max_tasks_per_child, options and options.max_tasks) if n]
    return min(limits) if limits else None


def receiver_options() -> ReceiverOptions | None:
    """The options of the taskiq `Receiver` whose `listen()` is starting the broker now, or
    None when no receiver is starting it (a client, a test)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Receiver):
            limit = getattr(candidate.sem, "_value", None) if candidate.sem else None
            return ReceiverOptions(limit, candidate.ack_time, candidate.max_tasks_to_execute)
        frame = frame.f_back
    return None


def worker_capacity(settings: Settings, options: ReceiverOptions | None) -> int:
    """How many tasks this worker process may hold at once: taskiq's `--max-async-tasks`.

    `TASKJET_WORKER_CONCURRENCY`, if set, must agree (the container entrypoint passes it as
    `--max-async-tasks`); an unlimited receiver (`--max-async-tasks 0`) is capped by it.
    """
    if options is not None and options.ack_type is not AcknowledgeType.WHEN_SAVED:
        raise WorkerOptionError(
            f"--ack-type {options.ack_type.value} would acknowledge tasks before their results "
            "are saved, and lose them on a crash; taskjet acknowledges after the save: "
            "remove the option (or use when_saved)"
        )
    if options is None or options.max_async_tasks is None:
        return settings.worker_concurrency
    if (
        "worker_concurrency" in settings.model_fields_set
        and settings.worker_concurrency != options.max_async_tasks
    ):
        raise WorkerOptionError(
            f"TASKJET_WORKER_CONCURRENCY={settings.worker_concurrency} disagrees with "
            f"--max-async-tasks {options.max_async_tasks}: set one of them, or both alike"
        )
    return options.max_async_tasks


def refuse_to_start(error: Exception) -> None:
    """Stop this worker process and its manager with one clear line, instead of the manager
    restarting a process that can never run: `taskjet worker`'s stops on the exit code (2),
    `taskiq worker`'s is sent SIGTERM."""
    logger.critical("taskjet worker cannot start: %s", error)
    parent = os.getppid()
    if parent > 1 and _is_taskiq_manager(parent):
        os.kill(parent, signal.SIGTERM)
    raise SystemExit(2)


def _is_taskiq_manager(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"taskiq" in cmdline.read()
    except OSError:
        return False


def stop_with_parent() -> None:
    """An orphaned worker process (its `taskiq worker` parent was killed) shuts down too,
    handing its tasks back, instead of running unsupervised."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class _PerTaskLogFilter(logging.Filter):
    """taskiq logs every task start at INFO; at thousands per second that is the bottleneck."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Executing task") or logger.isEnabledFor(
            logging.DEBUG
        )


def quiet_per_task_logs() -> None:
    receiver_logger = logging.getLogger("taskiq.receiver.receiver")
    if not any(isinstance(f, _PerTaskLogFilter) for f in receiver_logger.filters):
        receiver_logger.addFilter(_PerTaskLogFilter())
