"""`streaq run bench.systems.streaq_worker:worker` (configured by the harness)."""

from bench.systems.base import config_from_env
from bench.systems.streaq_system import build

worker, _tasks = build(config_from_env())
