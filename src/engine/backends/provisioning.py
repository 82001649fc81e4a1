"""Create or update the JetStream stream and consumers taskjet needs, and say what changed.

An existing stream or consumer whose configuration differs is updated in place; a difference
the server cannot apply (retention, storage) stops startup with the exact mismatch, instead of
silently running on a stream that breaks taskjet's guarantees.
"""

from __future__ import annotations

import logging
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
    SubjectTransform,
)
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from src.config import Settings
from src.engine.core.errors import NatsVersionError, NoPeersYetError, ProvisioningError
from src.engine.core.layout import Layout

logger = logging.getLogger("taskjet.provisioning")

# Message schedules (delays, cron) need 2.12+; cron and time zones 2.14+.
MIN_NATS_VERSION = (2, 14, 0)

_STREAM_FIELDS = (
    "subjects",
    "sources",
    "allow_msg_schedules",
    "allow_msg_ttl",
    "retention",
    "storage",
    "discard",
    "max_msgs",
    "max_bytes",
    "max_age",
    "duplicate_window",
    "num_replicas",
)
_CONSUMER_FIELDS = (
    "ack_policy",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
    "filter_subject",
    "deliver_policy",
)


def check_server_version(nc: NATS) -> None:
    version = nc.connected_server_version
    found = (version.major, version.minor, version.patch)
    where = nc.connected_url.netloc if nc.connected_url else "?"
    if found < MIN_NATS_VERSION:
        need = ".".join(map(str, MIN_NATS_VERSION))
        raise NatsVersionError(
            f"nats-server {'.'.join(map(str, found))} at {where} is too old: "
            f"taskjet needs {need} or newer with JetStream enabled (message schedules)"
        )


def stream_config(settings: Settings, layout: Layout) -> StreamConfig:
    return StreamConfig(
        name=layout.stream,
        description="taskjet task queue",
        subjects=[layout.task_subjects],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        # `old` would silently delete queued tasks once a limit is hit; refuse new ones instead.
        discard=DiscardPolicy.NEW,
        max_msgs=settings.stream_max_msgs,
        max_bytes=settings.stream_max_bytes,
        max_age=0,
        duplicate_window=settings.duplicate_window_s,
        num_replicas=settings.stream_replicas,
        # Delayed tasks come in from the schedules stream when due.
        sources=[
            StreamSource(
                name=layout.schedules_stream,
                subject_transforms=[
                    SubjectTransform(src=layout.due_subjects, dest=layout.task_subjects)
                ],
            )
        ],
    )


