"""The `taskiq` CLI plugin: with `TASKJET_LOG_FORMAT=json`, the `taskiq worker` manager process
writes JSON lines too.

taskiq's CLI imports every `taskiq_cli` entry point before it runs a command, in the process
that then starts and watches the worker processes; it never imports the broker's module
itself. taskjet registers this module there, so that when the settings ask for JSON the root
logger writes JSON before taskiq's `logging.basicConfig` runs (which leaves a configured root
logger as it is), and the worker processes it forks write JSON from their first line. The
entry point must name a command: `taskiq taskjet ...` is taskjet's own command line.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskiq.abc.cmd import TaskiqCMD

from src.config import ConfigError, load_settings
from src.engine.core import logs


def configure_logging() -> None:
    """JSON lines from the root logger when the settings ask for them. Settings that do not
    load change nothing here: the worker processes report them."""
    try:
        settings = load_settings()
    except ConfigError:
        return
    if settings.log_format == "json":
        logs.use_json(settings.log_level)


class TaskjetCommand(TaskiqCMD):
    """`taskiq taskjet <args>`: the same as `taskjet <args>`."""

    short_help = "taskjet's command line (the same as `taskjet ...`)"

    def exec(self, args: Sequence[str]) -> int | None:
        from src.cli import app

        app(list(args), prog_name="taskiq taskjet")
        return None


configure_logging()
