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
import signal
import sys
from collections import deque
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from taskiq.abc.broker import AsyncBroker
from taskiq.acks import AckableMessage
from taskiq.message import BrokerMessage

from src.config import Settings, get_settings
from src.tasks import provisioning
from src.tasks.delivery import Delivery, DeliveryBytes
from src.tasks.dlq import DeadLetterQueue, dlq_stream_config
from src.tasks.formatter import JetStreamFormatter
from src.tasks.guard import DeliveryGuard
from src.tasks.kicker import TaskjetTask
from src.tasks.layout import Layout
from src.tasks.middlewares import GuaranteesMiddleware
from src.tasks.results import RedisResultBackend

logger = logging.getLogger("taskjet.broker")

QUEUE_LABEL = "queue_name"
DISPATCH_LABEL = "dispatch"
# Consecutive fetch failures after which the consumer is re-provisioned and re-subscribed.
_RESUBSCRIBE_AFTER = 3
_ERROR_BACKOFF_S = 0.5


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
        self.results: RedisResultBackend[Any] = RedisResultBackend(lambda: self.settings)
        self.result_backend = self.results
        self.guard = DeliveryGuard(self)
        self.dlq = DeadLetterQueue(self)
        self.add_middlewares(GuaranteesMiddleware(self))
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._layout: Layout | None = None
        self._inflight: set[Delivery] = set()
        self._subscriptions: set[JetStreamContext.PullSubscription] = set()
        self._capacity_freed = asyncio.Event()
        self._heartbeat: asyncio.Task[None] | None = None
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
                self._js, provisioning.stream_config(settings, self.layout)
            )
            await provisioning.ensure_stream(self._js, dlq_stream_config(settings, self.layout))
            if self.is_worker_process:
                await self._ensure_consumer(self.layout.default_queue)
        except BaseException:
            await self._nc.close()
            self._nc = self._js = None
            raise
        await super().startup()
        if self.is_worker_process:
            quiet_per_task_logs()
            stop_with_parent()
            self._heartbeat = asyncio.create_task(self._extend_leases(), name="taskjet-heartbeat")

    async def shutdown(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
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

    async def _ensure_consumer(self, queue: str) -> None:
        await provisioning.ensure_consumer(
            self.js,
            self.layout.stream,
            provisioning.consumer_config(self.settings, self.layout, queue),
        )

    # Sending --------------------------------------------------------------------------
    async def kick(self, message: BrokerMessage) -> None:
        queue = str(message.labels.get(QUEUE_LABEL) or self.layout.default_queue)
        dispatch = int(message.labels.get(DISPATCH_LABEL, 1))
        await self.js.publish(
            self.layout.task_subject(queue),
            message.message,
            headers={"Nats-Msg-Id": self.layout.msg_id(message.task_id, dispatch)},
        )

    # Receiving ------------------------------------------------------------------------
    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        queue = self.layout.default_queue
        subscription = await self._subscribe(queue)
        failures = 0
        while True:
            free = self.settings.worker_concurrency - len(self._inflight)
            if free <= 0:
                self._capacity_freed.clear()
                await self._capacity_freed.wait()
                continue
            try:
                msgs = await subscription.fetch(
                    min(free, self.settings.fetch_batch), timeout=self.settings.fetch_timeout_s
                )
            except (TimeoutError, NatsTimeoutError):
                failures = 0
                continue
            except Exception as exc:
                failures += 1
                logger.warning("fetch from %s failed (%d in a row): %s", queue, failures, exc)
                await asyncio.sleep(_ERROR_BACKOFF_S)
                if failures >= _RESUBSCRIBE_AFTER:
                    subscription = await self._resubscribe(subscription, queue)
                continue
            failures = 0
            pending: deque[Delivery] = deque()
            for msg in msgs:
                delivery = await self.guard.admit(msg, queue)
                if delivery is not None:
                    delivery.on_settle.append(self._forget)
                    self._inflight.add(delivery)
                    pending.append(delivery)
            try:
                while pending:
                    delivery = pending.popleft()
                    yield AckableMessage.model_construct(
                        data=DeliveryBytes.wrap(delivery.msg.data, delivery),
                        ack=functools.partial(self.guard.finish, delivery),
                    )
            finally:
                if pending:
                    await self._hand_back(list(pending), "listener closed")

    async def _subscribe(self, queue: str) -> JetStreamContext.PullSubscription:
        await self._ensure_consumer(queue)
        subscription = await self.js.pull_subscribe_bind(
            self.layout.consumer(queue), stream=self.layout.stream
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
        self, subscription: JetStreamContext.PullSubscription, queue: str
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
                return await self._subscribe(queue)
            except provisioning.ProvisioningError:
                raise
            except Exception as exc:
                logger.warning("re-subscribing to %s failed: %s", queue, exc)
                await asyncio.sleep(_ERROR_BACKOFF_S)

    def _forget(self, delivery: Delivery) -> None:
        self._inflight.discard(delivery)
        self._capacity_freed.set()

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
            if self.heartbeat_file is not None:
                self.heartbeat_file.touch()


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
