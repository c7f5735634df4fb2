"""Row 14: peak RSS of a large pull with details, measured in a process that does nothing else.

Three processes: the simulator serves from its own (:class:`~toolkit.bench.simproc.SimProcess`),
the pull runs in a fresh interpreter (:mod:`toolkit.bench.child`, set up as ``discogs-toolkit
pull`` sets up its client and database) that reports its own peak RSS
(``VmHWM``), and the baseline is another fresh interpreter that imports the same toolkit modules
and stops. Neither figure contains the simulator, the catalogue or the benchmark's own heap; the
difference is what the pull itself holds at its peak.
"""

from __future__ import annotations

import shutil

from toolkit.bench.model import BenchContext, RowResult

__all__ = ["PEAK_TARGET_MIB", "pull_memory"]

#: Row 14's target: the peak RSS of a 20,000-item pull with details, in MiB.
PEAK_TARGET_MIB = 300.0


def pull_memory(ctx: BenchContext, row: RowResult) -> None:
    """Peak RSS of a pull of N items with details (N = 20,000; 500 in quick mode)."""
    from toolkit.bench.child import run_child
    from toolkit.bench.rows.network import GENEROUS, TOKEN, USER, _simulator

    items: int = ctx.pick(500, 20_000)
    folder = ctx.work_dir / "memory"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = {
        "token": TOKEN,
        "user": USER,
        "db": str(folder / "memory.duckdb"),
        "cache": str(folder / "http.sqlite"),
        "limit": GENEROUS,
        "window": 60.0,
        "concurrency": 10,
    }
    with _simulator(releases=items, items=items, latency=0.0, jitter=0.0) as sim:
        config["url"] = sim.url
        baseline = run_child({**config, "mode": "idle"})
        pulled = run_child(config)
    shutil.rmtree(folder, ignore_errors=True)
    mib = 1 / 1024
    row.median = pulled["maxrss_kib"] * mib
    row.repeats = 1
    row.baseline_name = "idle interpreter, toolkit imported"
    row.baseline_median = baseline["maxrss_kib"] * mib
    row.ratio = row.median / row.baseline_median if row.baseline_median else None
    above = row.median - row.baseline_median
    row.others = {
        "items": float(pulled["items"]),
        "requests": float(pulled["requests"]),
        "elapsed s": float(pulled["elapsed"]),
        "MiB above baseline": above,
        "KiB per item above baseline": above * 1024 / max(int(pulled["items"]), 1),
    }
    # The target is for 20,000 items; quick mode's 500 is only information.
    row.passed = row.median <= PEAK_TARGET_MIB if items == 20_000 else None
    row.note = (
        f"{pulled['items']:,} items with details ({pulled['requests']:,} requests, "
        f"{pulled['elapsed']:.0f} s, zero latency), pulled in a fresh process as "
        f"`discogs-toolkit pull` does (the simulator in another): peak RSS {row.median:.0f} MiB, {above:.0f} MiB "
        f"({above * 1024 / max(int(pulled['items']), 1):.0f} KiB per item) above an idle "
        f"interpreter with the toolkit imported ({row.baseline_median:.0f} MiB)."
    )
    row.series = {
        "kind": "bars",
        "labels": [f"pull of {items:,} with details (ours)", "idle, toolkit imported"],
        "medians": [row.median, row.baseline_median],
        "unit": "peak RSS (MiB)",
        "target": PEAK_TARGET_MIB,
        "log": False,
    }
