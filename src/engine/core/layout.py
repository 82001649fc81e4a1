"""Every NATS subject, stream, consumer and Redis key name taskjet uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from src.config import Settings


@dataclass(frozen=True, slots=True)
class Layout:
    """Names derived from the configured prefixes, so the whole data layout reads in one screen."""

    stream: str
    subject_prefix: str
    redis_prefix: str
    default_queue: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(
            stream=settings.stream,
            subject_prefix=settings.subject_prefix,
            redis_prefix=settings.redis_prefix,
            default_queue=settings.default_queue,
        )

    # NATS -------------------------------------------------------------------------------
    @property
    def task_subjects(self) -> str:
        """Wildcard covering every queue's task subject: the work-queue stream's subjects."""
        return f"{self.subject_prefix}.tasks.>"

    def task_subject(self, queue: str, lane: str = "normal") -> str:
        """`tasks.<queue>` for the normal lane, `tasks.<queue>.<lane>` for high and low."""
        suffix = "" if lane == "normal" else f".{lane}"
        return f"{self.subject_prefix}.tasks.{queue}{suffix}"

    @property
    def dlq_stream(self) -> str:
        """Dead letters: failed, poison, expired, undecodable and unknown tasks, with why."""
        return f"{self.stream}_DLQ"

    @property
    def artifacts_bucket(self) -> str:
        """Object store of the files tasks produce (stream `OBJ_<bucket>`), objects named
        `<task id>/<name>`."""
        return f"{self.stream}_ARTIFACTS"

    @property
    def dlq_subjects(self) -> str:
        return f"{self.subject_prefix}.dlq.>"

    def dlq_subject(self, queue: str) -> str:
        return f"{self.subject_prefix}.dlq.{queue}"

    @property
    def schedules_stream(self) -> str:
        """Delayed tasks, held by the server until due (JetStream message schedules)."""
        return f"{self.stream}_SCHEDULES"

    def delayed_subject(self, task_id: str) -> str:
        return f"{self.subject_prefix}.delayed.{task_id}"

    @property
    def delayed_subjects(self) -> str:
        return f"{self.subject_prefix}.delayed.>"

    def due_subject(self, queue: str, lane: str = "normal") -> str:
        """Where a delayed task lands when due; the task stream sources it as `tasks.<...>`."""
        suffix = "" if lane == "normal" else f".{lane}"
        return f"{self.subject_prefix}.due.{queue}{suffix}"

    @property
    def due_subjects(self) -> str:
        return f"{self.subject_prefix}.due.>"

    @property
    def events_stream(self) -> str:
        """Short-lived task events (state changes, progress) for live updates."""
        return f"{self.stream}_EVENTS"

    @property
    def events_subjects(self) -> str:
        return f"{self.subject_prefix}.events.>"

    def event_subject(self, task_id: str, client_id: str | None = None) -> str:
        """`<prefix>.events.<client or _>.<task id>`: filterable by task and by client."""
        return f"{self.subject_prefix}.events.{client_id or '_'}.{task_id}"

    def task_events(self, task_id: str) -> str:
        return f"{self.subject_prefix}.events.*.{task_id}"

    def client_events(self, client_id: str) -> str:
        return f"{self.subject_prefix}.events.{client_id}.*"

    @property
    def cancel_subject(self) -> str:
        """Core NATS broadcast: every worker hears every cancellation."""
        return f"{self.subject_prefix}.control.cancel"

    @property
    def queues_subject(self) -> str:
        """Core NATS broadcast: a queue was paused or resumed (workers re-read the set)."""
        return f"{self.subject_prefix}.control.queues"

    def consumer(self, queue: str, lane: str = "normal") -> str:
        """The durable pull consumer all workers of a queue's lane share."""
        return f"workers-{queue}" if lane == "normal" else f"workers-{queue}-{lane}"

    @staticmethod
    def msg_id(task_id: str, attempt: int) -> str:
        """`Nats-Msg-Id`: de-duplicates re-sends of one attempt, never a later retry."""
        return f"{task_id}:{attempt}"

    # Redis ------------------------------------------------------------------------------
    def result_key(self, task_id: str) -> str:
        return f"{self.redis_prefix}:result:{task_id}"

    def record_key(self, task_id: str) -> str:
        """Hash: the task's state record."""
        return f"{self.redis_prefix}:task:{task_id}"

    def breaker_key(self, name: str) -> str:
        """A circuit breaker's state (a hash); `...:failures` holds its recent failures."""
        return f"{self.redis_prefix}:breaker:{name}"

    @property
    def breakers_key(self) -> str:
        """The names of every circuit breaker ever used (a set)."""
        return f"{self.redis_prefix}:breakers"

    def index_key(self, kind: str, value: str = "") -> str:
        """Sorted sets of task ids by queue time: `all`, `state:<STATE>`, `name:<task name>`."""
        return f"{self.redis_prefix}:idx:{kind}{':' if value else ''}{value}"

    @property
    def schedules_key(self) -> str:
        """Hash: dynamic schedule id → its definition (JSON)."""
        return f"{self.redis_prefix}:schedules"

    def schedule_runs_key(self, schedule_id: str) -> str:
        """Hash: a schedule's last run (tick time and the task it produced)."""
        return f"{self.redis_prefix}:schedule-runs:{schedule_id}"

    @property
    def paused_queues_key(self) -> str:
        """Set: the queues no worker fetches from until resumed."""
        return f"{self.redis_prefix}:paused-queues"

    def worker_key(self, worker_id: str) -> str:
        """A live worker's report; expires when it stops reporting."""
        return f"{self.redis_prefix}:worker:{worker_id}"

    @property
    def workers_key(self) -> str:
        """Sorted set: the ids of the workers that reported, by when they last did (no SCAN)."""
        return f"{self.redis_prefix}:workers"

    @property
    def all_keys_pattern(self) -> str:
        """SCAN pattern of every key under the prefix (glob characters in it escaped)."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.redis_prefix)
        return f"{escaped}:*"

    @property
    def streams(self) -> list[str]:
        """Every stream taskjet keeps (the artifacts' object store is a stream too)."""
        return [
            self.schedules_stream,
            self.stream,
            self.dlq_stream,
            self.events_stream,
            f"OBJ_{self.artifacts_bucket}",
        ]

    def artifacts_key(self, task_id: str) -> str:
        """Hash: a task's artifacts, name → size, content type, time (JSON)."""
        return f"{self.redis_prefix}:artifacts:{task_id}"

    def workflow_key(self, workflow_id: str) -> str:
        """Hash: a workflow's definition, state, and each step's outcome (the join state)."""
        return f"{self.redis_prefix}:workflow:{workflow_id}"

    def workflows_index_key(self, state: str = "") -> str:
        """Sorted sets of workflow ids by creation time: every one, and `<STATE>` (RUNNING...)."""
        return f"{self.redis_prefix}:workflows:{state or 'all'}"

    def attempts_key(self, task_id: str) -> str:
        """Hash of `starts` (redelivered starts) and `failures`; written only off the happy path."""
        return f"{self.redis_prefix}:attempts:{task_id}"

    def stats_minute_key(self, minute: int) -> str:
        """Hash: the task counters of the minute starting at this Unix time (`state/stats.py`)."""
        return f"{self.redis_prefix}:stats:m:{minute}"

    @property
    def stats_totals_key(self) -> str:
        """Hash: running totals per task name and queue (the Prometheus counters)."""
        return f"{self.redis_prefix}:stats:totals"
