"""Settings: defaults, environment names, and clear errors for bad values."""

from __future__ import annotations

import pytest

from src.config import ConfigError, Settings, load_settings


def test_defaults_load_without_any_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every default is valid on its own (each is checked against the README in test_readme)."""
    monkeypatch.delenv("TASKJET_ENV_FILE", raising=False)
    settings = load_settings()
    assert settings.model_fields_set == set()
    assert settings.queue_names == [settings.default_queue]


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
        ("REDIS_URL", "cache-host:6380", "REDIS_URL 'cache-host:6380' must start with one of"),
        ("TASKJET_ACK_WAIT_S", "0", "ack_wait_s: Input should be greater than 0"),
        ("TASKJET_ACK_WAIT_S", "soon", "ack_wait_s: Input should be a valid number"),
        ("TASKJET_STREAM", "has.dot", "may only hold letters, digits"),
        ("TASKJET_ENV", "staging", "env: Input should be 'development' or 'production'"),
        ("TASKJET_PUBLIC_URL", "jobs.example.com", "must look like https://host"),
        ("TASKJET_PUBLIC_URL", "ftp://jobs.example.com", "must look like https://host"),
        ("TASKJET_PUBLIC_URL", "https://jobs.example.com/?a=1", "may not have a query"),
        ("TASKJET_STREAMS_PER_KEY", "0", "streams_per_key: Input should be greater than"),
        ("TASKJET_STREAM_IDLE_TIMEOUT_S", "0", "stream_idle_timeout_s: Input should be greater"),
        ("TASKJET_API_MAX_JSON_DEPTH", "1", "api_max_json_depth: Input should be greater"),
        ("TASKJET_API_TRACEBACKS", "read", "api_tracebacks: Input should be 'admin' or 'all'"),
        ("TASKJET_HTTP_HEADER_TIMEOUT_S", "-1", "http_header_timeout_s: Input should be greater"),
        ("TASKJET_API_SUBMIT_RATE", "lots", "api_submit_rate: Value error, rate_limit 'lots'"),
        ("TASKJET_API_QUEUES", "a b", "queue name 'a b' may only hold letters"),
        ("TASKJET_QUEUES", "email,dlq", "queue name 'dlq' is reserved"),
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


def test_production_refuses_an_api_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKJET_ENV", "production")
    monkeypatch.setenv("TASKJET_AUTH", "disabled")
    with pytest.raises(ConfigError, match="not allowed with TASKJET_ENV=production"):
        load_settings()
    monkeypatch.setenv("TASKJET_ENV", "development")
    assert load_settings().auth == "disabled"


def test_http_face_defaults() -> None:
    settings = load_settings()
    assert settings.stream_idle_timeout_s == 300.0
    assert settings.streams_per_key == 100
    assert settings.api_max_json_depth == 32
    assert settings.api_tracebacks == "admin"
    assert settings.public_url == ""
    assert (settings.http_header_timeout_s, settings.http_body_timeout_s) == (10.0, 30.0)


def test_public_url_loses_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKJET_PUBLIC_URL", "https://jobs.example.com/taskjet/")
    assert load_settings().public_url == "https://jobs.example.com/taskjet"
