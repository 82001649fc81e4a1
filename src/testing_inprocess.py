"""Running an application's task in this process, for fast unit tests without servers.

    from src.testing_inprocess import InProcess, run_inline

    assert await run_inline(shop_tasks.reserve, "apple", 3) == {"sku": "apple", "reserved": 3}

The call goes the way `kiq` sends it and a worker runs it: labels are checked and the message
encoded exactly as `kiq` would publish it (a bad label or an argument JSON cannot carry fails
here, as it would there), then decoded and run through taskiq's receiver with the broker's
middlewares and dependencies (`Progress`, `Context`, `TaskiqDepends`). The return value is
returned; the task's error is raised. Nothing is retried, stored or published: progress updates
and events are kept on the `InProcess` runner for the test to read.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, TaskiqMessage, TaskiqResult
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.kicker import AsyncKicker
from taskiq.receiver import Receiver

from src.engine.core.states import TaskState
from src.engine.state.events import TaskEvent
from src.engine.state.record import Progress
from src.engine.state.transitions import Transition, Written

Runnable = AsyncTaskiqDecoratedTask[Any, Any] | AsyncKicker[Any, Any]


class _Writes:
    """The record writer as `Progress` sees it: every transition applies and is kept."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []

    async def submit(self, transition: Transition) -> Written:
        self.transitions.append(transition)
        return Written(before=None, code="applied")


class _Events:
    """The event bus as tasks see it: events are kept, not published."""

    def __init__(self) -> None:
        self.published: list[TaskEvent] = []

    async def publish(self, event: TaskEvent, client_id: str | None = None) -> None:
        self.published.append(event)


class _LocalBroker:
    """The application's broker as a running task sees it, with records and events kept here.

    Everything else (middlewares, dependency context, state, find_task) is the real broker's.
    """

    def __init__(self, broker: AsyncBroker, writes: _Writes, events: _Events) -> None:
        self._broker = broker
        self.writes = writes
        self.events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)


class InProcess:
    """Runs tasks here, one call at a time, keeping what they reported."""

    def __init__(self) -> None:
        self._writes = _Writes()
        self._events = _Events()
        self.messages: list[TaskiqMessage] = []  # each run's message as the worker decoded it

    @property
    def events(self) -> list[TaskEvent]:
        """The events the runs published (progress, for one)."""
        return list(self._events.published)

    @property
    def progress(self) -> list[Progress]:
        """Every progress update, in order."""
        return [
            Progress.model_validate_json(str(t.fields["progress"]))
            for t in self._writes.transitions
            if t.state is TaskState.PROGRESS and "progress" in t.fields
        ]

    async def run(self, task: Runnable, *args: Any, **kwargs: Any) -> Any:
        """The task's return value for these arguments; its error is raised here."""
        result = await self.result(task, *args, **kwargs)
        if result.is_err and isinstance(result.error, BaseException):
            raise result.error
        return result.return_value

    async def result(self, task: Runnable, *args: Any, **kwargs: Any) -> TaskiqResult[Any]:
        """The task's `TaskiqResult`, as the worker would store it."""
        kicker = task.kicker() if isinstance(task, AsyncTaskiqDecoratedTask) else task
        broker = kicker.broker
        sent = broker.formatter.dumps(kicker._prepare_message(*args, **kwargs))
        message = broker.formatter.loads(sent.message)
        message.parse_labels()
        self.messages.append(message.model_copy(deep=True))  # as received, before parsing
        found = broker.find_task(message.task_name)
        if found is None:
            raise LookupError(f"task {message.task_name!r} is not registered on its broker")
        local = cast("AsyncBroker", _LocalBroker(broker, self._writes, self._events))
        receiver = Receiver(local, max_async_tasks=1, run_startup=False)
        for middleware in broker.middlewares:
            if type(middleware).pre_execute is not TaskiqMiddleware.pre_execute:
                message = await _maybe(middleware.pre_execute(message))
        result = await receiver.run_task(found.original_func, message)
        for middleware in reversed(broker.middlewares):
            if type(middleware).post_execute is not TaskiqMiddleware.post_execute:
                await _maybe(middleware.post_execute(message, result))
        return result


async def _maybe(value: Any) -> Any:
    return await value if isinstance(value, Awaitable) else value


async def run_inline(task: Runnable, *args: Any, **kwargs: Any) -> Any:
    """`await run_inline(task, *args, **kwargs)`: one call run here, see `InProcess.run`."""
    return await InProcess().run(task, *args, **kwargs)
