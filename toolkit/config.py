"""Settings read from the environment and an optional ``.env`` file: the only module that reads them.

Nothing happens at import time; call :meth:`Settings.from_env` (the CLI, the notebook helpers and the
benchmark runner do, once, and pass the result down). Durations are seconds (floats) on the Python
side even where the environment variable is in milliseconds, as the original spec had it.
"""

from __future__ import annotations

import enum
import io
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from toolkit.errors import ConfigError

__all__ = [
    "DEFAULT_API_URL",
    "ENV_FILE_VARIABLE",
    "ENV_VARIABLES",
    "PROJECT_ROOT",
    "Settings",
    "default_data_dir",
    "env_file_path",
    "read_env_file",
]

T = TypeVar("T")

#: The source checkout this package lives in (meaningful when installed with ``pip install -e``).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_API_URL = "https://api.discogs.com"
DEFAULT_USER_AGENT = "discogs-toolkit/0.1 +https://github.com/discogs-toolkit"

#: Where the ``.env`` file is: a path, or empty for none (default: ``.env`` in the current
#: directory, else in the checkout). Read from the real environment only, never from a ``.env``.
ENV_FILE_VARIABLE = "TOOLKIT_ENV_FILE"
#: Every variable :meth:`Settings.from_env` reads (tests clear them all).
ENV_VARIABLES: tuple[str, ...] = (
    "CACHE_DEFAULT_TTL",
    "CACHE_AUTO_CLEANUP",
    "CACHE_CLEANUP_INTERVAL",
    "CONCURRENCY_MAX_TASKS",
    "CONCURRENCY_RETRIES",
    "CONCURRENCY_TIMEOUT",
    "DISCOGS_TOKEN",
    "DISCOGS_USER_AGENT",
    "DISCOGS_API_URL",
    "DISCOGS_RATE_LIMIT",
    "TOOLKIT_DATA_DIR",
    "TOOLKIT_REDIS_URL",
    "TOOLKIT_RATE_RESERVE",
    "TOOLKIT_SHARED_BUDGET",
    "TOOLKIT_REDIS_HTTP_CACHE",
    ENV_FILE_VARIABLE,
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _Default(enum.Enum):
    """The type of :data:`_FROM_ENVIRONMENT` (an enum member keeps the sentinel typed)."""

    FROM_ENVIRONMENT = enum.auto()


_FROM_ENVIRONMENT = _Default.FROM_ENVIRONMENT


def default_data_dir() -> Path:
    """``data/`` of the source checkout when running from one, else ``./data``."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


def read_env_file(path: str | Path) -> dict[str, str]:
    """The ``KEY=value`` pairs of a ``.env`` file, parsed by python-dotenv (no ``${VAR}`` expansion).

    A missing file gives ``{}``; an unreadable one, or a line that is not ``KEY=value``, raises
    :class:`ConfigError` naming the file and the line number, never the line (it may hold the token).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(str(path), f"cannot read .env file: {reason}") from None
    # dotenv_values skips a malformed line with a logged warning, and keeps ``KEY`` alone as None:
    # both are refused here instead, so a typo cannot silently drop the token.
    for binding in parse_stream(io.StringIO(text)):
        if binding.error or (binding.key is not None and binding.value is None):
            # ``original.line`` is where the blank lines before the statement start.
            source = binding.original.string
            blank = source[: len(source) - len(source.lstrip())]
            number = binding.original.line + blank.count("\n")
            raise ConfigError(str(path), f"line {number} is not KEY=value")
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {key: value for key, value in values.items() if value is not None}


def env_file_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The ``.env`` file :meth:`Settings.from_env` reads by default, or None when disabled.

    ``$TOOLKIT_ENV_FILE`` when set (a path that must exist, or empty for none), else ``.env`` in the
    current directory if there is one, else ``.env`` in the checkout (which may not exist).
    """
    configured = (os.environ if environ is None else environ).get(ENV_FILE_VARIABLE)
    if configured is not None:
        if configured.strip() == "":
            return None
        path = Path(configured.strip()).expanduser()
        if not path.is_file():
            raise ConfigError(ENV_FILE_VARIABLE, f"no such file: {path} (empty disables .env)")
        return path
    local = Path(".env")
    return local if local.exists() else PROJECT_ROOT / local


def _number(name: str, raw: str, kind: Callable[[str], T], *, minimum: float) -> T:
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected a number, got {raw!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, f"expected a finite number, got {raw!r}")
    if value < minimum:  # type: ignore[operator]
        raise ConfigError(name, f"must be >= {minimum:g}, got {raw!r}")
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(name, f"expected true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Every setting of the toolkit, with the spec's defaults; durations in seconds."""

    cache_default_ttl: float = 86400.0
    cache_auto_cleanup: bool = True
    cache_cleanup_interval: float = 3600.0
    concurrency_max_tasks: int = 5
    concurrency_retries: int = 2
    concurrency_timeout: float = 30.0
    discogs_token: str | None = field(default=None, repr=False)
    discogs_user_agent: str = DEFAULT_USER_AGENT
    discogs_api_url: str = DEFAULT_API_URL
    discogs_api_url_configured: bool = False
    discogs_rate_limit: int | None = None
    # Looked up at each construction (not bound once), so a test suite can point it elsewhere.
    data_dir: Path = field(default_factory=lambda: default_data_dir())
    #: Redis server holding the shared rate budget (None: a file in ``data_dir``); may hold a
    #: password, so it is never shown.
    redis_url: str | None = field(default=None, repr=False)
    #: Requests per window a pull leaves to interactive calls.
    rate_reserve: int = 5
    #: Share one rate budget with every other toolkit process (False: this process alone).
    shared_budget: bool = True
    #: Keep the HTTP cache on ``redis_url`` too (machines never fetch the same answer twice).
    redis_http_cache: bool = False

    def __repr__(self) -> str:
        token = "set" if self.discogs_token else "unset"
        return (
            f"Settings(api_url={self.discogs_api_url!r}, token={token}, "
            f"data_dir={str(self.data_dir)!r}, rate_limit={self.discogs_rate_limit})"
        )

    @property
    def has_token(self) -> bool:
        """True when a Discogs token is configured (the token itself is never shown)."""
        return bool(self.discogs_token)

    @property
    def http_cache_path(self) -> Path:
        """The requests-cache SQLite file under the data directory."""
        return self.data_dir / "http_cache.sqlite"

    @property
    def budget_path(self) -> Path:
        """The SQLite file of the shared rate budget (unless ``redis_url`` puts it on Redis)."""
        return self.data_dir / "rate_budget.sqlite"

    @property
    def database_path(self) -> Path:
        """The default collection database."""
        return self.data_dir / "collection.duckdb"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | Path | _Default | None = _FROM_ENVIRONMENT,
    ) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) over an optional ``.env`` file.

        ``env_file`` is a path, or None for no file; by default ``$TOOLKIT_ENV_FILE`` says (a path,
        or empty for none), else ``.env`` in the current directory or the checkout. Real environment
        variables win over the file. A malformed value raises :class:`ConfigError` naming it.
        """
        environ = os.environ if environ is None else environ
        env: dict[str, str] = {}
        path = env_file_path(environ) if env_file is _FROM_ENVIRONMENT else env_file
        if path is not None:
            env.update(read_env_file(path))
        env.update(environ)

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value is not None and value.strip() != "" else None

        kwargs: dict[str, object] = {}
        if (raw := get("CACHE_DEFAULT_TTL")) is not None:
            kwargs["cache_default_ttl"] = _number("CACHE_DEFAULT_TTL", raw, float, minimum=1) / 1000
        if (raw := get("CACHE_AUTO_CLEANUP")) is not None:
            kwargs["cache_auto_cleanup"] = _bool("CACHE_AUTO_CLEANUP", raw)
        if (raw := get("CACHE_CLEANUP_INTERVAL")) is not None:
            kwargs["cache_cleanup_interval"] = (
                _number("CACHE_CLEANUP_INTERVAL", raw, float, minimum=1) / 1000
            )
        if (raw := get("CONCURRENCY_MAX_TASKS")) is not None:
            kwargs["concurrency_max_tasks"] = _number("CONCURRENCY_MAX_TASKS", raw, int, minimum=1)
        if (raw := get("CONCURRENCY_RETRIES")) is not None:
            kwargs["concurrency_retries"] = _number("CONCURRENCY_RETRIES", raw, int, minimum=0)
        if (raw := get("CONCURRENCY_TIMEOUT")) is not None:
            kwargs["concurrency_timeout"] = (
                _number("CONCURRENCY_TIMEOUT", raw, float, minimum=1) / 1000
            )
        if (raw := get("DISCOGS_TOKEN")) is not None:
            token = raw.strip()
            if any(ch.isspace() for ch in token):
                raise ConfigError("DISCOGS_TOKEN", "must not contain whitespace")
            kwargs["discogs_token"] = token
        if (raw := get("DISCOGS_USER_AGENT")) is not None:
            kwargs["discogs_user_agent"] = raw.strip()
        if (raw := get("DISCOGS_API_URL")) is not None:
            url = raw.strip().rstrip("/")
            if not url.startswith(("http://", "https://")):
                raise ConfigError("DISCOGS_API_URL", f"expected an http(s) URL, got {raw!r}")
            kwargs["discogs_api_url"] = url
            kwargs["discogs_api_url_configured"] = True
        if (raw := get("DISCOGS_RATE_LIMIT")) is not None:
            kwargs["discogs_rate_limit"] = _number("DISCOGS_RATE_LIMIT", raw, int, minimum=1)
        if (raw := get("TOOLKIT_DATA_DIR")) is not None:
            kwargs["data_dir"] = Path(raw.strip()).expanduser()
        if (raw := get("TOOLKIT_REDIS_URL")) is not None:
            url = raw.strip()
            if not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigError(
                    "TOOLKIT_REDIS_URL", "expected a redis://, rediss:// or unix:// URL"
                )
            kwargs["redis_url"] = url
        if (raw := get("TOOLKIT_RATE_RESERVE")) is not None:
            kwargs["rate_reserve"] = _number("TOOLKIT_RATE_RESERVE", raw, int, minimum=0)
        if (raw := get("TOOLKIT_SHARED_BUDGET")) is not None:
            kwargs["shared_budget"] = _bool("TOOLKIT_SHARED_BUDGET", raw)
        if (raw := get("TOOLKIT_REDIS_HTTP_CACHE")) is not None:
            kwargs["redis_http_cache"] = _bool("TOOLKIT_REDIS_HTTP_CACHE", raw)
        return cls(**kwargs)  # type: ignore[arg-type]
