"""Prometheus metrics of the whole cluster, read at scrape time from JetStream and Redis.

Nothing here counts in this process: the task counters are the cluster-wide ones the record
script writes (`engine/state/stats.py`), queue depths come from JetStream, workers from their
reports. So one scrape of any API replica gives the whole cluster, and Prometheus need not reach
worker pods. A scrape reads everything first (async), then a `prometheus_client` collector turns
that snapshot into the text format.

The three families per task name (outcomes and two histograms: 41 samples a name) are written
by `task_families` instead of prometheus_client's generic formatter, which spends ~25 us on a
sample: a second per scrape at 1,000 task names. It fills one template of a series' lines per
family (about 7 ms at 1,000 names). The text is the same (a test parses both). Nothing is
cached between scrapes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from src.engine.broker import JetStreamBroker
from src.engine.core.priority import LANES
from src.engine.operations.monitor import QueueStatus
from src.engine.state.stats import BUCKETS, OUTCOMES, SeriesTotals

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BOUNDS = [*(f"{b:g}" for b in BUCKETS), "+Inf"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one scrape reports."""

    status: QueueStatus
    totals: list[SeriesTotals]
    schedule_lags: dict[str, float]


async def snapshot(broker: JetStreamBroker) -> Snapshot:
    status, totals, lags = await asyncio.gather(
        broker.monitor.status(), broker.stats.totals(), broker.schedules.lags()
    )
    return Snapshot(status, totals, lags)


class SnapshotCollector(Collector):
    """The metric families of one snapshot (names documented in the README)."""

    def __init__(self, snap: Snapshot, with_tasks: bool = True) -> None:
        self._snap = snap
        self._with_tasks = with_tasks

    def collect(self) -> Iterator[Metric]:
        status = self._snap.status
        depth = GaugeMetricFamily(
            "taskjet_queue_depth",
            "Messages in the queue (queued and running) per priority lane.",
            labels=["queue", "lane"],
        )
        in_flight = GaugeMetricFamily(
            "taskjet_tasks_in_flight",
            "Tasks delivered to a worker and not yet settled.",
            labels=["queue"],
        )
        workers = GaugeMetricFamily(
            "taskjet_workers", "Live workers consuming the queue.", labels=["queue"]
        )
        for queue, info in status.named_queues.items():
            for lane in LANES:
                depth.add_metric([queue, lane], info.lanes.get(lane, 0))
            in_flight.add_metric([queue], info.in_flight or 0)
            workers.add_metric([queue], sum(queue in w.queues for w in status.workers))
        yield depth
        yield in_flight
        yield GaugeMetricFamily(
            "taskjet_dead_letters", "Entries in the dead-letter queue.", value=status.queues["dlq"]
        )
        yield workers
        if self._with_tasks:
            yield from self._tasks()
        lag = GaugeMetricFamily(
            "taskjet_schedule_lag_seconds",
            "How late the last run of each schedule was dispatched.",
            labels=["schedule"],
        )
        for schedule_id, seconds in sorted(self._snap.schedule_lags.items()):
            lag.add_metric([schedule_id], seconds)
        yield lag

    def _tasks(self) -> Iterator[Metric]:
        outcomes = CounterMetricFamily("taskjet_tasks", _HELP["taskjet_tasks_total"], labels=_OUT)
        run = HistogramMetricFamily(_RUN, _HELP[_RUN], labels=["task", "queue"])
        wait = HistogramMetricFamily(_WAIT, _HELP[_WAIT], labels=["task", "queue"])
        for entry in self._snap.totals:
            labels = [entry.task, entry.queue]
            for outcome in OUTCOMES:
                outcomes.add_metric([*labels, outcome], entry.outcomes[outcome])
            run.add_metric(labels, _cumulative(entry.run_buckets), entry.run_sum)
            wait.add_metric(labels, _cumulative(entry.wait_buckets), entry.wait_sum)
        yield outcomes
        yield run
        yield wait


def _cumulative(per_bucket: list[int]) -> list[tuple[str, float]]:
    total = 0
    out: list[tuple[str, float]] = []
    for bound, n in zip(_BOUNDS, per_bucket, strict=True):
        total += n
        out.append((bound, total))
    return out


async def scrape(broker: JetStreamBroker) -> bytes:
    """One scrape: read the cluster's state, render it."""
    return render(await snapshot(broker))


