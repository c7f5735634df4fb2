"""Rows 2, 9, 10, 11 and 12: the client and the pull against the local Discogs simulator."""

from __future__ import annotations

from toolkit.bench.model import BenchContext, RowResult, Skip

__all__ = ["cache_miss", "collection_sync", "peer_client", "rate_limited_pull", "repeated_fetch"]


def cache_miss(ctx: BenchContext, row: RowResult) -> None:
    """A release fetch from the simulator at 0.5 s latency vs the cache hit."""
    raise Skip("not written yet")


def repeated_fetch(ctx: BenchContext, row: RowResult) -> None:
    """Warm vs cold release fetches."""
    raise Skip("not written yet")


def collection_sync(ctx: BenchContext, row: RowResult) -> None:
    """100-item sync: sequential uncached vs 10 parallel vs warm."""
    raise Skip("not written yet")


def rate_limited_pull(ctx: BenchContext, row: RowResult) -> None:
    """A pull with details at the simulator's strict limit vs its rate bound."""
    raise Skip("not written yet")


def peer_client(ctx: BenchContext, row: RowResult) -> None:
    """The same pull made by python3-discogs-client."""
    raise Skip("not written yet")
