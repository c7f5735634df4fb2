"""Rows 6, 7 and 8: task dispatch cost, the concurrency limit over time, retry back-off delays."""

from __future__ import annotations

from toolkit.bench.model import BenchContext, RowResult, Skip

__all__ = ["backoff_delays", "concurrency_limit", "task_dispatch"]


def task_dispatch(ctx: BenchContext, row: RowResult) -> None:
    """ConcurrencyManager on no-op tasks vs a bare ThreadPoolExecutor."""
    raise Skip("not written yet")


def concurrency_limit(ctx: BenchContext, row: RowResult) -> None:
    """Peak callables in flight for limits 1, 5 and 10."""
    raise Skip("not written yet")


def backoff_delays(ctx: BenchContext, row: RowResult) -> None:
    """Measured retry delays vs the formula."""
    raise Skip("not written yet")
