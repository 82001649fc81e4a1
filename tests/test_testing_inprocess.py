"""The in-process mode (`src/testing_inprocess.py`): tasks run here, without any server."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from taskiq import Context, TaskiqDepends

from src.config import load_settings
from src.engine.broker import JetStreamBroker
from src.engine.core.errors import EncodeError, LabelError
from src.engine.worker.progress import Progress
from src.testing_inprocess import InProcess, run_inline

# Nothing listens there: a run that tried to reach a server would fail.
broker = JetStreamBroker(
    load_settings(nats_url="nats://127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
)


class PaymentDeclinedError(Exception):
    """A task's own error."""


@broker.task(task_name="inproc.add")
async def add(a: int, b: int = 0) -> int:
    return a + b


@broker.task(task_name="inproc.pay", max_retries=3, retry_on_error=True)
async def pay(amount: int) -> None:
    raise PaymentDeclinedError(f"{amount} declined")


@broker.task(task_name="inproc.report")
async def report(pages: int, progress: Progress = TaskiqDepends()) -> int:
    for page in range(pages):
        await progress.update(current=page + 1, total=pages, stage="rendering")
    return pages


@broker.task(task_name="inproc.labels")
async def labels_seen(context: Context = TaskiqDepends()) -> dict[str, Any]:
    return dict(context.message.labels)


@broker.task(task_name="inproc.day")
async def weekday(day: dt.date) -> int:
    return day.weekday()


@broker.task(task_name="inproc.sync")
def double(x: int) -> int:
    return 2 * x


async def test_a_task_returns_its_value() -> None:
    assert await run_inline(add, 2, b=3) == 5
    assert await run_inline(double, 21) == 42


async def test_a_failing_task_raises_its_error_once_without_retrying() -> None:
    runner = InProcess()
    with pytest.raises(PaymentDeclinedError, match="5 declined"):
        await runner.run(pay, 5)
    result = await runner.result(pay, 6)
    assert result.is_err
    assert isinstance(result.error, PaymentDeclinedError)
    assert len(runner.messages) == 2


async def test_arguments_go_through_the_wire_format() -> None:
    # Sent as JSON: a date arrives as text and is parsed back by the task's type hints.
    assert await run_inline(weekday, dt.date(2026, 12, 7)) == 0
    runner = InProcess()
    await runner.run(weekday, dt.date(2026, 12, 8))
    assert runner.messages[0].args == ["2026-12-08"]


async def test_an_argument_json_cannot_carry_fails_as_kiq_would() -> None:
    with pytest.raises(EncodeError):
        await run_inline(add, object(), 1)


async def test_labels_are_checked_and_reach_the_task() -> None:
    seen = await run_inline(labels_seen.kicker().with_labels(priority="high", tenant="acme"))
    assert seen["priority"] == "high"
    assert seen["tenant"] == "acme"
    with pytest.raises(LabelError):
        await run_inline(labels_seen.kicker().with_labels(rate_limit="often"))


async def test_progress_is_kept_on_the_runner() -> None:
    runner = InProcess()
    assert await runner.run(report, 3) == 3
    assert [(p.current, p.total, p.stage) for p in runner.progress] == [
        (1, 3, "rendering"),
        (2, 3, "rendering"),
        (3, 3, "rendering"),
    ]
    assert len(runner.events) == 3


async def test_an_unregistered_task_is_refused() -> None:
    kicker = add.kicker()
    kicker.task_name = "inproc.missing"
    with pytest.raises(LookupError, match=r"inproc\.missing"):
        await run_inline(kicker, 1)
