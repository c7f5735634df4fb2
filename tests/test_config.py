"""Settings.from_env: the spec's variable names and units, clear errors, a token that never shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.config import Settings, read_env_file
from toolkit.errors import ConfigError

TOKEN = "sEcReTtOkEn1234567890"


def test_defaults_match_the_spec_in_seconds(tmp_path: Path) -> None:
    s = Settings.from_env({}, env_file=tmp_path / "missing.env")
    assert s.cache_default_ttl == 86400.0
    assert s.cache_auto_cleanup is True
    assert s.cache_cleanup_interval == 3600.0
    assert s.concurrency_max_tasks == 5
    assert s.concurrency_retries == 2
    assert s.concurrency_timeout == 30.0
    assert s.rate_limit_capacity == 15000
    assert s.rate_limit_refill_period == 3600.0
    assert s.discogs_token is None
    assert s.discogs_api_url == "https://api.discogs.com"
    assert s.discogs_api_url_configured is False
    assert s.discogs_rate_limit is None
    assert s.data_dir.name == "data"


def test_milliseconds_become_seconds(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "CACHE_DEFAULT_TTL": "1500",
            "CACHE_CLEANUP_INTERVAL": "250",
            "CONCURRENCY_TIMEOUT": "2000",
            "CACHE_AUTO_CLEANUP": "false",
            "CONCURRENCY_MAX_TASKS": "7",
            "CONCURRENCY_RETRIES": "0",
            "SOUNDCLOUD_RATE_LIMIT_CAPACITY": "100",
            "SOUNDCLOUD_RATE_LIMIT_REFILL_PERIOD": "60",
            "DISCOGS_RATE_LIMIT": "240",
            "DISCOGS_API_URL": "http://127.0.0.1:9999/",
            "TOOLKIT_DATA_DIR": str(tmp_path / "d"),
        },
        env_file=None,
    )
    assert s.cache_default_ttl == 1.5
    assert s.cache_cleanup_interval == 0.25
    assert s.concurrency_timeout == 2.0
    assert s.cache_auto_cleanup is False
    assert (s.concurrency_max_tasks, s.concurrency_retries) == (7, 0)
    assert (s.rate_limit_capacity, s.rate_limit_refill_period) == (100, 60.0)
    assert s.discogs_rate_limit == 240
    assert s.discogs_api_url == "http://127.0.0.1:9999"
    assert s.discogs_api_url_configured is True
    assert s.data_dir == tmp_path / "d"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CACHE_DEFAULT_TTL", "soon"),
        ("CACHE_DEFAULT_TTL", "0"),
        ("CACHE_AUTO_CLEANUP", "maybe"),
        ("CONCURRENCY_MAX_TASKS", "0"),
        ("CONCURRENCY_MAX_TASKS", "2.5"),
        ("CONCURRENCY_RETRIES", "-1"),
        ("SOUNDCLOUD_RATE_LIMIT_REFILL_PERIOD", "0"),
        ("DISCOGS_RATE_LIMIT", "fast"),
        ("DISCOGS_API_URL", "api.discogs.com"),
    ],
)
def test_bad_values_raise_config_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value}, env_file=None)
    assert info.value.variable == name
    assert name in str(info.value)


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        f"# comment\nexport DISCOGS_TOKEN='{TOKEN}'\nCONCURRENCY_MAX_TASKS=3\n\nDISCOGS_RATE_LIMIT=30\n"
    )
    s = Settings.from_env({"DISCOGS_RATE_LIMIT": "45"}, env_file=env)
    assert s.discogs_token == TOKEN
    assert s.concurrency_max_tasks == 3
    assert s.discogs_rate_limit == 45
    assert s.has_token


def test_token_never_appears_in_repr_or_errors(tmp_path: Path) -> None:
    s = Settings.from_env({"DISCOGS_TOKEN": TOKEN}, env_file=None)
    assert TOKEN not in repr(s)
    assert TOKEN not in str(s)
    env = tmp_path / ".env"
    env.write_text(f"DISCOGS_TOKEN {TOKEN}\n")
    with pytest.raises(ConfigError) as info:
        read_env_file(env)
    assert TOKEN not in str(info.value)
    with pytest.raises(ConfigError) as info2:
        Settings.from_env({"DISCOGS_TOKEN": f"{TOKEN} x"}, env_file=None)
    assert TOKEN not in str(info2.value)


def test_importing_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import toolkit.config

    monkeypatch.setenv("CONCURRENCY_MAX_TASKS", "not-a-number")
    importlib.reload(toolkit.config)  # must not raise: nothing is read at import time


@pytest.mark.parametrize(
    "name",
    [
        "CACHE_DEFAULT_TTL",
        "CACHE_CLEANUP_INTERVAL",
        "CONCURRENCY_TIMEOUT",
        "SOUNDCLOUD_RATE_LIMIT_REFILL_PERIOD",
    ],
)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "Infinity", "1e400"])
def test_durations_must_be_finite(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match="finite") as info:
        Settings.from_env({name: value}, env_file=None)
    assert info.value.variable == name


def test_env_file_inline_comments(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "CONCURRENCY_MAX_TASKS=7 # seven workers\n"
        "CONCURRENCY_TIMEOUT=2500\t# ms\n"
        'DISCOGS_USER_AGENT="my agent # v1"  # quoted: the # inside stays\n'
        "DISCOGS_API_URL=http://127.0.0.1:9999/#no-space-so-kept\n"
        "DISCOGS_RATE_LIMIT='30' # quoted, then a comment\n"
        f"DISCOGS_TOKEN={TOKEN}    #   the token\n"
    )
    values = read_env_file(env)
    assert values["CONCURRENCY_MAX_TASKS"] == "7"
    assert values["DISCOGS_USER_AGENT"] == "my agent # v1"
    assert values["DISCOGS_API_URL"] == "http://127.0.0.1:9999/#no-space-so-kept"
    assert values["DISCOGS_TOKEN"] == TOKEN
    s = Settings.from_env({}, env_file=env)
    assert s.concurrency_max_tasks == 7
    assert s.concurrency_timeout == 2.5
    assert s.discogs_rate_limit == 30
    assert s.discogs_user_agent == "my agent # v1"
    assert s.discogs_token == TOKEN
