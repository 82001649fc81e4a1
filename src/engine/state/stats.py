"""Cluster-wide task counters: written by the record script, read for the stats API and /metrics.

The record script (`transitions.py`) counts every write that moves a task into an outcome
(succeeded, failed, retried, dead, cancelled), in the same call that writes the state, so no
task pays an extra round trip. Two kinds of hash hold the counts:

- one hash per minute (`Layout.stats_minute_key`), expiring after `TASKJET_STATS_RETENTION_S`,
  with one field per metric and dimension: `<metric>|` for the whole cluster, `<metric>|t:<task>`,
  `<metric>|q:<queue>` and `<metric>|s:<task>|<queue>`. A read asks for fixed field names
  (HMGET), never scans;
- one hash of running totals (`Layout.stats_totals_key`), fields `<metric>|<task>|<queue>`:
  the Prometheus counters and histograms. It expires when nothing was counted for the
  retention period (Prometheus sees a counter reset, which `rate()` handles).

Metrics: the five outcomes; `run_count`, `run_sum`, `run_b<i>` (run time: one count per run
that reached an outcome, in the bucket of the first bound it does not exceed) and the same
for `wait` (queued, due or retry time to start).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from src.engine.core.layout import Layout

OUTCOMES = ("succeeded", "failed", "retried", "dead", "cancelled")
# Upper bounds (seconds) of the run and wait time buckets; a last bucket holds the rest (+Inf).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
MINUTE_S = 60
# What a bucket of the series and the totals hold (the histogram bucket counts apart).
SERIES_KEYS = (
    *OUTCOMES,
    "run_count",
    "run_seconds_sum",
    "wait_count",
    "wait_seconds_sum",
)
# The record script's counting (`transitions.py`): `count(name, queue, outcome, run_s, wait_s)`
# after a write that moved a task into an outcome; `stats` is the script's argument with the
# key prefixes, retention, bucket bounds and default queue.
COUNT_LUA = """
-- The counters of `state/stats.py`. `count` adds a task's outcome to its series (task name,
-- queue) in Lua tables; `flush_counts` sums the series into each field of the minute's hash
-- and of the totals, and writes every field once: a batch of many tasks of a few names costs
-- little more than one task. Every write of one call has the same `now`, hence one minute.
local counted = {SUCCESS='succeeded', FAILURE='failed', RETRYING='retried', DEAD='dead',
  CANCELLED='cancelled'}
local series = {}
local function timed(n, sums, kind, seconds)
  local bounds = stats[4]
  local b = #bounds
  for i = 1, b do if seconds <= bounds[i] then b = i - 1 break end end
  local c, k = kind .. '_count', kind .. '_b' .. b
  n[c] = (n[c] or 0) + 1
  n[k] = (n[k] or 0) + 1
  local f = kind .. '_sum'
  sums[f] = (sums[f] or 0) + seconds
end
local function count(name, queue, what, run, wait)
  local id = name .. '|' .. queue
  local s = series[id]
  if not s then
    s = {name=name, queue=queue, n={}, sums={}}
    series[id] = s
  end
  s.n[what] = (s.n[what] or 0) + 1
  if run then timed(s.n, s.sums, 'run', run) end
  if wait then timed(s.n, s.sums, 'wait', wait) end
