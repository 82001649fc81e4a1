"""Settings from a `.env` file and a profile: precedence, typos, and the generated example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from src.config import ENV_PREFIX, ConfigError, Settings, load_settings
from src.profiles import PROFILES, env_example
from tests.support.processes import ROOT


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory, and the default `.env` lookup (the suite names an empty file)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKJET_ENV_FILE", raising=False)
    return tmp_path


def test_a_dotenv_file_in_the_working_directory_is_read_and_the_environment_wins(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / ".env").write_text(
        "# comment\nNATS_URL=nats://from-file:4222\nTASKJET_ACK_WAIT_S=12\n"
        "TASKJET_FETCH_BATCH=7\nRUN_MODE=worker\n"
    )
    monkeypatch.setenv("TASKJET_FETCH_BATCH", "9")
    settings = load_settings()
    assert settings.nats_url == "nats://from-file:4222"
    assert settings.ack_wait_s == 12
    assert settings.fetch_batch == 9, "the environment wins"


def test_env_file_names_another_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / ".env").write_text("TASKJET_FETCH_BATCH=7\n")
    (workdir / "prod.env").write_text("TASKJET_FETCH_BATCH=8\n")
    monkeypatch.setenv("TASKJET_ENV_FILE", str(workdir / "prod.env"))
    assert load_settings().fetch_batch == 8
    monkeypatch.setenv("TASKJET_ENV_FILE", str(workdir / "missing.env"))
    with pytest.raises(ConfigError, match=r"TASKJET_ENV_FILE=.*missing.env.*: no such file"):
        load_settings()


def test_no_dotenv_file_is_fine(workdir: Path) -> None:
    assert load_settings().fetch_batch == Settings.model_fields["fetch_batch"].default


def test_a_misspelt_variable_in_the_file_is_an_error(workdir: Path) -> None:
    (workdir / ".env").write_text("TASKJET_ACK_WIAT_S=12\n")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) TASKJET_ACK_WIAT_S in \.env"):
        load_settings()


def test_a_bad_value_in_the_file_is_an_error(workdir: Path) -> None:
    (workdir / ".env").write_text("TASKJET_ACK_WAIT_S=soon\n")
    with pytest.raises(ConfigError, match="ack_wait_s: Input should be a valid number"):
        load_settings()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_profile_sets_its_defaults(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKJET_PROFILE", profile)
    settings = load_settings()
    for name, value in PROFILES[profile].items():
        assert getattr(settings, name) == value, name


def test_explicit_settings_override_the_profile(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / ".env").write_text("TASKJET_PROFILE=high-throughput\nTASKJET_FETCH_BATCH=100\n")
    monkeypatch.setenv("TASKJET_WORKER_CONCURRENCY", "42")
    settings = load_settings()
    assert settings.profile == "high-throughput", "the profile may come from the file"
    assert settings.worker_concurrency == 42, "the environment beats the profile"
    assert settings.fetch_batch == 100, "the file beats the profile"
    assert settings.worker_processes == PROFILES["high-throughput"]["worker_processes"]
    assert load_settings(fetch_batch=3).fetch_batch == 3


def test_an_unknown_profile_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKJET_PROFILE", "turbo")
    with pytest.raises(ConfigError, match="profile: Input should be 'development'"):
        load_settings()


def test_every_profile_value_is_a_valid_setting() -> None:
    for profile, values in PROFILES.items():
        assert set(values) <= set(Settings.model_fields), profile
        load_settings(**values)


def test_env_example_lists_every_setting_and_is_in_step_with_the_model() -> None:
    committed = (ROOT / ".env.example").read_text()
    assert committed == env_example(Settings, ENV_PREFIX), (
        "regenerate it: taskjet env-example > .env.example"
    )
    for name in Settings.model_fields:
        env_name = {"nats_url": "NATS_URL", "redis_url": "REDIS_URL"}.get(
            name, f"{ENV_PREFIX}{name.upper()}"
        )
        assert f"\n# {env_name}=" in committed, name


def test_the_readme_documents_every_profile_value() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Profiles") :]
    table = table[: table.index("\n\n", table.index("|"))]
    for profile, values in PROFILES.items():
        assert f"`{profile}`" in table
        row = next(line for line in table.splitlines() if line.startswith(f"| `{profile}`"))
        for name, value in values.items():
            shown = (
                str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            )
            assert f"`{ENV_PREFIX}{name.upper()}={shown}`" in row, (profile, name)


def test_config_env_is_what_the_entrypoint_evaluates(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TASKJET_PROFILE=production\nTASKJET_WORKER_ARGS=--reload x\n")
    out = subprocess.run(
        [sys.executable, "-m", "src", "config-env"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "export TASKJET_WORKER_PROCESSES=2\n" in out
    assert "export TASKJET_WORKER_ARGS='--reload x'\n" in out
    (tmp_path / ".env").write_text("TASKJET_PROFLE=production\n")
    bad = subprocess.run(  # noqa: PLW1510
        [sys.executable, "-m", "src", "config-env"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "unknown setting(s) TASKJET_PROFLE in .env" in bad.stderr
