"""A Redis primary, two replicas and three sentinels watching them, on free ports in a folder
of the test's: Redis with failover, as a platform runs it (after losing the primary, the new
one still has a replica, so writes that must reach one keep succeeding)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from src.embedded import free_port, redis_server_binary
from tests.support.processes import Proc, eventually, spawn

SERVICE = "taskjet-primary"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _in_sync(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), 1) as sock, sock.makefile("rb") as reply:
        sock.sendall(b"INFO replication\r\n")
        size = int(reply.readline()[1:])  # a bulk reply: `$<size>`, then that many bytes
        return b"master_link_status:up" in reply.read(size)


@dataclass
class SentinelSet:
    root: Path
    primary_port: int = field(default_factory=free_port)
    replica_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(2)])
    sentinel_ports: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _data_node(self, name: str, port: int, *extra: str) -> None:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port),
                "--dir", str(folder), "--save", "", "--appendonly", "no", *extra]  # fmt: skip
        self.procs[name] = spawn(args, dict(os.environ), self.root / f"{name}.log")

    async def start(self) -> None:
        self._data_node("primary", self.primary_port)
        for number, port in enumerate(self.replica_ports):
            self._data_node(f"replica-{number}", port, "--replicaof", "127.0.0.1",
                            str(self.primary_port))  # fmt: skip
        for number, port in enumerate(self.sentinel_ports):
            conf = self.root / f"sentinel-{number}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.root}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            args = [redis_server_binary(), str(conf), "--sentinel"]
            name = f"sentinel-{number}"
            self.procs[name] = spawn(args, dict(os.environ), self.root / f"{name}.log")
        for port in (self.primary_port, *self.replica_ports, *self.sentinel_ports):
            await eventually(lambda port=port: _answers(port), what=f"redis on {port}")
        for port in self.replica_ports:
            await eventually(lambda port=port: _in_sync(port), timeout_s=60, what="replica in sync")

    def kill_primary(self) -> None:
        self.procs["primary"].kill()

    async def stop(self) -> None:
        for proc in self.procs.values():
            await proc.stop(10)
