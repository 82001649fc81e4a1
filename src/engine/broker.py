"""taskjet's JetStream broker: a taskiq `AsyncBroker` that keeps its delivery promises.

This module wires the engine's parts together and runs their lifecycle; each part does its own
job (see the package docstring). In short:

- `kick` / `kick_many` publish with a de-duplication id and write the PENDING record
  (`sending/publisher.py`);
- on a worker, `listen` yields deliveries from supervised fetch loops that never hold more than
  taskiq's receiver can run (`worker/fetcher.py`), admitted one by one (`worker/admission.py`);
- taskiq's receiver runs each task and calls back into the engine: the formatter binds the
  delivery to the run, the middleware decides retries and dead letters, the result backend
  stores the result with the final state, and the `ack` settles the message by the verdict
  (`worker/settlement.py`);
- leases are extended while tasks run, and on shutdown everything not finished is handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from taskiq.abc.broker import AsyncBroker
from taskiq.acks import AckableMessage
from taskiq.message import BrokerMessage, TaskiqMessage

from src.config import ConfigError, Settings, get_settings
from src.engine import telemetry
from src.engine.backends import provisioning
from src.engine.backends.nats import connect_nats, flush, patiently
from src.engine.backends.redis import RedisConnection
from src.engine.core.aio import cancel_all
from src.engine.core.errors import BrokerNotStartedError, LabelError
from src.engine.core.heap import freeze_startup_heap
from src.engine.core.labels import TaskLabels
from src.engine.core.layout import Layout
from src.engine.core.priority import LANES
from src.engine.operations.control import TaskControl
from src.engine.operations.monitor import QueueMonitor
from src.engine.operations.queues import QueueControl
from src.engine.operations.schedule_control import ScheduleControl
from src.engine.scheduling.schedules import ScheduleStore, Ticker, code_schedules
from src.engine.sending.kicker import new_task_id
from src.engine.sending.publisher import Publisher
from src.engine.state.artifacts import ArtifactStore
from src.engine.state.breakers import BreakerStore
from src.engine.state.dead_letters import DeadLetterQueue
from src.engine.state.events import EventBus
from src.engine.state.queue_pauses import QueuePauses
from src.engine.state.records import TaskRecords
from src.engine.state.results import RedisResultBackend
from src.engine.state.stats import StatsReader
from src.engine.state.transitions import TransitionWriter
from src.engine.task import TaskjetTask
from src.engine.worker import delivery as deliveries
from src.engine.worker import process
from src.engine.worker.admission import Admission
from src.engine.worker.attempts import AttemptCounter
from src.engine.worker.fetcher import Fetching
from src.engine.worker.grace import Grace
from src.engine.worker.inflight import InFlight
from src.engine.worker.middleware import GuaranteesMiddleware
from src.engine.worker.queue_gate import QueueGate
from src.engine.worker.recycling import Recycling
from src.engine.worker.registry import WorkerRegistry
from src.engine.worker.runtime import WorkerRuntime
from src.engine.worker.settlement import Settlement
from src.engine.worker.throttle import Throttle
from src.engine.worker.webhooks import Webhooks
from src.engine.workflows.wiring import workflows_of

logger = logging.getLogger("taskjet.broker")


class JetStreamBroker(AsyncBroker):
    """Tasks on a NATS JetStream work-queue stream; results and state in Redis."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.id_generator = new_task_id
        self._settings = settings
        self._layout: Layout | None = None
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._events: EventBus | None = None
        self.redis = RedisConnection(lambda: self.settings)
        self.formatter = deliveries.JetStreamFormatter()
        self.decorator_class = TaskjetTask

        # State: records, results, dead letters.
        self.records = TaskRecords(self.redis, lambda: self.settings, lambda: self.layout)
        self.workers = WorkerRegistry(self.redis, lambda: self.layout, lambda: self.settings)
        self.results: RedisResultBackend[Any] = RedisResultBackend(
            redis=self.redis,
            layout=lambda: self.layout,
            limits=lambda: self.settings,
            writes=self.records.writes,
            events=lambda: self.events,
            current=deliveries.current_delivery.get,
            observe=self.workers.vitals.observe,
        )
        self.result_backend = self.results
        # Sending.
        self.publisher = Publisher(
            nc=lambda: self.nc,
            layout=lambda: self.layout,
            records=self.records,
            defaults=lambda: self.settings,
            max_payload=lambda: self.nc.max_payload,
            retry_s=lambda: self.settings.publish_retry_s,
            answer_s=lambda: self.settings.connect_timeout_s,
        )
        self.dlq = DeadLetterQueue(
            lambda: self.js,
            lambda: self.layout,
            lambda: self.nc.max_payload,
            self.publisher.redispatch,
        )
        self.artifacts = ArtifactStore.of(self)
        # Working.
        self.stats = StatsReader(self.redis, lambda: self.layout)
        self.throttle = Throttle(self.redis, lambda: self.layout, lambda: self.settings)
        self.attempts = AttemptCounter(
            self.redis, lambda: self.layout, lambda: self.settings.result_ttl_s
        )
        self.settlement = Settlement(
            lambda: self.settings, self.results, self.records.writes, self.dlq
        )
        self.admission = Admission(
            settings=lambda: self.settings,
            find_task=self.find_task,
            throttle=self.throttle,
            attempts=self.attempts,
            settlement=self.settlement,
            writes=self.records.writes,
            events=lambda: self.events,
        )
        self.inflight = InFlight(capacity=0)
        self.queue_pauses = QueuePauses(self.redis, lambda: self.layout)
        self.breakers = BreakerStore(self.redis, lambda: self.layout)
        self.webhooks = Webhooks(lambda: self.settings, self.records, lambda: self.breakers)
        self.webhooks.register(self)
        self.records.writes.after = self.webhooks.ended
        self.queue_gate = QueueGate(self.queue_pauses)
        self.fetching = Fetching(
            nc=lambda: self.nc,
            js=lambda: self.js,
            layout=lambda: self.layout,
            settings=lambda: self.settings,
            inflight=self.inflight,
            admission=self.admission,
            worker_id=lambda: self.workers.worker_id,
            gate=self.queue_gate,
        )
        self.add_middlewares(GuaranteesMiddleware(self.attempts, deliveries.current_delivery.get))
        # Steering and schedules.
        self.control = TaskControl(
            records=self.records,
            artifacts=self.artifacts,
            workers=self.workers,
            dlq=self.dlq,
            redispatch=self.publisher.redispatch,
            nc=lambda: self.nc,
            js=lambda: self.js,
            events=lambda: self.events,
            layout=lambda: self.layout,
            settings=lambda: self.settings,
        )
        self.monitor = QueueMonitor(
            js=lambda: self.js,
            layout=lambda: self.layout,
            records=self.records,
            dlq=self.dlq,
            workers=self.workers,
            pauses=self.queue_pauses,
        )
        self.queues = QueueControl(
            pauses=self.queue_pauses,
            writes=self.records.writes,
            nc=lambda: self.nc,
            js=lambda: self.js,
            events=lambda: self.events,
            layout=lambda: self.layout,
        )
        self.workflows = workflows_of(self)  # also tells the settlement of steps' ends
        self.schedules = ScheduleStore(
            self.redis, lambda: self.layout, lambda: code_schedules(self.get_all_tasks())
        )
        self.schedule_control = ScheduleControl(self.schedules, self.ticker)
        self._ticker: asyncio.Task[None] | None = None
        self._grace = Grace(self.inflight, lambda: self.settings.shutdown_grace_s)
        self.recycling = Recycling(lambda: self.settings)
        self.runtime = WorkerRuntime(
            inflight=self.inflight,
            throttle=self.throttle,
            gate=self.queue_gate,
            recycling=self.recycling,
            workers=self.workers,
            fetching=self.fetching,
            queues=lambda: self.consumed_queues,
            task_names=lambda: sorted(self.get_all_tasks()),
        )

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
        self._layout = None

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

    @property
    def events(self) -> EventBus:
        if self._events is None:
            raise BrokerNotStartedError("the broker is not started: call broker.startup() first")
        return self._events

    @property
    def writes(self) -> TransitionWriter:
        """Record writes (the `Progress` dependency uses them)."""
        return self.records.writes

    @property
    def consumed_queues(self) -> list[str]:
        """The queues this worker takes tasks from (`TASKJET_QUEUES`)."""
        return self.settings.queue_names

    def check_registered_labels(self) -> None:
        """Every registered task's labels are usable, or startup stops naming the first bad
        one (a typo in `@register_task(rate_limit=...)` is found at deploy, not at 3 a.m.)."""
        for name, task in self.get_all_tasks().items():
            try:
                TaskLabels.read({}, task.labels, self.settings)
            except LabelError as exc:
                raise ConfigError(f"task {name}: {exc}") from None

    # Lifecycle ------------------------------------------------------------------------
    async def startup(self) -> None:
        settings = self.settings
        self._layout = Layout.from_settings(settings)
        telemetry.instrument_broker(self, settings)
        if self.is_worker_process:
            try:
                self.check_registered_labels()
                options = process.receiver_options()
                self.inflight.capacity = process.worker_capacity(settings, options)
                self.inflight.remaining = process.tasks_per_child(settings, options)
            except (ConfigError, RuntimeError) as exc:
                process.refuse_to_start(exc)
        self._nc = await connect_nats(settings)
        self._js = self._nc.jetstream(timeout=settings.connect_timeout_s)
        try:
            provisioning.check_server_version(self._nc)
            await patiently(self._provision, settings.publish_retry_s, "provisioning JetStream")
        except BaseException:
            await self._nc.close()
            self._nc = self._js = None
            raise
        self._events = EventBus(self._nc, self.layout)
        self.redis.open()
        await super().startup()
        try:
            await self.records.writes.load_script()
            cluster: Any = await self.redis().info("cluster")
        except Exception as exc:  # Redis down: loaded on first use once it is back
            logger.warning("cannot load the record script into Redis yet: %s", exc)
        else:
            if cluster.get("cluster_enabled"):
                await self.shutdown()
                raise ConfigError(
                    "REDIS_URL points at a Redis Cluster, which taskjet does not support (its "
                    "record script writes the keys of many tasks at once): use one primary, "
                    "with replicas and Sentinel (redis+sentinel://) for failover"
                )
        if self.is_worker_process:
            process.quiet_per_task_logs()
            process.stop_with_parent()
            await self.runtime.start(settings, self.layout, self._nc, self.redis().ping)
            self.start_scheduler()
            freeze_startup_heap()  # after the task modules and connections: the process's own

    async def _provision(self) -> None:
        """Create or update the streams (and, on a worker, its consumers)."""
        settings, js = self.settings, self.js
        for config in provisioning.all_stream_configs(settings, self.layout):
            await provisioning.ensure_stream(js, config)
        if self.is_worker_process:
            for queue in self.consumed_queues:
                for lane in LANES:
                    await provisioning.ensure_consumer(
                        js,
                        self.layout.stream,
                        provisioning.consumer_config(settings, self.layout, queue, lane),
                    )

    def start_scheduler(self) -> None:
        """Fire periodic schedules from this process too (workers and servers call this)."""
        if not self.settings.scheduler or self._ticker is not None:
            return
        self._ticker = asyncio.create_task(self.ticker().run(), name="taskjet-scheduler")

    def ticker(self) -> Ticker:
        """A ticker over this broker's schedules; a schedule in code that cannot run raises
        `ScheduleError` naming it (so startup stops)."""
        return Ticker(
            self.schedules,
            self.find_task,
            code_schedules(self.get_all_tasks()),
            self.settings.duplicate_window_s,
            self.settings.scheduler_tick_s,
        )

    async def shutdown(self) -> None:
        await self.runtime.stop()
        await cancel_all([self._ticker] if self._ticker else [])
        self._ticker = None
        if self.is_worker_process and self.redis.is_open:
            with contextlib.suppress(Exception):
                await self.workers.withdraw()
        if self._nc is not None:
            await self.fetching.stop()
        self._grace.stop()
        if self._nc is not None and self.inflight.deliveries:
            # Whatever is still here outlived the grace period (or a second signal came).
            await self._grace.abandon_unfinished("worker shutting down")
        await super().shutdown()
        telemetry.flush()
        await self.redis.close()
        if self._nc is not None:
            # flush + close, not drain: drain waits out a pending pull request for up to 30 s.
            with contextlib.suppress(Exception):
                await flush(self._nc, self.settings.connect_timeout_s)
            await self._nc.close()
            self._nc = self._js = None
            self._events = None

    # Sending --------------------------------------------------------------------------
    async def kick(self, message: BrokerMessage) -> None:
        await self.publisher.kick(message)

    async def kick_many(self, messages: list[BrokerMessage]) -> None:
        await self.publisher.kick_many(messages)

    async def redispatch(self, message: TaskiqMessage, queue: str | None = None) -> None:
        await self.publisher.redispatch(message, queue)

    # Receiving ------------------------------------------------------------------------
    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        """Admitted deliveries from every consumed queue; each one's `ack` settles it by the
        outcome of its run.

        When taskiq stops listening (SIGTERM, or recycling: `worker/recycling.py`), the grace
        period starts: tasks still running at its end are handed back and cancelled, whether or
        not `--wait-tasks-timeout` was given.
        """
        batches = self.fetching.batches(self.consumed_queues)
        rest: deque[deliveries.Delivery] = deque()
        try:
            async with contextlib.aclosing(batches):
                async for batch in self.recycling.until_due(batches, size=len):
                    rest.extend(batch)
                    while rest:
                        delivery = rest.popleft()
                        yield AckableMessage.model_construct(
                            data=deliveries.DeliveryBytes.wrap(delivery.msg.data, delivery),
                            ack=functools.partial(self.settlement.finish, delivery),
                        )
        finally:
            await deliveries.hand_back(list(rest), "listener closed")  # stopped inside a batch
            self._grace.start()
