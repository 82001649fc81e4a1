"""Private NATS and Redis-protocol servers from pip packages: no Docker, no root.

Used by `taskjet run` (the embedded default) and by the test suite, which starts its own
servers on free ports and may stop, kill and restart them: one NATS server, or a cluster of
three (`cluster.py`), and Redis or Valkey. `python -m src.embedded` is the watchdog of
`taskjet run` (`watchdog.py`): it stops the service and the servers if the launcher dies.
Only the standard library is imported here, so the watchdog starts in milliseconds.
"""

from src.embedded.cluster import NatsCluster
from src.embedded.servers import (
    EmbeddedServerError,
    NatsServer,
    RedisServer,
    ServerProcess,
    free_port,
    nats_server_binary,
    port_is_free,
    redis_server_binary,
)
from src.embedded.stack import EmbeddedServers
from src.embedded.watchdog import (
    Watchdog,
    die_with_parent,
    group_members,
    started_at,
    stop_group,
)

__all__ = [
    "EmbeddedServerError",
    "EmbeddedServers",
    "NatsCluster",
    "NatsServer",
    "RedisServer",
    "ServerProcess",
    "Watchdog",
    "die_with_parent",
    "free_port",
    "group_members",
    "nats_server_binary",
    "port_is_free",
    "redis_server_binary",
    "started_at",
    "stop_group",
]
