"""The README stays true: its two commands, its configuration table, CI's command."""

from __future__ import annotations

import re

from src.config import ENV_PREFIX, Settings
from src.profiles import shown
from tests.support.processes import ROOT

README = (ROOT / "README.md").read_text()


def _env_name(field: str) -> str:
    return field.upper() if field in {"nats_url", "redis_url"} else f"{ENV_PREFIX}{field.upper()}"


def test_quick_start_is_two_make_commands() -> None:
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", README, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert [line for line in script.splitlines() if line.startswith("make")] == ["make test"]


def test_every_setting_is_documented() -> None:
    table = README[README.index("## Configuration") :]
    missing = [
        _env_name(name) for name in Settings.model_fields if f"`{_env_name(name)}`" not in table
    ]
    assert missing == []


def test_no_unknown_setting_is_documented() -> None:
    documented = set(re.findall(r"`(TASKJET_[A-Z_]+)`", README))
    stream_names = {"TASKJET_DLQ", "TASKJET_EVENTS", "TASKJET_SCHEDULES"}
    known = {_env_name(name) for name in Settings.model_fields} | stream_names
    assert documented - known == set()


def _documented_defaults() -> dict[str, str]:
    table = README[README.index("## Configuration") :]
    rows = re.findall(r"^\| `([A-Z_]+)` \|([^|]*)\|", table, re.M)
    return {name: cell.strip().strip("`") for name, cell in rows}


def test_every_documented_default_is_the_real_one() -> None:
    documented = _documented_defaults()
    wrong = {
        _env_name(name): (documented.get(_env_name(name)), shown(field.default))
        for name, field in Settings.model_fields.items()
        if documented.get(_env_name(name)) != shown(field.default)
    }
    assert wrong == {}


def _tabled_modules() -> set[str]:
    """The engine modules the architecture table names (`a/b.py`, `c.py` means `a/c.py`)."""
    table = README[README.index("| module | job |") :].split("\n\n", 1)[0]
    named: set[str] = set()
    for row in table.splitlines()[2:]:
        folder = ""
        for name in re.findall(r"`([\w/]+\.py)`", row.split("|")[1]):
            if "/" in name:
                folder, _ = name.rsplit("/", 1)
                named.add(name)
            else:
                named.add(f"{folder}/{name}" if folder else name)
    return named


def test_the_architecture_table_names_every_engine_module() -> None:
    engine = ROOT / "src" / "engine"
    modules = {
        str(path.relative_to(engine)) for path in engine.rglob("*.py") if path.name != "__init__.py"
    }
    assert modules - _tabled_modules() == set()
