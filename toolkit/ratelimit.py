"""Client-side rate limiters: a continuous token bucket and a strict sliding-window limiter.

Both are thread-safe, take ``clock=``/``sleep=`` for tests, and wait without holding their lock.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["Limiter", "RateLimiter", "SlidingWindowLimiter", "Slot"]

#: Float slack when comparing token counts (0.24 s x 15000/3600 tokens/s is 0.9999999999999999).
_EPS = 1e-9
#: Shortest wait: guarantees a fake clock advanced by ``sleep`` always makes progress.
_MIN_WAIT = 1e-6


class Limiter(Protocol):
    """What callers need from either limiter."""

    def allow(self, tokens: int = 1) -> bool: ...

    def wait_until_allowed(self, tokens: int = 1, timeout: float | None = None) -> bool: ...

    def get_tokens(self) -> float: ...


class _WaitingLimiter:
    """Shared lock, clock, validation, ``allow`` and wait loop.

    Subclasses say what a valid request is (``_check_tokens``), the most that can ever fit
    (``_most_locked``), how long a request must wait (``_wait_locked``) and how to consume it
    (``_take_locked``).

    With the default ``sleep=time.sleep`` waiting is a ``Condition.wait`` with the computed timeout,
    so ``notify_all`` (e.g. from ``set_limit``) wakes waiters early. With an injected ``sleep`` the
    loop releases the lock, calls ``sleep(wait)`` and retries; that is what fake-clock tests use.
    """

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition(threading.Lock())
        self._use_condition = sleep is time.sleep

    def _check_tokens(self, tokens: float) -> None:
        """Raise ValueError unless ``tokens`` is a valid request size (independent of state)."""
        raise NotImplementedError

    def _most_locked(self) -> float:
        """The most tokens one request can ever get (capacity or limit)."""
        raise NotImplementedError

    def _wait_locked(self, tokens: float, now: float) -> float:
        """0.0 if ``tokens`` fit at ``now``, else the positive seconds until they would."""
        raise NotImplementedError

    def _take_locked(self, tokens: float, now: float) -> None:
        """Consume ``tokens`` at ``now``; only called right after ``_wait_locked`` returned 0.0."""
        raise NotImplementedError

    def _try_locked(self, tokens: float, now: float) -> float:
        """Consume ``tokens`` and return 0.0, or return the positive seconds to wait before retrying."""
        wait = self._wait_locked(tokens, now)
        if wait == 0.0:
            self._take_locked(tokens, now)
        return wait

    def _check_fits_locked(self, tokens: float) -> None:
        """Raise ValueError if ``tokens`` can never be acquired, since waiting would never end."""
        if tokens > self._most_locked():
            raise ValueError(f"{tokens:g} tokens can never fit {self!r}")

    def _allow(self, tokens: float) -> bool:
        self._check_tokens(tokens)
        with self._cond:
            if tokens > self._most_locked():
                return False
            return self._try_locked(tokens, self._clock()) == 0.0

    def _wait_loop(self, tokens: float, timeout: float | None) -> float | None:
        """Block until ``tokens`` are acquired; the clock time of acquisition, or None on timeout."""
        self._check_tokens(tokens)
        deadline: float | None = None
        while True:
            with self._cond:
                self._check_fits_locked(tokens)  # each time round: set_limit may lower the limit
                now = self._clock()
                if deadline is None and timeout is not None:
                    deadline = now + timeout
                wait = self._try_locked(tokens, now)
                if wait == 0.0:
                    return now
                if deadline is not None:
                    remaining = deadline - now
                    if remaining <= 0:
                        return None
                    wait = min(wait, remaining)
                wait = max(wait, _MIN_WAIT)
                if self._use_condition:
                    self._cond.wait(wait)
                    continue
            self._sleep(wait)


class RateLimiter(_WaitingLimiter):
    """Token bucket: at most ``capacity`` tokens, refilled continuously at ``capacity/refill_period``/s.

    ``RateLimiter(15000, 3600)`` is 15,000 requests an hour, one every 0.24 s once the bucket (which
    starts full) is empty. Note that a bucket lets a full burst through and then the refill, so in
    the first ``refill_period`` up to about twice ``capacity`` pass; use
    :class:`SlidingWindowLimiter` for a server that counts requests in a moving window.
    """

    def __init__(
        self,
        capacity: float,
        refill_period: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not capacity > 0:
            raise ValueError(f"capacity must be positive, got {capacity!r}")
        if not refill_period > 0:
            raise ValueError(f"refill_period must be positive seconds, got {refill_period!r}")
        super().__init__(clock, sleep)
        self._capacity = float(capacity)
        self._refill_period = float(refill_period)
        self._rate = self._capacity / self._refill_period
        self._tokens = self._capacity
        self._last = clock()

    @classmethod
    def per_minute(
        cls,
        n: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RateLimiter:
        """A bucket of ``n`` tokens refilled over 60 s."""
        return cls(n, 60.0, clock=clock, sleep=sleep)

    @classmethod
    def per_hour(
        cls,
        n: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RateLimiter:
        """A bucket of ``n`` tokens refilled over 3600 s."""
        return cls(n, 3600.0, clock=clock, sleep=sleep)

    @property
    def capacity(self) -> float:
        """Most tokens the bucket holds."""
        return self._capacity

    @property
    def refill_period(self) -> float:
        """Seconds to refill an empty bucket."""
        return self._refill_period

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    def _refill_locked(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:  # a clock that steps back is ignored
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._last = now

    def _check_tokens(self, tokens: float) -> None:
        if not tokens > 0:
            raise ValueError(f"tokens must be positive, got {tokens!r}")

    def _most_locked(self) -> float:
        return self._capacity

    def _wait_locked(self, tokens: float, now: float) -> float:
        self._refill_locked(now)
        if self._tokens + _EPS >= tokens:
            return 0.0
        return (tokens - self._tokens) / self._rate

    def _take_locked(self, tokens: float, now: float) -> None:
        self._tokens = max(0.0, self._tokens - tokens)

    def allow(self, tokens: float = 1) -> bool:
        """Consume ``tokens`` and return True if the bucket holds them now, else False (nothing taken)."""
        return self._allow(tokens)

    def wait_until_allowed(self, tokens: float = 1, timeout: float | None = None) -> bool:
        """Block (outside the lock) until ``tokens`` are consumed: True, or False once ``timeout`` passes.

        ``tokens > capacity`` raises ValueError instead of waiting forever.
        """
        return self._wait_loop(tokens, timeout) is not None

    def wait_time(self, tokens: float = 1) -> float:
        """Seconds until ``tokens`` would be available (0 if now); nothing is consumed.

        ``tokens > capacity`` raises ValueError, as in :meth:`wait_until_allowed`.
        """
        self._check_tokens(tokens)
        with self._cond:
            self._check_fits_locked(tokens)
            return self._wait_locked(tokens, self._clock())

    def get_tokens(self) -> float:
        """Tokens in the bucket now (after refill)."""
        with self._cond:
            self._refill_locked(self._clock())
            return self._tokens

    def __repr__(self) -> str:
        return f"RateLimiter(capacity={self._capacity:g}, refill_period={self._refill_period:g})"


class Slot:
    """One acquisition of a :class:`SlidingWindowLimiter`; ``complete()`` re-dates it to now."""

    __slots__ = ("_done", "_limiter", "_stamp")

    def __init__(self, limiter: SlidingWindowLimiter, stamp: float) -> None:
        self._limiter = limiter
        self._stamp = stamp
        self._done = False

    @property
    def stamp(self) -> float:
        """Clock time the slot is currently dated at."""
        return self._stamp

    @property
    def completed(self) -> bool:
        """True once ``complete()`` has re-dated the slot."""
        return self._done

    def complete(self) -> None:
        """Re-date the slot to the current clock time (when the response came back); idempotent.

        The server dates a request on arrival, so counting it from send time can let a request
        through that a strict server still counts in its window.
        """
        self._limiter._redate(self)

    def __repr__(self) -> str:
        return f"Slot(stamp={self._stamp!r}, completed={self._done})"


class SlidingWindowLimiter(_WaitingLimiter):
    """At most ``limit`` acquisitions in ANY interval of ``window`` seconds (a moving window).

    An acquisition at time ``t`` counts while ``now - t < window``. This is what Discogs enforces
    (60/min with a token), so its client uses this rather than a token bucket. :meth:`pause`
    holds every acquisition, in every thread sharing the limiter, for at most ``max_pause``
    seconds (default two windows), e.g. for a server's ``Retry-After``.
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_pause: float | None = None,
    ) -> None:
        _check_limit(limit)
        if not window > 0:
            raise ValueError(f"window must be positive seconds, got {window!r}")
        if max_pause is not None and not max_pause >= 0:
            raise ValueError(f"max_pause must be >= 0 seconds, got {max_pause!r}")
        super().__init__(clock, sleep)
        self._limit = int(limit)
        self._window = float(window)
        self._max_pause = 2.0 * self._window if max_pause is None else float(max_pause)
        self._paused_until = -math.inf
        self._stamps: deque[float] = deque()  # ascending acquisition times

    @property
    def limit(self) -> int:
        """Acquisitions allowed per window."""
        return self._limit

    @property
    def window(self) -> float:
        """Window length in seconds."""
        return self._window

    @property
    def max_pause(self) -> float:
        """The longest hold one :meth:`pause` can put on acquisitions, in seconds."""
        return self._max_pause

    def pause(self, seconds: float) -> float:
        """Hold every acquisition for ``seconds`` from now, capped at ``max_pause``.

        Returns the seconds actually held from now. A pause only ever extends an earlier one.
        """
        with self._cond:
            now = self._clock()
            self._pause_locked(now, now + max(0.0, seconds))
            return max(0.0, self._paused_until - now)

    def pause_until(self, deadline: float) -> None:
        """Hold every acquisition until clock time ``deadline``, at most ``max_pause`` from now."""
        with self._cond:
            self._pause_locked(self._clock(), deadline)

    def _pause_locked(self, now: float, deadline: float) -> None:
        # Capped so that a wrong or hostile Retry-After cannot stall every worker for long.
        self._paused_until = max(self._paused_until, min(deadline, now + self._max_pause))

    def paused_for(self) -> float:
        """Seconds the current pause still holds acquisitions (0 when not paused)."""
        with self._cond:
            return max(0.0, self._paused_until - self._clock())

    def _prune_locked(self, now: float) -> None:
        # ``now - stamp`` (not ``stamp + window``) keeps the float rounding consistent everywhere.
        window = self._window
        stamps = self._stamps
        while stamps and now - stamps[0] >= window:
            stamps.popleft()

    def _check_tokens(self, tokens: float) -> None:
        if not tokens >= 1 or tokens != int(tokens):
            raise ValueError(f"tokens must be a positive integer, got {tokens!r}")

    def _most_locked(self) -> float:
        return self._limit

    def _wait_locked(self, tokens: float, now: float) -> float:
        paused = self._paused_until - now
        if paused > 0:
            return paused
        self._prune_locked(now)
        stamps = self._stamps
        over = len(stamps) + int(tokens) - self._limit
        if over <= 0:
            return 0.0
        # The ``over`` oldest stamps must leave the window first; after pruning each is younger
        # than ``window``, so this is positive.
        return self._window - (now - stamps[over - 1])

    def _take_locked(self, tokens: float, now: float) -> None:
        self._append_locked(now, int(tokens))

    def _append_locked(self, stamp: float, count: int = 1) -> None:
        stamps = self._stamps
        for _ in range(count):
            if not stamps or stamps[-1] <= stamp:
                stamps.append(stamp)
            else:  # a clock that stepped back: keep the record ordered anyway
                bisect.insort(stamps, stamp)

    def allow(self, tokens: int = 1) -> bool:
        """Record ``tokens`` acquisitions and return True if they fit the window now, else False."""
        return self._allow(tokens)

    def wait_until_allowed(self, tokens: int = 1, timeout: float | None = None) -> bool:
        """Block (outside the lock) until ``tokens`` fit: True, or False once ``timeout`` passes.

        ``tokens > limit`` raises ValueError instead of waiting forever.
        """
        return self._wait_loop(tokens, timeout) is not None

    def acquire_slot(self, timeout: float | None = None) -> Slot | None:
        """Like ``wait_until_allowed(1, timeout)`` but returns a :class:`Slot` (None on timeout)."""
        stamp = self._wait_loop(1, timeout)
        return None if stamp is None else Slot(self, stamp)

    def _redate(self, slot: Slot) -> None:
        with self._cond:
            if slot._done:
                return
            slot._done = True
            # If the stamp already left the window the response still counts from now.
            with contextlib.suppress(ValueError):
                self._stamps.remove(slot._stamp)
            now = self._clock()
            self._append_locked(now)
            slot._stamp = now

    def set_limit(self, limit: int) -> None:
        """Adopt a new limit (e.g. the server's ``X-Discogs-Ratelimit``); raising it wakes waiters."""
        _check_limit(limit)
        with self._cond:
            self._limit = int(limit)
            self._cond.notify_all()

    def observe_remaining(self, remaining: int) -> None:
        """Trust the server saying only ``remaining`` requests are left in its window.

        When the local count leaves more than that, phantom acquisitions dated now are added so the
        local remaining equals ``remaining``; nothing is ever removed. ``observe_remaining(0)`` means
        "the window is full as of now" (e.g. after a 429).
        """
        remaining = max(0, int(remaining))
        with self._cond:
            now = self._clock()
            self._prune_locked(now)
            excess = self._limit - len(self._stamps) - remaining
            if excess > 0:
                self._append_locked(now, excess)

    def wait_time(self) -> float:
        """Seconds until one acquisition would be allowed (0 if now, a pause included); nothing is recorded."""
        with self._cond:
            return self._wait_locked(1, self._clock())

    def in_window(self) -> int:
        """Acquisitions counted in the current window."""
        with self._cond:
            self._prune_locked(self._clock())
            return len(self._stamps)

    def get_tokens(self) -> float:
        """``limit`` minus the acquisitions in the current window (never below 0)."""
        with self._cond:
            self._prune_locked(self._clock())
            return float(max(0, self._limit - len(self._stamps)))

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter(limit={self._limit}, window={self._window:g})"


def _check_limit(limit: int) -> None:
    if not limit >= 1 or limit != int(limit):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
