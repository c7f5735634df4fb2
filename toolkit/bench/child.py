"""A pull in a fresh process (a new interpreter, a new client), as a re-run of the CLI would be.

``python -m toolkit.bench.child '<json>'`` builds a :class:`~toolkit.discogs.client.DiscogsClient`
on the given HTTP-cache file as ``discogs-toolkit pull`` does, runs
:func:`~toolkit.pull.pull_collection` with the database's path (so the pull opens and tunes the
connection itself, as for the CLI) and prints one JSON line: the timings, the report's counters
and the process's peak RSS (``VmHWM``). With ``"mode": "idle"`` it imports the same modules and
only reports its RSS: the baseline of an interpreter with the toolkit loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["peak_rss_kib", "run_child"]


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB.

    ``VmHWM`` from ``/proc/self/status`` where there is one: on Linux ``ru_maxrss`` carries the
    parent's high-water mark over fork+exec, which would make a small child look as big as us.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_child(config: dict[str, Any], *, timeout: float = 1800) -> dict[str, Any]:
    """Run the child with ``config`` and return what it printed (raises RuntimeError on failure)."""
    done = subprocess.run(
        [sys.executable, "-m", "toolkit.bench.child", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child pull failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _pull(config: dict[str, Any]) -> dict[str, Any]:
    import time

    from toolkit.config import Settings
    from toolkit.discogs.client import DiscogsClient
    from toolkit.pull import PULL_CLIENT_MEMORY_ENTRIES, pull_collection
    from toolkit.ratelimit import SlidingWindowLimiter

    start = time.perf_counter()
    # The pull's own folder as data dir: never the checkout's data/ (its catalogue or budget).
    settings = Settings(data_dir=Path(str(config["db"])).parent)
    client = DiscogsClient(
        str(config["token"]),
        base_url=str(config["url"]),
        cache_path=str(config["cache"]),
        limiter=SlidingWindowLimiter(int(config["limit"]), float(config["window"])),
        settings=settings,
        memory_max_entries=PULL_CLIENT_MEMORY_ENTRIES,
    )
    ready = time.perf_counter()
    report = pull_collection(
        str(config["user"]),
        str(config["db"]),
        client=client,
        concurrency=int(config.get("concurrency", 10)),
        progress=False,
        settings=settings,
    )
    done = time.perf_counter()
    client.close()
    timeline = report.timeline
    span = in_flight = 0.0
    if timeline:  # first request sent to last answer received, and the mean requests in flight
        first = min(event.started for event in timeline)
        span = max(event.finished for event in timeline) - first
        in_flight = sum(e.finished - e.started for e in timeline) / span if span > 0 else 0.0
    return {
        "network_span": span,
        "in_flight": in_flight,
        "client_start": ready - start,
        "elapsed": done - ready,
        "total": done - start,
        "items": report.items,
        "pages": report.pages,
        "requests": report.network_requests,
        "fetched": report.releases_fetched,
        "skipped": report.releases_skipped,
        "failures": report.failures,
    }


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m toolkit.bench.child '<json config>'``."""
    args = sys.argv[1:] if argv is None else argv
    config: dict[str, Any] = json.loads(args[0])
    # The same imports in both modes, so the idle baseline holds everything but the pull.
    import toolkit.db
    import toolkit.discogs.client
    import toolkit.pull  # noqa: F401

    result = _pull(config) if config.get("mode", "pull") == "pull" else {}
    result["maxrss_kib"] = peak_rss_kib()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # Everything is closed and reported; skip the ~0.5 s interpreter teardown.
    os._exit(0)
