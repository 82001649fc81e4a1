"""The `taskiq` CLI plugin: JSON logs in the `taskiq worker` manager, and `taskiq taskjet`.

That every line of a real `taskiq worker` is JSON is tested in `tests/engine/test_telemetry.py`.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator

import pytest

from src import taskiq_plugin
from src.engine.core.logs import JsonFormatter
from tests.support.processes import BIN, ROOT


@pytest.fixture
def root_handlers() -> Iterator[list[logging.Handler]]:
    """The root logger's handlers, put back as they were (level and formats too) after the test."""
    root = logging.getLogger()
    before = list(root.handlers)
    formatters = [h.formatter for h in before]
    level = root.level
    yield before
    root.handlers[:] = before
    root.setLevel(level)
    for handler, formatter in zip(before, formatters, strict=True):
        handler.setFormatter(formatter)


def test_bad_settings_leave_logging_to_taskiq(
    monkeypatch: pytest.MonkeyPatch, root_handlers: list[logging.Handler]
) -> None:
    monkeypatch.setenv("TASKJET_LOG_FORMAT", "yaml")
    taskiq_plugin.configure_logging()  # no exception: the worker processes say what is wrong
    assert logging.getLogger().handlers == root_handlers
    assert not any(isinstance(h.formatter, JsonFormatter) for h in root_handlers)


def test_text_leaves_logging_to_taskiq(
    monkeypatch: pytest.MonkeyPatch, root_handlers: list[logging.Handler]
) -> None:
    monkeypatch.setenv("TASKJET_LOG_FORMAT", "text")
    taskiq_plugin.configure_logging()
    assert logging.getLogger().handlers == root_handlers


def test_json_configures_the_root_logger_first(
    monkeypatch: pytest.MonkeyPatch, root_handlers: list[logging.Handler]
) -> None:
    monkeypatch.setenv("TASKJET_LOG_FORMAT", "json")
    logging.getLogger().handlers.clear()  # as in a fresh `taskiq` process
    taskiq_plugin.configure_logging()
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, JsonFormatter)


def test_taskiq_taskjet_is_the_taskjet_command_line() -> None:
    done = subprocess.run(
        [str(BIN / "taskiq"), "taskjet", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "taskiq taskjet" in done.stdout
    assert "inspect" in done.stdout
