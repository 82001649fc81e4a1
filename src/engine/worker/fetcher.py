"""Fetching tasks: one supervised loop per consumed queue, each filling free room from the
queue's priority lanes.

Room is filled high lane first, each lane its weighted share (`priority.shares`), never more
than this process has room for; when every lane is empty, one lingering pull per lane waits for
the next task. A loop that fails is logged and restarted with a growing pause, and the worker
reports itself unhealthy until its loops run again; a message that cannot be admitted is that
message's problem (see `admission.py`), never the loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from src.config import Settings
from src.engine.backends import provisioning
from src.engine.core.aio import cancel_all
from src.engine.core.errors import ProvisioningError
from src.engine.core.layout import Layout
from src.engine.core.priority import LANES, Lane
from src.engine.worker.admission import Admission, Marking
from src.engine.worker.delivery import Delivery, hand_back
from src.engine.worker.inflight import InFlight
from src.engine.worker.pulls import Subscription, give_back, nak_all, pull_lanes, pull_wait
from src.engine.worker.queue_gate import QueueGate
from src.engine.worker.retry_share import RetryShare, hold_back
from src.engine.worker.spare import Spare

logger = logging.getLogger("taskjet.fetch")

# Consecutive fetch failures after which the consumer is re-provisioned and re-subscribed.
_RESUBSCRIBE_AFTER = 3
_ERROR_BACKOFF_S = 0.5
_RESTART_BACKOFF_MAX_S = 30.0
# How long a worker with room for fewer lingering pulls than lanes waits before polling all.
_SHORT_WAIT_S = 0.1
# How long a busy worker waits for a batch's worth of room (`InFlight.refill`) before it fills
# what room it has (while long tasks hold the rest).
_GATHER_S = 0.01
# Longest a task fetched ahead of free room is held before it goes back to the queue.
_SPARE_HOLD_S = 1.0


class Fetching:
    """The fetch loops of one worker process, and the deliveries they admit."""

    def __init__(
        self,
        *,
        nc: Callable[[], NATS],
        js: Callable[[], JetStreamContext],
        layout: Callable[[], Layout],
        settings: Callable[[], Settings],
        inflight: InFlight,
        admission: Admission,
        worker_id: Callable[[], str],
        gate: QueueGate,
    ) -> None:
        self._nc = nc
        self._js = js
        self._layout = layout
        self._settings = settings
        self._inflight = inflight
        self._admission = admission
        self._worker_id = worker_id
        self._gate = gate
        self._subscriptions: set[Subscription] = set()
        self._starting: set[asyncio.Task[None]] = set()  # batches being marked STARTED
        self.problems: dict[str, str] = {}  # queue -> why its loop is not running

    @property
    def healthy(self) -> bool:
        return not self.problems

    async def batches(self, queues: list[str]) -> AsyncGenerator[list[Delivery], None]:
        """Admitted deliveries from every queue, a fetched batch at a time (so the receiver
        starts them in the same event-loop turn, and their writes share round trips).
        Whatever was admitted but not taken when the iteration stops is handed back."""
        ready: asyncio.Queue[list[Delivery]] = asyncio.Queue()
        loops = [
            asyncio.create_task(self._supervise(queue, ready), name=f"taskjet-fetch-{queue}")
            for queue in queues
        ]
        try:
            while True:
                yield await ready.get()
        finally:
            await cancel_all(loops)
            await cancel_all(list(self._starting))
            pending: list[Delivery] = []
            while not ready.empty():
                pending.extend(ready.get_nowait())
            await hand_back(pending, "listener closed")

    async def _supervise(self, queue: str, ready: asyncio.Queue[list[Delivery]]) -> None:
        """Run the queue's loop for ever; a crash is logged, reported and followed by a
        restart after a growing pause."""
        crashes = 0
        while True:
            try:
                await self._fetch_into(queue, ready)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                crashes += 1
                pause = min(_RESTART_BACKOFF_MAX_S, _ERROR_BACKOFF_S * 2 ** min(crashes, 10))
                self.problems[queue] = f"fetch loop failed: {type(exc).__name__}: {exc}"
                log = logger.error if isinstance(exc, ProvisioningError) else logger.exception
                log(
                    "fetch loop of queue %s failed (%d); restarting in %.1fs", queue, crashes, pause
                )
                await asyncio.sleep(pause)

    async def _fetch_into(self, queue: str, ready: asyncio.Queue[list[Delivery]]) -> None:
        subs = {lane: await self._subscribe(queue, lane) for lane in LANES}
        waiting: dict[Lane, asyncio.Task[list[Msg]]] = {}
        settings = self._settings()
        share = RetryShare(settings.retry_share)
        spare = Spare(min(_SPARE_HOLD_S, settings.heartbeat_interval_s))
        failures = 0
        self.problems.pop(queue, None)

        async def failed(exc: BaseException) -> None:
            """Count a failed fetch; after a few in a row, start over with fresh pulls."""
            nonlocal failures
            failures += 1
            logger.warning("fetch from %s failed (%d in a row): %s", queue, failures, exc)
            await asyncio.sleep(_ERROR_BACKOFF_S)
            if failures >= _RESUBSCRIBE_AFTER:
                await self._forget_waiting(waiting)
                for lane in LANES:
                    subs[lane] = await self._resubscribe(subs[lane], queue, lane)
                failures = 0

        try:
            while True:
                if not self._gate.is_open(queue):
                    # Paused: give back the room the open pulls hold, withdraw them from the
                    # server (a task sent now must not reach this worker), hand back what was
                    # fetched ahead, wait for a resume.
                    await self._forget_waiting(waiting)
                    await spare.hand_back()
                    for lane in LANES:
                        subs[lane] = await self._withdrawn(subs[lane], queue, lane)
                    await self._gate.changed()
                    continue
                harvested, failure = self._harvest(waiting)
                if harvested:
                    # Lingering pulls brought work to an idle worker. With more waiting behind
                    # it, start it before asking for the rest (the next turn fills it). With
                    # nothing behind it, the emptied lanes linger again at once, while it
                    # starts: the next task is on its way as soon as it is sent.
                    more = any(int(m.metadata.num_pending) > 0 for m in harvested)
                    await self._admit(await hold_back(share, harvested), queue, ready, wait=more)
                    if not more:
                        self._linger(subs, waiting)
                    continue
                if failure is not None:
                    await failed(failure)
                    continue
                try:
                    if await self._fill_room(
                        queue, subs=subs, waiting=waiting, spare=spare, share=share, ready=ready
                    ):
                        failures = 0
                except Exception as exc:
                    await failed(exc)
        finally:
            await self._forget_waiting(waiting)
            await spare.hand_back()

    async def _fill_room(
        self,
        queue: str,
        *,
        subs: dict[Lane, Subscription],
        waiting: dict[Lane, asyncio.Task[list[Msg]]],
        spare: Spare,
        share: RetryShare,
        ready: asyncio.Queue[list[Delivery]],
    ) -> bool:
        """One turn of filling free room (and the spare, while tasks run long): from the spare
        when it holds tasks, else by a fill once a batch's worth is free (or was not for
        `_GATHER_S`), else by lingering pulls when every lane is empty. True if it fetched."""
        free = self._inflight.free
        if free > 0:
            spare.dry = False
            if spare.msgs:  # a slot freed: it takes a task fetched ahead, no pull first
                await self._admit(spare.take(free), queue, ready)
                return False
        elif spare.hold_left() == 0.0:
            await spare.hand_back()  # held too long: another worker may have room
        top_up = 0 if spare.dry else self._inflight.spare - len(spare.msgs)
        if not self._inflight.refill and top_up <= 0:
            wait_s = _GATHER_S if free > 0 else spare.hold_left()
            gathered = await self._wait_for_room(waiting, wait_s)
            if gathered or self._inflight.free <= 0:
                return False
            # Short of a batch for _GATHER_S (long tasks hold the rest): fill what is free.
        room = max(0, self._inflight.batch(self._settings().fetch_batch))
        msgs = await self._fill(subs, waiting, room + max(0, top_up))
        spare.dry = len(msgs) < room + top_up
        msgs = await hold_back(share, msgs)
        spare.add(msgs[room:])
        if msgs[:room]:
            await self._admit(msgs[:room], queue, ready)
        elif not msgs and room > 0 and self._linger(subs, waiting):
            await self._wait_for_any(waiting.values())
        return True

    def _linger(
        self, subs: dict[Lane, Subscription], waiting: dict[Lane, asyncio.Task[list[Msg]]]
    ) -> bool:
        """Every lane is empty: open a lingering pull on each lane without one (as far as the
        room goes); True if there is a pull to wait for. With room for fewer pulls than lanes
        (e.g. --max-async-tasks 1), pulls expire soon, so the lanes without one are looked at
        again within _SHORT_WAIT_S."""
        room = self._inflight.free
        idle = [lane for lane in LANES if lane not in waiting]
        wait_s = self._settings().fetch_timeout_s if room >= len(idle) else _SHORT_WAIT_S
        for lane in idle[: max(room, 0)]:
            self._inflight.reserved += 1
            waiting[lane] = asyncio.create_task(pull_wait(self._nc(), subs[lane], wait_s))
        return bool(waiting)

    async def _admit(
        self,
        msgs: list[Msg],
        queue: str,
        ready: asyncio.Queue[list[Delivery]],
        *,
        wait: bool = False,
    ) -> None:
        """Admit a fetched batch and have it marked STARTED (then run): alongside the next
        fetch, or first with `wait`."""
        admitted: list[Delivery] = []
        try:
            for msg in msgs:
                delivery = await self._admission.admit(msg, queue)
                if delivery is not None:
                    self._inflight.add(delivery)
                    admitted.append(delivery)
            # The STARTED write is queued now, ahead of the next fetch's pull requests; the
            # answer is awaited while this loop already fetches the next batch.
            marking = self._admission.mark(admitted, self._worker_id()) if admitted else None
        except BaseException:
            # Never keep what will not run: everything of this batch goes back to the queue.
            await hand_back([d for d in admitted if not d.settled], "admission failed")
            raise
        if marking is not None:
            starting = asyncio.create_task(self._start(admitted, marking, ready))
            self._starting.add(starting)
            starting.add_done_callback(self._starting.discard)
            if wait:
                await asyncio.shield(starting)

    async def _start(
        self, admitted: list[Delivery], marking: Marking, ready: asyncio.Queue[list[Delivery]]
    ) -> None:
        try:
            started = await self._admission.start(admitted, marking)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                logger.exception("cannot start a batch of %d task(s)", len(admitted))
            await hand_back([d for d in admitted if not d.settled], "admission failed")
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if started:
            ready.put_nowait(started)

    async def _wait_for_room(
        self, waiting: dict[Lane, asyncio.Task[list[Msg]]], timeout_s: float | None
    ) -> bool:
        """Until enough tasks ended for a batch (`InFlight.refill`) or a lingering pull ended
        (its room comes back, or it brought a task): with room for fewer pulls than lanes,
        the room of a pull that expired empty must go to the next look, not wait for a
        running task to end. False if `timeout_s` ran out first."""
        self._inflight.freed.clear()
        freed = asyncio.ensure_future(self._inflight.freed.wait())
        try:
            return await self._wait_for_any([freed, *waiting.values()], timeout_s)
        finally:
            freed.cancel()

    async def _wait_for_any(
        self, tasks: Iterable[asyncio.Future[Any]], timeout_s: float | None = None
    ) -> bool:
        """Until one of `tasks` is done, or a queue is paused or resumed: False if `timeout_s`
        ran out first."""
        change = asyncio.ensure_future(self._gate.changed())
        try:
            done, _ = await asyncio.wait(
                [change, *tasks], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            change.cancel()
        return bool(done)

    def _harvest(
        self, waiting: dict[Lane, asyncio.Task[list[Msg]]]
    ) -> tuple[list[Msg], BaseException | None]:
        """What the lingering pulls that finished brought in, and what one of them failed
        with (a consumer gone, NATS away), if any."""
        msgs: list[Msg] = []
        failure: BaseException | None = None
        for lane, task in list(waiting.items()):
            if task.done():
                del waiting[lane]
                self._inflight.reserved -= 1
                if task.cancelled():
                    continue
                if task.exception() is None:
                    msgs.extend(task.result())
                else:
                    failure = failure or task.exception()
        return msgs, failure

    async def _fill(
        self,
        subs: dict[Lane, Subscription],
        waiting: dict[Lane, asyncio.Task[list[Msg]]],
        room: int,
    ) -> list[Msg]:
        return await pull_lanes(
            self._nc(), subs, set(waiting), room, self._settings().connect_timeout_s
        )

    async def _forget_waiting(self, waiting: dict[Lane, asyncio.Task[list[Msg]]]) -> None:
        """Give up the lingering pulls. One that has already brought a task hands it back at
        once: dropped, it would come back only after `ack_wait`."""
        brought, _ = self._harvest(waiting)  # those already done leave `waiting`
        for task in waiting.values():
            task.cancel()
        self._inflight.reserved -= len(waiting)
        waiting.clear()
        await nak_all(brought)

    async def _subscribe(self, queue: str, lane: Lane) -> Subscription:
        layout = self._layout()
        await provisioning.ensure_consumer(
            self._js(),
            layout.stream,
            provisioning.consumer_config(self._settings(), layout, queue, lane),
        )
        subscription = await self._js().pull_subscribe_bind(
            layout.consumer(queue, lane), stream=layout.stream
        )
        self._subscriptions.add(subscription)
        return subscription

    async def _resubscribe(
        self, subscription: Subscription, queue: str, lane: Lane
    ) -> Subscription:
        """Fetch can stall for good after some reconnects: start over with a fresh one."""
        self._subscriptions.discard(subscription)
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        while True:
            try:
                await provisioning.ensure_stream(
                    self._js(), provisioning.stream_config(self._settings(), self._layout())
                )
                return await self._subscribe(queue, lane)
            except ProvisioningError:
                raise
            except Exception as exc:
                logger.warning("re-subscribing to %s failed: %s", queue, exc)
                await asyncio.sleep(_ERROR_BACKOFF_S)

    async def _withdrawn(self, subscription: Subscription, queue: str, lane: Lane) -> Subscription:
        """A fresh subscription in place of `subscription`, whose open pull requests the server
        drops with its inbox; what already arrived on it is handed back."""
        self._subscriptions.discard(subscription)
        await give_back(self._nc(), [subscription], self._settings().connect_timeout_s)
        return await self._subscribe(queue, lane)

    async def stop(self) -> None:
        """Withdraw open pull requests, so a handed-back message is not redelivered to this
        departing worker, and hand back what already arrived but was never fetched."""
        subscriptions, self._subscriptions = list(self._subscriptions), set()
        await give_back(self._nc(), subscriptions, self._settings().connect_timeout_s)
