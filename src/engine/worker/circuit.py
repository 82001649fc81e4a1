"""`circuit_breaker`: guard a task's calls to an outside service, for the whole fleet at once.

    payments = circuit_breaker("payments", failure_threshold=5, window_s=60, open_s=30)

    @payments                      # a decorator ...
    async def charge(...): ...

    async with payments:           # ... or an async context manager
        await client.post(...)

The state is shared through Redis (`state/breakers.py`), so failures seen by one worker process
open the breaker for all of them. While it is open, entering raises `CircuitOpenError` without
making the call; the retry policy retries it once the open period is over.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import TypedDict, TypeVar

from typing_extensions import ParamSpec, Unpack

from src.engine.core.errors import CircuitOpenError
from src.engine.state.breakers import BreakerPolicy, BreakerStore

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Whether each open `async with` of this task's context is a half-open trial (innermost last).
_trials: ContextVar[tuple[bool, ...]] = ContextVar("taskjet_breaker_trials", default=())


class BreakerOptions(TypedDict, total=False):
    """When a breaker opens: after `failure_threshold` failures (exceptions of `failure_on`)
    within `window_s`; it stays open `open_s`, then lets one trial call through (given up after
    `trial_timeout_s` if its worker never reports back)."""

    failure_threshold: int
    window_s: float
    open_s: float
    trial_timeout_s: float
    failure_on: tuple[type[BaseException], ...]


class CircuitBreaker:
    """One named breaker; the same object may guard many concurrent calls."""

    def __init__(
        self, name: str, store: Callable[[], BreakerStore], **options: Unpack[BreakerOptions]
    ) -> None:
        if not name or len(name) > 200:
            raise ValueError("a circuit breaker needs a name of 1 to 200 characters")
        self.name = name
        self.policy = BreakerPolicy(
            options.get("failure_threshold", 5),
            options.get("window_s", 60.0),
            options.get("open_s", 30.0),
            options.get("trial_timeout_s", 60.0),
        )
        self._store = store
        self._failure_on = options.get("failure_on", (Exception,))
        self._registered = False

    async def __aenter__(self) -> CircuitBreaker:
        verdict, left_s = await self._store().enter(self.name, self.policy, not self._registered)
        self._registered = True
        if verdict == "open":
            raise CircuitOpenError.of(self.name, left_s)
        _trials.set((*_trials.get(), verdict == "trial"))
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        _: TracebackType | None,
    ) -> None:
        trials = _trials.get()
        trial = trials[-1] if trials else False
        _trials.set(trials[:-1])
        if error is None or not isinstance(error, Exception):
            if trial and error is None:
                await self._store().success(self.name)
            return  # cancelled: a trial never finished is given up after trial_timeout_s
        if isinstance(error, self._failure_on) and not isinstance(error, CircuitOpenError):
            await self._store().failure(self.name, self.policy, trial)
        elif trial:  # an error not counted as a failure: the service answered
            await self._store().success(self.name)

    def __call__(self, func: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        @functools.wraps(func)
        async def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            async with self:
                return await func(*args, **kwargs)

        return guarded
