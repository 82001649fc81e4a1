"""`python -m src.launcher <taskiq worker arguments>` (or `taskjet worker ...`).

The arguments are `taskiq worker`'s: this manager reads `--workers`/`-w` (default 2, as
taskiq's) and `--max-fails` (default -1: never give up) and passes the rest to each worker
process. `--reload` (taskiq's file watcher, for development) is `taskiq worker`'s alone.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from src.launcher.supervisor import Supervisor

_FORMAT = "[%(asctime)s][%(name)s][%(levelname)-7s][%(processName)s] %(message)s"
USAGE = "usage: taskjet worker BROKER [MODULES ...] [taskiq worker options] [--workers N]"


class UsageError(Exception):
    """Arguments this manager cannot run with; the message says which and why."""


def split_arguments(argv: Sequence[str]) -> tuple[int, int, list[str]]:
    """(`--workers`, `--max-fails`, the arguments for each worker process)."""
    values = {"--workers": 2, "--max-fails": -1}
    rest: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, _, inline = arg.partition("=")
        name = "--workers" if name == "-w" else name
        if name in ("--reload", "-r"):
            raise UsageError(
                f"{arg}: `taskjet worker` does not watch files; use `taskiq worker --reload` "
                "in development"
            )
        if name not in values:
            rest.append(arg)
            continue
        text = inline if inline else (args.pop(0) if args else "")
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{name} needs a whole number, not {text!r}") from None
        if name == "--workers" and value < 1:
            raise UsageError(f"--workers must be at least 1, not {value}")
        values[name] = value
    if not rest or rest[0].startswith("-"):
        raise UsageError("name the broker first, e.g. src.tasks.broker:broker")
    return values["--workers"], values["--max-fails"], rest


def _log_level(rest: Sequence[str]) -> str:
    for i, arg in enumerate(rest):
        if arg == "--log-level" and i + 1 < len(rest):
            return rest[i + 1].upper()
        if arg.startswith("--log-level="):
            return arg.partition("=")[2].upper()
    return "INFO"


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    if os.environ.get("TASKJET_LOG_FORMAT", "text").lower() == "json":
        from src.engine.core.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")


def main(argv: Sequence[str]) -> int:
    try:
        workers, max_fails, rest = split_arguments(argv)
    except UsageError as exc:
        print(f"{USAGE}\ntaskjet worker: {exc}", file=sys.stderr)
        return 2
    _configure_logging(_log_level(rest))
    logging.getLogger("taskjet.launcher").info(
        "starting %d worker process(es) (pid %d)", workers, os.getpid()
    )
    return Supervisor(rest, workers, max_fails).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
