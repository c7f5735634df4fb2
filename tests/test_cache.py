"""Tests for toolkit.cache.CacheService: TTL on a fake clock, stats, LRU, real threads, the sweep."""

from __future__ import annotations

import gc
import random
import sys
import threading
import weakref
from typing import Any

import pytest

from toolkit.cache import CacheService, CacheStats
from toolkit.config import Settings
from toolkit.testing import WAIT, FakeClock, wait_until


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> CacheService:
    return CacheService(default_ttl=10.0, auto_cleanup=False, clock=clock)


# ---------------------------------------------------------------- basics and TTL


def test_set_get_various_values(cache: CacheService) -> None:
    values: dict[str, Any] = {
        "s": "text",
        "i": 42,
        "l": [1, 2],
        "d": {"id": 1, "title": "Rumours"},
        "none": None,
        "zero": 0,
    }
    for key, value in values.items():
        cache.set(key, value)
    for key, value in values.items():
        assert cache.get(key) == value
    assert cache.get("missing") is None
    assert cache.get("missing", "fallback") == "fallback"


def test_entries_expire_after_ttl(cache: CacheService, clock: FakeClock) -> None:
    cache.set("default", 1)
    cache.set("short", 2, ttl=3.0)
    clock.advance(2.999)
    assert cache.get("short") == 2
    clock.advance(0.001)  # exactly at expiry: gone
    assert cache.get("short") is None
    assert cache.has("default")
    clock.advance(7.0)
    assert not cache.has("default")
    assert cache.get("default", "gone") == "gone"


def test_set_overwrites_and_restarts_ttl(cache: CacheService, clock: FakeClock) -> None:
    cache.set("k", "old", ttl=5)
    clock.advance(4)
    cache.set("k", "new", ttl=5)
    clock.advance(4)
    assert cache.get("k") == "new"


@pytest.mark.parametrize("bad", [0, -1, -0.5, float("nan"), float("inf"), float("-inf")])
def test_non_positive_or_non_finite_ttl_raises(cache: CacheService, bad: float) -> None:
    with pytest.raises(ValueError):
        cache.set("k", 1, ttl=bad)
    with pytest.raises(ValueError):
        cache.get_or_set("k", lambda: 1, ttl=bad)
    assert not cache.has("k")


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("auto_cleanup", [False, True])
def test_constructor_rejects_bad_durations(bad: float, auto_cleanup: bool) -> None:
    """Before, ``cleanup_interval=inf`` was accepted and the sweep thread died of OverflowError."""
    before = set(threading.enumerate())
    with pytest.raises(ValueError, match="default_ttl"):
        CacheService(default_ttl=bad, auto_cleanup=auto_cleanup)
    with pytest.raises(ValueError, match="cleanup_interval"):
        CacheService(cleanup_interval=bad, auto_cleanup=auto_cleanup)
    assert not [t for t in threading.enumerate() if t not in before]  # no sweep thread started


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        CacheService(max_entries=0, auto_cleanup=False)


def _blocked_in_wait(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident or -1)
    return frame is not None and frame.f_code.co_name == "wait"


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_huge_finite_cleanup_interval_waits_instead_of_crashing() -> None:
    """An interval beyond ``threading.TIMEOUT_MAX`` is capped; it used to raise OverflowError."""
    cache = CacheService(cleanup_interval=threading.TIMEOUT_MAX * 10)
    thread = cache.cleanup_thread
    assert thread is not None
    try:
        # Either it reaches its (long) wait or, with the bug, it dies at once.
        wait_until(
            lambda: _blocked_in_wait(thread) or not thread.is_alive(), "the sweep to wait or die"
        )
        assert thread.is_alive(), "the sweep thread died"
    finally:
        cache.destroy()
    assert not thread.is_alive()


def test_get_ttl(cache: CacheService, clock: FakeClock) -> None:
    cache.set("k", 1, ttl=30)
    assert cache.get_ttl("k") == pytest.approx(30)
    clock.advance(12.5)
    assert cache.get_ttl("k") == pytest.approx(17.5)
    assert cache.get_ttl("missing") == -1
    clock.advance(17.5)
    assert cache.get_ttl("k") == -1


def test_has_delete_clear_contains_len(cache: CacheService) -> None:
    cache.set("a", 1)
    cache.set("b", 2)
    assert "a" in cache and "zzz" not in cache and 5 not in cache
    assert len(cache) == 2
    assert cache.delete("a") is True
    assert cache.delete("a") is False
    assert cache.keys() == ["b"]
    cache.clear()
    assert len(cache) == 0 and cache.keys() == []


