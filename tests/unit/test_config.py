"""Settings come from the environment once, typed; production refuses unsafe defaults."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from roomcast.config import ENVIRONMENT, ConfigError, Settings, load_settings, resolve_jwt_secret

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_defaults_need_no_configuration():
    settings = load_settings({})
    assert settings.database_url is None
    assert settings.data_dir == Path(".roomcast")
    assert settings.port == 8000


def test_values_are_typed_and_lists_split():
    settings = load_settings(
        {"ROOMCAST_PORT": "9001", "ROOMCAST_CORS_ORIGINS": "https://a.example, https://b.example"}
    )
    assert settings.port == 9001
    assert settings.cors_origins == ("https://a.example", "https://b.example")


def test_a_wrong_type_names_the_variable():
    with pytest.raises(ConfigError, match="ROOMCAST_PORT"):
        load_settings({"ROOMCAST_PORT": "eighty"})


@pytest.mark.parametrize(
    "environ",
    [
        {"ROOMCAST_ENV": "production", "ROOMCAST_JWT_SECRET": "s"},
        {"ROOMCAST_ENV": "production", "DATABASE_URL": "postgresql://db/x"},
    ],
)
def test_production_refuses_to_start_without_a_database_url_and_a_secret(environ):
    with pytest.raises(ConfigError, match="production"):
        load_settings(environ)


def test_the_development_secret_is_generated_once_and_reused(tmp_path):
    settings = load_settings({"ROOMCAST_DATA_DIR": str(tmp_path)})
    first = resolve_jwt_secret(settings)
    assert first is not None
    assert len(first) >= 32
    assert resolve_jwt_secret(settings) == first
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600


def test_every_setting_has_a_variable_and_every_variable_is_documented():
    assert set(ENVIRONMENT.values()) == {f.name for f in msgspec.structs.fields(Settings)}
    documented = DOCS.read_text()
    missing = [name for name in ENVIRONMENT if f"`{name}`" not in documented]
    assert missing == []


def test_process_tuning_switches_are_typed_and_checked():
    settings = load_settings({"ROOMCAST_GC_THRESHOLD": "0", "ROOMCAST_WS_COMPRESSION": "true"})
    assert settings.gc_threshold == 0
    assert settings.ws_compression is True
    assert load_settings({}).ws_compression is False
    with pytest.raises(ConfigError, match="ROOMCAST_GC_THRESHOLD"):
        load_settings({"ROOMCAST_GC_THRESHOLD": "-1"})


def test_the_replay_memory_can_be_sized_or_switched_off_but_not_negative():
    settings = load_settings(
        {"ROOMCAST_REPLAY_CACHE_EVENTS": "0", "ROOMCAST_REPLAY_CACHE_TOTAL": "500"}
    )
    assert (settings.replay_cache_events, settings.replay_cache_total) == (0, 500)
    for variable in ("ROOMCAST_REPLAY_CACHE_EVENTS", "ROOMCAST_REPLAY_CACHE_TOTAL"):
        with pytest.raises(ConfigError, match=variable):
            load_settings({variable: "-1"})


def test_relay_partitions_and_rebalance_are_read_and_bounded():
    settings = load_settings({"ROOMCAST_RELAY_PARTITIONS": "4", "ROOMCAST_RELAY_REBALANCE": "0.5"})
    assert (settings.relay_partitions, settings.relay_rebalance_seconds) == (4, 0.5)
    assert load_settings({}).relay_partitions == 16
    for variable, value in (
        ("ROOMCAST_RELAY_PARTITIONS", "0"),
        ("ROOMCAST_RELAY_PARTITIONS", "1025"),
        ("ROOMCAST_RELAY_REBALANCE", "0"),
    ):
        with pytest.raises(ConfigError, match=variable):
            load_settings({variable: value})
