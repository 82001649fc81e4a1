"""`saq bench.systems.saq_worker.settings` (configured by the harness)."""

from bench.systems.base import config_from_env
from bench.systems.saq_system import settings as _settings

settings = _settings(config_from_env())
