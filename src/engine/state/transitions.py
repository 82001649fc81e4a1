"""Record writes: one Lua script moves task records between states, ordered by what they
describe, never by when they arrive.

Every write names the dispatch (1, 2, ... for each retry by id or requeue) and, from a worker,
the attempt it describes. The script compares them with the record's own:

- a write about an older dispatch than the record's is dropped (`stale`);
- a write about a newer dispatch starts the record over: the previous run's outcome, result and
  counters go, then the write applies (a genuine re-dispatch resets, whoever writes first);
- within one dispatch: the sender's PENDING only fills in fields that are missing (`filled`),
  so a PENDING landing after the worker's final write changes nothing; a worker's start never
  moves a final state back (`finished`: that message already ran to its end, so the worker acks
  it without running it again), unless it comes from another message of the same dispatch (the
  same id sent again after the de-duplication window), which is a new run; progress and
  retrying never move a final state, nor describe an attempt older than the record's; a final
  write from an older attempt never replaces the final state of a newer one.

A task's final state and its result are written by the same script call, so a result is stored
exactly when its record says the task ended; the same call counts the outcome (`stats.py`).
Writes are coalesced: whatever is written in the same event-loop turn (records, results,
progress of many tasks) shares one round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from asyncio import Future
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from src.engine.core.errors import ReplicationError
from src.engine.core.layout import Layout
from src.engine.core.states import TaskState
from src.engine.state.record import OUTCOME_FIELDS
from src.engine.state.stats import BUCKETS, COUNT_LUA
from src.engine.state.transition import AfterWrite, Code, Mode, Transition, Written

_SCRIPT = (
    """
local idx, keyp, ttl, now, trim = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local resp, attp = ARGV[7], ARGV[8]
local terminal = {SUCCESS=true, FAILURE=true, CANCELLED=true, DEAD=true}
local stats  -- ARGV[10], decoded only by a write that counts an outcome
local out = {}
"""
    + COUNT_LUA
    + """
local function trimmed(key)
  if tonumber(trim) > 0 then redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. trim) end
