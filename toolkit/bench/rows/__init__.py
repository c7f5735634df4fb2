"""The benchmark rows, in the order of the issue's table: spec claim, our target, the function."""

from __future__ import annotations

from toolkit.bench.model import RowSpec
from toolkit.bench.rows.budget import shared_budget
from toolkit.bench.rows.cache import cache_hit, cleanup_cost
from toolkit.bench.rows.catalogue import catalogue_pull, dump_load
from toolkit.bench.rows.concurrency import backoff_delays, concurrency_limit, task_dispatch
from toolkit.bench.rows.database import (
    bulk_load,
    index_suggestion,
    query_build,
    transaction_overhead,
)
from toolkit.bench.rows.memory import pull_memory
from toolkit.bench.rows.network import (
    cache_miss,
    collection_sync,
    peer_client,
    rate_limited_pull,
    repeated_fetch,
)

__all__ = ["ROWS", "select_rows"]

ROWS: list[RowSpec] = [
    RowSpec(1, "cache_hit", "Cache hit", "µs", "~1–2 ms", "≤ 0.5 µs and < TTLCache.get", cache_hit),
    RowSpec(2, "cache_miss", "Cache miss + API (0.5 s latency)", "ms", "500–2000 ms",
            "≤ 500 ms latency + 10 ms", cache_miss),
    RowSpec(3, "cleanup", "Auto-cleanup per 1,000 expired", "ms", "< 5 ms", "≤ 0.5 ms",
            cleanup_cost),
    RowSpec(4, "query_build", "Query building (complex query)", "µs", "< 0.1 ms", "≤ 10 µs",
            query_build),
    RowSpec(5, "transaction", "Transaction overhead (sqlite)", "µs", "< 1 ms", "≤ 100 µs",
            transaction_overhead),
    RowSpec(6, "dispatch", "Task dispatch (no-op tasks)", "µs/task", "< 0.5 ms",
            "≤ 2× bare executor", task_dispatch),
    RowSpec(7, "limit", "Concurrency limit (1, 5, 10)", "tasks over limit", "within ±1",
            "never exceeded", concurrency_limit),
    RowSpec(8, "backoff", "Retry back-off (3 retries)", "ms", "100, 200, 400 ms",
            "each within +10 % of formula", backoff_delays),
    RowSpec(9, "repeated_fetch", "Repeated fetch: warm re-pull of 5,000", "s",
            "90–99 % faster (warm fetch)", "≤ 1 s, no release requests", repeated_fetch),
    RowSpec(10, "sync", "Collection sync, 100 items, 200 ms", "x faster", "5–10× faster",
            "≥ 9×", collection_sync),
    RowSpec(11, "rate_limited_pull", "Rate-limited pull with details", "efficiency",
            "automatic limiting", "≥ 0.95 and zero 429s", rate_limited_pull),
    RowSpec(12, "peer", "Same pull vs python3-discogs-client", "s", "—",
            "faster, fewer 429s", peer_client),
    RowSpec(13, "bulk_load", "Bulk load into DuckDB", "rows/s", "—", "≥ 300k rows/s",
            bulk_load),
    RowSpec(14, "memory", "Peak RSS of a pull with details", "MiB", "—",
            "≤ 300 MiB (20,000 items)", pull_memory),
    RowSpec(15, "index", "Suggested index: genre query (sqlite)", "ms", "automatic index suggestions",
            "found; no scan left; faster", index_suggestion),
    RowSpec(16, "dump_load", "Dump load: 100,000 releases, gzipped", "releases/s",
            "discogskit: ~24 s here, ~860 MiB", "≥ 1.5× discogskit, ≤ 400 MiB, no XML copy",
            dump_load),
    RowSpec(17, "catalogue_pull", "1,000-item pull: details from catalogue vs API (60/min)", "s",
            "details in the time of the listing", "no /releases request, every release found",
            catalogue_pull),
    RowSpec(18, "shared_budget", "N processes (1, 2, 4) on one shared rate budget", "efficiency",
            "distributed rate limiting", "≥ 0.9 and zero 429s, file and Redis", shared_budget),
]  # fmt: skip


def select_rows(only: str | list[str] | None) -> list[RowSpec]:
    """The rows named in ``only`` (numbers, keys or ranges like ``1-4``, comma separated)."""
    if not only:
        return list(ROWS)
    tokens = only.split(",") if isinstance(only, str) else [t for o in only for t in o.split(",")]
    wanted: set[int] = set()
    by_key = {spec.key: spec.number for spec in ROWS}
    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        if token in by_key:
            wanted.add(by_key[token])
        elif "-" in token and all(part.strip().isdigit() for part in token.split("-", 1)):
            low, high = (int(part) for part in token.split("-", 1))
            wanted.update(range(low, high + 1))
        elif token.isdigit():
            wanted.add(int(token))
        else:
            raise ValueError(f"unknown benchmark row {token!r}; use 1-{len(ROWS)} or a key")
    unknown = wanted - set(by_key.values())
    if unknown:
        raise ValueError(f"unknown benchmark row(s) {sorted(unknown)}; use 1-{len(ROWS)}")
    return [spec for spec in ROWS if spec.number in wanted]
