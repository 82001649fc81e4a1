"""Listing records newest first, through the sorted-set indexes (never a key scan).

The narrowest index serves a page (a task name's, else a state's, else all), its score range
bounds the time filter, and the other filters (queue, client, worker, id prefix) are checked
inside Redis by one script that walks the index: only the ids of matches come back, and only
as many as the page has room for, so whole records are read just for the tasks shown. One page
looks at most `MAX_SCAN` index entries: a filter that matches rarely answers with fewer items
and a cursor to go on, so a page costs the same at 100,000 tasks as at 100. The cursor names
the last entry looked at, so new tasks never shift a page.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from src.engine.core.errors import InvalidCursorError
from src.engine.core.layout import Layout
from src.engine.core.states import TaskState
from src.engine.state.record import TaskRecord

MAX_SCAN = 2_000

# KEYS[1]: an index. ARGV: highest score, lowest score, the cursor's score and id ('' for none),
# most entries to look at, most matches to return, record key prefix, id prefix ('' for any),
# n, n field names, n values. Returns {match ids, entries looked at, last score and id looked
# at, 1 if the index ran out}. Equal scores come in descending byte order of their ids (the
# order Redis keeps them in), compared here byte by byte whatever the server's locale.
_SCAN = """
local high, low = ARGV[1], ARGV[2]
local after_score, after_id = tonumber(ARGV[3]), ARGV[4]
local budget, want = tonumber(ARGV[5]), tonumber(ARGV[6])
local prefix, id_prefix = ARGV[7], ARGV[8]
local n = tonumber(ARGV[9])
local fields, values = {}, {}
for j = 1, n do fields[j] = ARGV[9 + j]; values[j] = ARGV[9 + n + j] end
local function below(a, b)
  for k = 1, math.min(#a, #b) do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local found, examined, last_score, last_id = {}, 0, '', ''
local offset, batch = 0, 500
while true do
  local chunk = redis.call('ZREVRANGEBYSCORE', KEYS[1], high, low,
                           'WITHSCORES', 'LIMIT', offset, batch)
  for i = 1, #chunk, 2 do
    local id, score = chunk[i], tonumber(chunk[i + 1])
    local fresh = after_score == nil or score < after_score
    if fresh or (score == after_score and below(id, after_id)) then
      examined = examined + 1
      last_score, last_id = chunk[i + 1], id
      local ok = id_prefix == '' or string.sub(id, 1, #id_prefix) == id_prefix
      if ok and n > 0 then
        local got = redis.call('HMGET', prefix .. id, unpack(fields))
        for j = 1, n do
          if got[j] ~= values[j] then ok = false; break end
        end
      end
      if ok then found[#found + 1] = id end
      if #found >= want or examined >= budget then
        return {found, examined, last_score, last_id, 0}
      end
    end
  end
  if #chunk < batch * 2 then return {found, examined, last_score, last_id, 1} end
  offset = offset + batch
end
"""


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """What a listing keeps; every field left None keeps everything."""

    state: TaskState | None = None
    task_name: str | None = None
    queue: str | None = None
    client_id: str | None = None
    worker: str | None = None
    since: float | None = None
    until: float | None = None
    id_prefix: str | None = None

    def index(self, layout: Layout) -> str:
        if self.task_name is not None:
            return layout.index_key("name", self.task_name)
        if self.state is not None:
            return layout.index_key("state", self.state.value)
        return layout.index_key("all")

    def wanted_fields(self) -> dict[str, str]:
        """Record fields the filter checks beyond its index, with the values it wants."""
        wanted = {
            # The state index serves a page by state alone; by name, the state is a field.
            "state": self.state.value if self.state and self.task_name is not None else None,
            "queue": self.queue,
            "client_id": self.client_id,
            "worker": self.worker,
        }
        return {name: value for name, value in wanted.items() if value is not None}

    def keeps(self, record: TaskRecord) -> bool:
        wanted = (
            (self.state, record.state),
            (self.task_name, record.task_name),
            (self.queue, record.queue),
            (self.client_id, record.client_id),
            (self.worker, record.worker),
        )
        return all(want is None or want == have for want, have in wanted)


@dataclass(slots=True)
class Page:
    records: list[TaskRecord]
    next_cursor: str | None


async def page(
    redis: Redis,
    index: str,
    read: Callable[[Sequence[str]], Awaitable[list[TaskRecord | None]]],
    record_prefix: str,
    where: RecordFilter,
    *,
    limit: int,
    cursor: str | None,
) -> Page:
    """Up to `limit` records of `index` that `where` keeps, newest first, after `cursor`.
    `record_prefix` + a task id is the key of its record."""
    after = decode_cursor(cursor)
    low = f"{int(where.since * 1_000_000)}" if where.since is not None else "-inf"
    top = int(where.until * 1_000_000) if where.until is not None else None
    fields = where.wanted_fields()
    records: list[TaskRecord] = []
    stale: list[str] = []
    examined, exhausted = 0, False
    # A match read back gone (expired meanwhile) or changed leaves room: walk on from it.
    while len(records) < limit and examined < MAX_SCAN and not exhausted:
        scan = _Scan(index, _high(after, top), low, after, record_prefix, where.id_prefix, fields)
        found, looked, last, exhausted = await scan.run(
            redis, budget=MAX_SCAN - examined, want=limit - len(records)
        )
        examined += looked
        after = last or after
        for task_id, record in zip(found, await read(found) if found else [], strict=True):
            if record is None:
                stale.append(task_id)
            elif where.keeps(record):
                records.append(record)
        if not looked:
            break
    if stale:
        await redis.zrem(index, *stale)
    return Page(records, None if exhausted or after is None else encode_cursor(after))


@dataclass(frozen=True, slots=True)
class _Scan:
    """One walk down an index inside Redis (`_SCAN`)."""

    index: str
    high: str
    low: str
    after: tuple[int, str] | None
    record_prefix: str
    id_prefix: str | None
    fields: dict[str, str]

    async def run(
        self, redis: Redis, *, budget: int, want: int
    ) -> tuple[list[str], int, tuple[int, str] | None, bool]:
        after_score, after_id = (str(self.after[0]), self.after[1]) if self.after else ("", "")
        names = list(self.fields)
        args: list[str | int] = [
            self.high,
            self.low,
            after_score,
            after_id,
            budget,
            want,
            self.record_prefix,
            self.id_prefix or "",
            len(names),
            *names,
            *(self.fields[name] for name in names),
        ]
        raw: Any = await redis.eval(_SCAN, 1, self.index, *args)
        found, looked, score, task_id, ran_out = raw
        last = (int(float(score)), task_id.decode()) if looked else None
        return [m.decode() for m in found], int(looked), last, bool(ran_out)


def _high(after: tuple[int, str] | None, top: int | None) -> str:
    if after is None:
        return "+inf" if top is None else str(top)
    return str(after[0] if top is None else min(after[0], top))


def encode_cursor(after: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(f"{after[0]}:{after[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, _, task_id = text.partition(":")
        return int(score), task_id
    except ValueError as exc:
        raise InvalidCursorError("invalid cursor") from exc
