"""One typed view of every task label taskjet understands: name, type, default, validation.

Labels come from three places, later ones winning: the settings (project-wide defaults), the
registered task (`@register_task(max_retries=5)`), and the dispatch
(`task.kicker().with_labels(priority=9)`). `TaskLabels.read` merges them and checks each value
once, so sending, admission, the retry policy, limits, priorities and the HTTP API all agree on
what a label means, and a bad value is a `LabelError` naming the label, wherever it shows up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from taskiq.message import TaskiqMessage

from src.engine.core.errors import LabelError
from src.engine.core.priority import Lane, lane_of
from src.engine.core.urls import webhook_url

QUEUE = "queue_name"
DISPATCH = "dispatch"
ACK_TYPE = "ack_type"
# Set by the workflow engine on each step it dispatches: {"id": <workflow id>, "step": <step id>}.
WORKFLOW = "workflow"
# Set by the engine on a delivery, never by a sender.
ATTEMPT = "attempt"
REDELIVERED = "redelivered"
TRANSIENT = (ATTEMPT, REDELIVERED, "rate_window")
# Only meaningful next to the registered function; never put on the wire.
LOCAL = frozenset({"retry_for", "types_of_exceptions", "schedule"})

QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Names the HTTP API uses beside queue names under /api/v1/queues/.
RESERVED_QUEUES = frozenset({"dlq", "status"})
# A delay or an eta may lie at most this far ahead (the HTTP API enforces the same bound).
MAX_DELAY_S = 366 * 86_400
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}

Jitter = Literal["full", "equal", "none"]


class LabelDefaults(Protocol):
    """The settings that give labels their project-wide defaults."""

    @property
    def default_queue(self) -> str: ...
    @property
    def retry_on_error(self) -> bool: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def retry_backoff_s(self) -> float: ...
    @property
    def retry_backoff_factor(self) -> float: ...
    @property
    def retry_backoff_max_s(self) -> float: ...
    @property
    def retry_jitter(self) -> Jitter: ...
    @property
    def default_timeout_s(self) -> float: ...
    @property
    def default_max_age_s(self) -> float: ...
    @property
    def webhook_hosts(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Rate:
    """`rate_limit`: at most `count` starts per `per_s` seconds."""

    count: int
    per_s: float

    @classmethod
    def parse(cls, text: object) -> Rate:
        match = _RATE.match(text) if isinstance(text, str) else None
        if not match:
            raise LabelError(f"rate_limit {text!r} must look like '100/m', '5/s' or '10/2h'")
        count, multiple, unit = int(match[1]), int(match[2] or 1), match[3]
        if count < 1 or multiple < 1:
            raise LabelError(f"rate_limit {text!r} must allow at least 1 per window")
        return cls(count, float(multiple * _UNIT_S[unit]))


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """`workflow`: the workflow a task is a step of, and which step."""

    workflow_id: str
    step: str

    @classmethod
    def parse(cls, value: object) -> WorkflowStep | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            workflow_id, step = value.get("id"), value.get("step")
            names = [v for v in (workflow_id, step) if isinstance(v, str)]
            if len(names) == 2 and all(QUEUE_NAME.fullmatch(n) for n in names):
                return cls(names[0], names[1])
        raise LabelError(
            f"workflow must be {{'id': ..., 'step': ...}} of letters, digits, '_' and '-', "
            f"got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class RetryLabels:
    """How a failing task is retried."""

    retry_on_error: bool
    max_retries: int
    backoff_s: float
    factor: float
    backoff_max_s: float
    jitter: Jitter
    retry_for: tuple[type[BaseException], ...] = (Exception,)


@dataclass(frozen=True, slots=True)
class TaskLabels:
    """Every label taskjet acts on, typed and checked."""

    queue: str
    lane: Lane
    dispatch: int
    retry: RetryLabels
    timeout_s: float | None
    soft_timeout_s: float | None
    max_age_s: float
    rate: Rate | None
    concurrency: int | None
    limit_key: str | None
    dead_letter: bool
    client_id: str | None
    idempotency_key: str | None
    api: bool
    workflow: WorkflowStep | None = None
    notify_url: str | None = None

    @property
    def limited(self) -> bool:
        return self.rate is not None or self.concurrency is not None

    @classmethod
    def read(
        cls,
        labels: Mapping[str, Any],
        local: Mapping[str, Any],
        defaults: LabelDefaults,
    ) -> TaskLabels:
        """Merge the dispatch's `labels` over the registered task's `local` ones and check
        each; raises `LabelError` for the first bad one."""
        merged = {**local, **labels}

        def get(name: str, default: Any = None) -> Any:
            value = merged.get(name)
            return default if value is None else value

        retry_for = local.get("retry_for") or (Exception,)
        if isinstance(retry_for, type):
            retry_for = (retry_for,)
        if not (
            isinstance(retry_for, tuple | list)
            and all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_for)
        ):
            raise LabelError(f"retry_for must be exception types, got {retry_for!r}")
        if merged.get(ACK_TYPE) is not None:
            raise LabelError(
                f"ack_type {merged[ACK_TYPE]!r} is not supported: taskjet acknowledges a task "
                "only after its result is saved"
            )
        timeout = _seconds("timeout", get("timeout", defaults.default_timeout_s or None))
        return cls(
            queue=queue_of(merged, defaults.default_queue),
            lane=lane_of(merged),
            dispatch=dispatch_of(merged),
            retry=RetryLabels(
                retry_on_error=_bool(
                    "retry_on_error", get("retry_on_error", defaults.retry_on_error)
                ),
                max_retries=_count("max_retries", get("max_retries", defaults.max_retries)),
                backoff_s=_number("retry_backoff", get("retry_backoff", defaults.retry_backoff_s)),
                factor=_number(
                    "retry_backoff_factor",
                    get("retry_backoff_factor", defaults.retry_backoff_factor),
                    minimum=1.0,
                ),
                backoff_max_s=_number(
                    "retry_backoff_max", get("retry_backoff_max", defaults.retry_backoff_max_s)
                ),
                jitter=_jitter(get("retry_jitter", defaults.retry_jitter)),
                retry_for=tuple(retry_for),
            ),
            timeout_s=timeout,
            soft_timeout_s=_seconds("soft_timeout", get("soft_timeout")),
            max_age_s=_number("max_age", get("max_age", defaults.default_max_age_s)),
            rate=Rate.parse(merged["rate_limit"]) if get("rate_limit") is not None else None,
            concurrency=_concurrency(get("concurrency")),
            limit_key=_optional_text("limit_key", get("limit_key")),
            dead_letter=_bool("dead_letter", get("dead_letter", True)),
            client_id=_name("client_id", get("client_id")),
            idempotency_key=_optional_text("idempotency_key", get("idempotency_key")),
            api=get("api", False) is True,
            workflow=WorkflowStep.parse(get(WORKFLOW)),
            # Any host here: the allow-list is checked when sending and delivering, so a
            # worker with another list never dead-letters the task itself over it.
            notify_url=(
                webhook_url("notify_url", merged["notify_url"], frozenset())
                if get("notify_url") is not None
                else None
            ),
        )

    @classmethod
    def lenient(cls, labels: Mapping[str, Any], defaults: LabelDefaults) -> TaskLabels:
        """What can be read from labels that failed `read`: enough to record and dead-letter
        the task (its dispatch, client id, queue, workflow step and `notify_url` when they are
        valid), defaults for the rest."""
        salvage: dict[str, Any] = {}
        for name in (DISPATCH, "client_id", QUEUE, WORKFLOW, "notify_url"):
            try:
                cls.read({name: labels.get(name)}, {}, defaults)
            except LabelError:
                continue
            salvage[name] = labels.get(name)
        return cls.read(salvage, {}, defaults)

    def limit_scope(self, kwargs: Mapping[str, Any]) -> str | None:
        """The value the limits apply per (`limit_key`), taken from the call's keyword
        arguments; None when the limits are per task name."""
        if self.limit_key is None:
            return None
        if self.limit_key not in kwargs:
            raise LabelError(f"limit_key {self.limit_key!r} is not a keyword argument of the call")
        return str(kwargs[self.limit_key])


def queue_of(labels: Mapping[str, Any], default_queue: str) -> str:
    queue = labels.get(QUEUE)
    if queue is None or queue == "":
        return default_queue
    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        raise LabelError(
            f"queue name {queue!r} may only hold letters, digits, '_' and '-' (at most 64)"
        )
    if queue in RESERVED_QUEUES:
        raise LabelError(f"queue name {queue!r} is reserved ({', '.join(sorted(RESERVED_QUEUES))})")
    return queue


def dispatch_of(labels: Mapping[str, Any]) -> int:
    """Which dispatch of its task id a message is: 1, then 2, 3 ... for each retry by id,
    requeue or republish. Records and de-duplication order writes by it."""
    value = labels.get(DISPATCH, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LabelError(f"dispatch must be a positive integer, got {value!r}")
    return value


def next_dispatch(message: TaskiqMessage) -> TaskiqMessage:
    """The same task under its next dispatch number, without what the last run left on it."""
    labels = {k: v for k, v in message.labels.items() if k not in TRANSIENT}
    labels[DISPATCH] = dispatch_of(message.labels) + 1
    return message.model_copy(update={"labels": labels})


def due_at(labels: Mapping[str, Any], now: float) -> float | None:
    """Unix time a task must not start before, from its `eta` (ISO 8601 or Unix seconds) or
    `delay` (seconds from `now`); None when it may start at once."""
    eta = labels.get("eta")
    if eta is not None:
        moment = _eta(eta)
        if moment - now > MAX_DELAY_S:
            raise LabelError(f"eta {eta!r} is more than {MAX_DELAY_S // 86_400} days ahead")
        return moment
    delay = labels.get("delay")
    if delay is None:
        return None
    seconds = _number("delay", delay)
    if seconds > MAX_DELAY_S:
        raise LabelError(f"delay {delay!r} is more than {MAX_DELAY_S // 86_400} days")
    return now + seconds if seconds else None


def _eta(eta: object) -> float:
    if isinstance(eta, bool):
        raise LabelError(f"eta {eta!r} is not an ISO 8601 time or a Unix timestamp")
    if isinstance(eta, int | float):
        if not math.isfinite(eta) or eta < 0:
            raise LabelError(f"eta {eta!r} is not a time after 1970")
        return float(eta)
    try:
        moment = datetime.fromisoformat(str(eta))
    except ValueError as exc:
        raise LabelError(f"eta {eta!r} is not an ISO 8601 time or a Unix timestamp") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError) as exc:
        raise LabelError(f"eta {eta!r} is out of range") from exc


def _number(name: str, value: object, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LabelError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise LabelError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < minimum:
        raise LabelError(f"{name} must be a finite number of at least {minimum:g}, got {value!r}")
    return number


def _seconds(name: str, value: object) -> float | None:
    """A positive duration; None (or 0) means no limit."""
    if value is None:
        return None
    seconds = _number(name, value)
    return seconds or None


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LabelError(f"{name} must be a whole number of at least 0, got {value!r}")
    return value


def _concurrency(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LabelError(f"concurrency must be a positive integer, got {value!r}")
    return value


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise LabelError(f"{name} must be true or false, got {value!r}")


def _jitter(value: object) -> Jitter:
    if value in ("full", "equal", "none"):
        return value
    raise LabelError(f"retry_jitter must be 'full', 'equal' or 'none', got {value!r}")


def _name(name: str, value: object) -> str | None:
    """A name that becomes part of a NATS subject: no dots, spaces or wildcards."""
    if value is None:
        return None
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        raise LabelError(
            f"{name} {value!r} may only hold letters, digits, '_' and '-' (at most 64)"
        )
    return value


def _optional_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise LabelError(f"{name} must be a string, got {value!r}")
    return str(value)
