"""What a workflow is made of, next to taskiq's API: `task.s(...)` signatures, `|` chains,
`group(...)`, `chord(group, callback)` and `dag(name=signature.after(...), ...)`.

Everything here is pure: `compile_plan` turns a canvas into the flat list of steps (with their
dependencies) that is stored in Redis and driven by `engine.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from src.engine.core.errors import LabelError
from src.engine.core.labels import LOCAL, WORKFLOW

if TYPE_CHECKING:
    from src.engine.workflows.handle import WorkflowHandle

Kind = Literal["chain", "group", "chord", "dag"]
Predicate: TypeAlias = Callable[[Any], bool]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
STEP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _predicate_path(when: Predicate) -> str:
    """Conditions are stored by import path (`module:function`), so any worker can run them."""
    module, name = getattr(when, "__module__", None), getattr(when, "__qualname__", "")
    if not module or not name or "<" in name:
        raise LabelError(f"a condition must be a module-level function, got {when!r}")
    return f"{module}:{name}"


class _Startable:
    """`await canvas.kiq()`: store the workflow and dispatch its first steps."""

    async def kiq(self, broker: Any = None) -> WorkflowHandle:
        canvas: Canvas = self  # type: ignore[assignment]
        broker = broker or next((s.broker for s in _signatures(canvas) if s.broker), None)
        if broker is None:
            raise LabelError("no broker to start this workflow on: pass kiq(broker=...)")
        handle: WorkflowHandle = await broker.workflows.kiq(canvas)
        return handle


def _signatures(canvas: Canvas) -> list[Signature]:
    if isinstance(canvas, Signature):
        return [canvas]
    if isinstance(canvas, Group):
        return list(canvas.members)
    if isinstance(canvas, Chord):
        return [*canvas.header.members, canvas.body]
    if isinstance(canvas, Dag):
        return list(canvas.steps.values())
    return [s for part in canvas.parts for s in _signatures(part)]


@dataclass(frozen=True)
class Signature(_Startable):
    """One task call in a workflow. Unless immutable (`.si()`), a step gets the result of what
    it depends on as its first argument (a list when it depends on several)."""

    task_name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, Any] = field(default_factory=dict)
    immutable: bool = False
    depends_on: tuple[str, ...] = ()
    when: str | None = None
    # The broker of the task it was made from: where `kiq()` starts the workflow.
    broker: Any = field(default=None, compare=False, repr=False)

    def with_labels(self, **labels: Any) -> Signature:
        return replace(self, labels={**self.labels, **labels})

    def after(self, *steps: str, when: Predicate | None = None) -> Signature:
        """In a `dag`: run after the named steps, and only if `when(input)` is true."""
        return replace(self, depends_on=steps, when=None if when is None else _predicate_path(when))

    def __or__(self, other: Part) -> Chain:
        return Chain((self,)) | other


@dataclass(frozen=True)
class Chain(_Startable):
    parts: tuple[Part, ...]

    def __or__(self, other: Part) -> Chain:
        extra = other.parts if isinstance(other, Chain) else (other,)
        return Chain(self.parts + extra)


@dataclass(frozen=True)
class Group(_Startable):
    members: tuple[Signature, ...]

    def __or__(self, other: Part) -> Chain:
        return Chain((self,)) | other


@dataclass(frozen=True)
class Chord(_Startable):
    header: Group
    body: Signature

    def __or__(self, other: Part) -> Chain:
        return Chain((self,)) | other


@dataclass(frozen=True)
class Dag(_Startable):
    steps: Mapping[str, Signature]


Part: TypeAlias = Signature | Chain | Group | Chord
Canvas: TypeAlias = Part | Dag


def signature(
    broker: Any,
    task_name: str,
    labels: Mapping[str, Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    immutable: bool = False,
) -> Signature:
    wire = {k: v for k, v in labels.items() if k not in LOCAL and k != WORKFLOW}
    return Signature(task_name, tuple(args), dict(kwargs), wire, immutable=immutable, broker=broker)


def chain(*parts: Part) -> Chain:
    """`chain(a.s(x), b.s(), c.s())`, the same as `a.s(x) | b.s() | c.s()`."""
    return Chain(tuple(parts))


def group(*members: Signature | Iterable[Signature]) -> Group:
    """`group(a.s(1), a.s(2))` or `group(a.s(i) for i in range(10))`: run in parallel."""
    flat: list[Signature] = []
    for member in members:
        flat.extend([member] if isinstance(member, Signature) else member)
    return Group(tuple(flat))


def chord(header: Group | Iterable[Signature], body: Signature) -> Chord:
    """`chord(group(...), callback.s())`: the callback runs once, with every member's result."""
    return Chord(header if isinstance(header, Group) else group(header), body)


