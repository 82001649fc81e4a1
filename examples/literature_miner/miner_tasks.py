"""The literature miner's long task: searches, reads each paper and extracts findings, reporting
`status, message, progress, total, stage` to everyone following its client's live stream.

Retries come 30, 60 and 120 s after a failure: taskjet's retry labels are a backoff, not a list
of delays, so `30 · 2^(n-1)` capped at 120 with no jitter gives exactly those three.
"""

from __future__ import annotations

import asyncio

from taskiq import TaskiqDepends

from src.tasks.broker import Progress, register_task

RETRIES = {
    "retry_on_error": True,
    "max_retries": 3,
    "retry_backoff": 30,
    "retry_backoff_factor": 2,
    "retry_backoff_max": 120,
    "retry_jitter": "none",
}


@register_task(**RETRIES)
async def mine_literature(
    query: str, papers: int = 5, pause_s: float = 0.5, progress: Progress = TaskiqDepends()
) -> dict[str, object]:
    """Mine `papers` papers about `query` (a stand-in for a search and a download per paper)."""
    total = papers + 2
    await progress.update(current=0, total=total, stage="search", message=f"searching {query!r}")
    await asyncio.sleep(pause_s)
    findings = []
    for n in range(1, papers + 1):
        await progress.update(n, total, stage="read", message=f"reading paper {n} of {papers}")
        await asyncio.sleep(pause_s)
        findings.append(f"{query}: finding {n}")
    await progress.update(total - 1, total, stage="extract", message="extracting findings")
    await asyncio.sleep(pause_s)
    await progress.update(total, total, stage="done", message=f"{len(findings)} findings")
    return {"query": query, "findings": findings}
