"""Row 14: peak RSS of a pull with details, measured in a child process."""

from __future__ import annotations

from toolkit.bench.model import BenchContext, RowResult, Skip

__all__ = ["pull_memory"]


def pull_memory(ctx: BenchContext, row: RowResult) -> None:
    """Peak RSS of a large pull with details."""
    raise Skip("not written yet")
