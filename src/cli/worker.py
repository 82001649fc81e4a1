"""`taskjet worker BROKER [MODULES ...] [options]`: worker processes under taskjet's own
manager (`src/launcher/`), with `taskiq worker`'s arguments and options.

This process is replaced by the manager (exec), so what stays running is the manager's small
footprint, not this command line's.
"""

from __future__ import annotations

import os
import sys

import typer


def worker(ctx: typer.Context) -> None:
    """Run worker processes: `taskiq worker`'s arguments and options (`--workers`,
    `--max-async-tasks`, `--receiver`, ...), under a manager that loads no taskiq itself."""
    # The user's own arguments, run as they are (no shell).
    os.execv(sys.executable, [sys.executable, "-m", "src.launcher", *ctx.args])  # noqa: S606