end
local function flush_counts()
  if next(series) == nil then return end
  local mkey = stats[1] .. (math.floor(tonumber(now) / 60000000) * 60)
  local ints, floats, tints, tfloats = {}, {}, {}, {}
  for _, s in pairs(series) do
    local dims = {'|', '|t:' .. s.name, '|q:' .. s.queue, '|s:' .. s.name .. '|' .. s.queue}
    local total = '|' .. s.name .. '|' .. s.queue
    for f, n in pairs(s.n) do
      for i = 1, 4 do local k = f .. dims[i]; ints[k] = (ints[k] or 0) + n end
      local k = f .. total; tints[k] = (tints[k] or 0) + n
    end
    for f, x in pairs(s.sums) do
      for i = 1, 4 do local k = f .. dims[i]; floats[k] = (floats[k] or 0) + x end
      local k = f .. total; tfloats[k] = (tfloats[k] or 0) + x
    end
  end
  for f, n in pairs(ints) do redis.call('HINCRBY', mkey, f, n) end
  for f, x in pairs(floats) do redis.call('HINCRBYFLOAT', mkey, f, x) end
  for f, n in pairs(tints) do redis.call('HINCRBY', stats[2], f, n) end
  for f, x in pairs(tfloats) do redis.call('HINCRBYFLOAT', stats[2], f, x) end
  redis.call('EXPIRE', mkey, stats[3] + 60)
  redis.call('EXPIRE', stats[2], stats[3])
end
"""
_STORED = {"run_seconds_sum": "run_sum", "wait_seconds_sum": "wait_sum"}
# A series read: of the minute hashes (KEYS), those that exist, each as its position (from 1)
# and then its fields (ARGV; `0` for one never counted). One call for a day of minutes, and a
# reply only as long as the minutes that saw a task end.
_MINUTES_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local row = redis.call('HMGET', key, unpack(ARGV))
    out[#out + 1] = i
    for j = 1, #ARGV do out[#out + 1] = row[j] or '0' end
  end
end
return out
"""


def minute_fields(dimension: str) -> list[str]:
    """The field names one dimension uses in a minute hash, in a fixed order."""
    names = [_STORED.get(k, k) for k in SERIES_KEYS]
    names += [f"{kind}_b{i}" for kind in ("run", "wait") for i in range(len(BUCKETS) + 1)]
    return [f"{name}|{dimension}" for name in names]


def dimension(task: str | None, queue: str | None) -> str:
    """`''` (the whole cluster), `t:<task>`, `q:<queue>` or `s:<task>|<queue>`."""
    if task is not None and queue is not None:
        return f"s:{task}|{queue}"
    if task is not None:
        return f"t:{task}"
    return f"q:{queue}" if queue is not None else ""


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative counts: `counts[i]` runs took at most `le[i]` seconds (the last `+Inf`)."""

    le: list[float | str]
    counts: list[int]

    @classmethod
    def of(cls, per_bucket: Sequence[int]) -> Histogram:
        total, cumulative = 0, []
        for n in per_bucket:
            total += n
            cumulative.append(total)
        return cls(le=[*BUCKETS, "+Inf"], counts=cumulative)


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per step from `since` to `until`, oldest first, and over the whole span."""

    step: int
    since: int
    until: int
    task: str | None
    queue: str | None
    buckets: list[dict[str, Any]]
    totals: dict[str, Any]
    run_histogram: Histogram
    wait_histogram: Histogram


@dataclass(slots=True)
class SeriesTotals:
    """Running totals of one task name on one queue (for the Prometheus counters)."""

    task: str
    queue: str
    outcomes: dict[str, int]
    run_count: int
    run_sum: float
    run_buckets: list[int]
    wait_count: int
    wait_sum: float
    wait_buckets: list[int]


