"""Deciding what a workflow does next from one snapshot of its hash: pure, so every worker that
looks at the same snapshot reaches the same decision (and re-publishes the same task ids).

The hash holds `spec` (the plan), `state`, and per step `s:<step>` (its final outcome, written
once), `r:<step>` (its return value) and `d:<step>` (the task id it was dispatched as).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from src.engine.workflows.canvas import Plan, StepSpec

RUNNING, SUCCESS, FAILURE, CANCELLED, SKIPPED = (
    "RUNNING",
    "SUCCESS",
    "FAILURE",
    "CANCELLED",
    "SKIPPED",
)
FAILED_STEP_STATES = frozenset({"FAILURE", "DEAD", "CANCELLED"})


def load_plan(raw: bytes | str) -> Plan:
    doc = orjson.loads(raw)
    return Plan(doc["kind"], [StepSpec.of(s) for s in doc["steps"]], doc["output"])


def dump_plan(plan: Plan, created_at: float) -> bytes:
    return orjson.dumps(
        {
            "kind": plan.kind,
            "steps": [s.as_json() for s in plan.steps],
            "output": plan.output,
            "created_at": created_at,
        }
    )


@dataclass(frozen=True)
class Snapshot:
    plan: Plan
    state: str
    outcomes: dict[str, dict[str, Any]]  # step -> {"state", "task_id", "error", ...}
    results: dict[str, Any]  # step -> return value
    dispatched: dict[str, str]  # step -> task id
    fields: dict[str, str]

    @classmethod
    def of(cls, raw: Mapping[bytes | str, bytes | str]) -> Snapshot:
        text = {_s(k): _s(v) for k, v in raw.items()}
        return cls(
            plan=load_plan(text["spec"]),
            state=text.get("state", RUNNING),
            outcomes={k[2:]: orjson.loads(v) for k, v in text.items() if k.startswith("s:")},
            results={k[2:]: orjson.loads(v) for k, v in text.items() if k.startswith("r:")},
            dispatched={k[2:]: v for k, v in text.items() if k.startswith("d:")},
            fields=text,
        )

    def done(self, step: str) -> bool:
        return step in self.outcomes

    def step_state(self, step: str) -> str:
        outcome = self.outcomes.get(step)
        return str(outcome["state"]) if outcome else ""

    def upstream(self, step: StepSpec) -> Any:
        """What a step is given: its one dependency's result, or the list of them in order."""
        values = [self.results.get(d) for d in step.depends_on]
        return values[0] if len(values) == 1 else values

    def input_of(self, step: StepSpec) -> list[Any]:
        """The arguments put before the step's own."""
        return [] if step.immutable or not step.depends_on else [self.upstream(step)]

    @property
    def all_done(self) -> bool:
        return all(self.done(s.id) for s in self.plan.steps)

    @property
    def failed_step(self) -> str | None:
        return next(
            (s.id for s in self.plan.steps if self.step_state(s.id) in FAILED_STEP_STATES), None
        )


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Next:
    """One decision: dispatch `step` with `input` in front of its arguments, or skip it."""

    step: StepSpec
    skip_reason: str | None = None
    input: tuple[Any, ...] = ()


def next_steps(snapshot: Snapshot) -> list[Next]:
    """Steps whose dependencies all ended and that were neither dispatched nor ended."""
    if snapshot.state != RUNNING:
        return []
    decisions = []
    for step in snapshot.plan.steps:
        if snapshot.done(step.id) or step.id in snapshot.dispatched:
            continue
        if not all(snapshot.done(d) for d in step.depends_on):
            continue
        bad = [d for d in step.depends_on if snapshot.step_state(d) != SUCCESS]
        if bad:
            reason = f"{bad[0]} ended {snapshot.step_state(bad[0])}"
            decisions.append(Next(step, skip_reason=reason))
            continue
        if step.when is not None and not _condition(step.when)(snapshot.upstream(step)):
            decisions.append(Next(step, skip_reason=f"condition {step.when} was false"))
            continue
        decisions.append(Next(step, input=tuple(snapshot.input_of(step))))
    return decisions


def final_state(snapshot: Snapshot) -> str:
    return FAILURE if snapshot.failed_step is not None else SUCCESS


def _condition(path: str) -> Any:
    module, _, name = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target
