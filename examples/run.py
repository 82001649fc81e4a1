"""Run one example with one command: `make example NAME=report_export` (or
`python examples/run.py report_export`).

It starts what `make run` starts (private NATS and Redis, taskjet's API and a worker), with the
worker importing the example's tasks and the example's settings, then the example's own app on
its port once the API answers, and stops them all on Ctrl-C (the app first). Each example keeps
its data in `.taskjet/example-<name>`, apart from `make run`'s own.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from src.embedded import free_port  # noqa: E402  # after the path is set
from src.embedded.watchdog import die_with_parent  # noqa: E402


@dataclass(frozen=True)
class Example:
    modules: str  # TASKJET_WORKER_MODULES
    app: str | None = None  # the example's own app (uvicorn's `module:attribute`)
    factory: bool = False
    port: int = 8100
    env: dict[str, str] = field(default_factory=dict)
    try_it: str = ""


EXAMPLES = {
    "report_export": Example(
        "src.tasks.example report_tasks",
        "report_app:app",
        port=8100,
        try_it="curl -X POST {app}/export/pdf, then follow its status_url",
    ),
    "summariser": Example(
        "src.tasks.example summariser_tasks",
        "summariser_app:app",
        port=8101,
        env={"SUMMARISER_MODEL_URL": "http://127.0.0.1:8200"},
        try_it="curl -X POST '{app}/summarise' -H 'content-type: application/json' "
        '-d \'{{"text": "..."}}\'',
    ),
    "literature_miner": Example(
        "src.tasks.example miner_tasks",
        "miner_app:create",
        factory=True,
        port=8102,
        try_it="open {app}/miner",
    ),
    "periodic_jobs": Example(
        "periodic_tasks",
        env={"TASKJET_QUEUES": "metrics,reports,digests"},
        try_it="curl {api}/api/v1/schedules -H 'Authorization: Bearer {key}'",
    ),
}


def _key(data_dir: Path) -> str:
    """The admin key, kept beside the data as `taskjet run` keeps its own."""
    path = data_dir / "api-key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  # our own URL
            return bool(response.status == 200)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run one example: taskjet with its tasks, then its app."
    )
    parser.add_argument("name", choices=sorted(EXAMPLES))
    parser.add_argument("--data-dir", type=Path, help="default: .taskjet/example-<name>")
    parser.add_argument("--port", type=int, help="the example app's port (default: its own)")
    parser.add_argument("--api-port", type=int, default=8000)
    args = parser.parse_args(argv)
    example = EXAMPLES[args.name]
    data_dir = (args.data_dir or ROOT / ".taskjet" / f"example-{args.name}").resolve()
    key = _key(data_dir)
    api_port, nats_port, redis_port = free_port(args.api_port), free_port(14322), free_port(16479)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKJET_")}
    env.update(example.env)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "examples" / args.name)]),
        TASKJET_WORKER_MODULES=example.modules,
        TASKJET_API_KEYS=f"admin:{key}",
        NATS_URL=f"nats://127.0.0.1:{nats_port}",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}",
    )
    api = f"http://127.0.0.1:{api_port}"
    run = [sys.executable, "-m", "src", "run", "--data-dir", str(data_dir)]
    ports = [
        "--port",
        str(api_port),
        "--nats-port",
        str(nats_port),
        "--redis-port",
        str(redis_port),
    ]
    # Both get SIGTERM if this process dies, even by SIGKILL.
    service = subprocess.Popen([*run, *ports], cwd=ROOT, env=env, preexec_fn=die_with_parent)  # noqa: PLW1509
    app: subprocess.Popen[bytes] | None = None
    where = api
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        while not stopping and service.poll() is None and not _answers(f"{api}/health"):
            time.sleep(0.2)
        if not stopping and service.poll() is None and example.app is not None:
            app_port = free_port(args.port or example.port)
            command = [sys.executable, "-m", "uvicorn", example.app, "--port", str(app_port)]
            app_env = {**env, "REPORT_TASKJET_URL": api}
            app = subprocess.Popen(
                command + (["--factory"] if example.factory else []), env=app_env
            )
            where = f"http://127.0.0.1:{app_port}"
            print(f"example {args.name}: app {where}", flush=True)
        if not stopping and service.poll() is None:
            hint = example.try_it.format(app=where, api=api, key=key)
            print(f"example {args.name}: try  {hint}\nPress Ctrl-C to stop.", flush=True)
        while not stopping and service.poll() is None and (app is None or app.poll() is None):
            time.sleep(0.2)
    finally:
        for process in (app, service):  # the app first: it uses the servers
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
