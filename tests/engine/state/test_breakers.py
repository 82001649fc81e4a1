"""Circuit breakers' shared state on a real Redis: every transition, as any worker sees it."""

from __future__ import annotations

import asyncio

import pytest

from src.engine.broker import JetStreamBroker
from src.engine.core.errors import CircuitOpenError
from src.engine.state.breakers import BreakerPolicy
from src.engine.worker.circuit import CircuitBreaker
from tests.support.processes import eventually


def breaker(broker: JetStreamBroker, name: str = "svc", **options: float) -> CircuitBreaker:
    values = {"failure_threshold": 2, "window_s": 600.0, "open_s": 3600.0, **options}
    return CircuitBreaker(name, lambda: broker.breakers, **values)  # type: ignore[arg-type]


async def fail(guard: CircuitBreaker) -> None:
    with pytest.raises(ConnectionError):
        async with guard:
            raise ConnectionError("down")


async def state(broker: JetStreamBroker, name: str = "svc") -> str:
    return {s.name: s.state for s in await broker.breakers.states()}[name]


async def test_opens_after_the_threshold_and_then_fails_fast(broker: JetStreamBroker) -> None:
    guard = breaker(broker)
    async with guard:
        pass
    assert await state(broker) == "closed"
    await fail(guard)
    assert await state(broker) == "closed", "one failure of two"
    await fail(guard)
    assert await state(broker) == "open"
    ran = False
    with pytest.raises(CircuitOpenError) as raised:
        async with guard:
            ran = True
    assert not ran, "the guarded call is not made while open"
    assert raised.value.breaker == "svc"
    assert 3500 < raised.value.retry_in_s <= 3600
    (view,) = await broker.breakers.states()
    assert (view.failure_threshold, view.open_s) == (2, 3600)
    assert view.opened_at


async def test_a_second_process_shares_the_state(broker: JetStreamBroker) -> None:
    """Two breaker objects (as in two worker processes) of one name share one state."""
    await fail(breaker(broker))
    await fail(breaker(broker))
    with pytest.raises(CircuitOpenError):
        async with breaker(broker):
            pass


async def test_half_open_lets_one_trial_through_and_its_success_closes(
    broker: JetStreamBroker,
) -> None:
    guard = breaker(broker, open_s=0.2)
    await fail(guard)
    await fail(guard)
    await eventually(lambda: _is(broker, "half_open"), what="half-open")
    trial_started, release = asyncio.Event(), asyncio.Event()

    async def trial() -> None:
        async with guard:
            trial_started.set()
            await release.wait()

    running = asyncio.create_task(trial())
    await trial_started.wait()
    with pytest.raises(CircuitOpenError):
        async with guard:
            pass  # a second caller while the trial runs fails fast
    release.set()
    await running
    assert await state(broker) == "closed"
    await fail(guard)
    assert await state(broker) == "closed", "failures were forgotten when it closed"


async def test_a_failed_trial_opens_it_again(broker: JetStreamBroker) -> None:
    guard = breaker(broker, open_s=0.2)
    await fail(guard)
    await fail(guard)
    await eventually(lambda: _is(broker, "half_open"), what="half-open")
    await fail(guard)
    assert await state(broker) == "open"


async def test_a_trial_whose_worker_vanished_is_given_up(broker: JetStreamBroker) -> None:
    guard = breaker(broker, open_s=0.1, trial_timeout_s=0.2)
    await fail(guard)
    await fail(guard)
    await eventually(lambda: _is(broker, "half_open"), what="half-open")
    verdict, _ = await broker.breakers.enter("svc", guard.policy, False)
    assert verdict == "trial"  # ... and never reports back

    async def next_trial() -> bool:
        try:
            async with guard:
                return True
        except CircuitOpenError:
            return False

    await eventually(next_trial, what="another trial after the lease")
    assert await state(broker) == "closed"


async def test_errors_not_counted_and_cancellation(broker: JetStreamBroker) -> None:
    guard = CircuitBreaker(
        "picky", lambda: broker.breakers, failure_threshold=1, failure_on=(ConnectionError,)
    )
    with pytest.raises(ValueError, match="bad request"):
        async with guard:
            raise ValueError("a bad request is the caller's fault, not the service's")
    assert await state(broker, "picky") == "closed"
    with pytest.raises(asyncio.CancelledError):
        async with guard:
            raise asyncio.CancelledError
    assert await state(broker, "picky") == "closed"


async def test_reset_closes_one_or_all(broker: JetStreamBroker) -> None:
    for name in ("a", "b"):
        guard = breaker(broker, name)
        await fail(guard)
        await fail(guard)
    assert await broker.breakers.reset("a") == ["a"]
    assert [(s.name, s.state) for s in await broker.breakers.states()] == [
        ("a", "closed"),
        ("b", "open"),
    ]
    assert await broker.breakers.reset("nope") == []
    assert await broker.breakers.reset() == ["a", "b"]
    assert {s.state for s in await broker.breakers.states()} == {"closed"}
    async with breaker(broker, "a"):
        pass


def test_policies_and_names_are_checked() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerPolicy(failure_threshold=0)
    with pytest.raises(ValueError, match="positive"):
        BreakerPolicy(open_s=0)
    with pytest.raises(ValueError, match="name"):
        CircuitBreaker("", lambda: None)  # type: ignore[arg-type,return-value]


async def _is(broker: JetStreamBroker, wanted: str) -> bool:
    return await state(broker) == wanted
