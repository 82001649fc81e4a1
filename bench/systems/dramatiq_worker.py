"""`dramatiq bench.systems.dramatiq_worker:broker` (configured by the harness)."""

import dramatiq

from bench.systems.base import config_from_env
from bench.systems.dramatiq_system import build

broker, _parts = build(config_from_env())
dramatiq.set_broker(broker)
