"""The data every benchmark row produces, and the context rows run in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.bench.harness import Summary

__all__ = ["BenchContext", "RowResult", "RowSpec", "Skip", "bars"]


def bars(stats: dict[str, Summary]) -> dict[str, Any]:
    """A bar chart's series of named summaries: labels, medians and the p5/p95 whiskers."""
    return {
        "kind": "bars",
        "labels": list(stats),
        "medians": [s.median for s in stats.values()],
        "p5": [s.p5 for s in stats.values()],
        "p95": [s.p95 for s in stats.values()],
    }


class Skip(Exception):
    """Raised by a row that cannot run here (a dependency missing); the message is the reason."""


@dataclass
class BenchContext:
    """What a row gets: quick or full mode, where to write scratch files, a progress callback."""

    quick: bool
    work_dir: Path
    log: Callable[[str], None] = print

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full


@dataclass
class RowResult:
    """One row of the results table (plus chart data in ``series``).

    ``ratio`` is ``median / baseline_median`` unless the row says otherwise in ``ratio_note``.
    ``passed`` is True/False against the project's target, or None when the row has no target or
    was skipped. ``status`` is ``ok``, ``skipped`` or ``error``.
    """

    number: int
    key: str
    name: str
    unit: str
    claim: str
    target: str
    status: str = "ok"
    median: float | None = None
    p5: float | None = None
    p95: float | None = None
    repeats: int = 0
    baseline_name: str | None = None
    baseline_unit: str | None = None
    baseline_median: float | None = None
    baseline_p5: float | None = None
    baseline_p95: float | None = None
    ratio: float | None = None
    ratio_note: str = "ours / baseline"
    passed: bool | None = None
    note: str = ""
    others: dict[str, float] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    chart: str = ""

    def set_ours(self, summary: Summary) -> None:
        """Fill median/p5/p95/repeats from a summary."""
        self.median, self.p5, self.p95 = summary.median, summary.p5, summary.p95
        self.repeats = summary.repeats

    def set_baseline(self, name: str, summary: Summary, *, ratio: bool = True) -> None:
        """Fill the baseline columns (and the ratio ours / baseline) from a summary."""
        self.baseline_name = name
        self.baseline_median = summary.median
        self.baseline_p5, self.baseline_p95 = summary.p5, summary.p95
        if ratio and self.median is not None and summary.median:
            self.ratio = self.median / summary.median

    @property
    def verdict(self) -> str:
        """``pass``, ``miss``, ``info`` (no target), ``skipped`` or ``error``."""
        if self.status != "ok":
            return self.status
        if self.passed is None:
            return "info"
        return "pass" if self.passed else "miss"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with the derived ``verdict``)."""
        data = asdict(self)
        data["verdict"] = self.verdict
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowResult:
        """Inverse of :meth:`to_dict`."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields)


@dataclass(frozen=True)
class RowSpec:
    """A registered row: its number, key, the spec's claim, our target and the function to run."""

    number: int
    key: str
    name: str
    unit: str
    claim: str
    target: str
    run: Callable[[BenchContext, RowResult], None]

    def blank(self) -> RowResult:
        """An empty result carrying this row's identity."""
        return RowResult(self.number, self.key, self.name, self.unit, self.claim, self.target)
