"""The interpreter SAQ's workers run on: a venv of their own with SAQ as it asks to be
installed (`saq[redis]`: redis-py < 8), made by the harness on first use.

taskjet needs redis-py 8, whose asyncio pool stops at 100 connections; a SAQ worker with 100 job
slots holds more than that (one blocked `BLMOVE` per idle slot, more per running job). With the
pool raised to redis-py 7's size, SAQ on redis-py 8 ran, but slower than on redis-py 7 in every
paired run here, so SAQ is measured on what it declares (bench/README.md has the figures).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata

from bench.procs import ROOT

ENV_DIR = ROOT / ".venv-saq"
PYTHON_ENV = "BENCH_SAQ_PYTHON"  # another interpreter for SAQ's workers (skips the venv)
# The same SAQ as the harness's client (the `bench` extra pins it) and the same hiredis as
# taskjet; typing_extensions is imported by saq 0.26.4 without being declared.
REDIS_PY = "7.4.1"
EXTRA = ("hiredis==3.5.0", "typing_extensions==4.16.0")


def requirements() -> list[str]:
    return [f"saq[redis]=={metadata.version('saq')}", f"redis=={REDIS_PY}", *EXTRA]


def saq_python() -> str:
    """The venv's python, created or brought up to date first (pip, a minute at most)."""
    override = os.environ.get(PYTHON_ENV)
    if override:
        return override
    python = ENV_DIR / "bin" / "python"
    stamp = ENV_DIR / "requirements.txt"
    wanted = "\n".join(requirements()) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ENV_DIR)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *requirements()],
        check=True,
    )  # fmt: skip
    stamp.write_text(wanted)
    return str(python)
