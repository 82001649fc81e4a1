"""`taskjet events`: a live tail of every task event (the `celery events` of taskjet).

Events come from the events stream through an ephemeral ordered consumer, filtered on the
server by task id and client id (they are in the subject) and here by status. Each line shows
the event's stream sequence: `--from-seq N` resumes after it, as long as the stream keeps it
(`TASKJET_EVENTS_MAX_AGE_S`). Ctrl-C (or SIGTERM) ends the tail cleanly, with status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from src.cli.common import JsonOption, fail, run_with_engine, when
from src.engine.core.states import EVENT_STATUS, TaskState

if TYPE_CHECKING:
    from src.engine.broker import JetStreamBroker
    from src.engine.state.events import StreamedEvent

STATUSES = sorted(set(EVENT_STATUS.values()))
# How often the tail looks whether it was asked to stop while no event comes.
_POLL_S = 0.25


def statuses_of(names: list[str]) -> set[str]:
    """Event statuses (`completed`) or task states (`SUCCESS`) → event statuses."""
    wanted: set[str] = set()
    for name in names:
        if name.lower() in STATUSES:
            wanted.add(name.lower())
        elif name.upper() in TaskState.__members__ and TaskState[name.upper()] in EVENT_STATUS:
            wanted.add(EVENT_STATUS[TaskState[name.upper()]])
        else:
            raise fail(f"no state {name!r}: one of {', '.join(STATUSES)} (or a task state)")
    return wanted


def events(
    task: Annotated[str | None, typer.Option(help="Only this task id.")] = None,
    client: Annotated[str | None, typer.Option(help="Only tasks of this client id.")] = None,
    state: Annotated[
        list[str] | None,
        typer.Option(help=f"Only these statuses (repeatable): {', '.join(STATUSES)}."),
    ] = None,
    from_seq: Annotated[
        int | None,
        typer.Option(min=0, help="Resume after this sequence (0: every event still kept)."),
    ] = None,
    json_lines: Annotated[bool, JsonOption] = False,
) -> None:
    """Follow task events live until Ctrl-C."""
    wanted = statuses_of(state or [])
    for name, value in (("task", task), ("client", client)):
        if value is not None and (not value or any(c in value for c in ".*> ")):
            raise fail(f"--{name} {value!r} is not an id")

    async def tail(broker: JetStreamBroker) -> None:
        layout = broker.layout
        if task and client:
            subject = layout.event_subject(task, client)
        elif task:
            subject = layout.task_events(task)
        elif client:
            subject = layout.client_events(client)
        else:
            subject = layout.events_subjects
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        seen, last = 0, from_seq
        try:
            async with broker.events.follow(
                subject, after=from_seq, only_new=from_seq is None
            ) as follower:
                _say(f"following {subject} (Ctrl-C to stop)")
                while not stop.is_set():
                    streamed = await follower.next(_POLL_S)
                    if streamed is None:
                        continue
                    last = streamed.sequence
                    if wanted and streamed.event.status not in wanted:
                        continue
                    seen += 1
                    _show(streamed, json_lines)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        resume = f"; resume with --from-seq {last}" if last is not None else ""
        _say(f"stopped after {seen} event(s){resume}")

    run_with_engine(tail)


def _show(streamed: StreamedEvent, json_lines: bool) -> None:
    event = streamed.event
    if json_lines:
        line = streamed.model_dump_json()
    else:
        progress = ""
        if event.progress is not None:
            total = f"/{event.total:g}" if event.total is not None else ""
            progress = f" {event.progress:g}{total}"
        stage = f" [{event.stage}]" if event.stage else ""
        message = f" {event.message}" if event.message else ""
        line = (
            f"{streamed.sequence:>8}  {when(event.timestamp)}  {event.task_id}  "
            f"{event.status:<10}{progress}{stage}{message}"
        )
    with contextlib.suppress(BrokenPipeError):  # `taskjet events | head`
        print(line, flush=True)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