def schedules_stream_config(settings: Settings, layout: Layout) -> StreamConfig:
    """Delayed tasks wait here as `@at` message schedules. Limits retention (schedules cannot
    live in a work queue); a due copy is kept only briefly (`Nats-Schedule-TTL`)."""
    return StreamConfig(
        name=layout.schedules_stream,
        description="taskjet delayed tasks",
        subjects=[layout.delayed_subjects, layout.due_subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=0,
        duplicate_window=settings.duplicate_window_s,
        num_replicas=settings.stream_replicas,
        allow_msg_schedules=True,
        allow_msg_ttl=True,
    )


def dlq_stream_config(settings: Settings, layout: Layout) -> StreamConfig:
    """Dead letters, kept `TASKJET_DLQ_MAX_AGE_S`; a full DLQ refuses new entries (the task
    then stays in its queue) rather than dropping old ones."""
    return StreamConfig(
        name=layout.dlq_stream,
        description="taskjet dead letters",
        subjects=[layout.dlq_subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_age=settings.dlq_max_age_s,
        duplicate_window=settings.duplicate_window_s,
        num_replicas=settings.stream_replicas,
    )


def events_stream_config(settings: Settings, layout: Layout) -> StreamConfig:
    """Task events for live updates, kept `TASKJET_EVENTS_MAX_AGE_S`."""
    return StreamConfig(
        name=layout.events_stream,
        description="taskjet task events",
        subjects=[layout.events_subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=settings.events_max_age_s,
        duplicate_window=min(settings.duplicate_window_s, settings.events_max_age_s),
        num_replicas=settings.stream_replicas,
    )


def all_stream_configs(settings: Settings, layout: Layout) -> list[StreamConfig]:
    """Every stream taskjet needs, in the order they must exist (the task stream sources the
    schedules stream)."""
    return [
        schedules_stream_config(settings, layout),
        stream_config(settings, layout),
        dlq_stream_config(settings, layout),
        events_stream_config(settings, layout),
    ]


def consumer_config(
    settings: Settings, layout: Layout, queue: str, lane: str = "normal"
) -> ConsumerConfig:
    name = layout.consumer(queue, lane)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"taskjet workers of queue {queue} ({lane} priority)",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait_s,
        # Attempts are counted by taskjet (retries, unknown tasks), never by dropping messages.
        max_deliver=-1,
        max_ack_pending=settings.max_ack_pending,
        filter_subject=layout.task_subject(queue, lane),
        deliver_policy=DeliverPolicy.ALL,
    )


def _normalise(value: Any) -> Any:
    if isinstance(value, list) and value and isinstance(value[0], StreamSource):
        return sorted(
            (s.name, tuple((t.src, t.dest) for t in s.subject_transforms or ())) for s in value
        )
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None:
        return None
    return value


def diff(desired: Any, actual: Any, fields: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
    """Fields whose actual value differs from the desired one: {field: (actual, desired)}."""
    changes: dict[str, tuple[Any, Any]] = {}
    for name in fields:
        want, have = _normalise(getattr(desired, name)), _normalise(getattr(actual, name))
        if want is None or (want == 0 and have in (None, 0, False)):
            continue  # unset: the server's default is fine
        if want != have:
            changes[name] = (have, want)
    return changes


def _describe(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())


# "No suitable peers for placement": a replicated stream or consumer cannot be placed, as in a
# cluster whose nodes the meta leader does not all know yet. Answered as "not now", so the
# start-up retry asks again; a cluster with fewer nodes than the replicas gets the same answer
# for good, and it is raised once that retry window is over.
_NO_PEERS = 10005


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> dict[str, tuple[Any, Any]]:
    """Create the stream, or update it to `config`; returns what was changed."""
    name = config.name or ""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            logger.info("created stream %s (%s)", config.name, ", ".join(config.subjects or []))
            return {}
        except ServiceUnavailableError:
            raise  # not now (a cluster electing a leader): the caller may ask again
        except APIError as exc:
            if exc.err_code == _NO_PEERS:
                raise NoPeersYetError(f"stream {name}", exc) from exc
            if exc.err_code != 10058:  # created concurrently by another process
                raise ProvisioningError(f"cannot create stream {name}: {exc}") from exc
            info = await js.stream_info(name)
    changes = diff(config, info.config, _STREAM_FIELDS)
    if not changes:
        return {}
    try:
        await js.update_stream(config)
    except ServiceUnavailableError:
        raise
    except APIError as exc:
        raise ProvisioningError(
            f"stream {name} exists with a different configuration that cannot be "
            f"updated ({_describe(changes)}): {exc.description}. Migrate it or set "
            f"TASKJET_STREAM to another name."
        ) from exc
    logger.warning("updated stream %s: %s", config.name, _describe(changes))
    return changes


async def ensure_consumer(
    js: JetStreamContext, stream: str, config: ConsumerConfig
) -> dict[str, tuple[Any, Any]]:
    """Create the durable consumer, or update it to `config`; returns what was changed."""
    name = config.durable_name or ""
    try:
        info = await js.consumer_info(stream, name)
    except NotFoundError:
        changes: dict[str, tuple[Any, Any]] = {}
    else:
        changes = diff(config, info.config, _CONSUMER_FIELDS)
        if not changes:
            return {}
    try:
        await js.add_consumer(stream, config)
    except ServiceUnavailableError:
        raise
    except APIError as exc:
        if exc.err_code == _NO_PEERS:
            raise NoPeersYetError(f"consumer {name}", exc) from exc
        raise ProvisioningError(
            f"consumer {name} on stream {stream} cannot be created or updated"
            f"{' (' + _describe(changes) + ')' if changes else ''}: {exc.description}"
        ) from exc
    if changes:
        logger.warning("updated consumer %s: %s", name, _describe(changes))
    return changes
