"""What sending computes before anything is published."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from src.engine.sending.kicker import idempotent_task_id, new_task_id
from src.engine.sending.publisher import rfc3339


def test_schedule_times_round_up_to_the_second() -> None:
    moment = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC).timestamp()
    assert rfc3339(moment) == "2026-11-29T23:59:59Z"
    assert rfc3339(moment + 0.001) == "2026-11-30T00:00:00Z", "never early"
    assert rfc3339(moment + 0.999) == "2026-11-30T00:00:00Z"


def test_idempotent_ids_depend_on_task_and_key() -> None:
    assert idempotent_task_id("a", "k") == idempotent_task_id("a", "k")
    assert idempotent_task_id("a", "k") != idempotent_task_id("b", "k")
    assert idempotent_task_id("a", "k") != idempotent_task_id("a", "k2")
    assert len(idempotent_task_id("a", "k")) == 32


def test_task_ids_are_random_version_4_uuids() -> None:
    ids = {new_task_id() for _ in range(1000)}
    assert len(ids) == 1000
    for task_id in list(ids)[:50]:
        parsed = uuid.UUID(task_id)
        assert parsed.hex == task_id
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
