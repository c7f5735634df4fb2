"""Benchmarks of the toolkit against in-process baselines and a peer client: ``run_benchmarks``."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path

from toolkit.bench.model import BenchContext, RowResult, Skip
from toolkit.bench.report import BenchRun, load_results, to_markdown, write_results
from toolkit.bench.rows import ROWS, select_rows
from toolkit.config import Settings

__all__ = [
    "ROWS",
    "BenchRun",
    "RowResult",
    "default_out_dir",
    "load_results",
    "run_benchmarks",
    "to_markdown",
]


def default_out_dir(settings: Settings | None = None) -> Path:
    """``settings.data_dir / "bench"`` (default: the environment's settings; ``data/bench`` in a checkout)."""
    return (settings or Settings.from_env()).data_dir / "bench"


def _run_row(
    ctx: BenchContext, row: RowResult, run: Callable[[BenchContext, RowResult], None]
) -> None:
    start = time.perf_counter()
    try:
        run(ctx, row)
    except Skip as exc:
        row.status, row.note, row.passed = "skipped", str(exc), None
    except ImportError as exc:
        row.status, row.passed = "skipped", None
        row.note = f"dependency missing: {exc.name or exc}"
    except Exception as exc:
        row.status, row.passed = "error", None
        row.note = f"{type(exc).__name__}: {exc}"[:300]
        ctx.log("".join(traceback.format_exception(exc)).rstrip())
    row.seconds = time.perf_counter() - start


def run_benchmarks(
    out_dir: Path | str | None = None,
    *,
    quick: bool = False,
    only: str | list[str] | None = None,
    charts: bool = True,
    log: Callable[[str], None] | None = None,
) -> BenchRun:
    """Run the selected rows (all by default), write results.json/csv and charts under ``out_dir``.

    A row whose dependency is missing is recorded as ``skipped`` with the reason; a row that
    crashes is recorded as ``error``; the run itself always completes.
    """
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _message: None)
    specs = select_rows(only)
    work = out / "work"
    work.mkdir(exist_ok=True)
    ctx = BenchContext(quick=quick, work_dir=work, log=say)
    run = BenchRun(quick=quick, rows=[])
    start = time.perf_counter()
    for spec in specs:
        row = spec.blank()
        say(f"[{spec.number:>2}/{len(ROWS)}] {spec.name} ...")
        _run_row(ctx, row, spec.run)
        run.rows.append(row)
        run.seconds = time.perf_counter() - start
        say(f"        {row.verdict}: {_short(row)} ({row.seconds:.1f} s)")
        write_results(run, out)
    if charts:
        # Imported here: matplotlib costs ~0.5 s, and the benchmark's child processes
        # (toolkit.bench.simproc, toolkit.bench.child) import this package without needing it.
        from toolkit.bench.charts import write_charts

        write_charts(run.rows, out)
    run.seconds = time.perf_counter() - start
    write_results(run, out)
    return run


def _short(row: RowResult) -> str:
    from toolkit.bench.report import format_value

    if row.status != "ok":
        return row.note
    text = f"{format_value(row.median, row.unit)}"
    if row.baseline_name:
        unit = row.baseline_unit or row.unit
        text += f" vs {row.baseline_name} {format_value(row.baseline_median, unit)}"
    return text
