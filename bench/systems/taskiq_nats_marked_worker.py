"""`taskiq worker bench.systems.taskiq_nats_marked_worker:broker` (configured by the harness)."""

from bench.systems.base import config_from_env
from bench.systems.taskiq_peers import build_nats_marked

broker = build_nats_marked(config_from_env())
