"""`taskjet inspect active|scheduled|workers|queues|registered`: what the system holds now
(the `celery inspect` of taskjet), as tables or, with `--json`, one JSON object per line."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from src.cli.common import JsonOption, print_json_lines, print_table, run_with_engine, when

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker

app = typer.Typer(no_args_is_help=True, help="What runs, waits, works and is known, right now.")

Limit = Annotated[int, typer.Option(min=1, help="Show at most this many.")]


def _since(start: float | None) -> str:
    return "" if start is None else f"{time.time() - start:.1f}s"


@app.command()
def active(limit: Limit = 1000, json_lines: Annotated[bool, JsonOption] = False) -> None:
    """Running tasks: id, name, worker, since when."""

    async def show(broker: JetStreamBroker) -> None:
        running = await broker.monitor.active(limit)
        if json_lines:
            print_json_lines(
                {
                    "task_id": r.task_id,
                    "task_name": r.task_name,
                    "queue": r.queue,
                    "worker": r.worker,
                    "started_at": r.started_at,
                    "attempts": r.attempts,
                    "progress": r.progress.model_dump() if r.progress else None,
                }
                for r in running
            )
            return
        print_table(
            ("task id", "task", "queue", "worker", "started (UTC)", "running for", "attempt"),
            (
                (
                    r.task_id,
                    r.task_name,
                    r.queue,
                    r.worker,
                    when(r.started_at),
                    _since(r.started_at),
                    r.attempts,
                )
                for r in running
            ),
            title=f"{len(running)} running",
        )

    run_with_engine(show)


@app.command()
def scheduled(limit: Limit = 1000, json_lines: Annotated[bool, JsonOption] = False) -> None:
    """Delayed tasks with their due time, and periodic schedules with their next run."""
    from src.api.views import schedule_view

    async def show(broker: JetStreamBroker) -> None:
        delayed = await broker.monitor.delayed(limit)
        stored = await broker.schedules.stored()
        schedules = [
            schedule_view(await broker.schedules.state(s))
            for s in broker.schedules.declared() + stored.schedules
        ]
        if json_lines:
            print_json_lines(
                {
                    "kind": "delayed",
                    "task_id": r.task_id,
                    "task_name": r.task_name,
                    "queue": r.queue,
                    "due_at": r.due_at,
                }
                for r in delayed
            )
            print_json_lines({"kind": "periodic", **s.model_dump(mode="json")} for s in schedules)
            return
        print_table(
            ("task id", "task", "queue", "due (UTC)"),
            ((r.task_id, r.task_name, r.queue, when(r.due_at)) for r in delayed),
            title=f"{len(delayed)} delayed task(s)",
        )
        print_table(
            ("schedule", "task", "rule", "source", "next run (UTC)", "last run (UTC)"),
            (
                (
                    s.id,
                    s.task,
                    s.cron or f"every {s.interval:g}s",
                    s.source,
                    "paused" if s.paused else when(s.next_run),
                    when(s.last_run),
                )
                for s in schedules
            ),
            title=f"{len(schedules)} periodic schedule(s)",
        )

    run_with_engine(show)


@app.command()
def workers(json_lines: Annotated[bool, JsonOption] = False) -> None:
    """Live worker processes: queues, load, health."""

    async def show(broker: JetStreamBroker) -> None:
        alive = await broker.workers.alive()
        if json_lines:
            print_json_lines(alive)
            return
        print_table(
            ("worker", "queues", "running", "capacity", "up for", "status"),
            (
                (
                    w.worker_id,
                    ",".join(w.queues),
                    w.running,
                    w.concurrency,
                    _since(w.started_at),
                    "; ".join([w.status, *w.problems]),
                )
                for w in alive
            ),
            title=f"{len(alive)} worker process(es)",
        )

    run_with_engine(show)


@app.command()
def queues(json_lines: Annotated[bool, JsonOption] = False) -> None:
    """Every queue: depth per lane, waiting and running tasks, paused or not."""

    async def show(broker: JetStreamBroker) -> None:
        status = await broker.monitor.status()
        if json_lines:
            print_json_lines(
                {"queue": name, **depth.model_dump()} for name, depth in status.named_queues.items()
            )
            return
        print_table(
            (
                "queue",
                "messages",
                "high",
                "normal",
                "low",
                "waiting",
                "running",
                "consumed",
                "paused",
            ),
            (
                (
                    name,
                    d.messages,
                    d.lanes["high"],
                    d.lanes["normal"],
                    d.lanes["low"],
                    d.pending,
                    d.in_flight,
                    "yes" if d.consumed else "no",
                    "PAUSED" if d.paused else "",
                )
                for name, d in status.named_queues.items()
            ),
        )
        totals = ", ".join(f"{k} {v}" for k, v in status.queues.items())
        typer.echo(f"totals: {totals}, retry ratio {status.retry_ratio:g}")

    run_with_engine(show)


@app.command()
def registered(json_lines: Annotated[bool, JsonOption] = False) -> None:
    """Tasks the live workers know: labels, whether the API may submit them, argument schema."""
    from src.api.catalogue import worker_registry

    async def show(broker: JetStreamBroker) -> None:
        alive = await broker.workers.alive()
        tasks = worker_registry(broker, (w.tasks for w in alive)).tasks
        if json_lines:
            print_json_lines(tasks)
            return
        print_table(
            ("task", "workers", "api", "arguments", "labels"),
            (
                (
                    t.name,
                    t.workers,
                    "yes" if t.api else "no",
                    _arguments(t.arguments),
                    ", ".join(f"{k}={v}" for k, v in sorted(t.labels.items())),
                )
                for t in tasks
            ),
            title=f"{len(tasks)} task(s) known to {len(alive)} worker process(es)",
        )

    run_with_engine(show)


def _arguments(schema: dict[str, object] | None) -> str:
    if schema is None:
        return "?"
    properties = schema.get("properties")
    required = set(schema.get("required") or [])  # type: ignore[call-overload]
    if not isinstance(properties, dict):
        return ""
    return ", ".join(name if name in required else f"{name}?" for name in properties)