def render(snap: Snapshot) -> bytes:
    """The Prometheus text format of a snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap, with_tasks=False))
    return b"".join([generate_latest(registry), *task_families(snap.totals)])


def task_families(totals: list[SeriesTotals]) -> list[bytes]:
    """`taskjet_tasks_total` and the two histograms, as `generate_latest` writes them (in
    pieces, joined once with the rest).

    Each series is a fixed block of lines per family: the family's template, with the series'
    labels put in, is filled by one `%` (no Python work per sample). A value that the Go float
    format writes otherwise than `%d.0` or `repr` (a million or more, NaN, infinities) sends
    its block down the sample-by-sample path."""
    outcomes = [_head("taskjet_tasks_total", "counter")]
    run, wait = [_head(_RUN, "histogram")], [_head(_WAIT, "histogram")]
    for entry in totals:
        text = f'queue="{_escape(entry.queue)}",task="{_escape(entry.task)}"'
        labels = text.replace("%", "%%").encode()  # goes into templates that `%` fills
        counts = [entry.outcomes[outcome] for outcome in OUTCOMES]
        if max(counts) < _PLAIN_BELOW:
            outcomes.append(_OUTCOMES_BLOCK.replace(_LABELS, labels) % tuple(counts))
        else:
            outcomes.append(_outcome_lines(text, counts))
        for into, name, per_bucket, sum_s in (
            (run, _RUN, entry.run_buckets, entry.run_sum),
            (wait, _WAIT, entry.wait_buckets, entry.wait_sum),
        ):
            cumulative = list(accumulate(per_bucket))
            if max(cumulative) < _PLAIN_BELOW and -math.inf < sum_s < _PLAIN_BELOW:
                values = (*cumulative, cumulative[-1], float(sum_s))
                into.append(_HISTOGRAM_BLOCKS[name].replace(_LABELS, labels) % values)
            else:
                into.append(_histogram_lines(name, text, cumulative, sum_s))
    return [*outcomes, *run, *wait]


_RUN, _WAIT = "taskjet_task_run_seconds", "taskjet_task_wait_seconds"
_OUT = ["task", "queue", "outcome"]
_HELP = {
    "taskjet_tasks_total": "Tasks by final state (retried: attempts that failed and ran again).",
    _RUN: "Run time of each attempt.",
    _WAIT: "Time from queued (or due, or retry time) to started.",
}
# Below a million, prometheus_client writes a count as `%d.0` and a sum as its `repr`.
_PLAIN_BELOW = 1_000_000
_LABELS = b"\x00"  # where a block's template takes the series' labels (never in the fixed text)
_OUTCOMES_BLOCK = b"".join(
    b'taskjet_tasks_total{outcome="%s",\x00} %%d.0\n' % o.encode() for o in OUTCOMES
)
_HISTOGRAM_BLOCKS = {
    name: b"".join(
        [
            *(b'%s_bucket{le="%s",\x00} %%d.0\n' % (name.encode(), b.encode()) for b in _BOUNDS),
            b"%s_count{\x00} %%d.0\n%s_sum{\x00} %%r\n" % (name.encode(), name.encode()),
        ]
    )
    for name in (_RUN, _WAIT)
}


def _outcome_lines(text: str, counts: list[int]) -> bytes:
    return "".join(
        f'taskjet_tasks_total{{outcome="{outcome}",{text}}} {_go(n)}\n'
        for outcome, n in zip(OUTCOMES, counts, strict=True)
    ).encode()


def _histogram_lines(name: str, text: str, cumulative: list[int], sum_s: float) -> bytes:
    lines = [
        f'{name}_bucket{{le="{bound}",{text}}} {_go(n)}\n'
        for bound, n in zip(_BOUNDS, cumulative, strict=True)
    ]
    lines.append(f"{name}_count{{{text}}} {_go(cumulative[-1])}\n")
    lines.append(f"{name}_sum{{{text}}} {_go(sum_s)}\n")
    return "".join(lines).encode()


def _head(name: str, kind: str) -> bytes:
    return f"# HELP {name} {_HELP[name]}\n# TYPE {name} {kind}\n".encode()


def _go(value: float) -> str:
    """A value as prometheus_client writes it."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value
