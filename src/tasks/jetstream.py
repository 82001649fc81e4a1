"""taskjet's JetStream broker: a taskiq `AsyncBroker` that keeps its delivery promises.

- Publishes carry `Nats-Msg-Id` (task id and dispatch number), so a re-sent task is dropped by
  the server's de-duplication while a later retry is not.
- All worker processes share one durable pull consumer per queue and fetch in batches sized to
  their free capacity, so no worker hoards tasks it cannot start.
- A message is acked only after its result is saved; running and waiting tasks get their lease
  extended (`in_progress`), and on shutdown everything not finished is handed back at once.
- Undecodable messages and tasks this worker does not know are never acked and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import math
import re
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from taskiq.abc.broker import AsyncBroker
from taskiq.acks import AckableMessage
from taskiq.message import BrokerMessage, TaskiqMessage

from src.config import Settings, get_settings
from src.tasks import provisioning
from src.tasks.control import TaskControl
from src.tasks.delivery import Delivery, DeliveryBytes
from src.tasks.dlq import DeadLetterQueue, dlq_stream_config
from src.tasks.events import EventBus, events_stream_config
from src.tasks.formatter import EncodedMessage, JetStreamFormatter, decode
from src.tasks.guard import DeliveryGuard
from src.tasks.kicker import TaskjetTask
from src.tasks.layout import Layout
from src.tasks.middlewares import GuaranteesMiddleware
from src.tasks.priority import LANES, Lane, lane_of, shares
from src.tasks.records import TaskRecords
from src.tasks.results import RedisResultBackend
from src.tasks.schedules import ScheduleStore, Ticker
from src.tasks.throttle import Throttle
from src.tasks.workers import WorkerRegistry

logger = logging.getLogger("taskjet.broker")

QUEUE_LABEL = "queue_name"
DISPATCH_LABEL = "dispatch"
# Consecutive fetch failures after which the consumer is re-provisioned and re-subscribed.
_RESUBSCRIBE_AFTER = 3
_ERROR_BACKOFF_S = 0.5
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# How long a worker with room for fewer lingering pulls than lanes waits before polling all.
_SHORT_WAIT_S = 0.1


class BrokerNotStartedError(RuntimeError):
    """The broker was used before `startup()` connected it."""


class NatsUnavailableError(ConnectionError):
    """NATS could not be reached at startup."""


class JetStreamBroker(AsyncBroker):
    """Tasks on a NATS JetStream work-queue stream; results and state in Redis."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self._settings = settings
        self.formatter = JetStreamFormatter()
        self.decorator_class = TaskjetTask
        self.records = TaskRecords(
            lambda: self.results.redis, lambda: self.settings, lambda: self.layout
        )
        self.results: RedisResultBackend[Any] = RedisResultBackend(
            lambda: self.settings, self.records, lambda: self.events
        )
        self.result_backend = self.results
        self.guard = DeliveryGuard(self)
        self.dlq = DeadLetterQueue(self)
        self.control = TaskControl(self)
        self.workers = WorkerRegistry(self)
        self.schedules = ScheduleStore(self)
        self.throttle = Throttle(self)
        self._ticker: asyncio.Task[None] | None = None
        self._events: EventBus | None = None
        self.add_middlewares(GuaranteesMiddleware(self))
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._layout: Layout | None = None
        self._inflight: set[Delivery] = set()
        self._running: dict[str, Delivery] = {}
        self._reserved = 0  # capacity promised to fetches in flight
        self._subscriptions: set[JetStreamContext.PullSubscription] = set()
        self._capacity_freed = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self.heartbeat_file: Path | None = None

    # Configuration --------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
        return self._settings

    def configure(self, settings: Settings) -> None:
        """Use these settings instead of the environment's (before `startup()`)."""
        if self._nc is not None:
            raise RuntimeError("configure() must be called before startup()")
        self._settings = settings

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = Layout.from_settings(self.settings)
        return self._layout

    @property
    def nc(self) -> NATS:
        if self._nc is None:
            raise BrokerNotStartedError("the broker is not started: call broker.startup() first")
        return self._nc

    @property
    def events(self) -> EventBus:
        if self._events is None:
            raise BrokerNotStartedError("the broker is not started: call broker.startup() first")
        return self._events

    @property
    def consumed_queues(self) -> list[str]:
        """The queues this worker takes tasks from (`TASKJET_QUEUES`)."""
        return self.settings.queue_names

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BrokerNotStartedError("the broker is not started: call broker.startup() first")
        return self._js

    # Lifecycle ------------------------------------------------------------------------
    async def startup(self) -> None:
        settings = self.settings
        self._layout = Layout.from_settings(settings)
        self._nc = await connect_nats(settings)
        self._js = self._nc.jetstream(timeout=settings.connect_timeout_s)
        try:
            provisioning.check_server_version(self._nc)
            await provisioning.ensure_stream(
                self._js, provisioning.schedules_stream_config(settings, self.layout)
            )
            await provisioning.ensure_stream(
                self._js, provisioning.stream_config(settings, self.layout)
            )
            await provisioning.ensure_stream(self._js, dlq_stream_config(settings, self.layout))
            await provisioning.ensure_stream(self._js, events_stream_config(settings, self.layout))
            if self.is_worker_process:
                for queue in self.consumed_queues:
                    for lane in LANES:
                        await self._ensure_consumer(queue, lane)
        except BaseException:
            await self._nc.close()
            self._nc = self._js = None
            raise
        self._events = EventBus(self._nc, self.layout)
        await super().startup()
        try:
            await self.records.load_script()
        except Exception as exc:  # Redis down: loaded on first use once it is back
            logger.warning("cannot load the record script into Redis yet: %s", exc)
        if self.is_worker_process:
            quiet_per_task_logs()
            stop_with_parent()
            await self._nc.subscribe(self.layout.cancel_subject, cb=self._on_cancel)
            self._heartbeat = asyncio.create_task(self._extend_leases(), name="taskjet-heartbeat")
            self._reporter = asyncio.create_task(self._report_alive(), name="taskjet-reporter")
            self.start_scheduler()

    def start_scheduler(self) -> None:
        """Fire periodic schedules from this process too (workers and servers call this)."""
        if not self.settings.scheduler or self._ticker is not None:
            return
        ticker = Ticker(self)  # a schedule in code that cannot run stops startup, named
        self._ticker = asyncio.create_task(ticker.run(), name="taskjet-scheduler")

    async def shutdown(self) -> None:
        for background in (self._ticker, self._heartbeat, self._reporter):
            # A cancellation that lands inside a Redis call can be swallowed by the client:
            # cancel again until the task is really gone.
            while background is not None and not background.done():
                background.cancel()
                await asyncio.wait({background}, timeout=0.1)
        self._heartbeat = self._reporter = self._ticker = None
        if self.is_worker_process and self.results._redis is not None:
            with contextlib.suppress(Exception):
                await self.workers.withdraw()
        if self._nc is not None:
            await self._stop_fetching()
        if self._nc is not None and self._inflight:
            # Whatever is still here outlived the grace period (or a second signal came): hand it
            # back first, then cancel it, so its cancellation is never saved as its result.
            unfinished = list(self._inflight)
            await self._hand_back(unfinished, "worker shutting down")
            for delivery in unfinished:
                if delivery.runner is not None and not delivery.runner.done():
                    delivery.runner.cancel()
        await super().shutdown()
        if self._nc is not None:
            # flush + close, not drain: drain waits out a pending pull request for up to 30 s.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.flush(), self.settings.connect_timeout_s)
            await self._nc.close()
            self._nc = self._js = None
            self._events = None

    async def _ensure_consumer(self, queue: str, lane: Lane = "normal") -> None:
        await provisioning.ensure_consumer(
            self.js,
            self.layout.stream,
            provisioning.consumer_config(self.settings, self.layout, queue, lane),
        )

    # Sending --------------------------------------------------------------------------
    async def kick(self, message: BrokerMessage) -> None:
        """Publish, and write the PENDING record alongside (batched with concurrent kicks)."""
        queue = str(message.labels.get(QUEUE_LABEL) or self.layout.default_queue)
        if not _QUEUE_NAME.fullmatch(queue):
            raise ValueError(f"queue name {queue!r} may only hold letters, digits, '_' and '-'")
        dispatch = int(message.labels.get(DISPATCH_LABEL, 1))
        lane = lane_of(message.labels)
        source = _as_taskiq_message(message)
        due_at = due_time(message.labels)
        record = self.records.submit(
            self.records.queued(source, queue, message.message, due_at=due_at)
        )
        msg_id = self.layout.msg_id(message.task_id, dispatch)
        if due_at is not None and due_at > time.time():
            # Held by the server, not by a worker: no slot, no unacked message meanwhile.
            publish = self.js.publish(
                self.layout.delayed_subject(message.task_id),
                message.message,
                headers={
                    "Nats-Msg-Id": msg_id,
                    "Nats-Schedule": f"@at {rfc3339(due_at)}",
                    "Nats-Schedule-Target": self.layout.due_subject(queue, lane),
                    "Nats-Schedule-TTL": DUE_COPY_TTL,
                },
            )
        else:
            publish = self.js.publish(
                self.layout.task_subject(queue, lane),
                message.message,
                headers={"Nats-Msg-Id": msg_id},
            )
        ack, before = await asyncio.gather(publish, record, return_exceptions=True)
        if isinstance(ack, BaseException):
            raise ack
        if isinstance(before, BaseException):
            # The task is queued; only its record is missing until a worker starts it.
            logger.warning("record of task %s not written: %s", message.task_id, before)
        elif before is not None and before.terminal and not ack.duplicate:
            # A finished task's id dispatched anew (outside the duplicate window): a new run.
            await self.records.apply(
                [self.records.queued(source, queue, message.message, mode="reset")]
            )

    async def kick_many(self, messages: list[BrokerMessage]) -> None:
        """Publish many tasks without waiting for each ack in turn (`kiq_many`).

        Delayed tasks go through `kick` one by one. Raises the first failure after every
        publish was attempted; records are written in one round trip.
        """
        delayed: list[BrokerMessage] = []
        now_due: list[BrokerMessage] = []
        for message in messages:
            (now_due if due_time(message.labels) is None else delayed).append(message)
        futures = []
        transitions = []
        for message in now_due:
            queue = str(message.labels.get(QUEUE_LABEL) or self.layout.default_queue)
            if not _QUEUE_NAME.fullmatch(queue):
                raise ValueError(f"queue name {queue!r} may only hold letters, digits, '_' and '-'")
            dispatch = int(message.labels.get(DISPATCH_LABEL, 1))
            futures.append(
                await self.js.publish_async(
                    self.layout.task_subject(queue, lane_of(message.labels)),
                    message.message,
                    headers={"Nats-Msg-Id": self.layout.msg_id(message.task_id, dispatch)},
                )
            )
            transitions.append(
                self.records.queued(_as_taskiq_message(message), queue, message.message)
            )
        outcome = await asyncio.gather(
            self.records.apply(transitions), *futures, return_exceptions=True
        )
        for message in delayed:
            await self.kick(message)
        failures = [r for r in outcome[1:] if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        if isinstance(outcome[0], BaseException):
            logger.warning("records of %d tasks not written: %s", len(transitions), outcome[0])

    async def redispatch(self, message: TaskiqMessage, queue: str | None = None) -> None:
        """Queue a known task again (retry by id, requeue): fresh record state and counters."""
        queue = queue or str(message.labels.get(QUEUE_LABEL) or self.layout.default_queue)
        payload = self.formatter.dumps(message).message
        await self.records.apply([self.records.queued(message, queue, payload, mode="reset")])
        await self.results.redis.delete(
            self.layout.attempts_key(message.task_id), self.layout.result_key(message.task_id)
        )
        await self.js.publish(
            self.layout.task_subject(queue, lane_of(message.labels)),
            payload,
            headers={
                "Nats-Msg-Id": self.layout.msg_id(
                    message.task_id, int(message.labels.get(DISPATCH_LABEL, 1))
                )
            },
        )

    # Receiving ------------------------------------------------------------------------
    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        """Fetch from every consumed queue at once; yield admitted tasks as they come."""
        ready: asyncio.Queue[list[Delivery]] = asyncio.Queue()
        fetchers = [
            asyncio.create_task(self._fetch_into(queue, ready), name=f"taskjet-fetch-{queue}")
            for queue in self.consumed_queues
        ]
        pending: deque[Delivery] = deque()
        try:
            while True:
                pending.extend(await ready.get())
                while pending:
                    delivery = pending.popleft()
                    yield AckableMessage.model_construct(
                        data=DeliveryBytes.wrap(delivery.msg.data, delivery),
                        ack=functools.partial(self.guard.finish, delivery),
                    )
        finally:
            for fetcher in fetchers:
                fetcher.cancel()
            await asyncio.gather(*fetchers, return_exceptions=True)
            while not ready.empty():
                pending.extend(ready.get_nowait())
            if pending:
                await self._hand_back(list(pending), "listener closed")

    async def _fetch_into(self, queue: str, ready: asyncio.Queue[list[Delivery]]) -> None:
        """One queue's fetch loop. Room is filled from the priority lanes in weighted order
        (`priority.shares`); when every lane is empty, one lingering pull per lane waits for
        the next task. Never asks for more than this process has room for."""
        subs = {lane: await self._subscribe(queue, lane) for lane in LANES}
        waiting: dict[Lane, asyncio.Task[list[Msg]]] = {}
        failures = 0
        try:
            while True:
                msgs = self._harvest(waiting)
                free = self.settings.worker_concurrency - len(self._inflight) - self._reserved
                if free - len(msgs) <= 0 and not msgs:
                    self._capacity_freed.clear()
                    await self._capacity_freed.wait()
                    continue
                try:
                    room = min(free - len(msgs), self.settings.fetch_batch)
                    msgs.extend(await self._fill(subs, waiting, room))
                except Exception as exc:
                    failures += 1
                    logger.warning("fetch from %s failed (%d in a row): %s", queue, failures, exc)
                    await asyncio.sleep(_ERROR_BACKOFF_S)
                    if failures >= _RESUBSCRIBE_AFTER:
                        self._forget_waiting(waiting)
                        subs = {
                            lane: await self._resubscribe(subs[lane], queue, lane) for lane in LANES
                        }
                        failures = 0
                    continue
                failures = 0
                if msgs:
                    await self._admit(msgs, queue, ready)
                    continue
                # With room for fewer pulls than lanes (e.g. --max-async-tasks 1), pulls expire
                # soon, so the lanes without one are looked at again within _SHORT_WAIT_S.
                room = self.settings.worker_concurrency - len(self._inflight) - self._reserved
                idle = [lane for lane in LANES if lane not in waiting]
                wait_s = self.settings.fetch_timeout_s if room >= len(idle) else _SHORT_WAIT_S
                for lane in idle[: max(room, 0)]:
                    self._reserved += 1
                    waiting[lane] = asyncio.create_task(self._pull_wait(subs[lane], wait_s))
                if not waiting:
                    continue
                await asyncio.wait(waiting.values(), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._forget_waiting(waiting)

    def _harvest(self, waiting: dict[Lane, asyncio.Task[list[Msg]]]) -> list[Msg]:
        """What the lingering pulls that finished brought in."""
        msgs: list[Msg] = []
        for lane, task in list(waiting.items()):
            if task.done():
                del waiting[lane]
                self._reserved -= 1
                if not task.cancelled() and task.exception() is None:
                    msgs.extend(task.result())
        return msgs

    async def _fill(
        self,
        subs: dict[Lane, JetStreamContext.PullSubscription],
        waiting: dict[Lane, asyncio.Task[list[Msg]]],
        room: int,
    ) -> list[Msg]:
        """Up to `room` waiting tasks, high lane first, each lane its share; a share a lane
        cannot use passes to the next one."""
        msgs: list[Msg] = []
        carry = 0
        for lane, share in shares(room) if room > 0 else []:
            if lane in waiting:  # its lingering pull will bring what arrives
                carry += share
                continue
            got = await self._pull_now(subs[lane], share + carry)
            carry = share + carry - len(got)
            msgs.extend(got)
        return msgs

    def _forget_waiting(self, waiting: dict[Lane, asyncio.Task[list[Msg]]]) -> None:
        for task in waiting.values():
            task.cancel()
        self._reserved -= len(waiting)
        waiting.clear()

    async def _admit(
        self, msgs: list[Msg], queue: str, ready: asyncio.Queue[list[Delivery]]
    ) -> None:
        admitted: list[Delivery] = []
        for msg in msgs:
            delivery = await self.guard.admit(msg, queue)
            if delivery is not None:
                delivery.on_settle.append(self._forget)
                self._inflight.add(delivery)
                self._running[delivery.message.task_id] = delivery
                admitted.append(delivery)
        started = await self.guard.start(admitted, self.workers.worker_id)
        if started:
            ready.put_nowait(started)

    async def _pull_now(self, subscription: JetStreamContext.PullSubscription, n: int) -> list[Msg]:
        """Up to `n` messages that are there now; never waits for more to arrive."""
        if n <= 0:
            return []
        inbox = subscription._sub
        await self.nc.publish(
            subscription._nms, b'{"batch":%d,"no_wait":true}' % n, reply=subscription._deliver
        )
        msgs: list[Msg] = []
        while len(msgs) < n:
            try:
                msg = await inbox.next_msg(timeout=self.settings.connect_timeout_s)
            except (TimeoutError, NatsTimeoutError):
                break
            status = msg.headers.get("Status") if msg.headers else None
            if status is None:
                msgs.append(msg)
            elif status != "100":  # 404 nothing there, 408 expired, 409 ...: this request is done
                break
        return msgs

    async def _pull_wait(
        self, subscription: JetStreamContext.PullSubscription, wait_s: float
    ) -> list[Msg]:
        """One message, waiting up to `wait_s` for it to arrive (the server's pull request
        expires with it, so none is left behind)."""
        try:
            return await subscription.fetch(1, timeout=wait_s)
        except (TimeoutError, NatsTimeoutError):
            return []

    async def _subscribe(
        self, queue: str, lane: Lane = "normal"
    ) -> JetStreamContext.PullSubscription:
        await self._ensure_consumer(queue, lane)
        subscription = await self.js.pull_subscribe_bind(
            self.layout.consumer(queue, lane), stream=self.layout.stream
        )
        self._subscriptions.add(subscription)
        return subscription

    async def _stop_fetching(self) -> None:
        """Withdraw open pull requests, so a handed-back message is not redelivered to this
        departing worker, and hand back what already arrived but was never fetched."""
        arrived = []
        for subscription in list(self._subscriptions):
            self._subscriptions.discard(subscription)
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            queue = subscription._sub._pending_queue
            while not queue.empty():
                msg = queue.get_nowait()
                if msg.data and msg.reply:
                    arrived.append(msg)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.flush(), self.settings.connect_timeout_s)
        for msg in arrived:
            with contextlib.suppress(Exception):
                await msg.nak()

    async def _resubscribe(
        self, subscription: JetStreamContext.PullSubscription, queue: str, lane: Lane = "normal"
    ) -> JetStreamContext.PullSubscription:
        """Fetch can stall for good after some reconnects: start over with a fresh one."""
        self._subscriptions.discard(subscription)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        while True:
            try:
                await provisioning.ensure_stream(
                    self.js, provisioning.stream_config(self.settings, self.layout)
                )
                return await self._subscribe(queue, lane)
            except provisioning.ProvisioningError:
                raise
            except Exception as exc:
                logger.warning("re-subscribing to %s failed: %s", queue, exc)
                await asyncio.sleep(_ERROR_BACKOFF_S)

    def _forget(self, delivery: Delivery) -> None:
        if delivery.limits is not None and delivery.limits.concurrency is not None:
            release = asyncio.ensure_future(
                self.throttle.release(delivery.message, delivery.limits)
            )
            release.add_done_callback(_log_failure)
        self._inflight.discard(delivery)
        if self._running.get(delivery.message.task_id) is delivery:
            del self._running[delivery.message.task_id]
        self._capacity_freed.set()

    async def _on_cancel(self, msg: Msg) -> None:
        delivery = self._running.get(msg.data.decode(errors="replace"))
        if delivery is not None and not delivery.settled:
            logger.info("cancelling task %s", delivery.message.task_id)
            delivery.request_cancel()

    async def _report_alive(self) -> None:
        while True:
            try:
                await self.workers.report(len(self._inflight), self.consumed_queues)
            except Exception as exc:
                logger.warning("cannot report this worker alive: %s", exc)
            await asyncio.sleep(self.settings.worker_report_interval_s)

    async def _hand_back(self, deliveries: list[Delivery], why: str) -> None:
        """Nak unfinished deliveries so another worker takes them now, not after ack_wait."""
        logger.info("handing back %d task(s): %s", len(deliveries), why)
        for delivery in deliveries:
            try:
                await delivery.nak()
            except Exception as exc:
                logger.warning("could not hand back task %s: %r", delivery.message.task_id, exc)

    async def _extend_leases(self) -> None:
        interval = self.settings.heartbeat_interval_s
        while True:
            await asyncio.sleep(interval)
            for delivery in list(self._inflight):
                if delivery.runner is not None and delivery.runner.done() and not delivery.settled:
                    # The receiver's callback ended without acking (it crashed): run it again.
                    logger.error(
                        "task %s ended without settling; handing it back", delivery.message.task_id
                    )
                    await delivery.nak(self.settings.redelivery_delay_s)
                    continue
                try:
                    await delivery.extend()
                except Exception as exc:
                    logger.warning(
                        "could not extend lease of %s: %s", delivery.message.task_id, exc
                    )
            holders = [
                (d.message, d.limits)
                for d in self._inflight
                if d.limits is not None and d.limits.concurrency is not None and not d.settled
            ]
            if holders:
                try:
                    await self.throttle.renew(holders)
                except Exception as exc:
                    logger.warning("could not renew concurrency slots: %s", exc)
            if self.heartbeat_file is not None:
                self.heartbeat_file.touch()


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("background write failed (it expires by itself): %s", future.exception())


# How long the schedules stream keeps the due copy of a delayed task after moving it on.
DUE_COPY_TTL = "5m"


def due_time(labels: dict[str, Any]) -> float | None:
    """Unix time a task must not start before, from its `delay` (seconds) or `eta` label."""
    eta = labels.get("eta")
    if eta is not None:
        if isinstance(eta, int | float):
            return float(eta)
        try:
            moment = datetime.fromisoformat(str(eta))
        except ValueError as exc:
            raise ValueError(f"eta {eta!r} is not an ISO 8601 time or a Unix timestamp") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    delay = labels.get("delay")
    if delay is not None:
        seconds = float(delay)
        if seconds < 0:
            raise ValueError(f"delay must not be negative, got {delay!r}")
        return time.time() + seconds if seconds else None
    return None


def rfc3339(timestamp: float) -> str:
    """Whole seconds, rounded up: a schedule never fires before the time asked for."""
    moment = datetime.fromtimestamp(math.ceil(timestamp), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_taskiq_message(message: BrokerMessage) -> TaskiqMessage:
    """The message a record is written from, without decoding the body again if possible."""
    if isinstance(message, EncodedMessage) and message.source is not None:
        return message.source
    return decode(message.message)


class _PerTaskLogFilter(logging.Filter):
    """taskiq logs every task start at INFO; at thousands per second that is the bottleneck."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Executing task") or logger.isEnabledFor(
            logging.DEBUG
        )


def stop_with_parent() -> None:
    """An orphaned worker process (its `taskiq worker` parent was killed) shuts down too,
    handing its tasks back, instead of running unsupervised."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def quiet_per_task_logs() -> None:
    receiver_logger = logging.getLogger("taskiq.receiver.receiver")
    if not any(isinstance(f, _PerTaskLogFilter) for f in receiver_logger.filters):
        receiver_logger.addFilter(_PerTaskLogFilter())


async def connect_nats(settings: Settings) -> NATS:
    """Connect for the life of a service: fail fast at first, then reconnect forever."""
    nc = NATS()

    async def disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):
            logger.warning("NATS disconnected; reconnecting")

    async def reconnected() -> None:
        logger.info("NATS reconnected to %s", nc.connected_url.netloc if nc.connected_url else "?")

    async def error(exc: Exception) -> None:
        logger.warning("NATS: %s", exc)

    reconnect_wait_s = 0.5
    try:
        await nc.connect(
            servers=settings.nats_servers,
            connect_timeout=settings.connect_timeout_s,  # type: ignore[arg-type]  # float works
            allow_reconnect=True,
            # Bounded for the first connect, so bad configuration fails within seconds...
            max_reconnect_attempts=max(1, int(settings.connect_timeout_s / reconnect_wait_s)),
            reconnect_time_wait=reconnect_wait_s,  # type: ignore[arg-type]
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
    except (TimeoutError, NoServersError, OSError) as exc:
        raise NatsUnavailableError(
            f"cannot connect to NATS at {settings.nats_url}: {exc or type(exc).__name__}"
        ) from exc
    # ...and unbounded afterwards: a service outlives any NATS restart.
    nc.options["max_reconnect_attempts"] = -1
    return nc
