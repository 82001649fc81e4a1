"""Worker processes without the web framework, unless their tasks bring it.

taskiq's dependency injection (`taskiq_dependencies.graph`) imports FastAPI when it is installed,
only to recognise FastAPI's `Depends` in a task's signature. The image installs FastAPI for the
API server, so every worker process paid for it (about 6 MB resident) although no task of its
own needs it. `import_taskiq` imports taskiq with FastAPI hidden, then watches for FastAPI being
imported later: a task module that uses FastAPI's `Depends` has imported FastAPI by the time its
functions are defined, and its `Depends` are recognised as under `taskiq worker`.

Only the launcher's worker processes (`child.py`) do this; `taskiq worker` loads taskiq as it is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_FRAMEWORK = "fastapi"
_PARAMS = "fastapi.params"  # where `Depends` lives


def import_taskiq() -> None:
    """Import taskiq (and its dependency injection) without FastAPI, if FastAPI is not loaded
    already; FastAPI imported afterwards is made known to taskiq's dependency injection."""
    if _FRAMEWORK in sys.modules:
        return  # already loaded: nothing to save
    sys.modules[_FRAMEWORK] = None  # type: ignore[assignment]  # Python's "cannot import" mark
    try:
        import taskiq  # noqa: F401
        import taskiq_dependencies.graph  # noqa: F401  # where the optional import happens
    finally:
        del sys.modules[_FRAMEWORK]
    sys.meta_path.insert(0, _DependsWatcher())


class _DependsWatcher(importlib.abc.MetaPathFinder):
    """Finds `fastapi.params` as the path finder does, and once it has run, hands its
    `Depends` to taskiq's dependency graph (which then treats it as taskiq's own `Depends`)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _PARAMS:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and isinstance(spec.loader, importlib.abc.Loader):
            spec.loader = _Announcing(spec.loader)
        return spec


class _Announcing(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        graph: Any = sys.modules["taskiq_dependencies.graph"]
        graph.FastapiDepends = module.Depends  # what its optional import sets
