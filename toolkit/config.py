"""Settings read from the environment and an optional ``.env`` file: the only module that reads them.

Nothing happens at import time; call :meth:`Settings.from_env`. Durations are seconds (floats) on the
Python side even where the environment variable is in milliseconds, as the original spec had it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from toolkit.errors import ConfigError

__all__ = ["DEFAULT_API_URL", "PROJECT_ROOT", "Settings", "default_data_dir", "read_env_file"]

T = TypeVar("T")

#: The source checkout this package lives in (meaningful when installed with ``pip install -e``).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_API_URL = "https://api.discogs.com"
DEFAULT_USER_AGENT = "discogs-toolkit/0.1 +https://github.com/discogs-toolkit"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_INLINE_COMMENT = re.compile(r"\s#")


def default_data_dir() -> Path:
    """``data/`` of the source checkout when running from one, else ``./data``."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


def _env_value(raw: str) -> str:
    """The value part of a ``.env`` line: quotes removed, or an inline `` # comment`` cut off.

    ``KEY="a # b"  # note`` gives ``a # b``; ``KEY=60 # note`` gives ``60``; a ``#`` with no
    whitespace before it is part of an unquoted value (``KEY=a#b`` gives ``a#b``).
    """
    value = raw.strip()
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        if end != -1:
            rest = value[end + 1 :].lstrip()
            if not rest or rest.startswith("#"):
                return value[1:end]
    return _INLINE_COMMENT.split(value, maxsplit=1)[0].rstrip()


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file of ``KEY=value`` lines.

    Full-line and inline ``#`` comments (after whitespace, on unquoted values), optional single
    or double quotes, and an ``export`` prefix are understood.
    """
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read .env file: {exc.strerror}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            # Never echo the line: it may hold the token.
            raise ConfigError(str(path), f"line {number} is not KEY=value")
        values[key] = _env_value(value)
    return values


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
    rate_limit_capacity: int = 15000
    rate_limit_refill_period: float = 3600.0
    discogs_token: str | None = field(default=None, repr=False)
    discogs_user_agent: str = DEFAULT_USER_AGENT
    discogs_api_url: str = DEFAULT_API_URL
    discogs_api_url_configured: bool = False
    discogs_rate_limit: int | None = None
    data_dir: Path = field(default_factory=default_data_dir)

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
    def database_path(self) -> Path:
        """The default collection database."""
        return self.data_dir / "collection.duckdb"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | Path | None = ".env",
    ) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) over an optional ``.env`` file.

        Real environment variables win over the file. A malformed value raises :class:`ConfigError`
        naming the variable.
        """
        env: dict[str, str] = {}
        if env_file is not None:
            path = Path(env_file)
            if not path.is_absolute() and not path.exists():
                path = PROJECT_ROOT / path
            env.update(read_env_file(path))
        env.update(os.environ if environ is None else environ)

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
        if (raw := get("SOUNDCLOUD_RATE_LIMIT_CAPACITY")) is not None:
            kwargs["rate_limit_capacity"] = _number(
                "SOUNDCLOUD_RATE_LIMIT_CAPACITY", raw, int, minimum=1
            )
        if (raw := get("SOUNDCLOUD_RATE_LIMIT_REFILL_PERIOD")) is not None:
            period = _number("SOUNDCLOUD_RATE_LIMIT_REFILL_PERIOD", raw, float, minimum=0)
            if period <= 0:
                raise ConfigError("SOUNDCLOUD_RATE_LIMIT_REFILL_PERIOD", "must be positive")
            kwargs["rate_limit_refill_period"] = period
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
        return cls(**kwargs)  # type: ignore[arg-type]
