"""Row 14: peak RSS of a large pull with details, measured in a child process.

The simulator runs in this (parent) process; the child only pulls, through the ordinary
settings (``DISCOGS_API_URL`` etc.), and reports its own ``ru_maxrss``. The baseline child
imports the same modules and does nothing, so the difference is what the pull itself holds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

from toolkit.bench.model import BenchContext, RowResult

__all__ = ["pull_memory"]

_CHILD = """
import json, resource, sys, time
from toolkit.db import Database
from toolkit.discogs.client import DiscogsClient
from toolkit.pull import pull_collection
if sys.argv[1] == "pull":
    start = time.perf_counter()
    client = DiscogsClient()
    with Database.connect(sys.argv[3]) as db:
        report = pull_collection(sys.argv[2], db, client=client, concurrency=10, progress=False)
    client.close()
    extra = {"items": report.items, "requests": report.network_requests,
             "failures": report.failures, "elapsed": time.perf_counter() - start}
else:
    extra = {}
# VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss over fork+exec.
peak = None
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
except OSError:
    pass
extra["maxrss_kib"] = peak or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(extra))
"""


def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child pull failed: {done.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def pull_memory(ctx: BenchContext, row: RowResult) -> None:
    """Peak RSS of a pull of N items with details (N = 20,000; 500 in quick mode)."""
    from toolkit.bench.rows.network import TOKEN, USER, _simulator

    items: int = ctx.pick(500, 20_000)
    folder = ctx.work_dir / "memory"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with _simulator(releases=items, items=items, latency=0.0, jitter=0.0) as sim:
        env = {
            **os.environ,
            "DISCOGS_API_URL": sim.url,
            "DISCOGS_TOKEN": TOKEN,
            "DISCOGS_RATE_LIMIT": "1000000",
            "TOOLKIT_DATA_DIR": str(folder),
        }
        baseline = _child(["idle"], env)
        pulled = _child(["pull", USER, str(folder / "memory.duckdb")], env)
    shutil.rmtree(folder, ignore_errors=True)
    mib = 1 / 1024
    row.median = pulled["maxrss_kib"] * mib
    row.repeats = 1
    row.baseline_name = "same imports, no pull"
    row.baseline_median = baseline["maxrss_kib"] * mib
    row.ratio = row.median / row.baseline_median if row.baseline_median else None
    row.others = {
        "items": float(pulled["items"]),
        "requests": float(pulled["requests"]),
        "elapsed s": float(pulled["elapsed"]),
        "MiB above baseline": row.median - row.baseline_median,
    }
    row.passed = None
    row.note = (
        f"{pulled['items']:,} items with details ({pulled['requests']:,} requests, "
        f"{pulled['elapsed']:.0f} s, zero latency) in a child process: peak RSS {row.median:.0f} "
        f"MiB, {row.median - row.baseline_median:.0f} MiB above the idle interpreter."
    )
    row.series = {
        "kind": "bars",
        "labels": [f"pull of {items:,} with details (ours)", "same imports, no pull"],
        "medians": [row.median, row.baseline_median],
        "unit": "peak RSS (MiB)",
        "log": False,
    }
