"""One worker process of `taskjet worker`: taskiq's own worker loop (`start_listen`), started
as `taskiq worker`'s manager starts it in each of its processes, with the same options.

The launcher's one module that imports taskiq (through `lean.py`), and only in the worker
process.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence


def _stop_with(manager: int) -> None:
    """SIGTERM when the manager dies, even by SIGKILL (PR_SET_PDEATHSIG), set before anything
    slow: a manager killed while this process still imports leaves no orphan behind."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != manager:
        sys.exit(0)  # the manager died before the line above


def main(number: str, manager: str, argv: Sequence[str]) -> None:
    """Worker process `number` of the manager with pid `manager`, with `taskiq worker`'s
    arguments `argv`."""
    _stop_with(int(manager))
    # Log lines name the process as under `taskiq worker` ("worker-0", ...).
    multiprocessing.current_process().name = f"worker-{number}"
    from src.launcher.lean import import_taskiq

    import_taskiq()  # without FastAPI, unless the tasks import it
    from taskiq.cli.worker.args import WorkerArgs
    from taskiq.cli.worker.run import start_listen

    from src.taskiq_plugin import configure_logging

    configure_logging()  # JSON lines when the settings ask for them
    args = WorkerArgs.from_cli(argv)
    if args.configure_logging:
        logging.basicConfig(level=args.log_level, format=args.log_format)
    logging.getLogger("taskiq").setLevel(args.log_level)
    start_listen(args)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
