"""One pull in its own process on a shared (or private) rate budget: for tests and the benchmark.

``python -m toolkit.budget.child '<json>'`` pulls ``user`` from ``url`` into ``db``, with the HTTP
cache under ``data_dir``, on the window in ``data_dir`` (or on ``redis``) with ``limit`` per
``window`` s and ``reserve``; ``"shared": false`` gives it a private window instead (the
behaviour before sharing). It prints one JSON line: requests, 429s, the monotonic times of its
first request, first release request and last answer, and whether the pull completed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["child_command", "main", "run_pull", "start"]


def child_command(config: dict[str, Any]) -> list[str]:
    """The command line of a child pulling with ``config``."""
    return [sys.executable, "-m", "toolkit.budget.child", json.dumps(config)]


def run_pull(config: dict[str, Any]) -> dict[str, Any]:
    """Pull as ``config`` says, in this process; what :func:`main` prints."""
    from toolkit.budget import SharedWindowLimiter, api_host
    from toolkit.budget.sqlitestore import SQLiteWindowStorage
    from toolkit.budget.window import WindowStorage
    from toolkit.config import Settings
    from toolkit.discogs.client import DiscogsClient
    from toolkit.pull import pull_collection
    from toolkit.ratelimit import SlidingWindowLimiter

    data_dir = Path(config["data_dir"])
    settings = Settings(data_dir=data_dir)
    limit, window = int(config["limit"]), float(config["window"])
    limiter: SlidingWindowLimiter
    if config.get("shared", True):
        storage: WindowStorage
        if config.get("redis"):
            from toolkit.budget.redisstore import RedisWindowStorage

            storage = RedisWindowStorage(str(config["redis"]))
        else:
            storage = SQLiteWindowStorage(settings.budget_path)
        limiter = SharedWindowLimiter(
            storage, api_host(config["url"]), limit, window, reserve=int(config.get("reserve", 0))
        )
    else:
        limiter = SlidingWindowLimiter(limit, window)
    with DiscogsClient(
        config.get("token") or "", base_url=str(config["url"]), limiter=limiter, settings=settings
    ) as client:
        report = pull_collection(
            str(config["user"]),
            str(config["db"]),
            client=client,
            concurrency=int(config.get("concurrency", 5)),
            progress=False,
        )
    if isinstance(limiter, SharedWindowLimiter):
        limiter.storage.close()
    timeline = report.timeline
    return {
        "user": config["user"],
        "requests": report.network_requests,
        "rate_limited": report.rate_limited,
        "items": report.items,
        "fetched": report.releases_fetched,
        "complete": report.complete,
        "first": min((e.started for e in timeline), default=None),
        "first_release": min(
            (e.started for e in timeline if e.path.startswith("/releases/")), default=None
        ),
        "last": max((e.finished for e in timeline), default=None),
    }


def start(config: dict[str, Any]) -> subprocess.Popen[str]:
    """Start a child pulling with ``config`` (read its line with ``communicate``)."""
    return subprocess.Popen(
        child_command(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m toolkit.budget.child '<json config>'``."""
    args = sys.argv[1:] if argv is None else argv
    print(json.dumps(run_pull(json.loads(args[0]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
