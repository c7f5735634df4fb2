"""discogs-toolkit: pull a Discogs collection politely and fast, cache it, load it, explore it."""

from __future__ import annotations

from typing import Any

from toolkit.config import Settings
from toolkit.errors import (
    BatchError,
    BudgetError,
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


def monitor(settings: Settings | None = None, *, interval: float = 1.0) -> Any:
    """In a notebook: a live view of the shared rate budget (see :mod:`toolkit.budget.monitor`)."""
    from toolkit.budget.monitor import monitor as start

    return start(settings, interval=interval)


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
    "PullError",
    "QueryError",
    "ReadOnlyError",
    "SchemaIncompleteError",
    "Settings",
    "TaskTimeoutError",
    "ToolkitError",
    "TransactionError",
    "__version__",
    "monitor",
]
