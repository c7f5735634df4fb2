"""Row 18: N processes pulling at once on one shared rate budget, against private windows.

N = 1, 2, 4 processes (each pulling its own user's collection with details) start together
against a strict moving-window simulator keyed by address, as Discogs counts. They share one
window through the data directory's file, or through a private Redis server; the baseline is the
same processes each with a private window (the behaviour before sharing), which collide. Combined
efficiency = rate bound of the requests answered 200 / the span from the first request (a fresh
window, as the bound assumes) to the last answer; ``startup`` (until the last process sent its
first request) is reported beside it and is inside the span. 429s are counted at the server.

Time is compressed as in rows 11/12 (see :mod:`toolkit.bench.rows.network`): a few-second window,
latency a small fraction of it. The pulls run with no reserve (no one else is there to keep it
for); the reserve's own cost is measured once at N = 4 (not in quick mode).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from toolkit.bench.model import BenchContext, RowResult, Skip

__all__ = ["shared_budget"]

COUNTS = (1, 2, 4)


def _run(
    sim: Any, users: list[str], folder: Path, mode: str, redis: str | None, limit: int,
    window: float, reserve: int = 0,
) -> dict[str, float]:  # fmt: skip
    from toolkit.budget.child import start
    from toolkit.pull import rate_bound_seconds

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sim.reset_limits()
    sim.reset_counters()
    procs: list[subprocess.Popen[str]] = []
    for user in users:
        config = {
            "url": sim.url,
            "user": user,
            "data_dir": str(folder / (f"data-{user}" if mode == "redis" else "data")),
            "db": str(folder / f"{user}.duckdb"),
            "limit": limit,
            "window": window,
            "reserve": reserve,
            "shared": mode != "private",
            "redis": redis if mode == "redis" else None,
            "concurrency": 10,
        }
        procs.append(start(config))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"a pull failed: {err.strip()[-400:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    log = sim.request_log
    answered = sum(1 for record in log if record.status == 200)
    throttled = sum(1 for record in log if record.status == 429)
    first = min(r["first"] for r in results)
    span = max(r["last"] for r in results) - first
    bound = rate_bound_seconds(answered, limit, window)
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "efficiency": bound / span if span > 0 else 0.0,
        "429s": float(throttled),
        "requests": float(answered),
        "span": span,
        # until the last process sent its first request (all clocks are time.monotonic)
        "startup": max(r["first"] for r in results) - first,
        "bound": bound,
    }


def shared_budget(ctx: BenchContext, row: RowResult) -> None:
    """Combined efficiency and 429s of 1, 2, 4 processes: file-backed and Redis vs private."""
    from toolkit.budget.redisserver import private_redis, redis_server_binary
    from toolkit.discogs.simdata import SimCatalogue
    from toolkit.discogs.simulator import DiscogsSimulator

    if redis_server_binary() is None:
        raise Skip("redis-server is not installed (scripts/redis.sh installs it)")
    # Quick mode (the test suite's smoke run) keeps to N = 2 and a few windows.
    counts: tuple[int, ...] = ctx.pick((2,), COUNTS)
    limit: int = ctx.pick(10, 60)
    window: float = ctx.pick(0.5, 3.0)
    items: int = ctx.pick(10, 120)
    top = max(counts)
    latency = window / 600
    catalogue = SimCatalogue(releases=ctx.pick(2_000, 20_000), seed=16)
    users = [f"user{n}" for n in range(top)]
    for user in users:
        catalogue.user(user, items=items)
    measured: dict[str, dict[int, dict[str, float]]] = {"file": {}, "redis": {}, "private": {}}
    extra: dict[str, float] = {}
    with ExitStack() as stack:
        redis = stack.enter_context(private_redis())
        sim = stack.enter_context(
            DiscogsSimulator(
                catalogue,
                rate_limit_unauthenticated=limit,
                window=window,
                latency=latency,
                jitter=latency / 4,
            )
        )
        for n in counts:
            for mode in measured:
                ctx.log(f"        {n} process(es), {mode} window ...")
                measured[mode][n] = _run(
                    sim, users[:n], ctx.work_dir / "budget", mode, redis, limit, window
                )
        if not ctx.quick:  # the default reserve, 5 of Discogs' 60, scaled to this limit
            reserve = max(1, round(5 * limit / 60))
            reserved = _run(
                sim, users[:top], ctx.work_dir / "budget", "file", None, limit, window, reserve
            )
            extra = {f"file N={top} reserve {reserve}: efficiency": reserved["efficiency"]}
    shared = [measured[mode][n] for mode in ("file", "redis") for n in counts]
    worst = min(m["efficiency"] for m in shared)
    row.median = worst
    row.repeats = 1
    row.baseline_name = f"private windows, N={top}"
    row.baseline_unit = "efficiency"
    row.baseline_median = measured["private"][top]["efficiency"]
    row.ratio = worst / row.baseline_median if row.baseline_median else None
    row.ratio_note = f"worst shared / private at N={top}"
    row.others = {
        f"{mode} N={n}: {name}": value
        for mode, by_n in measured.items()
        for n, values in by_n.items()
        for name, value in values.items()
        if name in ("efficiency", "429s", "span", "startup")
    }
    row.others.update(extra)
    row.others.update({"limit": float(limit), "window s": window, "items per user": items})
    zero = all(m["429s"] == 0 for m in shared)
    # Quick mode's pulls last two or three windows: the rate bound's whole-window steps make
    # its efficiency too coarse to judge, so there only the 429s decide.
    row.passed = zero and (ctx.quick or worst >= 0.9)
    private = ", ".join(
        f"N={n}: {measured['private'][n]['429s']:.0f} × 429, "
        f"efficiency {measured['private'][n]['efficiency']:.2f}"
        for n in counts
    )
    row.note = (
        f"{items} items with details per process, {limit} requests per moving {window:g} s "
        f"(latency {latency * 1e3:.1f} ms). Shared (file and Redis): worst efficiency "
        f"{worst:.2f}, {sum(m['429s'] for m in shared):.0f} × 429 in all. Private windows: "
        f"{private}."
    )
    if extra:
        row.note += f" With the default reserve (5 of 60, scaled) at N={top}: "
        row.note += f"{next(iter(extra.values())):.2f}."
    row.series = {
        "kind": "grouped",
        "groups": [
            f"{n} process{'es' if n > 1 else ''}\n(private: {measured['private'][n]['429s']:.0f} × 429)"
            for n in counts
        ],
        "bars": {
            "shared: file": [measured["file"][n]["efficiency"] for n in counts],
            "private windows (before)": [measured["private"][n]["efficiency"] for n in counts],
            "shared: Redis": [measured["redis"][n]["efficiency"] for n in counts],
        },
        "ylabel": "combined efficiency (rate bound / elapsed)",
        "target": 0.9,
        "subtitle": f"shared (file, Redis): worst efficiency {worst:.2f}, "
        f"{sum(m['429s'] for m in shared):.0f} × 429; private windows collide",
    }
