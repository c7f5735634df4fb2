"""Rows 1 and 3: a cache hit against dict/lock/cachetools, and cleanup cost as the cache grows."""

from __future__ import annotations

import threading
from typing import Any

from toolkit.bench.harness import Candidate, interleaved, loop_of, summarize
from toolkit.bench.model import BenchContext, RowResult, Skip, bars

__all__ = ["ManualClock", "cache_hit", "cleanup_cost"]


class ManualClock:
    """A clock that only moves when told to (so entries can be expired instantly)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cache_hit(ctx: BenchContext, row: RowResult) -> None:
    """``CacheService.get`` of a live key vs ``dict.get``, a lock-guarded dict and ``TTLCache.get``."""
    from toolkit.cache import CacheService

    try:
        from cachetools import TTLCache
    except ImportError as exc:  # pragma: no cover - cachetools is a dev dependency
        raise Skip("cachetools is not installed") from exc

    key, value = "discogs:release:249504", {"id": 249504, "title": "Never Gonna Give You Up"}
    cache = CacheService(auto_cleanup=False)
    for i in range(1000):
        cache.set(f"discogs:release:{i}", {"id": i})
    cache.set(key, value)
    plain: dict[str, Any] = {f"discogs:release:{i}": {"id": i} for i in range(1000)}
    plain[key] = value
    lock = threading.Lock()

    def locked_get(k: str) -> Any:
        with lock:
            return plain.get(k)

    ttl: TTLCache[str, Any] = TTLCache(maxsize=10_000, ttl=86400.0)
    ttl.update(plain)

    candidates = [
        Candidate("CacheService.get", loop_of(cache.get, key)),
        Candidate("dict.get", loop_of(plain.get, key)),
        Candidate("lock-guarded dict", loop_of(locked_get, key)),
        Candidate("cachetools.TTLCache.get", loop_of(ttl.get, key)),
    ]
    samples = interleaved(
        candidates, repeats=ctx.pick(7, 25), warmup=2, min_time=ctx.pick(0.005, 0.02)
    )
    stats = {name: summarize(values).scaled(1e6) for name, values in samples.items()}
    ours = stats["CacheService.get"]
    peer = stats["cachetools.TTLCache.get"]
    row.set_ours(ours)
    row.set_baseline("cachetools.TTLCache.get", peer)
    row.others = {name: s.median for name, s in stats.items()}
    row.series = {
        **bars(stats),
        "claim": [1000.0, 2000.0],
        "target": 0.5,
    }
    row.passed = ours.median <= 0.5 and ours.median < peer.median
    row.note = (
        f"dict.get {stats['dict.get'].median:.3f} µs, lock-guarded dict "
        f"{stats['lock-guarded dict'].median:.3f} µs (the floor a thread-safe TTL cache sits on)."
    )
    cache.destroy()


def cleanup_cost(ctx: BenchContext, row: RowResult) -> None:
    """``CacheService.cleanup()`` of N expired entries vs ``TTLCache.expire()``, for growing N."""
    from toolkit.cache import CacheService

    try:
        from cachetools import TTLCache
    except ImportError as exc:  # pragma: no cover
        raise Skip("cachetools is not installed") from exc

    sizes: list[int] = ctx.pick([1_000, 10_000, 30_000], [1_000, 3_000, 10_000, 30_000, 100_000])
    repeats: int = ctx.pick(3, 11)
    ours_ms: list[float] = []
    ours_p5: list[float] = []
    ours_p95: list[float] = []
    peer_ms: list[float] = []
    last: dict[str, Any] = {}
    for n in sizes:
        samples = _cleanup_samples(CacheService, TTLCache, n, repeats)
        per_k = 1e3 * 1000 / n  # seconds -> ms, per 1,000 entries
        ours = summarize(samples["CacheService.cleanup"]).scaled(per_k)
        base = summarize(samples["TTLCache.expire"]).scaled(per_k)
        ours_ms.append(ours.median)
        ours_p5.append(ours.p5)
        ours_p95.append(ours.p95)
        peer_ms.append(base.median)
        last = {"ours": ours, "base": base}
    row.set_ours(last["ours"])
    row.set_baseline("cachetools.TTLCache.expire", last["base"])
    row.series = {
        "kind": "scaling",
        "sizes": sizes,
        "ours": ours_ms,
        "ours_p5": ours_p5,
        "ours_p95": ours_p95,
        "baseline": peer_ms,
        "claim": 5.0,
        "target": 0.5,
        "ours_label": "CacheService.cleanup() (ours)",
        "baseline_label": "cachetools TTLCache.expire()",
        "xlabel": "expired entries N",
        "ylabel": "ms per 1,000 expired entries",
    }
    worst = max(ours_ms)
    row.others = {f"N={n:,}": v for n, v in zip(sizes, ours_ms, strict=True)}
    row.passed = worst <= 0.5
    row.note = (
        f"ms per 1,000 expired entries at N = {sizes[-1]:,}; worst over N = "
        f"{', '.join(f'{n:,}' for n in sizes)} is {worst:.3f} ms."
    )


def _cleanup_samples(
    service: type[Any], ttl_cache: type[Any], n: int, repeats: int
) -> dict[str, list[float]]:
    """Interleaved timings of one cleanup of ``n`` expired entries, ours vs TTLCache.expire()."""
    clock = ManualClock()
    cache = service(auto_cleanup=False, clock=clock)
    peer_clock = ManualClock()
    peer = ttl_cache(maxsize=n + 1, ttl=1.0, timer=peer_clock)
    keys = [f"k{i}" for i in range(n)]

    def fill_ours() -> None:
        clock.now = 0.0
        for k in keys:
            cache.set(k, 1, ttl=1.0)
        clock.now = 10.0

    def fill_peer() -> None:
        peer_clock.now = 0.0
        for k in keys:
            peer[k] = 1
        peer_clock.now = 10.0

    return interleaved(
        [
            Candidate("CacheService.cleanup", lambda _n: cache.cleanup(), fill_ours, 1),
            Candidate("TTLCache.expire", lambda _n: peer.expire(), fill_peer, 1),
        ],
        repeats=repeats,
        warmup=1,
    )
