"""Webhook pieces without a broker: the payload, its signature, and which answers are retried."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from src.embedded import free_port
from src.engine.core.errors import WebhookDeliveryError, WebhookRefusedError
from src.engine.core.states import TaskState
from src.engine.worker.webhooks import _post, notification, sign
from tests.support.receiver import Receiver


def test_the_signature_is_an_hmac_sha256_of_the_body() -> None:
    body = b'{"task_id":"t"}'
    expected = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert sign(b"key", body) == f"sha256={expected}"


def test_the_payload_carries_the_result_or_the_error_capped() -> None:
    fields = {"finished_at": 5.0}
    ok = notification(
        "t", "n", TaskState.SUCCESS, fields, result_json=b'{"return_value":[1]}', max_bytes=99
    )
    assert ok == {
        "task_id": "t",
        "task_name": "n",
        "state": "SUCCESS",
        "result": [1],
        "timestamps": {"finished_at": 5.0},
    }
    big = notification(
        "t", "n", TaskState.SUCCESS, fields, result_json=b'{"return_value":"xxxx"}', max_bytes=3
    )
    assert (big["result"], big["result_omitted"]) == (None, True)
    failed = notification(
        "t",
        "n",
        TaskState.FAILURE,
        {**fields, "error_type": "ValueError", "error_message": "bad"},
        result_json=None,
        max_bytes=99,
    )
    assert failed["error"] == {"type": "ValueError", "message": "bad"}
    assert "result" not in failed


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (200, None),
        (204, None),
        (503, WebhookDeliveryError),
        (429, WebhookDeliveryError),
        (400, WebhookRefusedError),
        (302, WebhookRefusedError),
    ],
)
async def test_which_answers_are_retried(status: int, error: type[Exception] | None) -> None:
    receiver = await Receiver(free_port(), status=status).start()
    try:
        if error is None:
            assert await _post(receiver.url, b"{}", {}, 10) == status
        else:
            with pytest.raises(error, match=str(status)):
                await _post(receiver.url, b"{}", {}, 10)
    finally:
        await receiver.stop()


async def test_no_answer_is_a_delivery_error() -> None:
    with pytest.raises(WebhookDeliveryError, match="ConnectError"):
        await _post(f"http://127.0.0.1:{free_port()}/", b"{}", {}, 10)
