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

    def task_subject(self, queue: str) -> str:
        return f"{self.subject_prefix}.tasks.{queue}"

    @property
    def dlq_stream(self) -> str:
        """Dead letters: failed, poison, expired, undecodable and unknown tasks, with why."""
        return f"{self.stream}_DLQ"

    @property
    def dlq_subjects(self) -> str:
        return f"{self.subject_prefix}.dlq.>"

    def dlq_subject(self, queue: str) -> str:
        return f"{self.subject_prefix}.dlq.{queue}"

    def consumer(self, queue: str) -> str:
        """The one durable pull consumer all workers of a queue share."""
        return f"workers-{queue}"

    @staticmethod
    def msg_id(task_id: str, attempt: int) -> str:
        """`Nats-Msg-Id`: de-duplicates re-sends of one attempt, never a later retry."""
        return f"{task_id}:{attempt}"

    # Redis ------------------------------------------------------------------------------
    def result_key(self, task_id: str) -> str:
        return f"{self.redis_prefix}:result:{task_id}"

    def attempts_key(self, task_id: str) -> str:
        """Hash of `starts` (redelivered starts) and `failures`; written only off the happy path."""
        return f"{self.redis_prefix}:attempts:{task_id}"
