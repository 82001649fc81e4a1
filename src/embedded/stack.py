"""NATS (one server or a cluster of three) and Redis side by side, under one data directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from src.embedded.cluster import SIZE, NatsCluster
from src.embedded.servers import NatsServer, RedisServer, free_port

if TYPE_CHECKING:
    from src.embedded.watchdog import Watchdog


@dataclass(kw_only=True)
class EmbeddedServers:
    nats: NatsServer | NatsCluster
    redis: RedisServer

    @classmethod
    def create(
        cls,
        data_dir: Path,
        nats_port: int | None = None,
        redis_port: int | None = None,
        persistent: bool = True,
        cluster: bool = False,
    ) -> EmbeddedServers:
        nats: NatsServer | NatsCluster = (
            NatsCluster.create(data_dir / "nats", nats_port)
            if cluster
            else NatsServer(port=free_port(nats_port), data_dir=data_dir / "nats")
        )
        return cls(
            nats=nats,
            redis=RedisServer(
                port=free_port(redis_port), data_dir=data_dir / "redis", persistent=persistent
            ),
        )

    def start(self, watchdog: Watchdog | None = None) -> None:
        """Start both; `watchdog` stops them if this process dies without stopping them."""
        self.nats.start(watchdog=watchdog)
        try:
            self.redis.start(watchdog=watchdog)
        except BaseException:
            self.nats.stop()
            raise

    def stop(self) -> None:
        self.redis.stop()
        self.nats.stop()

    def environ(self) -> dict[str, str]:
        env = {**os.environ, "NATS_URL": self.nats.url, "REDIS_URL": self.redis.url}
        if isinstance(self.nats, NatsCluster):
            env["TASKJET_STREAM_REPLICAS"] = str(SIZE)
        return env
