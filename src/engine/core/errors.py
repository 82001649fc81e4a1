"""Every error the engine raises on purpose, in one place.

Two kinds. Errors recorded as a task's result when the task itself did not produce one: plain
exceptions with one message argument, so a result read back from Redis rebuilds them as their
own type (`isinstance(result.error, TaskExpiredError)` works in the caller's process). And errors
the engine raises to its callers (bad input, a missing task, a server that cannot be used),
which the HTTP API maps to responses at its edge.
"""

from __future__ import annotations

from nats.js.errors import APIError, ServiceUnavailableError
from taskiq.exceptions import ResultGetError

from src.engine.core.states import TaskState


# Recorded as a task's result -----------------------------------------------------------------
class TaskjetTaskError(Exception):
    """Base of the errors taskjet records for a task."""


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


class CircuitOpenError(TaskjetTaskError):
    """A circuit breaker is open, so the call it guards was not made. The retry policy retries
    it after `retry_in_s`, the time until the breaker lets a trial call through."""

    breaker: str = ""
    retry_in_s: float = 0.0

    @classmethod
    def of(cls, breaker: str, retry_in_s: float) -> CircuitOpenError:
        error = cls(f"circuit breaker {breaker!r} is open; next trial in {retry_in_s:.1f}s")
        error.breaker, error.retry_in_s = breaker, retry_in_s
        return error


class InvalidTaskError(TaskjetTaskError):
    """A delivered task could not be run as sent: a label of the wrong type, for instance."""


class WebhookDeliveryError(TaskjetTaskError):
    """The receiver did not take the webhook (no answer, or an answer worth retrying)."""


class WebhookRefusedError(TaskjetTaskError):
    """The webhook cannot be sent: its host is not allowed, or the receiver refused it."""


class ResultNotSerialisableError(TypeError):
    """A task returned a value that cannot be stored as JSON."""


class ResultTooLargeError(ValueError):
    """A task returned a value larger than `TASKJET_RESULT_MAX_BYTES` as JSON."""


# Raised to callers -----------------------------------------------------------------------------
class EncodeError(TypeError):
    """A task's arguments or labels cannot be sent as JSON."""


class MessageTooLargeError(EncodeError):
    """A task's message is larger than a NATS message may be."""


class StreamFullError(RuntimeError):
    """The task stream is at its limits (discard=new): new tasks are refused, none dropped."""


class LabelError(ValueError):
    """A task label whose value taskjet cannot use; the message names the label."""


class ScheduleError(ValueError):
    """A schedule that cannot be run as written."""


class InvalidCursorError(ValueError):
    """A pagination cursor that this API did not hand out."""


class ResultMissingError(ResultGetError):
    """No result is stored for this task id (not finished, expired, or unknown)."""

    __template__ = "No result stored for task {task_id}"
    task_id: str


class TaskNotFoundError(LookupError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r} (unknown, or its record expired)")
        self.task_id = task_id


class WorkflowNotFoundError(LookupError):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow {workflow_id!r} (unknown, or expired)")
        self.workflow_id = workflow_id


class TaskConflictError(RuntimeError):
    """The task is in a state that does not allow the operation."""

    def __init__(self, message: str, state: TaskState) -> None:
        super().__init__(message)
        self.state = state


class BrokerNotStartedError(RuntimeError):
    """The broker (NATS or Redis) was used before `startup()` or after `shutdown()`."""


class NatsUnavailableError(ConnectionError):
    """NATS could not be reached at startup."""


class ProvisioningError(RuntimeError):
    """JetStream cannot be brought to the configuration taskjet needs."""


class NatsVersionError(ProvisioningError):
    """The NATS server is older than the features taskjet relies on."""


class ReplicationError(RuntimeError):
    """Redis took a write, but not to as many replicas as TASKJET_REDIS_WAIT_REPLICAS asks."""


class WorkerOptionError(RuntimeError):
    """The worker was started with options that would break taskjet's guarantees."""


class ScheduleNotFoundError(LookupError):
    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no schedule {schedule_id!r}")
        self.schedule_id = schedule_id


class ScheduleReadOnlyError(RuntimeError):
    """A schedule declared in code: it changes with the code, not from the API or CLI."""

    def __init__(self, schedule_id: str, task: str) -> None:
        super().__init__(f"schedule {schedule_id!r} is declared in code ({task}); change it there")


class RedisNotStartedError(RuntimeError):
    """Redis was used before the broker started (or after it stopped)."""


class ArtifactNotFoundError(LookupError):
    def __init__(self, task_id: str, name: str) -> None:
        super().__init__(f"task {task_id!r} has no artifact {name!r}")


class ConsumerGoneError(RuntimeError):
    """A pull request found no consumer to answer it (deleted, or its stream gone)."""


class WorkersAliveError(RuntimeError):
    """Reset while workers run: they would recreate what is deleted, mid-task."""


class NoPeersYetError(ServiceUnavailableError):
    """JetStream found no peers to place a replicated stream or consumer on (yet)."""

    def __init__(self, what: str, cause: APIError) -> None:
        super().__init__(code=cause.code, description=cause.description, err_code=cause.err_code)
        self.what = what

    def __str__(self) -> str:
        return (
            f"no JetStream peers to place {self.what} on: a cluster still forming, or fewer "
            "nodes than TASKJET_STREAM_REPLICAS"
        )