def test_keys_and_size_never_count_expired(cache: CacheService, clock: FakeClock) -> None:
    cache.set("short", 1, ttl=1)
    cache.set("long", 2, ttl=100)
    assert sorted(cache.keys()) == ["long", "short"]
    clock.advance(1)
    assert cache.keys() == ["long"]
    assert cache.size() == 1 == len(cache)
    assert cache.get_stats().size == 1
    assert cache.delete("short") is False  # expired is not "present"


# ---------------------------------------------------------------- statistics


def test_stats_hits_misses_sets_hit_rate(cache: CacheService) -> None:
    assert cache.get_stats() == CacheStats(0, 0, 0, 0, 0.0, 0)
    cache.set("a", 1)
    cache.set("b", 2)
    for _ in range(3):
        cache.get("a")
    cache.get("nope")
    stats = cache.get_stats()
    assert (stats.hits, stats.misses, stats.sets, stats.size) == (3, 1, 2, 2)
    assert stats.hit_rate == pytest.approx(75.0)
    cache.has("a")  # not a read for the stats
    assert cache.get_stats().hits == 3
    with pytest.raises(AttributeError):
        stats.hits = 9  # type: ignore[misc]
    cache.reset_stats()
    assert cache.get_stats() == CacheStats(0, 0, 0, 0, 0.0, 2)


def test_evictions_counted_for_expiry_on_read_and_cleanup(
    cache: CacheService, clock: FakeClock
) -> None:
    for i in range(5):
        cache.set(f"k{i}", i, ttl=1)
    cache.set("keep", 1, ttl=100)
    clock.advance(1)
    assert cache.get_stats().evictions == 0  # views skip but do not remove
    assert cache.get("k0") is None
    assert cache.get_stats().evictions == 1
    assert cache.get_stats().misses == 1
    assert cache.cleanup() == 4
    assert cache.cleanup() == 0
    stats = cache.get_stats()
    assert stats.evictions == 5
    assert stats.size == 1


def test_max_entries_evicts_least_recently_used(clock: FakeClock) -> None:
    cache = CacheService(default_ttl=10, auto_cleanup=False, max_entries=3, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2)
    cache.set("c", 3)
    assert cache.get("a") == 1  # a is now most recent: b is the LRU
    cache.set("d", 4)
    assert cache.keys() == ["c", "a", "d"]
    assert cache.get("b") is None
    cache.set("c", 33)  # overwrite refreshes recency
    cache.set("e", 5)  # evicts a
    assert cache.keys() == ["d", "c", "e"]
    stats = cache.get_stats()
    assert stats.evictions == 2 and stats.size == 3
    assert cache.max_entries == 3


def test_from_settings() -> None:
    cache = CacheService.from_settings(
        Settings(cache_default_ttl=5.0, cache_auto_cleanup=False, cache_cleanup_interval=2.0)
    )
    assert (cache.default_ttl, cache.cleanup_interval) == (5.0, 2.0)
    assert cache.cleanup_thread is None
    swept = CacheService.from_settings(Settings(cache_cleanup_interval=2.0))
    try:
        assert swept.cleanup_interval == 2.0
        assert swept.cleanup_thread is not None and swept.cleanup_thread.is_alive()
    finally:
        swept.destroy()


# ---------------------------------------------------------------- get_or_set


def test_get_or_set_caches_and_counts(cache: CacheService, clock: FakeClock) -> None:
    calls: list[int] = []

    def factory() -> str:
        calls.append(1)
        return "v"

    assert cache.get_or_set("k", factory) == "v"
    assert cache.get_or_set("k", factory) == "v"
    assert len(calls) == 1
    clock.advance(10)
    assert cache.get_or_set("k", factory, ttl=1) == "v"
    assert len(calls) == 2
    assert cache.get_ttl("k") == pytest.approx(1)
    stats = cache.get_stats()
    assert (stats.hits, stats.misses, stats.sets, stats.evictions) == (1, 2, 2, 1)


def test_get_or_set_calls_factory_once_under_16_threads(cache: CacheService) -> None:
    release = threading.Event()
    entered = threading.Event()
    calls: list[int] = []
    barrier = threading.Barrier(16)
    results: list[object] = []
    lock = threading.Lock()

    def factory() -> dict[str, int]:
        calls.append(1)
        entered.set()
        assert release.wait(10)
        return {"id": 7}

    def worker() -> None:
        barrier.wait()
        value = cache.get_or_set("release:7", factory)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    assert entered.wait(10)
    # Every thread has looked the key up (a miss each) before the factory finishes.
    wait_until(lambda: cache.get_stats().misses == 16, "16 threads to miss")
    release.set()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert len(calls) == 1
    assert len(results) == 16
    assert all(r is results[0] for r in results)
    assert cache.get("release:7") == {"id": 7}


