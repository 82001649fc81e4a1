"""A property-based run of the OpenAPI schema (schemathesis) against the real server: no 5xx."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.conftest import ADMIN_KEY
from tests.support.processes import BIN, spawn_server, wait_healthy


async def test_no_input_makes_the_api_fail(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "TASKJET_WORKER_MODULES": "src.tasks.example tests.support.tasks"}
    server, base = spawn_server(env, tmp_path / "server.log")
    try:
        await wait_healthy(server, base)
        run = await asyncio.create_subprocess_exec(
            str(BIN / "schemathesis"),
            "run",
            f"{base}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--seed",
            "20261129",
            "--header",
            f"Authorization: Bearer {ADMIN_KEY}",
            # Streams stay open until their task ends; they are tested in test_live.py.
            "--exclude-path-regex",
            "(/events$|/ws$|^/sse/)",
            "--request-timeout",
            "10",
            "--report-dir",
            str(tmp_path / "schemathesis"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,  # its cache stays out of the checkout
        )
        output, _ = await asyncio.wait_for(run.communicate(), 170)
        text = output.decode(errors="replace")
        assert run.returncode == 0, (
            text[-6000:] + "\n--- server log ---\n" + server.output()[-4000:]
        )
        counts = [int(n) for n in re.findall(r"(\d+) passed", text)]
        assert counts, text
        assert max(counts) > 100, f"a real run, not an empty one:\n{text}"
    finally:
        await server.stop()
