"""Canvases compile to steps with their dependencies; the next steps follow from a snapshot."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from src.engine.core.errors import LabelError
from src.engine.workflows.canvas import Signature, chain, chord, compile_plan, dag, group
from src.engine.workflows.join import Snapshot, dump_plan, final_state, next_steps


def positive(value: Any) -> bool:
    return bool(value and value > 0)


def sig(name: str, *args: Any) -> Signature:
    return Signature(f"app.tasks:{name}", args, {}, {"queue_name": "q"})


def _deps(canvas: Any) -> list[tuple[str, list[str]]]:
    return [(s.id, s.depends_on) for s in compile_plan(canvas).steps]


def test_a_chain_runs_each_step_after_the_last() -> None:
    canvas = sig("a", 1) | sig("b") | sig("c")
    assert canvas == chain(sig("a", 1), sig("b"), sig("c"))
    plan = compile_plan(canvas)
    assert (plan.kind, plan.output) == ("chain", ["3-c"])
    assert _deps(canvas) == [("1-a", []), ("2-b", ["1-a"]), ("3-c", ["2-b"])]
    assert plan.steps[0].labels == {"queue_name": "q"}


def test_a_group_runs_in_parallel_and_a_chord_joins_it() -> None:
    members = group(sig("m", i) for i in range(3))
    assert compile_plan(members).output == ["1-m", "2-m", "3-m"]
    plan = compile_plan(chord(members, sig("cb")))
    assert (plan.kind, plan.output) == ("chord", ["4-cb"])
    assert plan.steps[-1].depends_on == ["1-m", "2-m", "3-m"]
    # A group inside a chain: every member after the step before, the next after all of them.
    assert _deps(sig("a") | members | sig("z")) == [
        ("1-a", []),
        ("2-m", ["1-a"]),
        ("3-m", ["1-a"]),
        ("4-m", ["1-a"]),
        ("5-z", ["2-m", "3-m", "4-m"]),
    ]


def test_a_dag_is_ordered_by_its_dependencies_and_refuses_cycles_and_unknown_steps() -> None:
    canvas = dag(last=sig("d").after("mid"), mid=sig("c").after("first"), first=sig("a"))
    plan = compile_plan(canvas)
    assert [s.id for s in plan.steps] == ["first", "mid", "last"]
    assert plan.output == ["last"]
    with pytest.raises(LabelError, match="cycle"):
        compile_plan(dag(a=sig("a").after("b"), b=sig("b").after("a")))
    with pytest.raises(LabelError, match="unknown"):
        compile_plan(dag(a=sig("a").after("zzz")))
    with pytest.raises(LabelError, match="module-level function"):
        sig("a").after(when=lambda v: True)
    with pytest.raises(LabelError, match="at least one"):
        compile_plan(group())


def _snapshot(canvas: Any, **steps: tuple[str, Any]) -> Snapshot:
    plan = compile_plan(canvas)
    raw: dict[str, Any] = {"spec": dump_plan(plan, 0.0), "state": "RUNNING"}
    for step, (state, value) in steps.items():
        raw[f"s:{step}"] = orjson.dumps({"state": state, "task_id": "t", "error": None})
        raw[f"r:{step}"] = orjson.dumps(value)
        raw[f"d:{step}"] = "t"
    return Snapshot.of(raw)


def test_next_steps_get_their_dependencies_results() -> None:
    canvas = chord(group(sig("m", 1), sig("m", 2)), sig("cb"))
    assert [n.step.id for n in next_steps(_snapshot(canvas))] == ["1-m", "2-m"]
    waiting = _snapshot(canvas, **{"1-m": ("SUCCESS", 10)})
    assert [n.step.id for n in next_steps(waiting)] == ["2-m"], "the callback still waits"
    both = _snapshot(canvas, **{"1-m": ("SUCCESS", 10), "2-m": ("SUCCESS", 20)})
    (callback,) = next_steps(both)
    assert (callback.step.id, callback.input, callback.skip_reason) == ("3-cb", ([10, 20],), None)


def test_a_failed_dependency_or_a_false_condition_skips_the_step() -> None:
    canvas = sig("a") | sig("b") | sig("c")
    (skip,) = next_steps(_snapshot(canvas, **{"1-a": ("DEAD", None)}))
    assert (skip.step.id, skip.skip_reason) == ("2-b", "1-a ended DEAD")
    ended = _snapshot(canvas, **{"1-a": ("DEAD", None), "2-b": ("SKIPPED", None)})
    assert next_steps(ended)[0].skip_reason == "2-b ended SKIPPED"
    conditional = dag(a=sig("a"), b=sig("b").after("a", when=positive))
    (no,) = next_steps(_snapshot(conditional, a=("SUCCESS", -1)))
    assert no.skip_reason == f"condition {__name__}:positive was false"
    (yes,) = next_steps(_snapshot(conditional, a=("SUCCESS", 3)))
    assert (yes.skip_reason, yes.input) == (None, (3,))
    failed = _snapshot(canvas, **{"1-a": ("SUCCESS", 1), "2-b": ("FAILURE", None)})
    assert failed.failed_step == "2-b"
    assert final_state(failed) == "FAILURE"


def test_an_immutable_step_gets_only_its_own_arguments() -> None:
    canvas = sig("a") | Signature("app.tasks:b", (7,), immutable=True)
    (step,) = next_steps(_snapshot(canvas, **{"1-a": ("SUCCESS", 5)}))
    assert step.input == ()
