"""The README stays true: its two commands, its configuration table, CI's command."""

from __future__ import annotations

import re

from src.config import ENV_PREFIX, Settings
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
