"""Rows 6, 7 and 8: task dispatch cost, the concurrency limit over time, retry back-off delays."""

from __future__ import annotations

import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from toolkit.bench.harness import Candidate, interleaved, summarize
from toolkit.bench.model import BenchContext, RowResult

__all__ = ["backoff_delays", "concurrency_limit", "task_dispatch"]


def _noop() -> None:
    return None


def task_dispatch(ctx: BenchContext, row: RowResult) -> None:
    """ConcurrencyManager.enqueue_batch of no-op tasks vs submit/result on a bare ThreadPoolExecutor.

    Both sides start their pool inside the timed region and use the same worker count (the
    default 5), so the difference is the manager's bookkeeping: priorities, retries, deadlines.
    """
    from toolkit.concurrency import ConcurrencyManager, Task

    count: int = ctx.pick(2_000, 10_000)
    workers = 5

    def ours(_loops: int) -> None:
        with ConcurrencyManager(max_concurrent=workers) as manager:
            manager.enqueue_batch([Task(str(i), _noop) for i in range(count)])

    def bare(_loops: int) -> None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_noop) for _ in range(count)]
            for future in futures:
                future.result()

    samples = interleaved(
        [
            Candidate("ConcurrencyManager", ours, loops=1),
            Candidate("ThreadPoolExecutor", bare, loops=1),
        ],
        repeats=ctx.pick(5, 15),
        warmup=1,
    )
    per_task = 1e6 / count  # seconds per batch -> µs per task
    mine = summarize(samples["ConcurrencyManager"]).scaled(per_task)
    base = summarize(samples["ThreadPoolExecutor"]).scaled(per_task)
    row.set_ours(mine)
    row.set_baseline("bare ThreadPoolExecutor", base)
    row.passed = row.ratio is not None and row.ratio <= 2.0
    row.note = f"{count:,} no-op tasks per repeat on {workers} workers; ratio target ≤ 2."
    row.series = {
        "kind": "bars",
        "labels": ["ConcurrencyManager (ours)", "bare ThreadPoolExecutor", "2× bare (target)"],
        "medians": [mine.median, base.median, 2 * base.median],
        "p5": [mine.p5, base.p5, 2 * base.median],
        "p95": [mine.p95, base.p95, 2 * base.median],
        "claim": 500.0,
        "unit": "µs per task",
        "log": True,
    }


def _trace_limit(limit: int, durations: list[float], fail_first: set[int]) -> dict[str, Any]:
    """Run tasks under ``limit`` and record every change of the in-flight count."""
    from toolkit.concurrency import ConcurrencyManager, Task

    lock = threading.Lock()
    state = {"in_flight": 0, "peak": 0}
    start = time.perf_counter()
    times: list[float] = [0.0]
    counts: list[int] = [0]
    attempts: dict[int, int] = {}

    def make(index: int, seconds: float) -> Any:
        def run() -> None:
            with lock:
                state["in_flight"] += 1
                state["peak"] = max(state["peak"], state["in_flight"])
                times.append(time.perf_counter() - start)
                counts.append(state["in_flight"])
                attempts[index] = attempts.get(index, 0) + 1
                failing = index in fail_first and attempts[index] == 1
            try:
                time.sleep(seconds)
                if failing:
                    raise RuntimeError("first attempt fails (exercises retries)")
            finally:
                with lock:
                    state["in_flight"] -= 1
                    times.append(time.perf_counter() - start)
                    counts.append(state["in_flight"])

        return run

    with ConcurrencyManager(max_concurrent=limit, retries=2, backoff_base=0.005) as manager:
        results = manager.enqueue_batch(
            [Task(f"t{i}", make(i, d)) for i, d in enumerate(durations)]
        )
        reported = manager.peak_active
    first = times[1] if len(times) > 1 else 0.0
    times = [0.0] + [t - first for t in times[1:]]
    return {
        "limit": limit,
        "times": times,
        "counts": counts,
        "peak": state["peak"],
        "reported_peak": reported,
        "failed": sum(not r.success for r in results),
        "elapsed": time.perf_counter() - start,
    }


def concurrency_limit(ctx: BenchContext, row: RowResult) -> None:
    """Peak callables in flight, counted inside the callables, for limits 1, 5 and 10.

    Task durations are random (2–12 ms) and one task in five fails its first attempt, so
    retries and their back-off are part of the trace.
    """
    rng = random.Random(7)
    tasks: int = ctx.pick(40, 150)
    traces = []
    for limit in (1, 5, 10):
        count = tasks if limit > 1 else tasks // 2
        durations = [rng.uniform(0.002, 0.012) for _ in range(count)]
        fail_first = {i for i in range(count) if i % 5 == 0}
        traces.append(_trace_limit(limit, durations, fail_first))
    excess = max(t["peak"] - t["limit"] for t in traces)
    row.median = float(excess)
    row.repeats = 1
    row.baseline_name = "allowed excess (spec ±1)"
    row.baseline_median = 1.0
    row.ratio_note = "n/a"
    row.passed = excess <= 0
    row.others = {f"peak at limit {t['limit']}": float(t["peak"]) for t in traces}
    row.note = "peaks in flight: " + ", ".join(
        f"limit {t['limit']} → {t['peak']} (manager reports {t['reported_peak']})" for t in traces
    )
    row.series = {"kind": "trace", "traces": traces, "subtitle": "callables in flight over time"}


def backoff_delays(ctx: BenchContext, row: RowResult) -> None:
    """Delays between attempts of an always-failing task with 3 retries vs 100/200/400 ms."""
    from toolkit.concurrency import ConcurrencyManager, Task

    formula = [100.0, 200.0, 400.0]
    measured: list[list[float]] = []
    for _ in range(ctx.pick(1, 3)):
        stamps: list[float] = []

        def fail(stamps: list[float] = stamps) -> None:
            stamps.append(time.perf_counter())
            raise RuntimeError("always fails")

        with ConcurrencyManager(max_concurrent=1, retries=3, backoff_base=0.1) as manager:
            manager.enqueue_batch([Task("flaky", fail)])
        measured.append([(b - a) * 1e3 for a, b in itertools.pairwise(stamps)])
    per_retry = [summarize([m[i] for m in measured]).median for i in range(len(formula))]
    totals = summarize([sum(m) for m in measured])
    row.set_ours(totals)
    row.baseline_name = "formula 100+200+400"
    row.baseline_median = sum(formula)
    row.ratio = totals.median / sum(formula)
    row.passed = all(f <= m <= f * 1.1 for m, f in zip(per_retry, formula, strict=True))
    row.others = {f"retry {i + 1}": m for i, m in enumerate(per_retry)}
    row.note = "measured delays " + " / ".join(f"{m:.1f}" for m in per_retry) + " ms (total shown)."
    row.series = {
        "kind": "grouped",
        "groups": [f"retry {i + 1}" for i in range(len(formula))],
        "bars": {"measured (ours)": per_retry, "formula / spec": formula},
        "ylabel": "delay before the retry (ms)",
    }
