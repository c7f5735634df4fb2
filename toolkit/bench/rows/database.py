"""Rows 4, 5 and 13: query building, transaction overhead and bulk loading."""

from __future__ import annotations

from toolkit.bench.model import BenchContext, RowResult, Skip

__all__ = ["bulk_load", "query_build", "transaction_overhead"]


def query_build(ctx: BenchContext, row: RowResult) -> None:
    """``QueryBuilder.build()`` of the spec's complex query vs executing it."""
    raise Skip("not written yet")


def transaction_overhead(ctx: BenchContext, row: RowResult) -> None:
    """One atomic group vs the same statements without a transaction."""
    raise Skip("not written yet")


def bulk_load(ctx: BenchContext, row: RowResult) -> None:
    """``load_collection`` rows/s vs row-by-row inserts."""
    raise Skip("not written yet")
