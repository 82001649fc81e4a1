"""The share of a worker's fetches redeliveries may take while new tasks wait
(`worker/retry_share.py`); the storm itself, on real servers, is in `test_retry_storm.py`."""

from __future__ import annotations

from nats.aio.msg import Msg

from src.engine.worker.retry_share import RetryShare


def msg(delivered: int, pending: int) -> Msg:
    """A message as a pull brings it (JetStream's metadata is in its reply subject)."""
    return Msg(
        _client=None, subject="t", reply=f"$JS.ACK.S.C.{delivered}.1.1.1.{pending}", data=b""
    )  # type: ignore[arg-type]


def test_with_nothing_new_waiting_retries_take_all_the_room() -> None:
    share = RetryShare(0.3)
    batch = [msg(2, 0) for _ in range(10)]
    assert share.split(batch) == (batch, [])


def test_while_new_tasks_wait_retries_get_at_most_their_share() -> None:
    share = RetryShare(0.3)
    kept, later = share.split([msg(3, 50) for _ in range(10)])
    assert (len(kept), len(later)) == (0, 10)  # nothing taken yet: one retry would be 100%
    new = [msg(1, 40) for _ in range(7)]
    batch = [msg(2, 40) for _ in range(10)] + new
    kept, later = share.split(batch)
    assert [m for m in kept if m in new] == new
    assert len(kept) - len(new) == 3  # 3 of the 10 taken are retries
    assert len(later) == 7


def test_new_tasks_in_the_batch_count_as_waiting_work() -> None:
    share = RetryShare(0.5)
    kept, later = share.split([msg(2, 0), msg(1, 0), msg(2, 0)])
    assert len(kept) == 2
    assert len(later) == 1


def test_a_share_of_one_never_holds_a_retry_back() -> None:
    share = RetryShare(1.0)
    assert share.split([msg(5, 9)] * 3)[1] == []
