"""Settings.from_env: the spec's variable names and units, clear errors, a token that never shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import toolkit.config
from toolkit.config import ENV_FILE_VARIABLE, ENV_VARIABLES, Settings, env_file_path, read_env_file
from toolkit.errors import ConfigError

TOKEN = "sEcReTtOkEn1234567890"
#: Taken at import, before conftest points ``default_data_dir`` at a tmp folder for each test.
REAL_DEFAULT_DATA_DIR = toolkit.config.default_data_dir


def test_defaults_match_the_spec_in_seconds(tmp_path: Path) -> None:
    s = Settings.from_env({}, env_file=tmp_path / "missing.env")
    assert s.cache_default_ttl == 86400.0
    assert s.cache_auto_cleanup is True
    assert s.cache_cleanup_interval == 3600.0
    assert s.concurrency_max_tasks == 5
    assert s.concurrency_retries == 2
    assert s.concurrency_timeout == 30.0
    assert s.discogs_token is None
    assert s.discogs_api_url == "https://api.discogs.com"
    assert s.discogs_api_url_configured is False
    assert s.discogs_rate_limit is None
    assert s.data_dir == toolkit.config.default_data_dir()  # conftest points it at a tmp folder


def test_the_default_data_dir_is_the_checkouts_data_folder() -> None:
    assert REAL_DEFAULT_DATA_DIR() == toolkit.config.PROJECT_ROOT / "data"


def test_milliseconds_become_seconds(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "CACHE_DEFAULT_TTL": "1500",
            "CACHE_CLEANUP_INTERVAL": "250",
            "CONCURRENCY_TIMEOUT": "2000",
            "CACHE_AUTO_CLEANUP": "false",
            "CONCURRENCY_MAX_TASKS": "7",
            "CONCURRENCY_RETRIES": "0",
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
        ("CONCURRENCY_TIMEOUT", "0"),
        ("CACHE_CLEANUP_INTERVAL", "-5"),
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


def test_importing_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setenv("CONCURRENCY_MAX_TASKS", "not-a-number")
    (tmp_path / ".env").write_text("this line is not KEY=value\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_FILE_VARIABLE)
    # A fresh copy of the module (a reload would replace the classes other tests hold).
    spec = importlib.util.spec_from_file_location("config_copy", toolkit.config.__file__)
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, copy)  # dataclasses look their module up
    spec.loader.exec_module(copy)  # must not raise
    with pytest.raises(ConfigError):
        Settings.from_env()  # while reading does


@pytest.mark.parametrize(
    "name",
    [
        "CACHE_DEFAULT_TTL",
        "CACHE_CLEANUP_INTERVAL",
        "CONCURRENCY_TIMEOUT",
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


def test_env_file_errors_name_the_line_never_its_text(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"# comment\nA=1\n\n\nDISCOGS_TOKEN {TOKEN}\n")
    with pytest.raises(ConfigError, match="line 5 is not KEY=value") as info:
        read_env_file(env)
    assert TOKEN not in str(info.value)
    env.write_text("A=1\nDISCOGS_TOKEN\n")  # a name without a value would drop silently
    with pytest.raises(ConfigError, match="line 2 is not KEY=value"):
        read_env_file(env)
    with pytest.raises(ConfigError, match=r"cannot read \.env file"):
        read_env_file(tmp_path)  # a folder: unreadable as a file
    env.write_bytes(b"DISCOGS_TOKEN=\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_env_file(env)
    assert read_env_file(tmp_path / "missing.env") == {}


def test_env_file_values_are_literal(tmp_path: Path) -> None:
    """No ``${VAR}`` expansion: the file means what it says, whatever the environment holds."""
    env = tmp_path / ".env"
    env.write_text("DISCOGS_USER_AGENT=agent ${HOME} $HOME\n")
    assert read_env_file(env) == {"DISCOGS_USER_AGENT": "agent ${HOME} $HOME"}


def test_every_variable_read_is_in_the_readme_table() -> None:
    """The README's configuration table lists exactly the variables ``from_env`` reads."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.MULTILINE))
    assert listed == set(ENV_VARIABLES)


def test_toolkit_env_file_chooses_or_disables_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = tmp_path / "chosen.env"
    chosen.write_text("DISCOGS_RATE_LIMIT=21\n")
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(chosen))
    assert Settings.from_env().discogs_rate_limit == 21
    assert env_file_path() == chosen
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(tmp_path / "typo.env"))
    with pytest.raises(ConfigError) as info:
        Settings.from_env()
    assert info.value.variable == ENV_FILE_VARIABLE
    monkeypatch.setenv(ENV_FILE_VARIABLE, "")
    assert env_file_path() is None
    assert Settings.from_env().discogs_rate_limit is None
    # An explicit env_file argument wins over the variable.
    assert Settings.from_env(env_file=chosen).discogs_rate_limit == 21


def test_dot_env_in_cwd_or_project_root_reaches_settings_only_when_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, root = tmp_path / "cwd", tmp_path / "root"
    cwd.mkdir()
    root.mkdir()
    (root / ".env").write_text("DISCOGS_RATE_LIMIT=11\n")
    monkeypatch.setattr(toolkit.config, "PROJECT_ROOT", root)
    monkeypatch.chdir(cwd)
    # The suite's default (tests/conftest.py): TOOLKIT_ENV_FILE is empty, no .env is read.
    assert Settings.from_env().discogs_rate_limit is None
    monkeypatch.delenv(ENV_FILE_VARIABLE)
    assert Settings.from_env().discogs_rate_limit == 11  # the project root's
    (cwd / ".env").write_text("DISCOGS_RATE_LIMIT=22\n")
    assert Settings.from_env().discogs_rate_limit == 22  # the current directory's comes first


def test_subprocesses_inherit_the_disabled_env_file(tmp_path: Path) -> None:
    """A child started by a test reads no ``.env`` either, even one in its working directory."""
    (tmp_path / ".env").write_text("DISCOGS_RATE_LIMIT=33\n")
    code = "from toolkit.config import Settings; print(Settings.from_env().discogs_rate_limit)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"
