"""Settings: defaults, environment names, and clear errors for bad values."""

from __future__ import annotations

import pytest

from src.config import ConfigError, Settings, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert settings.nats_url == "nats://localhost:4222"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.ack_wait_s == 30.0
    assert settings.result_ttl_s == 86_400


def test_urls_come_from_plain_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://a:1,nats://b:2")
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6380/2")
    settings = load_settings()
    assert settings.nats_servers == ["nats://a:1", "nats://b:2"]
    assert settings.redis_url == "rediss://cache:6380/2"


def test_prefixed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKJET_ACK_WAIT_S", "12")
    monkeypatch.setenv("TASKJET_STREAM", "ORDERS")
    settings = load_settings()
    assert settings.ack_wait_s == 12.0
    assert settings.stream == "ORDERS"


def test_lease_timings_are_derived_from_ack_wait() -> None:
    settings = load_settings(ack_wait_s=9)
    assert settings.heartbeat_interval_s == 3.0
    assert settings.fetch_timeout_s == 2.0
    assert load_settings(ack_wait_s=3).fetch_timeout_s == 1.0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NATS_URL", "http://nats:4222", "NATS_URL 'http://nats:4222' must start with one of"),
        ("NATS_URL", "nats://", "NATS_URL 'nats://' has no host"),
        ("NATS_URL", "nats://host:notaport", "has an invalid port"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL 'localhost:6379' must start with one of"),
        ("TASKJET_ACK_WAIT_S", "0", "ack_wait_s: Input should be greater than 0"),
        ("TASKJET_ACK_WAIT_S", "soon", "ack_wait_s: Input should be a valid number"),
        ("TASKJET_STREAM", "has.dot", "may only hold letters, digits"),
        ("TASKJET_ENV", "staging", "env: Input should be 'development' or 'production'"),
    ],
)
def test_bad_values_give_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="invalid taskjet configuration") as caught:
        load_settings()
    assert message in str(caught.value)


def test_unknown_setting_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKJET_ACK_WAIT", "3")  # missing the _S unit
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) TASKJET_ACK_WAIT"):
        load_settings()


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.ack_wait_s = 1  # type: ignore[misc]
