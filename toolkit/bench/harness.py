"""A small in-process timing harness: warm-up, calibrated loops, interleaved repeats, GC paused.

Why not pyperf or pytest-benchmark: every row compares our code with a baseline *in the same
process*, alternating ours/baseline repeat by repeat so that a noisy neighbour, a frequency change
or a cache flush shifts both sides equally. pyperf isolates each benchmark in worker processes
(which defeats interleaving and in-process baselines such as a lock-guarded dict sharing our
objects), and pytest-benchmark times one callable at a time. What is left is small: time a loop
with :func:`time.perf_counter_ns` while :mod:`gc` is disabled, and summarise with
:mod:`statistics` (median, 5th and 95th percentiles).
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "Candidate",
    "Summary",
    "calibrate",
    "gc_paused",
    "interleaved",
    "loop_of",
    "paired_differences",
    "summarize",
    "time_once",
]

#: A timed body: called with a loop count, runs the operation that many times.
LoopFn = Callable[[int], object]


@dataclass(frozen=True)
class Summary:
    """Median and 5th/95th percentiles of a list of samples (same unit as the samples)."""

    median: float
    p5: float
    p95: float
    repeats: int
    samples: tuple[float, ...] = field(default=(), repr=False)

    def scaled(self, factor: float) -> Summary:
        """The same summary with every value multiplied by ``factor`` (unit conversion)."""
        return Summary(
            self.median * factor,
            self.p5 * factor,
            self.p95 * factor,
            self.repeats,
            tuple(s * factor for s in self.samples),
        )


def summarize(samples: list[float] | tuple[float, ...]) -> Summary:
    """Summarise samples: median, and the 5th/95th percentiles (inclusive method)."""
    values = [float(s) for s in samples]
    if not values:
        raise ValueError("no samples to summarise")
    if len(values) == 1:
        only = values[0]
        return Summary(only, only, only, 1, (only,))
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return Summary(statistics.median(values), cuts[0], cuts[-1], len(values), tuple(values))


def paired_differences(ours: list[float], baseline: list[float]) -> list[float]:
    """Repeat-by-repeat differences ``ours[i] - baseline[i]`` of two interleaved sample lists."""
    if len(ours) != len(baseline):
        raise ValueError("paired samples must have the same length")
    return [a - b for a, b in zip(ours, baseline, strict=True)]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector for the block, restoring its previous state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def loop_of(fn: Callable[..., object], *args: object) -> LoopFn:
    """A loop body calling ``fn(*args)`` ``n`` times (the loop's own cost is shared by every row)."""

    def body(n: int) -> None:
        for _ in itertools.repeat(None, n):
            fn(*args)

    return body


def time_once(body: LoopFn, loops: int) -> int:
    """Nanoseconds taken by ``body(loops)`` with the garbage collector paused."""
    with gc_paused():
        start = time.perf_counter_ns()
        body(loops)
        return time.perf_counter_ns() - start


def calibrate(body: LoopFn, min_time: float, *, max_loops: int = 10_000_000) -> int:
    """Smallest power-of-ten-ish loop count for which one repeat takes at least ``min_time`` s."""
    loops = 1
    while True:
        elapsed = time_once(body, loops) / 1e9
        if elapsed >= min_time or loops >= max_loops:
            return loops
        if elapsed <= 0:
            loops *= 10
        else:
            loops = min(max_loops, max(loops * 2, int(loops * min_time / elapsed * 1.2)))


@dataclass
class Candidate:
    """One side of a comparison: a loop body, an optional untimed per-repeat setup, a loop count.

    ``loops=None`` calibrates the count during warm-up so that one repeat lasts ``min_time``.
    """

    name: str
    body: LoopFn
    setup: Callable[[], object] | None = None
    loops: int | None = None


def interleaved(
    candidates: list[Candidate],
    *,
    repeats: int,
    warmup: int = 1,
    min_time: float = 0.01,
) -> dict[str, list[float]]:
    """Time every candidate ``repeats`` times, alternating candidates within each repeat.

    The order rotates each repeat (A B C, B C A, ...) so no candidate always runs first. Returns,
    per candidate name, the seconds *per operation* (elapsed / loops) of each repeat.
    """
    if not candidates:
        return {}
    loops: dict[str, int] = {}
    for cand in candidates:
        for _ in range(max(warmup, 1)):
            if cand.setup is not None:
                cand.setup()
            if cand.loops is None:
                loops[cand.name] = calibrate(cand.body, min_time)
            else:
                loops[cand.name] = cand.loops
                time_once(cand.body, cand.loops)
    results: dict[str, list[float]] = {cand.name: [] for cand in candidates}
    count = len(candidates)
    # One full collection up front; between repeats only the young generation (a full one can
    # cost ~100 ms on a big heap, and the timed loops run with the collector paused anyway).
    gc.collect()
    for rep in range(repeats):
        for offset in range(count):
            cand = candidates[(rep + offset) % count]
            if cand.setup is not None:
                cand.setup()
            gc.collect(0)
            n = loops[cand.name]
            results[cand.name].append(time_once(cand.body, n) / 1e9 / n)
    return results
