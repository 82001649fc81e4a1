"""The metrics text taskjet writes itself is what prometheus_client's formatter writes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from src.api.metrics import Snapshot, SnapshotCollector, render
from src.engine.operations.monitor import QueueDepth, QueueStatus
from src.engine.state.stats import BUCKETS, OUTCOMES, SeriesTotals


def _snapshot() -> Snapshot:
    nb = len(BUCKETS) + 1
    totals = [
        SeriesTotals(
            task=task,
            queue=queue,
            outcomes={o: i * 7 + n for n, o in enumerate(OUTCOMES)},
            run_count=3 * i,
            run_sum=0.125 * i + 1e7,
            run_buckets=[i if b % 3 == 0 else 0 for b in range(nb)],
            wait_count=2 * i,
            wait_sum=1.5,
            wait_buckets=[1 if b == i % nb else 0 for b in range(nb)],
        )
        for i, (task, queue) in enumerate(
            [("a:b", "default"), ('odd "name"\\ with\nnewline', "email"), ("x.y|z", "low-1")]
        )
    ]
    # Plain values (the templated path), a `%` in a name, and counts of a million or more.
    for i, (task, queue, big) in enumerate([("100% done", "q%s", 0), ("m:n", "default", 10**6)]):
        totals.append(
            SeriesTotals(
                task=task,
                queue=queue,
                outcomes={o: big + n for n, o in enumerate(OUTCOMES)},
                run_count=big + 3,
                run_sum=0.375 + i,
                run_buckets=[big + 1, 0, 2, *([0] * (nb - 3))],
                wait_count=3,
                wait_sum=12345.5,
                wait_buckets=[0] * (nb - 1) + [3],
            )
        )
    depth = QueueDepth(messages=3, lanes={"high": 1, "normal": 2, "low": 0}, consumed=True)
    status = QueueStatus(
        queues={"primary": 3, "retry": 0, "scheduled": 0, "dlq": 4},
        states={},
        named_queues={"default": depth},
        workers=[],
        retry_ratio=0.0,
    )
    return Snapshot(status, totals, {"nightly": 0.25})


Families = dict[str, tuple[str, str, list[tuple[str, list[tuple[str, str]], float]]]]


def _families(text: str) -> Families:
    return {
        f.name: (
            f.type,
            f.documentation,
            sorted((s.name, sorted(s.labels.items()), s.value) for s in f.samples),
        )
        for f in text_string_to_metric_families(text)
    }


def test_the_written_text_is_the_formatters() -> None:
    snap = _snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    reference = generate_latest(registry).decode()
    written = render(snap).decode()
    assert _families(written) == _families(reference)
    assert sorted(written.splitlines()) == sorted(reference.splitlines())