class StatsReader:
    """Reads the counters the record script writes."""

    def __init__(self, redis: Callable[[], Redis], layout: Callable[[], Layout]) -> None:
        self._redis = redis
        self._layout = layout
        self._script: tuple[Redis, AsyncScript] | None = None

    async def series(
        self,
        since: int,
        step: int,
        task: str | None = None,
        queue: str | None = None,
        until: int | None = None,
    ) -> Series:
        """Buckets of `step` seconds (a multiple of 60) from `since` (rounded down to its
        minute) to now; empty minutes count zero."""
        if step <= 0 or step % MINUTE_S:
            raise ValueError("step must be a positive multiple of 60 seconds")
        end = int(time.time()) if until is None else until
        start = since - since % MINUTE_S
        minutes = list(range(start, end + 1, MINUTE_S)) if end >= start else []
        fields = minute_fields(dimension(task, queue))
        layout = self._layout()
        keys = [layout.stats_minute_key(minute) for minute in minutes]
        reply: list[Any] = await self._read_minutes(keys, fields) if minutes else []
        width = len(SERIES_KEYS)
        nb = len(BUCKETS) + 1
        buckets: list[dict[str, Any]] = [
            {"start": bucket_start, **_zero()} for bucket_start in range(start, end + 1, step)
        ]
        totals = _zero()
        run_b, wait_b = [0] * nb, [0] * nb
        for at in range(0, len(reply), len(fields) + 1):
            # Only the minutes something ended in (on a quiet queue, few of a day's 1,440).
            minute = minutes[int(reply[at]) - 1]
            bucket = buckets[(minute - start) // step]
            values = [float(v) for v in reply[at + 1 : at + 1 + len(fields)]]
            for key, value in zip(SERIES_KEYS, values[:width], strict=True):
                number = value if key.endswith("_sum") else int(value)
                bucket[key] += number
                totals[key] += number
            for i in range(nb):
                run_b[i] += int(values[width + i])
                wait_b[i] += int(values[width + nb + i])
        return Series(
            step=step,
            since=start,
            until=end,
            task=task,
            queue=queue,
            buckets=buckets,
            totals=totals,
            run_histogram=Histogram.of(run_b),
            wait_histogram=Histogram.of(wait_b),
        )

    async def _read_minutes(self, keys: list[str], fields: list[str]) -> list[Any]:
        """`_MINUTES_LUA` by its digest (loaded again after a Redis restart)."""
        redis = self._redis()
        if self._script is None or self._script[0] is not redis:
            self._script = (redis, redis.register_script(_MINUTES_LUA))
        reply: list[Any] = await self._script[1](keys=keys, args=fields)
        return reply

    async def totals(self) -> list[SeriesTotals]:
        """Every task name and queue counted within the retention period, sorted."""
        raw: Any = await self._redis().hgetall(self._layout().stats_totals_key)
        return parse_totals(raw)


def parse_totals(raw: dict[bytes, bytes]) -> list[SeriesTotals]:
    """The totals hash, fields `<metric>|<task>|<queue>`, as one entry per task and queue
    (a scrape reads it whole: kept to a dictionary lookup and a number per field)."""
    slots, counts = _SLOTS, len(_SLOT_NAMES) - 2
    found: dict[bytes, list[Any]] = {}
    for field, value in raw.items():
        metric, _, series = field.partition(b"|")
        slot = slots.get(metric)
        if slot is None:
            continue
        row = found.get(series)
        if row is None:
            row = found[series] = [0] * counts + [0.0, 0.0]
        row[slot] = int(value) if slot < counts else float(value)
    nb = len(BUCKETS) + 1
    entries = []
    for series, row in found.items():
        task, _, queue = series.decode().rpartition("|")
        entries.append(
            SeriesTotals(
                task,
                queue,
                dict(zip(OUTCOMES, row, strict=False)),
                row[5],
                row[-2],
                row[6 : 6 + nb],
                row[6 + nb],
                row[-1],
                row[7 + nb : -2],
            )
        )
    entries.sort(key=lambda e: (e.task, e.queue))
    return entries


# Where each field of a series goes in its row: the counts, then the two sums.
_SLOT_NAMES = [
    *OUTCOMES,
    "run_count",
    *(f"run_b{i}" for i in range(len(BUCKETS) + 1)),
    "wait_count",
    *(f"wait_b{i}" for i in range(len(BUCKETS) + 1)),
    "run_sum",
    "wait_sum",
]
_SLOTS = {name.encode(): i for i, name in enumerate(_SLOT_NAMES)}


def _zero() -> dict[str, Any]:
    return {k: 0.0 if k.endswith("_sum") else 0 for k in SERIES_KEYS}
