"""Workflows run by real worker processes: chains, groups, chords, DAGs, conditions, cancel."""

from __future__ import annotations

import uuid
from pathlib import Path

from src.engine.broker import JetStreamBroker
from src.tasks.broker import chain, chord, dag, group
from tests.conftest import StartWorker
from tests.support import tasks
from tests.support.processes import eventually


async def test_chain_passes_each_result_to_the_next_step(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await (tasks.add.s(1, 2) | tasks.add.s(10) | tasks.add.s(100)).kiq()
    result = await handle.wait_result(timeout=60)
    assert result.state == "SUCCESS", result
    assert result.return_value == 113
    record = await handle.record()
    assert record.kind == "chain"
    assert [s.state for s in record.steps] == ["SUCCESS"] * 3
    assert [s.id for s in record.steps] == ["1-add", "2-add", "3-add"]


async def test_chain_stops_at_a_failed_step_and_names_it(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    handle = await chain(tasks.add.s(1, 2), tasks.explode.s("no"), tasks.add.s(1)).kiq()
    result = await handle.wait_result(timeout=60)
    assert result.is_err
    assert result.state == "FAILURE"
    assert result.failed_step == "2-explode"
    assert result.error == "ValueError: no"
    record = await handle.record()
    assert [s.state for s in record.steps] == [
        "SUCCESS",
        "DEAD",
        "SKIPPED",
    ]  # failed, dead-lettered
    assert record.steps[2].error == "2-explode ended DEAD"
    assert record.steps[2].task_id is None, "the step after the failure was never sent"


async def test_group_returns_every_result_in_order_with_the_failures(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    await start_worker()
    members = [tasks.add.s(i, i) for i in range(5)]
    handle = await group(*members[:2], tasks.explode.s(0, "member"), *members[2:]).kiq()
    result = await handle.wait_result(timeout=60)
    assert result.state == "FAILURE"
    assert result.return_value == [0, 2, None, 4, 6, 8]
    assert [r.state for r in result.results] == ["SUCCESS"] * 2 + ["DEAD"] + ["SUCCESS"] * 3
    assert result.results[2].error == "ValueError: member"


async def test_chord_callback_gets_every_member_result_once(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = uuid.uuid4().hex
    await start_worker()
    handle = await chord(group(tasks.add.s(i, 1) for i in range(10)), tasks.tally.s(key)).kiq()
    result = await handle.wait_result(timeout=60)
    assert result.return_value == [i + 1 for i in range(10)]
    assert int(await broker.results.redis.get(f"test-count:{key}")) == 1


async def test_dag_runs_steps_after_their_dependencies_and_skips_on_a_false_condition(
    broker: JetStreamBroker, start_worker: StartWorker
) -> None:
    key = uuid.uuid4().hex
    await start_worker()
    workflow = dag(
        first=tasks.record_order.si(None, key, "first"),
        left=tasks.record_order.s(key, "left").after("first"),
        right=tasks.record_order.s(key, "right").after("first"),
        join=tasks.record_order.s(key, "join").after("left", "right"),
        small=tasks.add.si(2, 3),
        big_only=tasks.record_order.s(key, "never").after("small", when=tasks.is_big),
        after_skip=tasks.record_order.s(key, "never-either").after("big_only"),
    )
    handle = await workflow.kiq()
    result = await handle.wait_result(timeout=60)
    assert result.state == "SUCCESS", result
    order = [t.decode() for t in await broker.results.redis.lrange(f"test-order:{key}", 0, -1)]
    assert order[0] == "first"
    assert order[-1] == "join"
    assert sorted(order[1:3]) == ["left", "right"]
    record = await handle.record()
    states = {s.id: s.state for s in record.steps}
    assert states["big_only"] == "SKIPPED"
    assert states["after_skip"] == "SKIPPED"
    assert "is_big was false" in (next(s for s in record.steps if s.id == "big_only").error or "")
    assert result.return_value == ["join", None]  # the two final steps: join, after_skip


async def test_cancel_stops_the_running_step_and_never_starts_the_rest(
    broker: JetStreamBroker, start_worker: StartWorker, tmp_path: Path
) -> None:
    started, gate = tmp_path / "started", tmp_path / "gate"
    await start_worker()
    handle = await (
        tasks.gated_value.si(1, str(started), str(gate)) | tasks.add.s(1) | tasks.add.s(2)
    ).kiq()
    await eventually(started.exists, what="first step running")
    record = await handle.cancel()
    assert record.state == "CANCELLED"
    assert [s.state for s in record.steps[1:]] == ["CANCELLED", "CANCELLED"]

    async def first_step_cancelled() -> bool:
        return (await handle.record()).steps[0].state == "CANCELLED"

    await eventually(first_step_cancelled, what="running step cancelled")
    result = await handle.wait_result(timeout=10)
    assert result.state == "CANCELLED"
