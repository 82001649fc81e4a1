"""The systems under test. Each is imported only when selected, so a run of taskjet alone
needs none of the peers installed."""

from __future__ import annotations

import importlib

from bench.systems.base import Context, System

SYSTEMS: dict[str, str] = {
    "taskjet": "bench.systems.taskjet:Taskjet",
    "taskiq-nats": "bench.systems.taskiq_peers:TaskiqNats",
    "taskiq-redis": "bench.systems.taskiq_peers:TaskiqRedis",
    "celery": "bench.systems.celery_system:CelerySystem",
    "dramatiq": "bench.systems.dramatiq_system:DramatiqSystem",
    "saq": "bench.systems.saq_system:SaqSystem",
    "streaq": "bench.systems.streaq_system:StreaqSystem",
    "taskiq-nats+mark": "bench.systems.taskiq_peers:TaskiqNatsMarked",
}

# Measured as controls, not peers: left out of the goals' "every peer", shown in every table.
# taskiq-nats+mark is taskiq-nats plus one awaited Redis write before each run (the least a
# record kept before running costs), the floor of goal 2's latency for any such system.
REFERENCES = frozenset({"taskiq-nats+mark"})


def load(name: str) -> type[System]:
    module, _, attr = SYSTEMS[name].partition(":")
    cls: type[System] = getattr(importlib.import_module(module), attr)
    return cls


__all__ = ["REFERENCES", "SYSTEMS", "Context", "System", "load"]
