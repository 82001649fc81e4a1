"""`taskiq worker bench.systems.taskiq_nats_worker:broker` (configured by the harness)."""

from bench.systems.base import config_from_env
from bench.systems.taskiq_peers import build_nats

broker = build_nats(config_from_env())
