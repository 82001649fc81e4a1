"""A dead-letter entry always fits a message (`DeadLetter.fitted`): each step of cutting is
taken only when the one before is not enough, and whatever was left out is marked."""

from __future__ import annotations

import base64

import orjson

from src.engine.state.dead_letters import DeadLetter


def _entry(**fields: object) -> DeadLetter:
    base: dict[str, object] = {
        "task_id": "a" * 32,
        "task_name": "app.tasks:report",
        "queue": "default",
        "reason": "failed",
        "attempts": 3,
        "error_type": "ValueError",
        "error_message": "bad input",
        "traceback": "Traceback (most recent call last): ...",
        "args": [1, 2],
        "kwargs": {"to": "x"},
        "labels": {"priority": 5},
    }
    return DeadLetter.model_validate({**base, **fields})


def _fit(entry: DeadLetter, max_bytes: int) -> dict[str, object]:
    body = entry.fitted(max_bytes)
    assert len(body) <= max_bytes
    fitted: dict[str, object] = orjson.loads(body)
    return fitted


def test_an_entry_that_fits_is_kept_whole() -> None:
    entry = _entry()
    assert _fit(entry, 64 * 1024) == orjson.loads(entry.model_dump_json(exclude={"sequence"}))


def test_long_texts_are_cut_before_anything_is_left_out() -> None:
    fitted = _fit(_entry(error_message="e" * 50_000, traceback="t" * 50_000), 16 * 1024)
    assert fitted["args"] == [1, 2]
    assert fitted["truncated"] is False
    assert fitted["error_message"] == "e" * 2000
    assert fitted["traceback"] == "t" * 8000


def test_large_arguments_are_left_out_and_marked() -> None:
    fitted = _fit(_entry(args=["x" * 100_000]), 16 * 1024)
    assert (fitted["args"], fitted["kwargs"], fitted["labels"]) == ([], {}, {})
    assert fitted["truncated"] is True
    assert fitted["error_message"] == "bad input"


def test_a_large_raw_body_is_left_out_and_marked() -> None:
    raw = base64.b64encode(b"\xff" * 60_000).decode()
    fitted = _fit(_entry(reason="undecodable", payload_b64=raw), 16 * 1024)
    assert fitted["payload_b64"] is None
    assert fitted["truncated"] is True


def test_when_nothing_else_is_enough_only_the_essentials_are_kept() -> None:
    fitted = _fit(
        _entry(
            task_id="i" * 5_000,
            task_name="n" * 20_000,
            error_type="T" * 20_000,
            error_message="m" * 20_000,
        ),
        4096,
    )
    assert fitted["task_id"] == "i" * 128
    assert fitted["task_name"] == "n" * 256
    assert fitted["error_type"] == "T" * 256
    assert fitted["error_message"] == "m" * 256
    assert (fitted["reason"], fitted["attempts"], fitted["queue"]) == ("failed", 3, "default")
    assert fitted["traceback"] is None
    assert fitted["truncated"] is True
