"""One rate budget per API host for every process (a file in the data dir) or machine (Redis).

Discogs counts requests per source address, so every toolkit process on a machine, and every
machine behind one address, must spend one moving window. :func:`shared_limiter` opens it where
``settings`` say (``TOOLKIT_REDIS_URL``, else ``data/rate_budget.sqlite``); a :class:`Reporter`
publishes what the process is doing for ``discogs-toolkit status`` and ``toolkit.monitor()``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from toolkit.budget.sqlitestore import BUDGET_FILE, SQLiteWindowStorage
from toolkit.budget.window import (
    DEFAULT_RESERVE,
    Rule,
    SharedWindowLimiter,
    WindowState,
    WindowStorage,
)
from toolkit.config import Settings

if TYPE_CHECKING:
    from toolkit.discogs.client import DiscogsClient

__all__ = [
    "BUDGET_FILE",
    "DEFAULT_RESERVE",
    "Reporter",
    "Rule",
    "SQLiteWindowStorage",
    "SharedWindowLimiter",
    "WindowState",
    "WindowStorage",
    "api_host",
    "background",
    "open_storage",
    "shared_limiter",
    "track",
]


def api_host(base_url: str) -> str:
    """The key of a budget: ``host[:port]`` of the API root (Discogs counts the address)."""
    parts = urlsplit(base_url)
    return (parts.netloc or base_url).lower()


def open_storage(settings: Settings) -> WindowStorage:
    """The Redis server of ``settings.redis_url`` when set, else the file in the data directory."""
    if settings.redis_url:
        from toolkit.budget.redisstore import RedisWindowStorage

        return RedisWindowStorage(settings.redis_url)
    return SQLiteWindowStorage(settings.budget_path)


def shared_limiter(
    settings: Settings, base_url: str, limit: int, window: float = 60.0
) -> SharedWindowLimiter:
    """A limiter on the budget of ``base_url``'s host, shared as ``settings`` say."""
    return SharedWindowLimiter(
        open_storage(settings), api_host(base_url), limit, window, reserve=settings.rate_reserve
    )


@contextlib.contextmanager
def background(client: DiscogsClient) -> Iterator[None]:
    """Mark ``client``'s requests as a pull's (they leave the reserve) within the block."""
    limiter = client.limiter
    if not isinstance(limiter, SharedWindowLimiter):
        yield
        return
    try:
        with limiter.background():
            yield
    finally:
        reporter = getattr(client, "budget_reporter", None)
        if isinstance(reporter, Reporter):
            reporter.set_activity("idle")


class Reporter:
    """Publishes, every ``interval`` seconds from a daemon thread, what this process is doing.

    ``stats`` gives the client's counters; :meth:`set_activity` and :meth:`progress` say what it
    works on. :meth:`close` publishes a last time and withdraws the process.
    """

    def __init__(
        self,
        limiter: SharedWindowLimiter,
        stats: Callable[[], Mapping[str, float]],
        *,
        interval: float = 1.0,
    ) -> None:
        self._limiter = limiter
        self._stats = stats
        self._interval = interval
        self._lock = threading.Lock()
        self._activity = "idle"
        self._done: int | None = None
        self._total: int | None = None
        self._activity_since = limiter.storage.clock()
        self._started = self._activity_since
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="budget-reporter", daemon=True)
        self._thread.start()

    def set_activity(self, activity: str, total: int | None = None) -> None:
        """Say what the process does now (``total`` steps when known)."""
        with self._lock:
            self._activity, self._total = activity, total
            self._done = 0 if total is not None else None
            self._activity_since = self._limiter.storage.clock()
        self.publish()

    def progress(self, done: int) -> None:
        """Steps of the current activity done so far."""
        with self._lock:
            self._done = done

    def info(self) -> dict[str, Any]:
        """What is published: pid, host, activity, progress, the client's counters."""
        limiter = self._limiter
        with self._lock:
            info: dict[str, Any] = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "activity": self._activity,
                "done": self._done,
                "total": self._total,
                "activity_since": self._activity_since,
                "started": self._started,
                "background": limiter.is_background,
                "limit": limiter.limit,
                "window": limiter.window,
                "reserve": limiter.reserve,
                "interval": self._interval,
            }
        info.update({name: float(value) for name, value in self._stats().items()})
        info["updated"] = limiter.storage.clock()
        return info

    def publish(self) -> None:
        """Publish now (errors of the storage are not the process's business: ignored)."""
        with contextlib.suppress(Exception):
            self._limiter.storage.publish(self._limiter.key, self._limiter.owner, self.info())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.publish()

    def close(self) -> None:
        """Stop publishing and withdraw this process from the shared state (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(Exception):
            self._limiter.storage.withdraw(self._limiter.key, self._limiter.owner)


class _Tracked:
    """A progress bar that also reports its count to the client's :class:`Reporter`."""

    def __init__(self, bar: Any, reporter: Reporter) -> None:
        self._bar = bar
        self._reporter = reporter
        self._done = 0

    def update(self, n: int = 1) -> None:
        self._bar.update(n)
        self._done += n
        self._reporter.progress(self._done)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bar, name)


def track(client: DiscogsClient, bar: Any, activity: str, total: int) -> Any:
    """``bar`` (a tqdm bar), reporting ``activity`` and its progress to the shared status too."""
    reporter = getattr(client, "budget_reporter", None)
    if not isinstance(reporter, Reporter):
        return bar
    reporter.set_activity(activity, total)
    return _Tracked(bar, reporter)
