"""`celery -A bench.systems.celery_worker worker` (configured by the harness)."""

from bench.systems.base import config_from_env
from bench.systems.celery_system import build

app = build(config_from_env())
