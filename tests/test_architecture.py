"""The engine's layout holds: no import cycles, each stage imports only the stages before it,
every package says what it holds, and no module grows past the size one can read at once."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.processes import ROOT

SRC = ROOT / "src"
# Each engine stage may import from the stages listed before it (and from itself).
STAGES = [
    "core",
    "backends",
    "state",
    "sending",
    "worker",
    "scheduling",
    "operations",
    "workflows",
]
MAX_LINES = 400


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """`src.*` modules imported when the module runs (not those only for type checking)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("src"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("src"))
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list) and not isinstance(
                    node, ast.FunctionDef | ast.AsyncFunctionDef
                ):
                    visit([c for c in children if isinstance(c, ast.stmt)])

    visit(tree.body)
    return found


MODULES = {_module(p): p for p in SRC.rglob("*.py")}
GRAPH = {
    name: {m for m in _runtime_imports(path) if m in MODULES} - {name}
    for name, path in MODULES.items()
}


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                walk(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            walk(name, [name])
    assert cycles == []


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return (
        parts[2]
        if len(parts) > 2 and parts[:2] == ["src", "engine"] and parts[2] in STAGES
        else None
    )


def test_each_stage_imports_only_the_stages_before_it() -> None:
    wrong = []
    for name, imports in GRAPH.items():
        stage = _stage(name)
        if stage is None:
            continue
        allowed = set(STAGES[: STAGES.index(stage) + 1])
        for target in imports:
            if target.startswith("src.engine") and _stage(target) not in allowed:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_the_application_tasks_import_only_the_public_face() -> None:
    """`src/tasks` holds the application: it uses `src.tasks.broker`, not engine internals."""
    for path in (SRC / "tasks").glob("*.py"):
        if path.name in {"broker.py", "__init__.py"}:
            continue
        engine = [m for m in GRAPH[_module(path)] if m.startswith("src.engine")]
        assert engine == [], f"{path.name} imports {engine}"


def test_every_package_opens_with_a_docstring() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for path in SRC.rglob("__init__.py")
        if path.parent.name != "routers" and not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert missing == []


def test_no_module_is_too_long_to_read() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