def dag(**steps: Signature) -> Dag:
    """`dag(fetch=a.s(url), parse=b.s().after("fetch"), ...)`: steps named by their keyword."""
    return Dag(steps)


@dataclass(frozen=True)
class StepSpec:
    """A step as stored: the call, what it waits for, its condition."""

    id: str
    task_name: str
    args: list[Any]
    kwargs: dict[str, Any]
    labels: dict[str, Any]
    depends_on: list[str]
    immutable: bool = False
    when: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_name": self.task_name,
            "args": self.args,
            "kwargs": self.kwargs,
            "labels": self.labels,
            "depends_on": self.depends_on,
            "immutable": self.immutable,
            "when": self.when,
        }

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> StepSpec:
        return cls(**raw)


@dataclass(frozen=True)
class Plan:
    """A workflow's steps in an order where each comes after what it depends on, and which
    steps' results are the workflow's result (`output`)."""

    kind: Kind
    steps: list[StepSpec]
    output: list[str]


def _short(task_name: str) -> str:
    tail = task_name.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    return _UNSAFE.sub("_", tail)[:40] or "step"


class _Builder:
    def __init__(self) -> None:
        self.steps: list[StepSpec] = []

    def add(self, sig: Signature, after: list[str], name: str | None = None) -> str:
        step_id = name or f"{len(self.steps) + 1}-{_short(sig.task_name)}"
        self.steps.append(
            StepSpec(
                step_id,
                sig.task_name,
                list(sig.args),
                dict(sig.kwargs),
                dict(sig.labels),
                after,
                sig.immutable,
                sig.when,
            )
        )
        return step_id

    def part(self, part: Part, after: list[str]) -> list[str]:
        """Adds `part` after the steps `after`; returns the steps whose results it ends with."""
        if isinstance(part, Signature):
            return [self.add(part, after)]
        if isinstance(part, Group):
            return [self.add(member, after) for member in part.members]
        if isinstance(part, Chord):
            return [self.add(part.body, self.part(part.header, after))]
        for inner in part.parts:
            after = self.part(inner, after)
        return after


def compile_plan(canvas: Canvas) -> Plan:
    builder = _Builder()
    if isinstance(canvas, Dag):
        return _compile_dag(canvas, builder)
    if isinstance(canvas, Group) and not canvas.members:
        raise LabelError("a group needs at least one task")
    output = builder.part(canvas, [])
    kind: Kind = (
        "group" if isinstance(canvas, Group) else "chord" if isinstance(canvas, Chord) else "chain"
    )
    return Plan(kind, builder.steps, output)


def _compile_dag(canvas: Dag, builder: _Builder) -> Plan:
    placed: set[str] = set()
    pending = dict(canvas.steps)
    for name, sig in pending.items():
        if not STEP_NAME.fullmatch(name):
            raise LabelError(f"step name {name!r} may only hold letters, digits, '_' and '-'")
        unknown = [d for d in sig.depends_on if d not in pending]
        if unknown:
            raise LabelError(f"step {name!r} depends on unknown step(s) {unknown}")
    while pending:  # topological order, stable by the order the steps were given
        ready = [n for n, s in pending.items() if set(s.depends_on) <= placed]
        if not ready:
            raise LabelError(f"the steps {sorted(pending)} depend on each other in a cycle")
        for name in ready:
            builder.add(pending.pop(name), list(canvas.steps[name].depends_on), name)
            placed.add(name)
    needed = {d for s in canvas.steps.values() for d in s.depends_on}
    return Plan("dag", builder.steps, [s.id for s in builder.steps if s.id not in needed])
