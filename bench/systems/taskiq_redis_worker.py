"""`taskiq worker bench.systems.taskiq_redis_worker:broker` (configured by the harness)."""

from bench.systems.base import config_from_env
from bench.systems.taskiq_peers import build_redis_stream

broker = build_redis_stream(config_from_env())
