"""The summariser's task: calls an HTTP model API through a circuit breaker shared by every
worker, so when the model is down the fleet stops calling it and tasks wait for it instead.

The model API answers `POST {SUMMARISER_MODEL_URL}/summarise {"text"}` with `{"summary"}`.
"""

from __future__ import annotations

import os

import httpx

from src.tasks.broker import circuit_breaker, register_task

BREAKER = "summariser-model"
model_api = circuit_breaker(BREAKER, failure_threshold=3, window_s=60, open_s=120)


def model_url() -> str:
    return os.environ.get("SUMMARISER_MODEL_URL", "http://127.0.0.1:8200")


@register_task(retry_on_error=True, max_retries=5)
async def summarise(text: str) -> str:
    """One call to the model; an error or a 5xx counts against the breaker and is retried
    (while it is open, after the open time left)."""
    async with model_api, httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{model_url()}/summarise", json={"text": text})
        answer.raise_for_status()
        return str(answer.json()["summary"])
