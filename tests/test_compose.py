"""compose.yaml against the compose specification's JSON schema (the copy check-jsonschema
ships), the properties the stack relies on, and the Dockerfile linted with hadolint."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from src.config import Settings, load_settings
from tests.support.processes import BIN, ROOT

COMPOSE = ROOT / "compose.yaml"


def _stack() -> dict[str, Any]:
    stack: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return stack


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _stack()["services"]
    return services


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_follows_the_compose_specification() -> None:
    checked = _validate(COMPOSE)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("healthcheck:", "healthchek:", 1))
    assert _validate(broken).returncode != 0


def test_nats_runs_jetstream_on_a_volume_with_a_health_check() -> None:
    nats = _services()["nats"]
    command = nats["command"]
    assert "--jetstream" in command
    store = command[command.index("--store_dir") + 1]
    assert any(v.split(":")[1] == store for v in nats["volumes"])
    assert "healthz" in " ".join(nats["healthcheck"]["test"])
    assert nats["volumes"][0].split(":")[0] in _stack()["volumes"]


def test_valkey_is_append_only_on_a_volume_with_a_health_check() -> None:
    valkey = _services()["valkey"]
    command = valkey["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    data_dir = command[command.index("--dir") + 1]
    assert any(v.split(":")[1] == data_dir for v in valkey["volumes"])
    assert "ping" in valkey["healthcheck"]["test"]


@pytest.mark.parametrize(("service", "mode"), [("api", "server"), ("worker", "worker")])
def test_api_and_workers_run_the_image_in_their_mode(service: str, mode: str) -> None:
    spec = _services()[service]
    assert spec["environment"]["RUN_MODE"] == mode
    assert spec["build"] == "."
    assert spec["healthcheck"]["test"]
    for dependency in ("nats", "valkey"):
        assert spec["depends_on"][dependency]["condition"] == "service_healthy"


def test_workers_have_replicas_and_time_to_finish() -> None:
    worker = _services()["worker"]
    assert worker["deploy"]["replicas"] >= 2
    grace_s = Settings.model_fields["shutdown_grace_s"].default
    assert int(worker["stop_grace_period"].removesuffix("s")) > grace_s


def test_reset_is_a_tool_that_only_shows_without_confirm() -> None:
    services = _services()
    reset = services["reset"]
    assert reset["profiles"] == ["tools"], "`docker compose up` never starts it"
    assert reset["entrypoint"][-3:] == ["-m", "src", "reset"]
    assert "--confirm" not in reset["entrypoint"]
    assert [name for name, spec in services.items() if "profiles" not in spec] == [
        "nats",
        "valkey",
        "api",
        "worker",
    ]


def test_the_environment_given_is_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, spec in _services().items():
        if "build" not in spec:
            continue  # NATS and Valkey
        for key, value in (spec.get("environment") or {}).items():
            if key != "RUN_MODE":
                monkeypatch.setenv(key, str(value))
        settings = load_settings()
        assert settings.nats_url == "nats://nats:4222", name
        assert settings.redis_url == "redis://valkey:6379/0", name


def test_dockerfile_passes_hadolint() -> None:
    linted = _hadolint(ROOT / "Dockerfile")
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    linted = _hadolint(bad)
    assert linted.returncode != 0
    assert "DL3007" in linted.stdout  # the `latest` tag
