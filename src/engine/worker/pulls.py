"""JetStream pull requests as the fetch loops make them: one that takes what is there now (on
one lane, or on every lane at once), one that waits for a message, and withdrawing them all
(unsubscribing: the server drops pull requests whose inbox has gone) with what already arrived
handed back.

nats-py's `fetch` waits for a full batch and makes a task and a timer per message; these read
the subscription's inbox directly, which is why they reach into nats-py's `_sub` and
`_pending_queue`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as Inbox
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from src.engine.backends.nats import flush
from src.engine.core.errors import ConsumerGoneError
from src.engine.core.priority import Lane, shares

Subscription = JetStreamContext.PullSubscription
# Pull answers that mean the consumer is not there (no responders): not an empty queue.
_GONE = frozenset({"503"})
# How long past its expiry a lingering pull's answer is waited for before it counts as lost.
_ANSWER_GRACE_S = 1.0


async def pull_now(nc: NATS, subscription: Subscription, n: int, timeout_s: float) -> list[Msg]:
    """Up to `n` messages that are there now; never waits for more to arrive."""
    if n <= 0:
        return []
    inbox = subscription._sub
    await nc.publish(
        subscription._nms, b'{"batch":%d,"no_wait":true}' % n, reply=subscription._deliver
    )
    msgs: list[Msg] = []
    while len(msgs) < n:
        msg = _arrived(inbox)
        if msg is None:
            try:
                msg = await inbox.next_msg(timeout=timeout_s)
            except (TimeoutError, NatsTimeoutError):
                break
        status = _status(msg)
        if status is None:
            msgs.append(msg)
        elif _gone(msg, status):
            raise ConsumerGoneError(f"pull request answered {status}: no consumer")
        elif status != "100":  # 404 nothing there, 408 expired, 409 ...: this request is done
            break
    return msgs


async def pull_lanes(
    nc: NATS,
    subs: Mapping[Lane, Subscription],
    lingering: Collection[Lane],
    room: int,
    timeout_s: float,
) -> list[Msg]:
    """Up to `room` waiting tasks, high lane first. Every lane without a lingering pull is
    asked for its share at once (one round trip, not one per lane); the room a lane could
    not use then goes to the lanes that filled their share, high first (a lane with a
    lingering pull passes its share on: that pull brings what arrives). When one lane fails,
    what the others brought is handed back (never kept, never run) and its error raised."""
    if room <= 0:
        return []
    asks: list[tuple[Lane, int]] = []
    carry = 0
    for lane, share in shares(room):
        if lane in lingering:
            carry += share
        else:
            asks.append((lane, share + carry))
            carry = 0
    answers = await asyncio.gather(
        *(pull_now(nc, subs[lane], n, timeout_s) for lane, n in asks), return_exceptions=True
    )
    msgs = [m for answer in answers if isinstance(answer, list) for m in answer]
    failure = next((a for a in answers if isinstance(a, BaseException)), None)
    if failure is not None:
        await nak_all(msgs)  # delivered again at once
        raise failure
    left = room - len(msgs)
    for (lane, n), answer in zip(asks, answers, strict=True):
        if left <= 0:
            break
        if isinstance(answer, list) and len(answer) == n:  # the lane may have more
            got = await pull_now(nc, subs[lane], left, timeout_s)
            left -= len(got)
            msgs.extend(got)
    return msgs


async def pull_wait(nc: NATS, subscription: Subscription, wait_s: float) -> list[Msg]:
    """One message, waiting up to `wait_s` for it to arrive (the server's pull request
    expires with it, so none is left behind).

    The inbox is read directly: a task arriving wakes this coroutine, where nats-py's `fetch`
    passes it through a task, a `wait_for` and its timer first (several loop turns on the path
    from a task sent to a task started). The server ends the request itself (408 when it
    expires); the timeout here only covers an answer lost with a connection."""
    inbox = subscription._sub
    while (msg := _arrived(inbox)) is not None:
        if _status(msg) is None:  # arrived for a request given up earlier: taken now
            return [msg]
    expires_ns = int(wait_s * 1e9)
    await nc.publish(
        subscription._nms, b'{"batch":1,"expires":%d}' % expires_ns, reply=subscription._deliver
    )
    try:
        async with asyncio.timeout(wait_s + _ANSWER_GRACE_S):
            while True:
                msg = _taken(inbox, await inbox._pending_queue.get())
                status = _status(msg)
                if status is None:
                    return [msg]
                if _gone(msg, status):
                    raise ConsumerGoneError(f"pull request answered {status}: no consumer")
                if status == "408":  # expired (this request, or one given up earlier)
                    return []
                # 100 heartbeat, 404 for an earlier no-wait request, 409 (the request ended
                # early, as nats-py's `fetch` reads it): wait on, as far as the timeout.
    except TimeoutError:
        return []


def _status(msg: Msg) -> str | None:
    """A pull answer's status; None for a task."""
    return (msg.headers or {}).get("Status")


def _gone(msg: Msg, status: str) -> bool:
    """The answer says the consumer is not there (no responders, or deleted)."""
    description = str((msg.headers or {}).get("Description", ""))
    return status in _GONE or "deleted" in description.lower()


async def give_back(nc: NATS, subscriptions: list[Subscription], timeout_s: float) -> None:
    """Unsubscribe (the server drops pull requests whose inbox has gone) and nak what
    arrived but was never fetched."""
    arrived = []
    for subscription in subscriptions:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        pending = subscription._sub._pending_queue
        while not pending.empty():
            msg = pending.get_nowait()
            if msg.data and msg.reply:
                arrived.append(msg)
    with contextlib.suppress(Exception):
        await flush(nc, timeout_s)
    await nak_all(arrived)


async def nak_all(msgs: list[Msg]) -> None:
    """Hand back messages fetched but never admitted, so they are delivered again at once."""
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.nak()


def _arrived(inbox: Inbox) -> Msg | None:
    """A message already in the inbox, taken as `next_msg` takes it, without the task, timer
    and id `next_msg` makes for each message (they cost more than admitting the message)."""
    queue = inbox._pending_queue
    return None if queue.empty() else _taken(inbox, queue.get_nowait())


def _taken(inbox: Inbox, msg: Msg) -> Msg:
    """`msg`, just taken from the inbox's queue, counted out of it as `next_msg` counts."""
    inbox._pending_size -= len(msg.data)
    inbox._pending_queue.task_done()
    return msg
