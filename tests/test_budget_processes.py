"""Acceptance of the shared rate budget: real processes pulling against a strict simulator.

Time is compressed: the simulator keeps Discogs' strict moving window (requests dated on arrival,
429 past the limit) but over half a second instead of a minute, and answers in 5 ms. Every rule
of the budget scales with the window (slots, the reserve's pacing, the grace of a dead process's
slots), so a pull of a few windows here is the same schedule as one of a few minutes at Discogs;
only fixed costs (process start-up, a request's few ms of CPU) weigh more here, which makes the
efficiency measured a conservative one. The simulator is keyed by address (no token), as Discogs
counts, so processes that did not share one window would collide.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolkit.budget import SharedWindowLimiter, api_host
from toolkit.budget.child import start
from toolkit.budget.sqlitestore import SQLiteWindowStorage
from toolkit.config import Settings
from toolkit.discogs.client import DiscogsClient
from toolkit.discogs.simdata import SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator
from toolkit.pull import rate_bound_seconds
from toolkit.testing import wait_until

pytestmark = pytest.mark.slow

LIMIT = 10
WINDOW = 0.5
USERS = ("ann", "bob", "cat")


@pytest.fixture
def simulator() -> Iterator[DiscogsSimulator]:
    catalogue = SimCatalogue(releases=3000, seed=11)
    for name in USERS:
        catalogue.user(name, items=15)
    catalogue.user("big", items=30)
    with DiscogsSimulator(
        catalogue,
        rate_limit=60,
        rate_limit_unauthenticated=LIMIT,
        window=WINDOW,
        latency=0.005,
        jitter=0.0,
    ) as sim:
        yield sim


def _config(sim: DiscogsSimulator, user: str, tmp: Path, data: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": sim.url,
        "user": user,
        "data_dir": str(tmp / data),
        "db": str(tmp / f"{user}.duckdb"),
        "limit": LIMIT,
        "window": WINDOW,
        "reserve": 0,
        **extra,
    }


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _throttled(sim: DiscogsSimulator) -> int:
    return sum(1 for record in sim.request_log if record.status == 429)


def _check_together(results: list[dict[str, Any]], sim: DiscogsSimulator) -> None:
    assert all(r["complete"] and r["items"] == 15 for r in results), results
    assert _throttled(sim) == 0
    assert sum(r["rate_limited"] for r in results) == 0
    requests = sum(r["requests"] for r in results)
    span = max(r["last"] for r in results) - min(r["first"] for r in results)
    # Start-up: until the last process, having listed and stored its collection, asks for its
    # first release (interpreter start, DuckDB schema: nothing a shared window can speed up).
    startup = max(r["first_release"] for r in results) - min(r["first"] for r in results)
    bound = rate_bound_seconds(requests, LIMIT, WINDOW)
    assert span <= 1.1 * bound + startup, (span, bound, startup)


def test_three_processes_on_one_data_dir_share_the_window(
    simulator: DiscogsSimulator, tmp_path: Path
) -> None:
    procs = [start(_config(simulator, u, tmp_path, "data")) for u in USERS]
    _check_together([_finish(p) for p in procs], simulator)


def test_three_data_dirs_share_the_window_on_redis(
    simulator: DiscogsSimulator, tmp_path: Path, redis_url: str
) -> None:
    procs = [start(_config(simulator, u, tmp_path, f"data-{u}", redis=redis_url)) for u in USERS]
    _check_together([_finish(p) for p in procs], simulator)


def test_a_process_killed_mid_pull_blocks_nobody_and_its_rerun_completes(
    simulator: DiscogsSimulator, tmp_path: Path
) -> None:
    victim = start(_config(simulator, "big", tmp_path, "data"))
    others = [start(_config(simulator, u, tmp_path, "data")) for u in USERS[:2]]
    storage = SQLiteWindowStorage(tmp_path / "data" / "rate_budget.sqlite")
    key = api_host(simulator.url)

    def victim_pulling_releases() -> bool:
        infos = storage.processes(key).values() if storage.path.exists() else []
        return any(str(i.get("activity", "")).endswith("releases") for i in infos)

    wait_until(victim_pulling_releases, "the victim to pull releases")
    wait_until(lambda: len(simulator.request_log) > 20, "everyone to be pulling")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL  # killed mid-pull, not finished already
    results = [_finish(p) for p in others]
    assert all(r["complete"] and r["rate_limited"] == 0 for r in results), results
    rerun = _finish(start(_config(simulator, "big", tmp_path, "data")))
    assert rerun["complete"] and rerun["items"] == 30
    assert rerun["fetched"] > 0  # what the killed pull had not stored
    assert _throttled(simulator) == 0
    storage.close()


def test_twenty_interactive_calls_during_a_pull_finish_within_30_s_at_60_per_minute(
    tmp_path: Path,
) -> None:
    """At Discogs' 60 per minute compressed 20x (a 3 s window): 30 s is 1.5 s here."""
    window, limit, scale = 3.0, 60, 3.0 / 60.0
    catalogue = SimCatalogue(releases=3000, seed=12)
    catalogue.user("big", items=300)
    with DiscogsSimulator(
        catalogue, rate_limit_unauthenticated=limit, window=window, latency=0.005, jitter=0.0
    ) as sim:
        pull = start(
            {
                "url": sim.url,
                "user": "big",
                "data_dir": str(tmp_path / "data"),
                "db": str(tmp_path / "big.duckdb"),
                "limit": limit,
                "window": window,
                "reserve": 5,
            }
        )
        try:
            # The worst moment: the pull has just filled the window to its ceiling (55 = 60 - 5:
            # 40, then 15 two thirds of a window later); a person gets the 5 reserved slots,
            # then what frees.
            wait_until(lambda: len(sim.request_log) >= 56, "the pull to fill the window")
            settings = Settings(data_dir=tmp_path / "data")
            storage = SQLiteWindowStorage(settings.budget_path)
            limiter = SharedWindowLimiter(storage, api_host(sim.url), limit, window)
            with DiscogsClient(
                "", base_url=sim.url, limiter=limiter, settings=settings, cache_path=":memory:"
            ) as person:
                began = time.monotonic()
                for rid in sim.catalogue.release_ids()[-20:]:
                    person.get_release(rid)
                took = time.monotonic() - began
            storage.close()
        finally:
            pull.kill()
            pull.communicate(timeout=30)
        assert _throttled(sim) == 0
    print(f"20 interactive calls: {took:.2f} s, {took / scale:.1f} s at 60/min")
    assert took / scale <= 30.0, f"{took:.2f} s here is {took / scale:.0f} s at 60/min"


