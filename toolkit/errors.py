"""The toolkit's one exception hierarchy; errors from libraries underneath are translated once, at their boundary.

::

    ToolkitError
    ├── ConfigError                 a bad environment / .env value (names the variable)
    ├── TaskTimeoutError            a ConcurrencyManager attempt ran past its timeout
    ├── BatchError                  some batches failed; carries .failed and .results
    ├── DatabaseError               anything from DuckDB or sqlite, mapped in toolkit.db
    │   ├── QueryError              bad SQL, bad identifiers, wrong parameter count
    │   │   └── ReadOnlyError       a write on a database opened read-only
    │   ├── TransactionError        begin/commit/rollback failed
    │   ├── DatabaseLockedError     the database file is locked by another process
    │   ├── SchemaIncompleteError   collection tables were dropped; names them and the repair
    │   └── CollectionDataError     Discogs JSON too malformed to load (also a ValueError)
    ├── DiscogsError                anything from the Discogs API, mapped in toolkit.discogs.transport
    │   ├── DiscogsAuthError        401 / 403
    │   ├── DiscogsNotFoundError    404
    │   ├── DiscogsRateLimitError   429 that could not be waited out
    │   ├── DiscogsUnavailableError 5xx / connection errors after every retry
    │   └── DiscogsResponseError    malformed JSON or missing fields
    ├── HTTPCacheError              the HTTP cache file cannot be created or read
    ├── BudgetError                 the shared rate budget (file or Redis) cannot be used
    ├── PullError                   the pull pipeline could not run at all
    └── DumpError                   a Discogs dump file cannot be loaded (not a dump, truncated, …)

Messages never contain the Discogs token.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "BatchError",
    "BudgetError",
    "CollectionDataError",
    "ConfigError",
    "DatabaseError",
    "DatabaseLockedError",
    "DiscogsAuthError",
    "DiscogsError",
    "DiscogsNotFoundError",
    "DiscogsRateLimitError",
    "DiscogsResponseError",
    "DiscogsUnavailableError",
    "DumpError",
    "HTTPCacheError",
    "MoneyFormatError",
    "PullError",
    "QueryError",
    "ReadOnlyError",
    "SchemaIncompleteError",
    "TaskTimeoutError",
    "ToolkitError",
    "TransactionError",
]


class ToolkitError(Exception):
    """Root of every error the toolkit raises on purpose."""


class ConfigError(ToolkitError, ValueError):
    """A configuration value (environment or .env) is missing or malformed."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class TaskTimeoutError(ToolkitError, TimeoutError):
    """An attempt of a ConcurrencyManager task ran longer than its timeout."""


class BatchError(ToolkitError):
    """At least one batch failed; every batch was still attempted.

    ``failed`` maps batch index to its exception, ``results`` maps batch index to the
    results of each batch that succeeded.
    """

    def __init__(
        self,
        failed: Mapping[int, BaseException],
        results: Mapping[int, list[Any]],
    ) -> None:
        first = min(failed) if failed else -1
        detail = f"; first failure in batch {first}: {failed[first]!r}" if failed else ""
        super().__init__(f"{len(failed)} of {len(failed) + len(results)} batches failed{detail}")
        self.failed: dict[int, BaseException] = dict(failed)
        self.results: dict[int, list[Any]] = dict(results)


class DatabaseError(ToolkitError):
    """An error from the database engine (DuckDB or sqlite), with the engine's message."""


class QueryError(DatabaseError):
    """A query could not be built or executed."""


class TransactionError(DatabaseError):
    """A transaction could not be started, committed or rolled back."""


class DatabaseLockedError(DatabaseError):
    """The database file is locked by another process."""


class ReadOnlyError(QueryError):
    """A statement tried to change a database opened read-only (``query`` without ``--write``)."""


class SchemaIncompleteError(DatabaseError):
    """Tables of the collection schema are missing (dropped by hand); ``missing`` names them."""

    def __init__(self, missing: Sequence[str], path: str | None) -> None:
        where = path if path is not None else "the database"
        db_option = f" --db {shlex.quote(path)}" if path is not None else ""
        super().__init__(
            f"{where} is missing collection table(s) {', '.join(missing)}: run "
            f"`discogs-toolkit repair{db_option}` to recreate them (the next pull fetches "
            "again what they held)"
        )
        self.missing: tuple[str, ...] = tuple(missing)
        self.path = path


class CollectionDataError(DatabaseError, ValueError):
    """The Discogs JSON handed to ``load_collection`` is structurally unusable."""


class DiscogsError(ToolkitError):
    """An error talking to the Discogs API (or the simulator). ``url`` never holds the token."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class DiscogsAuthError(DiscogsError):
    """401 or 403: the token is missing, wrong, or lacks permission."""


class DiscogsNotFoundError(DiscogsError):
    """404: unknown user, release, folder or page."""


class DiscogsRateLimitError(DiscogsError):
    """429 responses that could not be waited out."""


class DiscogsUnavailableError(DiscogsError):
    """5xx or connection failures that persisted through every retry."""


class DiscogsResponseError(DiscogsError):
    """The server answered with malformed JSON or without the expected fields."""


class HTTPCacheError(ToolkitError):
    """The HTTP cache file (``data/http_cache.sqlite``) cannot be created, opened or read.

    The message names the file and how to recover (delete it, or ``discogs-toolkit cache clear``).
    """


class BudgetError(ToolkitError):
    """The shared rate budget (``data/rate_budget.sqlite`` or ``TOOLKIT_REDIS_URL``) is unusable.

    The message names the file or the Redis host (never its password) and how to recover.
    """


class PullError(ToolkitError):
    """The pull pipeline could not run (as opposed to single items failing, which are recorded)."""


class DumpError(ToolkitError):
    """A Discogs data dump cannot be loaded: not a dump, truncated, unreadable or of an unexpected
    kind. ``path`` names the file (None for a problem with the whole load). The catalogue is unchanged."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class MoneyFormatError(ToolkitError, ValueError):
    """A formatted amount (``"£2.50"``) whose currency or number could not be read."""
