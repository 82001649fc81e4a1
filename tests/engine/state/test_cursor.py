"""Pagination cursors name the last record seen, and only those handed out are accepted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.engine.core.errors import InvalidCursorError
from src.engine.state.listing import decode_cursor, encode_cursor


@given(st.integers(min_value=0, max_value=2**62), st.text(min_size=1, max_size=64))
def test_cursors_round_trip(score: int, task_id: str) -> None:
    cursor = encode_cursor((score, task_id))
    assert "=" not in cursor
    assert decode_cursor(cursor) == (score, task_id)


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


@pytest.mark.parametrize("cursor", ["!!!", "bm90LWEtbnVtYmVy", "w6k", "YWJj"])
def test_cursors_not_handed_out_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
