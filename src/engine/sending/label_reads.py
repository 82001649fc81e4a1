"""Label reads on the sending side, remembered: the labels of most sends repeat exactly (those of
the registered task, or of a handful of `with_labels` variants), and checking every label is
most of a send's own work.

A read is remembered by the labels' JSON form, so only labels whose JSON form says everything
about them are remembered: plain `str`, `int`, `float`, `bool`, `None`, lists and dicts of them.
Anything else (a datetime, an enum, a subclass, a dataclass) is read afresh each time, so a
label `TaskLabels.read` would refuse is still refused, named, before anything is sent. NaN and
infinities (which JSON writes as `null`) are read afresh too, and so is the one label read
inside its value (`workflow`, set by the workflow engine on each step). A read that raises is
never remembered.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import orjson

from src.engine.core.labels import WORKFLOW, LabelDefaults, TaskLabels

_PLAIN = frozenset({str, int, float, bool, type(None), list, dict})
# Whatever is not plain JSON makes orjson raise, instead of writing it like a plain value.
_STRICT = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


class LabelReads:
    """`TaskLabels.read`, remembered for labels seen before under the same defaults."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._defaults: object = None
        self._reads: dict[tuple[bytes, Hashable], TaskLabels] = {}

    def read(
        self, labels: Mapping[str, Any], defaults: LabelDefaults, retry_for: Any = None
    ) -> TaskLabels:
        """What `TaskLabels.read(labels, {"retry_for": retry_for}, defaults)` says."""
        local = {} if retry_for is None else {"retry_for": retry_for}
        return self._remembered(labels, local, defaults, _key(labels, retry_for))

    def read_for_task(
        self,
        labels: Mapping[str, Any],
        task_name: str,
        registered: Mapping[str, Any],
        defaults: LabelDefaults,
    ) -> TaskLabels:
        """What `TaskLabels.read(labels, registered, defaults)` says, for the labels a task
        was registered with (`registered`, the same for as long as its name is known)."""
        key = _key(labels, None)
        if key is not None:
            key = (key[0], ("task", task_name))
        return self._remembered(labels, registered, defaults, key)

    def _remembered(
        self,
        labels: Mapping[str, Any],
        local: Mapping[str, Any],
        defaults: LabelDefaults,
        key: tuple[bytes, Hashable] | None,
    ) -> TaskLabels:
        if key is None:
            return TaskLabels.read(labels, local, defaults)
        if defaults is not self._defaults:
            self._reads.clear()
            self._defaults = defaults
        found = self._reads.get(key)
        if found is None:
            found = TaskLabels.read(labels, local, defaults)
            if len(self._reads) >= self._size:
                self._reads.clear()
            self._reads[key] = found
        return found


def _key(labels: Mapping[str, Any], retry_for: Any) -> tuple[bytes, Hashable] | None:
    if WORKFLOW in labels:
        return None
    for value in labels.values():
        if type(value) not in _PLAIN or (type(value) is float and not math.isfinite(value)):
            return None
    try:
        text = orjson.dumps(labels, option=_STRICT)
        hash(retry_for)
    except TypeError:  # orjson's JSONEncodeError is a TypeError too
        return None
    return text, retry_for


# One for the process: the kicker, the publisher and admission read the same labels under the
# same settings.
LABEL_READS = LabelReads()
