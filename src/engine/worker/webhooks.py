"""Webhooks: a task's final state POSTed to its `notify_url` and to `TASKJET_WEBHOOK_URL`.

When a task ends, the worker only queues a delivery: an internal task (`taskjet.webhook`) on
the same JetStream queue, so it survives restarts like any task and a slow or dead receiver
never holds up the task that ended. The delivery task POSTs

    {"task_id", "task_name", "state", "result" | "error", "result_omitted"?, "timestamps"}

signed with HMAC-SHA256 of the body under `TASKJET_WEBHOOK_SECRET`
(`X-Taskjet-Signature: sha256=<hex>`), within `TASKJET_WEBHOOK_TIMEOUT_S`. A failed delivery
(no answer, or a 5xx, 408 or 429) is retried with exponential backoff up to
`TASKJET_WEBHOOK_MAX_RETRIES` times, behind a circuit breaker per receiving host, so a dead
receiver is not hammered; other answers end it. The host is checked against
`TASKJET_WEBHOOK_ALLOW` again at delivery, in case the list changed since the task was sent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from taskiq.abc.broker import AsyncBroker
from taskiq.decor import AsyncTaskiqDecoratedTask

from src.engine.core.errors import LabelError, WebhookDeliveryError, WebhookRefusedError
from src.engine.core.states import TaskState
from src.engine.core.urls import webhook_url
from src.engine.core.wire import decode
from src.engine.state.breakers import BreakerStore
from src.engine.state.events import EventError, TaskEvent
from src.engine.state.records import TaskRecords
from src.engine.state.transition import Transition, Written
from src.engine.worker.circuit import CircuitBreaker

logger = logging.getLogger("taskjet.webhooks")

WEBHOOK_TASK = "taskjet.webhook"
INTERNAL = "taskjet."  # the names of taskjet's own tasks begin so: nobody is told of them
SIGNATURE_HEADER = "X-Taskjet-Signature"
_RETRIED_STATUSES = frozenset({408, 429})


class WebhookSettings(Protocol):
    @property
    def webhook_url(self) -> str: ...
    @property
    def webhook_hosts(self) -> frozenset[str]: ...
    @property
    def webhook_timeout_s(self) -> float: ...
    @property
    def webhook_max_retries(self) -> int: ...
    @property
    def event_result_max_bytes(self) -> int: ...

    def webhook_key(self) -> bytes: ...


def sign(key: bytes, body: bytes) -> str:
    """The `X-Taskjet-Signature` value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def notification(
    task_id: str,
    task_name: str,
    state: TaskState,
    fields: dict[str, Any],
    *,
    result_json: bytes | None,
    max_bytes: int,
) -> dict[str, Any]:
    """What a receiver is sent about a task that ended (timestamps are filled in at delivery)."""
    kind = fields.get("error_type")
    error = (
        EventError(type=str(kind), message=str(fields.get("error_message", ""))) if kind else None
    )
    event = TaskEvent.of(task_id, state).with_outcome(result_json, error, max_bytes)
    outcome = {
        k: v for k, v in event.public().items() if k in ("result", "result_omitted", "error")
    }
    return {
        "task_id": task_id,
        "task_name": task_name,
        "state": state.value,
        **outcome,
        "timestamps": {"finished_at": fields.get("finished_at")},
    }