def test_get_or_set_error_reaches_waiters_and_is_not_cached(cache: CacheService) -> None:
    release = threading.Event()
    entered = threading.Event()
    errors: list[BaseException] = []

    def failing() -> int:
        entered.set()
        assert release.wait(10)
        raise KeyError("boom")

    def worker() -> None:
        try:
            cache.get_or_set("k", failing)
        except KeyError as exc:
            errors.append(exc)

    leader = threading.Thread(target=worker)
    leader.start()
    assert entered.wait(10)
    follower = threading.Thread(target=worker)
    follower.start()
    wait_until(lambda: cache.get_stats().misses == 2, "both threads to miss")
    release.set()
    leader.join(10)
    follower.join(10)
    assert len(errors) == 2
    assert not cache.has("k")
    assert cache.get_or_set("k", lambda: 5) == 5


def test_get_or_set_recursive_same_key_raises(cache: CacheService) -> None:
    def factory() -> int:
        return cache.get_or_set("k", lambda: 1) + 1

    with pytest.raises(RuntimeError):
        cache.get_or_set("k", factory)
    assert cache.get_or_set("k", lambda: 3) == 3  # the failed attempt left nothing behind


# ---------------------------------------------------------------- thread safety


@pytest.mark.parametrize("max_entries", [None, 20])
def test_eight_threads_hammering(max_entries: int | None) -> None:
    cache = CacheService(default_ttl=60, auto_cleanup=False, max_entries=max_entries)
    barrier = threading.Barrier(8)
    reads = [0] * 8
    sets = [0] * 8
    failures: list[BaseException] = []

    def worker(i: int) -> None:
        rng = random.Random(i)
        barrier.wait()
        try:
            for _ in range(3000):
                key = f"k{rng.randrange(50)}"
                op = rng.random()
                if op < 0.6:
                    value = cache.get(key)
                    assert value is None or value.startswith(key)
                    reads[i] += 1
                elif op < 0.9:
                    cache.set(key, f"{key}:{i}")
                    sets[i] += 1
                else:
                    cache.delete(key)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often so the operations really interleave
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    stats = cache.get_stats()
    assert stats.hits + stats.misses == sum(reads)
    assert stats.sets == sum(sets)
    assert stats.hits > 0 and stats.misses > 0
    assert stats.size <= (max_entries or 50)


# ---------------------------------------------------------------- background sweep and lifecycle


def test_auto_cleanup_thread_removes_expired_entries(clock: FakeClock) -> None:
    cache = CacheService(default_ttl=10, auto_cleanup=True, cleanup_interval=0.05, clock=clock)
    try:
        cache.set("a", 1)
        cache.set("b", 2)
        # The sweep runs every 50 ms: until released it keeps seeing the time before the advance,
        # so it cannot evict "a" and "b" before the check below, however slow this thread is.
        clock.held_at = clock.now
        clock.watch = cache.cleanup_thread
        clock.advance(11)
        cache.set("c", 3)
        assert cache.get_stats().evictions == 0
        clock.held_at = None
        # The sweep reads the clock under the cache lock, so once it has seen the new time, our
        # next call waits for that sweep to finish.
        assert clock.seen.wait(WAIT), "the sweep thread never ran"
        stats = cache.get_stats()
        assert stats.evictions == 2
        assert stats.size == 1
        assert stats.hits == stats.misses == 0  # the sweep is not a read
    finally:
        cache.destroy()


def test_cleanup_thread_is_daemon_and_stops_on_destroy() -> None:
    cache = CacheService(cleanup_interval=3600)
    thread = cache.cleanup_thread
    assert thread is not None and thread.daemon and thread.is_alive()
    cache.set("k", 1)
    cache.destroy()
    assert not thread.is_alive()
    assert cache.size() == 0
    cache.destroy()  # idempotent
    cache.set("k", 2)  # still usable as a plain cache
    assert cache.get("k") == 2


def test_stop_auto_cleanup_keeps_entries() -> None:
    cache = CacheService(cleanup_interval=3600)
    cache.set("k", 1)
    cache.stop_auto_cleanup()
    thread = cache.cleanup_thread
    assert thread is not None and not thread.is_alive()
    assert cache.get("k") == 1


def test_unreferenced_cache_is_collected_and_thread_ends() -> None:
    cache = CacheService(cleanup_interval=3600)
    cache.set("k", 1)
    thread = cache.cleanup_thread
    assert thread is not None and thread.is_alive()
    ref = weakref.ref(cache)
    del cache
    gc.collect()
    assert ref() is None, "the sweep thread must not keep the cache alive"
    thread.join(5)
    assert not thread.is_alive()


def test_context_manager_destroys() -> None:
    with CacheService(cleanup_interval=3600) as cache:
        cache.set("k", 1)
        thread = cache.cleanup_thread
        assert cache.get("k") == 1
    assert thread is not None and not thread.is_alive()
    assert cache.size() == 0
