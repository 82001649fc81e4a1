"""A NATS cluster of three nodes on one machine: routes on private ports, JetStream on each,
so streams can keep three replicas and survive losing a node, as in production."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from src.embedded.servers import EmbeddedServerError, NatsServer, free_port

if TYPE_CHECKING:
    from src.embedded.watchdog import Watchdog

SIZE = 3


def _monitor(port: int, path: str) -> dict[str, Any] | None:
    """A node's monitoring endpoint's answer, or None if it is not (yet) fine."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # our own node
            found: dict[str, Any] = json.load(answer)
            return found
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _healthy(monitor_port: int) -> bool:
    """The node's JetStream is up and the cluster has a meta leader (`/healthz`)."""
    return _monitor(monitor_port, "/healthz?js-enabled-only=true") is not None


def _all_peers_current(monitor_port: int, size: int) -> bool:
    """As the JetStream meta leader sees it: every peer is in the group and up to date, so a
    stream with `size` replicas can be placed."""
    meta = (_monitor(monitor_port, "/jsz") or {}).get("meta_cluster") or {}
    replicas = meta.get("replicas") or []
    return (
        bool(meta.get("leader"))
        and meta.get("cluster_size") == size
        and len(replicas) == size - 1
        and all(peer.get("current") for peer in replicas)
    )


@dataclass
class NatsCluster:
    """Three `NatsServer` nodes that route to each other. Clients list all three URLs."""

    nodes: list[NatsServer]
    data_dir: Path

    @classmethod
    def create(cls, data_dir: Path, first_port: int | None = None) -> NatsCluster:
        client_ports = [free_port(first_port + n if first_port else None) for n in range(SIZE)]
        route_ports = [free_port() for _ in range(SIZE)]
        nodes = [
            NatsServer(
                name=f"nats-{n}",
                port=client_ports[n],
                data_dir=data_dir / f"node-{n}",
                cluster_port=route_ports[n],
                routes=tuple(p for i, p in enumerate(route_ports) if i != n),
                monitor_port=free_port(),
            )
            for n in range(SIZE)
        ]
        return cls(nodes=nodes, data_dir=data_dir)

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    @property
    def running(self) -> bool:
        return any(node.running for node in self.nodes)

    def start(self, timeout_s: float = 60.0, watchdog: Watchdog | None = None) -> None:
        for node in self.nodes:
            node.start(watchdog=watchdog)
        self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Until every running node says JetStream is ready (a meta leader was elected)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            up = [n for n in self.nodes if n.running and n.monitor_port]
            if (
                up
                and all(_healthy(n.monitor_port or 0) for n in up)
                and any(_all_peers_current(n.monitor_port or 0, len(up)) for n in up)
            ):
                return
            time.sleep(0.1)
        raise EmbeddedServerError(f"the NATS cluster did not become ready in {timeout_s}s")

    def node_named(self, server_name: str) -> NatsServer:
        return next(node for node in self.nodes if node.server_name == server_name)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()
