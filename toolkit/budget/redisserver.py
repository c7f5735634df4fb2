"""A private ``redis-server`` on 127.0.0.1 for tests and benchmarks: a free port, no persistence.

The Debian package provides the binary (``scripts/redis.sh`` installs it); this only starts and
stops one, so a benchmark or a plain ``pytest`` run outside ``make test`` can use a real server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["private_redis", "redis_server_binary"]


def redis_server_binary() -> str | None:
    """The path of ``redis-server``, or None when it is not installed."""
    return shutil.which("redis-server")


@contextmanager
def private_redis(timeout: float = 10.0) -> Iterator[str]:
    """Start ``redis-server`` on a free loopback port and yield its URL; stop it afterwards.

    Raises FileNotFoundError when ``redis-server`` is not installed, RuntimeError when it does not
    answer within ``timeout`` seconds.
    """
    binary = redis_server_binary()
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (scripts/redis.sh installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="toolkit-redis-") as folder:
        server = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait(timeout=10)
