"""Test doubles for code built on the toolkit: a fake clock and a bounded wait for thread hand-offs.

Shipped with the package (as httpx ships ``MockTransport``) so the toolkit's own tests and a user's
tests drive limiters, caches, the ConcurrencyManager and the simulator on one time that only moves
when told to, and never sleep for luck.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["WAIT", "FakeClock", "wait_until"]

#: Generous real-time bound for hand-offs between threads; only reached when something is broken.
WAIT = 30.0


class FakeClock:
    """A clock (``clock=``) whose ``sleep`` (``sleep=``) advances time instead of waiting.

    Every requested sleep is recorded in ``sleeps`` (tenacity style: assert the schedule, never wait
    it out). ``hold(thread, at)`` makes one thread keep reading time ``at`` while the test moves the
    clock for everybody else; ``seen`` is set once that watched thread reads the real fake time.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self.sleeps: list[float] = []
        self.lock = threading.Lock()
        self.watch: threading.Thread | None = None
        self.held_at: float | None = None
        self.seen = threading.Event()

    def __call__(self) -> float:
        if self.watch is not None and threading.current_thread() is self.watch:
            held = self.held_at
            if held is not None:
                return held
            self.seen.set()
        with self.lock:
            return self._now

    @property
    def now(self) -> float:
        """The current fake time, in seconds."""
        with self.lock:
            return self._now

    @now.setter
    def now(self, value: float) -> None:
        with self.lock:
            self._now = value

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` for every reader."""
        with self.lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record the requested sleep and advance time by it (no real waiting)."""
        with self.lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)


def wait_until(
    condition: Callable[[], bool], what: str = "a condition", timeout: float = WAIT
) -> None:
    """Poll ``condition`` (a thread hand-off) until true; raise ``AssertionError`` after ``timeout``.

    Only for waiting on other threads or processes to reach a state, never to let time pass.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.001)