class Webhooks:
    """Queues deliveries when tasks end, and delivers them (the `taskjet.webhook` task)."""

    def __init__(
        self,
        settings: Callable[[], WebhookSettings],
        records: TaskRecords,
        breakers: Callable[[], BreakerStore],
    ) -> None:
        self._settings = settings
        self._records = records
        self._breakers = breakers
        self._task: AsyncTaskiqDecoratedTask[Any, Any] | None = None

    def register(self, broker: AsyncBroker) -> None:
        """Register the delivery task on the broker (every worker then knows it)."""

        async def deliver(url: str, body: dict[str, Any]) -> int:
            """POST one notification; the receiver's status code."""
            return await self.deliver(url, body)

        self._task = broker.register_task(
            deliver,
            task_name=WEBHOOK_TASK,
            retry_on_error=True,
            retry_for=(WebhookDeliveryError,),
        )

    def urls(self, notify_url: str | None) -> list[str]:
        found = [notify_url, self._settings().webhook_url]
        return list(dict.fromkeys(url for url in found if url))

    async def ended(self, transitions: Sequence[Transition], written: Sequence[Written]) -> None:
        """Told of every record write (`TransitionWriter.after`): queue a delivery per URL for
        each task whose end was just written, wherever it ended (a worker, a cancel, a purge,
        a dead-lettered message). Never raises: the task's outcome is stored already, so a
        delivery that cannot be queued is logged."""
        for transition, outcome in zip(transitions, written, strict=True):
            if not (outcome.applied and transition.outcome) or self._task is None:
                continue
            if transition.task_name.startswith(INTERNAL):  # deliveries, workflow starts
                continue
            try:
                await self._notify(transition)
            except Exception as exc:
                logger.warning("webhook for %s not queued: %s", transition.task_id, exc)

    async def _notify(self, transition: Transition) -> None:
        assert self._task is not None
        labels = transition.labels
        notify_url = labels.notify_url if labels else await self._notify_url(transition.task_id)
        urls = self.urls(notify_url)
        if not urls or transition.state is None:
            return
        settings = self._settings()
        body = notification(
            transition.task_id,
            transition.task_name,
            transition.state,
            transition.fields,
            result_json=transition.result,
            max_bytes=settings.event_result_max_bytes,
        )
        kicker = self._task.kicker().with_labels(max_retries=settings.webhook_max_retries)
        if labels is not None:
            # Ended on a worker: on the task's queue, one this worker consumes. Otherwise (a
            # cancel, a purge) on the default queue, not on one nobody may consume.
            kicker = kicker.with_labels(queue_name=labels.queue)
        for url in urls:
            await kicker.kiq(url, body)

    async def _notify_url(self, task_id: str) -> str | None:
        """The `notify_url` label the task was sent with, read from its kept message."""
        payload = await self._records.payload(task_id)
        if payload is None:
            return None
        try:
            found = decode(payload).labels.get("notify_url")
        except ValueError:
            return None
        return found if isinstance(found, str) and found else None

    async def deliver(self, url: str, body: dict[str, Any]) -> int:
        settings = self._settings()
        try:
            webhook_url("notify_url", url, settings.webhook_hosts)
        except LabelError as exc:
            raise WebhookRefusedError(str(exc)) from None
        record = await self._records.get(str(body.get("task_id", "")))
        if record is not None:
            body["timestamps"] = {
                "queued_at": record.queued_at,
                "started_at": record.started_at,
                "finished_at": record.finished_at or body.get("timestamps", {}).get("finished_at"),
            }
        payload = orjson.dumps(body)
        headers = {"content-type": "application/json", "user-agent": "taskjet-webhook"}
        key = settings.webhook_key()
        if key:
            headers[SIGNATURE_HEADER] = sign(key, payload)
        host = urlsplit(url).hostname or ""
        breaker = CircuitBreaker(
            f"webhook:{host}",
            self._breakers,
            failure_threshold=5,
            open_s=60.0,
            failure_on=(WebhookDeliveryError,),
        )
        started = time.monotonic()
        async with breaker:
            status = await _post(url, payload, headers, settings.webhook_timeout_s)
        logger.info(
            "webhook for %s delivered to %s: %d in %.3fs",
            body.get("task_id"),
            host,
            status,
            time.monotonic() - started,
        )
        return status


async def _post(url: str, payload: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """One POST, redirects not followed (they could lead off the allow-list).

    httpx is imported here, on the first webhook: with the modules it loads (its command line's
    rich and pygments among them) it would add 5 MB to every worker process, most of which
    never send one."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            response = await client.post(url, content=payload, headers=headers)
    except httpx.HTTPError as exc:
        raise WebhookDeliveryError(f"{type(exc).__name__}: {exc}") from None
    status = response.status_code
    if status >= 500 or status in _RETRIED_STATUSES:
        raise WebhookDeliveryError(f"receiver answered {status}")
    if status >= 300:
        raise WebhookRefusedError(f"receiver answered {status}")
    return status
