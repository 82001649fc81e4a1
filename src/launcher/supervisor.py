"""Keeping N worker processes running: start, restart, pass signals on, stop together.

Standard library only: this runs in the manager process, whose footprint is the point.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

logger = logging.getLogger("taskjet.launcher")

# A worker process's exit code when it cannot start (`src.engine.worker.process`): restarting
# it would only fail again.
REFUSED = 2
# A process that ends sooner than this after its start, with an error, counts as a failure:
# restarted after a growing pause (up to _MAX_PAUSE_S), and towards `max_fails`.
_EARLY_S = 5.0
_FIRST_PAUSE_S = 0.5
_MAX_PAUSE_S = 10.0
_POLL_S = 0.1


class _Slot:
    """One of the N places a worker process runs in. (A plain class: `dataclasses` would
    cost this small process a tenth of its memory.)"""

    __slots__ = ("number", "pause_s", "process", "restart_at", "signals", "started_at")

    def __init__(self, number: int) -> None:
        self.number = number
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restart_at = 0.0  # when the next start is due, after a failure
        self.pause_s = _FIRST_PAUSE_S
        self.signals: list[int] = []  # what this process was sent, in order


def _spawn(worker_args: Sequence[str], number: int) -> subprocess.Popen[bytes]:
    """Worker process `number` (its log lines name it `worker-<number>`), told this process's
    pid (it stops when this process dies), with `taskiq worker`'s arguments."""
    child = [sys.executable, "-m", "src.launcher.child", str(number), str(os.getpid())]
    return subprocess.Popen([*child, *worker_args])


class Supervisor:
    """Keeps `processes` worker processes running with `taskiq worker`'s arguments
    `worker_args`, until stopped."""

    def __init__(
        self,
        worker_args: Sequence[str],
        processes: int,
        max_fails: int = -1,
        spawn: Callable[[Sequence[str], int], subprocess.Popen[bytes]] | None = None,
    ) -> None:
        self._worker_args = list(worker_args)
        self._slots = [_Slot(n) for n in range(processes)]
        self._max_fails = max_fails
        self._spawn = spawn or _spawn
        self._fails = 0
        self._stops = 0  # SIGTERM/SIGINT received (the handlers only count; the loop acts)
        self._passed_on = 0  # of those, passed on to the worker processes
        self._reload_requested = False
        self._reloading: list[tuple[_Slot, int]] = []  # (slot, pid to replace), in order

    def run(self) -> int:
        """Until every worker process has stopped after SIGTERM/SIGINT (0), or one refused to
        start (2), or `max_fails` early failures were reached (1)."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        for slot in self._slots:
            self._start(slot)
        code: int | None = None
        while code is None and not self._stops:
            code = self._look_after_each()
            if self._reload_requested:
                self._reload_requested = False
                self._reloading = [(s, s.process.pid) for s in self._slots if s.process]
                logger.info("SIGHUP: restarting %d worker process(es)", len(self._reloading))
            self._reload_next()
            time.sleep(_POLL_S)
        return self._stop_all(code or 0)

    def _on_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stops += 1

    def _on_reload(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload_requested = True

    def _start(self, slot: _Slot) -> None:
        slot.process = self._spawn(self._worker_args, slot.number)
        slot.started_at = time.monotonic()
        slot.signals = []
        logger.info("worker process %d started (pid %d)", slot.number, slot.process.pid)

    def _look_after_each(self) -> int | None:
        """Restart what ended; an exit code to stop everything with, if it comes to that."""
        now = time.monotonic()
        for slot in self._slots:
            if slot.process is None:
                if now >= slot.restart_at:
                    self._start(slot)
                continue
            code = slot.process.poll()
            if code is None:
                continue
            pid, slot.process = slot.process.pid, None
            if code == REFUSED:
                logger.critical(
                    "worker process %d (pid %d) cannot start; stopping", slot.number, pid
                )
                return REFUSED
            if code != 0 and not slot.signals and now - slot.started_at < _EARLY_S:
                self._fails += 1
                if 0 < self._max_fails <= self._fails:
                    logger.critical("%d worker process failures: stopping", self._fails)
                    return 1
                slot.restart_at = now + slot.pause_s
                logger.error(
                    "worker process %d (pid %d) ended with %d after %.1fs; restarting in %.1fs",
                    slot.number, pid, code, now - slot.started_at, slot.pause_s,
                )  # fmt: skip
                slot.pause_s = min(slot.pause_s * 2, _MAX_PAUSE_S)
                continue
            logger.info(
                "worker process %d (pid %d) ended with %d; restarting", slot.number, pid, code
            )
            slot.pause_s = _FIRST_PAUSE_S
            self._start(slot)
        return None

    def _reload_next(self) -> None:
        """SIGHUP: one process at a time gets SIGTERM, the next once the one before is back."""
        while self._reloading:
            slot, pid = self._reloading[0]
            if slot.process is None or slot.process.pid != pid:
                self._reloading.pop(0)  # ended (and started again, or about to be)
                continue
            if not slot.signals:
                self._send(slot, signal.SIGTERM)
            return

    def _pass_signals_on(self) -> None:
        """The first SIGTERM/SIGINT asks each worker process to stop gracefully (SIGTERM);
        each one after it is passed on as SIGINT, which cuts their grace period short."""
        while self._passed_on < self._stops:
            self._passed_on += 1
            signum = signal.SIGTERM if self._passed_on == 1 else signal.SIGINT
            for slot in self._slots:
                if slot.process is not None and slot.process.poll() is None:
                    if signum == signal.SIGTERM and signal.SIGTERM in slot.signals:
                        continue  # already asked (a restart on SIGHUP)
                    self._send(slot, signum)

    def _send(self, slot: _Slot, signum: int) -> None:
        assert slot.process is not None
        slot.signals.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.process.pid, signum)

    def _stop_all(self, code: int) -> int:
        """Every worker process asked to stop and waited for (each has its own grace period
        for what it runs), passing on further signals meanwhile."""
        self._stops = max(self._stops, 1)
        running = [slot for slot in self._slots if slot.process is not None]
        while running:
            self._pass_signals_on()
            for slot in list(running):
                assert slot.process is not None
                if slot.process.poll() is not None:
                    logger.info(
                        "worker process %d (pid %d) stopped (%d)",
                        slot.number, slot.process.pid, slot.process.returncode,
                    )  # fmt: skip
                    running.remove(slot)
            time.sleep(_POLL_S)
        return code