_WRITER = """
import sys
from pathlib import Path
from toolkit.discogs.httpcache import HTTPCacheStore
from toolkit.discogs.transport import Answer

path, name = Path(sys.argv[1]), sys.argv[2]
store = HTTPCacheStore(path)
for n in range(100):
    url = f"http://127.0.0.1/releases/{n}?{name}"
    body = b'{"id": %d, "by": "%s"}' % (n, name.encode())
    store.save(Answer(url, 200, "OK", {}, body, {}), f"{name}-{n}", 3600.0)
    other = store.read(f"a-{n}")  # read what another process may be writing right now
    assert other is None or other.content.startswith(b'{"id": %d' % n)
store.close()
print("ok")
"""


def test_processes_writing_one_http_cache_file_at_once_lose_nothing(tmp_path: Path) -> None:
    """Three processes write 100 answers each into one cache file while reading each other's:
    no "database is locked" reaches anyone (not even as a logged warning), nothing is lost."""
    import sys

    from toolkit.discogs.httpcache import HTTPCacheStore

    path = tmp_path / "http_cache.sqlite"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b", "c")
    ]
    finished = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, finished, strict=True):
        assert proc.returncode == 0 and out.strip() == "ok", err[-2000:]
        assert "locked" not in err and "could not store" not in err, err[-2000:]
    store = HTTPCacheStore(path)
    try:
        for name in ("a", "b", "c"):
            for n in range(100):
                cached = store.read(f"{name}-{n}")
                assert cached is not None and json.loads(cached.content) == {"id": n, "by": name}
    finally:
        store.close()
