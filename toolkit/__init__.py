"""discogs-toolkit: pull a Discogs collection politely and fast, cache it, load it, explore it."""

from __future__ import annotations

from toolkit.config import Settings
from toolkit.errors import (
    BatchError,
    CollectionDataError,
    ConfigError,
    DatabaseError,
    DatabaseLockedError,
    DiscogsAuthError,
    DiscogsError,
    DiscogsNotFoundError,
    DiscogsRateLimitError,
    DiscogsResponseError,
    DiscogsUnavailableError,
    DumpError,
    HTTPCacheError,
    PullError,
    QueryError,
    ReadOnlyError,
    SchemaIncompleteError,
    TaskTimeoutError,
    ToolkitError,
    TransactionError,
)

__version__ = "0.1.0"

__all__ = [
    "BatchError",
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
    "PullError",
    "QueryError",
    "ReadOnlyError",
    "SchemaIncompleteError",
    "Settings",
    "TaskTimeoutError",
    "ToolkitError",
    "TransactionError",
    "__version__",
]