end
for n, t in ipairs(cjson.decode(ARGV[6])) do
  local id, name, new, mode, clear, fields = t[1], t[2], t[3], t[4], t[5], t[6]
  local d, a, seq, res = t[7], t[8], t[9], t[10]
  local key = keyp .. id
  -- Everything the decisions below read, in one call (a missing field reads false).
  local r = redis.call('HMGET', key, 'state', 'dispatch', 'attempts', 'seq', 'score', 'queue',
    'started_at', 'queued_at', 'due_at', 'retry_at', 'enqueued_at')
  local old = r[1]
  local rd = tonumber(r[2] or '0')
  local ra = tonumber(r[3] or '0')
  local newer = old and d > 0 and rd > 0 and d > rd
  local code = 'applied'
  if old and d > 0 and d < rd then
    code = 'stale'
  elseif old and not newer then
    if mode == 'create' then
      code = 'filled'
    elseif mode == 'start' then
      if terminal[old] then
        local rseq = tonumber(r[4] or '0')
        if rseq > 0 and seq > 0 and rseq ~= seq then newer = true else code = 'finished' end
      elseif a < ra then
        code = 'older'
      end
    elseif mode == 'advance' then
      if terminal[old] or (a > 0 and a < ra) then code = 'ignored' end
    elseif mode == 'final' then
      if terminal[old] and a < ra then code = 'older' end
    elseif mode == 'drop' then
      if old ~= 'PENDING' and old ~= 'RETRYING' then code = 'ignored' end
    end
  end
  if code == 'filled' then
    for i = 1, #fields, 2 do redis.call('HSETNX', key, fields[i], fields[i + 1]) end
    redis.call('EXPIRE', key, ttl)
  elseif code == 'applied' then
    local what = counted[new]
    if what and new == old and not newer then what = nil end
    local run, wait, queue
    if what then
      stats = stats or cjson.decode(ARGV[10])
      queue = r[6] or stats[5]
      for i = 1, #fields, 2 do
        if fields[i] == 'runtime_s' then run = tonumber(fields[i + 1]) end
      end
      local started = tonumber(r[7])
      if run and started and not newer then
        local ready = math.max(tonumber(r[8]) or 0, tonumber(r[9]) or 0, tonumber(r[10]) or 0,
          tonumber(r[11]) or 0)
        if ready > 0 then wait = math.max(0, started - ready) end
      elseif newer then
        run = nil
      end
    end
    if newer then
      redis.call('HDEL', key, unpack(cjson.decode(ARGV[9])))
      redis.call('DEL', resp .. id, attp .. id)
      ra = 0
    end
    if #clear > 0 then redis.call('HDEL', key, unpack(clear)) end
    -- Every field this write sets, in one HSET.
    local set = fields
    local score = r[5]
    if not score then
      score = string.format('%.0f', tonumber(now) + n - 1)  -- 1 us apart: batch order kept
      set[#set + 1] = 'score'; set[#set + 1] = score
      set[#set + 1] = 'id'; set[#set + 1] = id
      set[#set + 1] = 'name'; set[#set + 1] = name
      redis.call('ZADD', idx .. 'all', score, id)
      redis.call('ZADD', idx .. 'name:' .. name, score, id)
      trimmed(idx .. 'all')
      trimmed(idx .. 'name:' .. name)
    end
    if d > rd then set[#set + 1] = 'dispatch'; set[#set + 1] = d end
    if a > ra and mode ~= 'create' then set[#set + 1] = 'attempts'; set[#set + 1] = a end
    if seq > 0 then set[#set + 1] = 'seq'; set[#set + 1] = seq end
    local moved = new ~= '' and new ~= old
    if moved then set[#set + 1] = 'state'; set[#set + 1] = new end
    if #set > 0 then redis.call('HSET', key, unpack(set)) end
    if moved then
      if old then redis.call('ZREM', idx .. 'state:' .. old, id) end
      redis.call('ZADD', idx .. 'state:' .. new, score, id)
      trimmed(idx .. 'state:' .. new)
    end
    if res > 0 then redis.call('SET', resp .. id, ARGV[res], 'EX', ttl) end
    redis.call('EXPIRE', key, ttl)
    if what then count(name, queue, what, run, wait) end
  end
  out[n] = {old or '', code}
end
flush_counts()
return out
"""
)
_FIXED_ARGS = 10  # ARGV entries before the results


class TransitionWriter:
    """Runs transitions through the script, many per round trip."""

    def __init__(
        self,
        redis: Callable[[], Redis],
        layout: Callable[[], Layout],
        record_ttl_s: Callable[[], int],
        replicas: Callable[[], tuple[int, float]] = lambda: (0, 0.0),
        stats: Callable[[], tuple[int, str]] = lambda: (86400, "default"),
    ) -> None:
        self._redis = redis
        self._layout = layout
        self._ttl_s = record_ttl_s
        self._replicas = replicas
        self._stats = stats
        self._sha = hashlib.sha1(_SCRIPT.encode()).hexdigest()  # noqa: S324  # Redis' id
        self._collecting: list[Transition] | None = None
        self._pending: list[tuple[Callable[[Pipeline], None], Future[list[Any]]]] = []
        self._flush_scheduled = False
        self._outcome = orjson.dumps(OUTCOME_FIELDS)
        self.after: AfterWrite | None = None  # told of every write applied (webhooks)

    async def load_script(self) -> None:
        """Load the script (at startup, and again if Redis lost it)."""
        self._sha = await self._redis().script_load(_SCRIPT)

    async def apply(self, transitions: Iterable[Transition]) -> list[Written]:
        """Run transitions in one round trip (with whatever else is written now)."""
        batch = list(transitions)
        if not batch:
            return []
        return await self.applied(batch, self.send(batch))

    def send(self, batch: list[Transition]) -> Future[list[Any]]:
        """Queue transitions for the next round trip now, without waiting for a coroutine to
        get there first: on a worker's path to running a task, a loop turn saved is latency
        saved. The future holds their raw answers (`applied` reads them)."""

        def build(pipe: Pipeline) -> None:
            for t in batch:
                self.add(t)

        return self._enqueue(build)

    async def applied(self, batch: list[Transition], sent: Future[list[Any]]) -> list[Written]:
        """What the transitions `send` queued came to."""
        written = [_written(raw) for raw in await sent]
        if self.after is not None:
            await self.after(batch, written)
        return written

    async def submit(self, transition: Transition) -> Written:
        """One transition, written together with every other write of this loop turn."""
        (written,) = await self.apply([transition])
        return written

    def add(self, transition: Transition) -> None:
        """Inside a `batched` builder: add a transition to this round trip's script call."""
        if self._collecting is None:
            raise RuntimeError("add() is only for builders passed to batched()")
        self._collecting.append(transition)

    async def batched(self, build: Callable[[Pipeline], None]) -> list[Any]:
        """Run `build`'s commands and transitions in one pipeline with every other caller of
        this loop turn: one round trip for all. Returns the builder's command results, then
        one raw script answer per transition it added."""
        return await self._enqueue(build)

    def _enqueue(self, build: Callable[[Pipeline], None]) -> Future[list[Any]]:
        """Add `build` to the next round trip, which starts at the next loop turn with every
        builder queued by then."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._pending.append((build, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            flushing = loop.create_task(self._flush_pending())
            flushing.add_done_callback(lambda _: None)
        return future

    async def execute(
        self, build: Callable[[Pipeline], None], raise_on_error: bool = True
    ) -> list[Any]:
        """Run a pipeline `build` fills; loads the script and runs it again if Redis
        restarted without it (every write here is safe to repeat)."""
        for attempt in (1, 2):
            async with self._redis().pipeline(transaction=False) as pipe:
                build(pipe)
                try:
                    results: list[Any] = await pipe.execute(raise_on_error=raise_on_error)
                except NoScriptError:
                    results = [NoScriptError()]
                if attempt == 1 and any(isinstance(r, NoScriptError) for r in results):
                    await self.load_script()
                    continue
                return results
        raise AssertionError("unreachable")

    async def _flush_pending(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        await self._flush(batch)

    async def _flush(
        self, batch: list[tuple[Callable[[Pipeline], None], Future[list[Any]]]]
    ) -> None:
        bounds: list[tuple[int, int, int, int]] = []
        transitions: list[Transition] = []

        def build_all(pipe: Pipeline) -> None:
            bounds.clear()
            transitions.clear()
            self._collecting = transitions
            try:
                for build, _ in batch:
                    start, t_start = len(pipe.command_stack), len(transitions)
                    build(pipe)
                    bounds.append((start, len(pipe.command_stack), t_start, len(transitions)))
            finally:
                self._collecting = None
            if transitions:
                self._script_call(pipe, transitions)
            if wanted:
                # Every write above reaches `wanted` replicas before anyone is told it is
                # stored (so a failover to a replica loses no acknowledged result).
                pipe.execute_command("WAIT", wanted, int(wait_s * 1000))

        wanted, wait_s = self._replicas()
        try:
            results = await self.execute(build_all, raise_on_error=False)
            if wanted:
                reached = results.pop()
                if not isinstance(reached, int) or reached < wanted:
                    raise ReplicationError(
                        f"writes reached {reached} replica(s) within {wait_s:g}s, not the "
                        f"{wanted} TASKJET_REDIS_WAIT_REPLICAS asks for"
                    )
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        answers: Any = results[-1] if transitions else []
        for (_, future), (start, stop, t_start, t_stop) in zip(batch, bounds, strict=True):
            if future.done():
                continue
            mine = list(results[start:stop])
            if t_stop > t_start:
                if isinstance(answers, list):
                    mine.extend(answers[t_start:t_stop])
                else:
                    mine.append(answers)  # the script call failed: its error
            failure = next((r for r in mine if isinstance(r, Exception)), None)
            if failure is not None:
                future.set_exception(failure)
            else:
                future.set_result(mine)

    def _script_call(self, pipe: Pipeline, batch: list[Transition]) -> None:
        """One call of the script for every transition of the round trip."""
        layout = self._layout()
        ttl_s = self._ttl_s()
        now_us = int(time.time() * 1_000_000)
        trim = now_us - ttl_s * 1_000_000
        results: list[bytes] = []
        items = []
        for t in batch:
            slot = 0
            if t.result is not None:
                results.append(t.result)
                slot = _FIXED_ARGS + len(results)
            items.append(
                [
                    t.task_id,
                    t.task_name,
                    t.state.value if t.state else "",
                    t.mode,
                    list(t.clear),
                    [str(x) for pair in t.fields.items() for x in pair],
                    t.dispatch,
                    t.attempt,
                    t.seq,
                    slot,
                ]
            )
        pipe.evalsha(
            self._sha,
            0,
            layout.index_key(""),
            layout.record_key(""),
            ttl_s,
            now_us,
            trim,
            orjson.dumps(items),
            layout.result_key(""),
            layout.attempts_key(""),
            self._outcome,
            self._stats_args(layout),
            *results,
        )

    def _stats_args(self, layout: Layout) -> bytes:
        """Where the script counts outcomes (`state/stats.py`), and how long they are kept."""
        retention_s, default_queue = self._stats()
        return orjson.dumps(
            [
                layout.stats_minute_key(0)[:-1],
                layout.stats_totals_key,
                retention_s,
                BUCKETS,
                default_queue,
            ]
        )


__all__ = ["Code", "Mode", "Transition", "TransitionWriter", "Written"]


def _written(raw: Any) -> Written:
    before, code = raw
    if isinstance(before, bytes):
        before = before.decode()
    if isinstance(code, bytes):
        code = code.decode()
    return Written(TaskState(before) if before else None, code)
