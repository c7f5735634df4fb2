"""A thread-safe in-memory TTL cache with hit/miss statistics, optional LRU bound and background sweep.

Ports the original ``CacheService``; durations are float seconds measured on an injectable clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from toolkit.config import Settings

__all__ = ["CacheService", "CacheStats"]

T = TypeVar("T")

_log = logging.getLogger(__name__)
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's counters; ``hit_rate`` is a percentage (0 when nothing was read)."""

    hits: int
    misses: int
    sets: int
    evictions: int
    hit_rate: float
    size: int


class _Pending:
    """One in-flight ``get_or_set`` factory call that other threads wait on."""

    __slots__ = ("error", "event", "owner", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.owner = threading.get_ident()
        self.value: Any = None
        self.error: BaseException | None = None


def _sweep_loop(
    ref: weakref.ReferenceType[CacheService], stop: threading.Event, interval: float
) -> None:
    """Background sweep: holds only a weak reference so an unreferenced cache can be collected.

    The wait is capped at ``threading.TIMEOUT_MAX`` (a longer one raises OverflowError).
    """
    wait = min(interval, threading.TIMEOUT_MAX)
    while not stop.wait(wait):
        cache = ref()
        if cache is None:
            return
        try:
            cache.cleanup()
        except Exception:  # pragma: no cover - a broken injected clock; keep sweeping
            _log.exception("cache cleanup failed")
        finally:
            del cache


def _check_ttl(ttl: float, name: str = "ttl") -> float:
    """``ttl`` as a float; ValueError unless it is positive and finite (NaN and inf are rejected)."""
    if not (ttl > 0 and math.isfinite(ttl)):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {ttl!r}")
    return float(ttl)


class CacheService:
    """In-memory key/value cache where every entry expires ``ttl`` seconds after it was set.

    All methods are thread-safe (one lock). Expired entries are never returned nor counted: single-key
    operations (``get``, ``has``, ``get_ttl``, ``delete``, ``get_or_set``) drop an expired entry they
    meet, ``cleanup()`` and the background sweep drop all of them, and each such removal counts as an
    eviction, as does every entry pushed out by ``max_entries`` (least recently used first). The bulk
    views (``keys``, ``size``, ``get_stats``) skip expired entries without removing them.

    ``default_ttl``, every ``ttl`` and ``cleanup_interval`` must be positive and finite (ValueError
    otherwise, NaN included); use ``auto_cleanup=False`` rather than an infinite interval.

    The background sweep runs every ``cleanup_interval`` real seconds in a daemon thread that holds
    only a weak reference to the cache; it stops on ``stop_auto_cleanup()``/``destroy()`` or when
    the cache is garbage-collected.
    """

    def __init__(
        self,
        default_ttl: float = 86400.0,
        auto_cleanup: bool = True,
        cleanup_interval: float = 3600.0,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default_ttl = _check_ttl(default_ttl, "default_ttl")
        self._cleanup_interval = _check_ttl(cleanup_interval, "cleanup_interval")
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries!r}")
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (value, expires_at). When bounded, the same mapping is an OrderedDict kept in LRU
        # order and also reachable as ``_ordered``; unbounded caches use a plain (faster) dict.
        self._ordered: OrderedDict[str, tuple[Any, float]] | None = (
            None if max_entries is None else OrderedDict()
        )
        self._data: dict[str, tuple[Any, float]] = {} if self._ordered is None else self._ordered
        self._pending: dict[str, _Pending] = {}
        self._hits = 0
        self._misses = 0
        self._sets = 0
        self._evictions = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if auto_cleanup:
            self._start_auto_cleanup()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> CacheService:
        """Build a cache from ``Settings.cache_default_ttl`` / ``cache_auto_cleanup`` / ``cache_cleanup_interval``."""
        return cls(
            default_ttl=settings.cache_default_ttl,
            auto_cleanup=settings.cache_auto_cleanup,
            cleanup_interval=settings.cache_cleanup_interval,
            max_entries=max_entries,
            clock=clock,
        )

    # ------------------------------------------------------------------ properties

    @property
    def default_ttl(self) -> float:
        """TTL in seconds used when ``set`` gets no ``ttl``."""
        return self._default_ttl

    @property
    def cleanup_interval(self) -> float:
        """Seconds between two background sweeps (when ``auto_cleanup`` is on)."""
        return self._cleanup_interval

    @property
    def max_entries(self) -> int | None:
        """The LRU size bound, or None when unbounded."""
        return self._max_entries

    @property
    def cleanup_thread(self) -> threading.Thread | None:
        """The background sweep thread (None when auto-cleanup is off or was never started)."""
        return self._thread

    # ------------------------------------------------------------------ core

    def get(self, key: str, default: Any = None) -> Any:
        """The live value for ``key``, else ``default``; counts one hit or one miss."""
        with self._lock:
            entry = self._data.get(key)
            if entry is not None:
                if entry[1] > self._clock():
                    self._hits += 1
                    if self._ordered is not None:
                        self._ordered.move_to_end(key)
                    return entry[0]
                del self._data[key]
                self._evictions += 1
            self._misses += 1
            return default

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (default ``default_ttl``); see the class for valid ttls."""
        ttl = self._default_ttl if ttl is None else _check_ttl(ttl)
        with self._lock:
            self._store_locked(key, value, self._clock() + ttl)

    def _store_locked(self, key: str, value: Any, expires_at: float) -> None:
        self._data[key] = (value, expires_at)
        self._sets += 1
        ordered = self._ordered
        if ordered is not None:
            ordered.move_to_end(key)
            bound = self._max_entries or 0
            while len(ordered) > bound:
                ordered.popitem(last=False)
                self._evictions += 1

    def _live_locked(self, key: str) -> tuple[Any, float] | None:
        """The entry for ``key`` if live; drops (and counts) an expired one. No hit/miss counted."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] > self._clock():
            return entry
        del self._data[key]
        self._evictions += 1
        return None

    def has(self, key: str) -> bool:
        """True when ``key`` holds a live entry (does not count as a hit or miss)."""
        with self._lock:
            return self._live_locked(key) is not None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.has(key)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when a live entry was removed."""
        with self._lock:
            if self._live_locked(key) is None:
                return False
            del self._data[key]
            return True

    def clear(self) -> None:
        """Remove every entry (statistics are kept; see ``reset_stats``)."""
        with self._lock:
            self._data.clear()

    def get_ttl(self, key: str) -> float:
        """Remaining lifetime of ``key`` in seconds, or -1 when missing or expired."""
        with self._lock:
            entry = self._live_locked(key)
            if entry is None:
                return -1.0
            return entry[1] - self._clock()

    def keys(self) -> list[str]:
        """Keys of live entries (least recently used first when ``max_entries`` is set)."""
        with self._lock:
            now = self._clock()
            return [k for k, (_, exp) in self._data.items() if exp > now]

    def size(self) -> int:
        """Number of live entries."""
        with self._lock:
            return self._size_locked()

    def _size_locked(self) -> int:
        now = self._clock()
        return sum(1 for _, exp in self._data.values() if exp > now)

    def __len__(self) -> int:
        return self.size()

    def get_or_set(self, key: str, factory: Callable[[], T], ttl: float | None = None) -> T:
        """The live value for ``key``, else ``factory()`` stored for ``ttl`` seconds.

        Concurrent callers missing the same key share one ``factory`` call: the first runs it (outside
        the lock), the others wait and get its value, or its exception re-raised. That is the same
        exception object in every waiting thread (as with ``Future.result()``), so each raise adds
        its frames to the shared ``__traceback__``; callers should not mutate it. A failure is not
        cached: the next call runs ``factory`` again. Counts one hit or miss per call. A factory that
        asks for its own key raises RuntimeError instead of deadlocking.
        """
        ttl = self._default_ttl if ttl is None else _check_ttl(ttl)
        with self._lock:
            entry = self._live_locked(key)
            if entry is not None:
                self._hits += 1
                if self._ordered is not None:
                    self._ordered.move_to_end(key)
                value: T = entry[0]
                return value
            self._misses += 1
            pending = self._pending.get(key)
            leader = pending is None
            if pending is None:
                pending = self._pending[key] = _Pending()
        if not leader:
            if pending.owner == threading.get_ident():
                raise RuntimeError(f"get_or_set factory for {key!r} asked for its own key")
            pending.event.wait()
            if pending.error is not None:
                raise pending.error
            result: T = pending.value
            return result
        try:
            value = factory()
        except BaseException as exc:
            pending.error = exc
            with self._lock:
                del self._pending[key]
            pending.event.set()
            raise
        pending.value = value
        with self._lock:
            self._store_locked(key, value, self._clock() + ttl)
            del self._pending[key]
        pending.event.set()
        return value

    # ------------------------------------------------------------------ statistics

    def get_stats(self) -> CacheStats:
        """A consistent snapshot of the counters and the live size."""
        with self._lock:
            reads = self._hits + self._misses
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                sets=self._sets,
                evictions=self._evictions,
                hit_rate=(self._hits / reads * 100.0) if reads else 0.0,
                size=self._size_locked(),
            )

    def reset_stats(self) -> None:
        """Zero hits, misses, sets and evictions (entries are kept)."""
        with self._lock:
            self._hits = self._misses = self._sets = self._evictions = 0

    # ------------------------------------------------------------------ expiry and lifecycle

    def cleanup(self) -> int:
        """Remove every expired entry now; returns how many were removed (each counts as an eviction)."""
        with self._lock:
            now = self._clock()
            data = self._data
            expired = [k for k, (_, exp) in data.items() if exp <= now]
            for k in expired:
                del data[k]
            self._evictions += len(expired)
            return len(expired)

    def _start_auto_cleanup(self) -> None:
        stop = self._stop
        thread = threading.Thread(
            target=_sweep_loop,
            args=(weakref.ref(self), stop, self._cleanup_interval),
            name="CacheService-cleanup",
            daemon=True,
        )
        # Wake the thread at once when the cache is collected, rather than one interval later.
        weakref.finalize(self, stop.set)
        self._thread = thread
        thread.start()

    def stop_auto_cleanup(self) -> None:
        """Stop the background sweep and wait for its thread to end (idempotent)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def destroy(self) -> None:
        """Stop the background sweep and remove every entry."""
        self.stop_auto_cleanup()
        self.clear()

    def __enter__(self) -> CacheService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return (
            f"CacheService(entries={len(self._data)}, default_ttl={self._default_ttl}, "
            f"max_entries={self._max_entries})"
        )
