"""Tests for toolkit.ratelimit: token bucket and sliding window, on a fake clock and real threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.ratelimit import Limiter, RateLimiter, SlidingWindowLimiter
from toolkit.testing import WAIT, FakeClock


class StrictClock(FakeClock):
    """The shared fake clock, also asserting that a limiter never sleeps for zero or less."""

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "limiters must never sleep for zero or negative time"
        super().sleep(seconds)


class LockProbeClock(StrictClock):
    """A fake clock whose ``sleep`` first checks, from another thread, that the limiter is unlocked."""

    def __init__(self) -> None:
        super().__init__()
        self.limiter: Limiter | None = None
        self.probed: list[float] = []

    def sleep(self, seconds: float) -> None:
        assert self.limiter is not None
        limiter = self.limiter
        probe = threading.Thread(target=lambda: self.probed.append(limiter.get_tokens()))
        probe.start()
        probe.join(WAIT)  # if the waiter held the lock, the probe would block until it gives up
        assert not probe.is_alive(), (
            "get_tokens() blocked: wait_until_allowed sleeps holding the lock"
        )
        super().sleep(seconds)


# ---------------------------------------------------------------- shared behaviour


def _bucket(n: int, period: float, clock: FakeClock) -> Limiter:
    return RateLimiter(n, period, clock=clock, sleep=clock.sleep)


def _window(n: int, period: float, clock: FakeClock) -> Limiter:
    return SlidingWindowLimiter(n, period, clock=clock, sleep=clock.sleep)


@pytest.fixture(params=[_bucket, _window], ids=["bucket", "window"])
def make(request: pytest.FixtureRequest) -> Callable[[int, float, FakeClock], Limiter]:
    factory: Callable[[int, float, FakeClock], Limiter] = request.param
    return factory


class TestCommonBehaviour:
    """Behaviour both limiters share: start full, consume only on True, wait, timeout, validation."""

    def test_starts_full_and_allow_consumes_only_when_true(
        self, make: Callable[[int, float, FakeClock], Limiter]
    ) -> None:
        clock = StrictClock()
        lim = make(3, 60.0, clock)
        assert lim.get_tokens() == pytest.approx(3)
        assert [lim.allow() for _ in range(4)] == [True, True, True, False]
        assert lim.get_tokens() == pytest.approx(0)
        assert lim.allow() is False
        assert lim.get_tokens() == pytest.approx(0)  # a refusal takes nothing

    def test_multi_token_allow_is_all_or_nothing(
        self, make: Callable[[int, float, FakeClock], Limiter]
    ) -> None:
        clock = StrictClock()
        lim = make(5, 60.0, clock)
        assert lim.allow(3) is True
        assert lim.allow(3) is False
        assert lim.get_tokens() == pytest.approx(2)
        assert lim.allow(2) is True
        assert lim.allow(6) is False  # more than fits at all

    def test_wait_until_allowed_sleeps_then_acquires(
        self, make: Callable[[int, float, FakeClock], Limiter]
    ) -> None:
        clock = StrictClock()
        lim = make(1, 10.0, clock)
        assert lim.allow()
        start = clock.now
        assert lim.wait_until_allowed() is True
        waited = clock.now - start
        assert 0 < waited <= 10.0 + 1e-5
        assert clock.sleeps, "it must have slept through the injected sleep"
        assert lim.allow() is False

    def test_wait_until_allowed_sleeps_outside_the_lock(
        self, make: Callable[[int, float, FakeClock], Limiter]
    ) -> None:
        clock = LockProbeClock()
        lim = make(2, 10.0, clock)
        clock.limiter = lim
        assert lim.allow(2)
        assert lim.wait_until_allowed(2) is True
        assert clock.sleeps, "it must have slept"
        assert len(clock.probed) == len(clock.sleeps)
        assert all(tokens < 2 for tokens in clock.probed)  # the probe saw the waiter not served yet

    def test_timeout_returns_false_without_consuming(
        self, make: Callable[[int, float, FakeClock], Limiter]
    ) -> None:
        clock = StrictClock()
        lim = make(1, 10.0, clock)
        assert lim.allow()
        start = clock.now
        assert lim.wait_until_allowed(timeout=4.0) is False
        assert clock.now - start == pytest.approx(4.0, abs=1e-5)
        assert lim.get_tokens() < 1
        # Given long enough it succeeds, at the 10 s mark.
        assert lim.wait_until_allowed(timeout=20.0) is True
        assert clock.now - start == pytest.approx(10.0, abs=1e-5)

    def test_zero_timeout_is_a_single_try(
        self, make: Callable[[int, float, FakeClock], Limiter]
    ) -> None:
        clock = StrictClock()
        lim = make(1, 10.0, clock)
        assert lim.wait_until_allowed(timeout=0) is True
        assert lim.wait_until_allowed(timeout=0) is False
        assert clock.sleeps == []

    def test_more_tokens_than_capacity_raises(
        self, make: Callable[[int, float, FakeClock], Limiter]
    ) -> None:
        lim = make(5, 60.0, StrictClock())
        with pytest.raises(ValueError):
            lim.wait_until_allowed(6)
        with pytest.raises(ValueError):
            lim.allow(0)

    def test_real_threads_racing_allow_get_exactly_capacity(
        self, make: Callable[[int, float, FakeClock], Limiter]
    ) -> None:
        clock = StrictClock()  # never advanced: no refill, nothing leaves the window
        lim = make(1000, 60.0, clock)
        wins = [0] * 8
        barrier = threading.Barrier(8)

        def worker(i: int) -> None:
            barrier.wait()
            for _ in range(400):
                if lim.allow():
                    wins[i] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        assert sum(wins) == 1000
        assert lim.get_tokens() == pytest.approx(0)


# ---------------------------------------------------------------- token bucket


class TestRateLimiter:
    def test_refill_math_one_every_240ms(self) -> None:
        clock = StrictClock()
        lim = RateLimiter(15000, 3600, clock=clock, sleep=clock.sleep)
        assert lim.rate == pytest.approx(15000 / 3600)
        assert lim.allow(15000)
        assert lim.allow() is False
        for _ in range(5):
            clock.advance(0.239)
            assert lim.allow() is False
            clock.advance(0.001)
            assert lim.allow() is True
            assert lim.allow() is False

    def test_wait_until_allowed_waits_240ms(self) -> None:
        clock = StrictClock()
        lim = RateLimiter(15000, 3600, clock=clock, sleep=clock.sleep)
        assert lim.allow(15000)
        start = clock.now
        assert lim.wait_until_allowed()
        assert clock.now - start == pytest.approx(0.24, abs=1e-5)
        assert lim.wait_time() == pytest.approx(0.24, abs=1e-5)

    def test_refill_never_exceeds_capacity(self) -> None:
        clock = StrictClock()
        lim = RateLimiter(10, 1.0, clock=clock, sleep=clock.sleep)
        assert lim.allow(10)
        clock.advance(0.5)
        assert lim.get_tokens() == pytest.approx(5)
        clock.advance(100)
        assert lim.get_tokens() == pytest.approx(10)
        assert lim.allow(10) and not lim.allow()

    def test_constructors(self) -> None:
        assert RateLimiter.per_minute(60).rate == pytest.approx(1.0)
        hour = RateLimiter.per_hour(3600)
        assert (hour.capacity, hour.refill_period, hour.rate) == (3600, 3600, 1.0)
        with pytest.raises(ValueError):
            RateLimiter(0, 10)
        with pytest.raises(ValueError):
            RateLimiter(10, 0)

    def test_allow_more_than_capacity_is_false(self) -> None:
        lim = RateLimiter(3, 1.0, clock=StrictClock())
        assert lim.allow(4) is False
        assert lim.get_tokens() == pytest.approx(3)


# ---------------------------------------------------------------- sliding window


def _max_in_any_window(times: list[float], window: float) -> int:
    """Largest number of ``times`` in any half-open interval [a, a + window)."""
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):  # worst intervals start at an acquisition
        j = max(j, i)
        while j < len(times) and times[j] - t < window:  # the limiter's own test
            j += 1
        best = max(best, j - i)
    return best


class TestSlidingWindow:
    @settings(max_examples=60, deadline=None)
    @given(
        limit=st.integers(1, 8),
        window=st.floats(0.5, 20.0),
        steps=st.lists(
            st.tuples(st.floats(0.0, 3.0), st.integers(1, 3), st.booleans()),
            min_size=1,
            max_size=80,
        ),
    )
    def test_never_more_than_limit_in_any_window(
        self, limit: int, window: float, steps: list[tuple[float, int, bool]]
    ) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(limit, window, clock=clock, sleep=clock.sleep)
        times: list[float] = []
        for gap, n, wait in steps:
            clock.advance(gap)
            n = min(n, limit)
            if wait:
                assert lim.wait_until_allowed(n)
                times.extend([clock.now] * n)
            elif lim.allow(n):
                times.extend([clock.now] * n)
            assert lim.in_window() <= limit
        assert _max_in_any_window(times, window) <= limit

    def test_bucket_lets_about_twice_through_in_first_window(self) -> None:
        clock = StrictClock(start=0.0)
        bucket = RateLimiter(60, 60.0, clock=clock)
        window = SlidingWindowLimiter(60, 60.0, clock=clock)
        got: dict[str, list[float]] = {"bucket": [], "window": []}
        while clock.now < 60.0:
            if bucket.allow():
                got["bucket"].append(clock.now)
            if window.allow():
                got["window"].append(clock.now)
            clock.advance(0.25)
        assert len(got["window"]) == 60
        assert 115 <= len(got["bucket"]) <= 121
        assert _max_in_any_window(got["bucket"], 60.0) > 60
        assert _max_in_any_window(got["window"], 60.0) == 60

    def test_wait_time_and_in_window(self) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(2, 10.0, clock=clock, sleep=clock.sleep)
        assert (lim.limit, lim.window) == (2, 10.0)
        assert lim.wait_time() == 0.0
        assert lim.allow()
        clock.advance(3)
        assert lim.allow()
        assert lim.in_window() == 2
        assert lim.get_tokens() == 0
        assert lim.wait_time() == pytest.approx(7.0)
        clock.advance(7)  # the first acquisition leaves exactly now
        assert lim.in_window() == 1
        assert lim.wait_time() == 0.0
        assert lim.get_tokens() == 1

    def test_acquire_slot_and_complete_redates(self) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(1, 10.0, clock=clock, sleep=clock.sleep)
        slot = lim.acquire_slot()
        assert slot is not None and slot.stamp == 0.0 and not slot.completed
        clock.advance(4)  # the response comes back 4 s later
        slot.complete()
        assert slot.completed and slot.stamp == 4.0
        clock.advance(5)
        slot.complete()  # a second complete is a no-op
        assert slot.stamp == 4.0
        assert lim.in_window() == 1
        # At t=10 a send-dated window would be free; the arrival-dated one waits until t=14.
        clock.advance(1)
        assert lim.allow() is False
        assert lim.wait_time() == pytest.approx(4.0)
        assert lim.acquire_slot(timeout=1.0) is None
        nxt = lim.acquire_slot()
        assert nxt is not None and clock.now == pytest.approx(14.0, abs=1e-5)

    def test_complete_keeps_record_ordered(self) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(3, 10.0, clock=clock, sleep=clock.sleep)
        first = lim.acquire_slot()
        clock.advance(1)
        second = lim.acquire_slot()
        clock.advance(1)
        assert first is not None and second is not None
        first.complete()  # now stamps are 1, 2
        clock.advance(1)
        assert lim.allow()  # 1, 2, 3
        clock.advance(8.5)  # t=11.5: only the stamp at 1 has left
        assert lim.in_window() == 2
        assert lim.wait_time() == 0.0
        assert lim.allow()
        assert lim.wait_time() == pytest.approx(0.5)

    def test_complete_after_stamp_left_window_still_counts_from_now(self) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(1, 10.0, clock=clock, sleep=clock.sleep)
        slot = lim.acquire_slot()
        assert slot is not None
        clock.advance(15)  # a very slow response
        slot.complete()
        assert lim.in_window() == 1
        assert lim.wait_time() == pytest.approx(10.0)

    def test_set_limit_lower_and_higher(self) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(5, 10.0, clock=clock, sleep=clock.sleep)
        assert lim.allow(3)
        lim.set_limit(2)
        assert lim.limit == 2
        assert lim.get_tokens() == 0
        assert lim.allow() is False
        assert lim.wait_time() == pytest.approx(10.0)
        lim.set_limit(4)
        assert lim.allow() is True
        assert lim.allow() is False
        with pytest.raises(ValueError):
            lim.set_limit(0)

    def test_observe_remaining_adds_phantoms_never_removes(self) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(60, 60.0, clock=clock, sleep=clock.sleep)
        assert lim.allow(10)
        clock.advance(5)
        lim.observe_remaining(40)  # server: 20 used; we knew of 10
        assert lim.in_window() == 20
        assert lim.get_tokens() == 40
        lim.observe_remaining(55)  # server thinks more are left: never removes
        assert lim.in_window() == 20
        lim.observe_remaining(0)  # after a 429: full as of now (t=5)
        assert lim.in_window() == 60 and lim.get_tokens() == 0
        clock.advance(55)  # the original 10 at t=0 leave at t=60
        assert lim.in_window() == 50
        assert lim.wait_time() == 0.0
        lim.observe_remaining(0)
        assert lim.wait_time() == pytest.approx(5.0)  # phantoms from t=5 leave at t=65

    def test_set_limit_raise_wakes_a_real_waiter(self) -> None:
        """Real clock and the default sleep (Condition.wait): raising the limit wakes the waiter."""
        waiting = threading.Event()
        waiter_ident: list[int] = []

        def clock() -> float:
            if waiter_ident and threading.get_ident() == waiter_ident[0]:
                waiting.set()  # called under the lock, just before the waiter's Condition.wait
            return time.monotonic()

        lim = SlidingWindowLimiter(1, 3600.0, clock=clock)
        assert lim.allow()
        result: list[bool] = []

        def waiter() -> None:
            waiter_ident.append(threading.get_ident())
            result.append(lim.wait_until_allowed(timeout=60.0))

        t = threading.Thread(target=waiter)
        t.start()
        assert waiting.wait(10)
        lim.set_limit(2)  # takes the lock, so the waiter is already inside Condition.wait
        t.join(10)
        assert not t.is_alive()
        assert result == [True]
        assert lim.in_window() == 2

    def test_real_threads_waiting_share_window(self) -> None:
        """4 threads x 5 waits on one fake clock: the acquisition times never crowd a window."""
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(5, 10.0, clock=clock, sleep=clock.sleep)
        got: list[float] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(5):
                # acquire_slot is wait_until_allowed returning the clock time it acquired at;
                # reading clock.now afterwards could see another thread's sleep already added.
                slot = lim.acquire_slot(timeout=1000.0)
                assert slot is not None
                with lock:
                    got.append(slot.stamp)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads)
        assert len(got) == 20
        assert _max_in_any_window(got, 10.0) == 5  # reached (the first five), never exceeded
        assert lim.in_window() <= 5

    def test_pause_holds_other_threads_until_it_ends(self) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
        assert lim.pause(3.0) == 3.0  # e.g. the thread that received "Retry-After: 3"
        assert lim.paused_for() == 3.0 and lim.wait_time() == 3.0
        assert lim.allow() is False and lim.in_window() == 0  # a refusal takes nothing
        stamps: list[float] = []
        lock = threading.Lock()

        def worker() -> None:
            slot = lim.acquire_slot()
            assert slot is not None
            with lock:
                stamps.append(slot.stamp)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in threads)
        assert len(stamps) == 4 and min(stamps) >= 3.0  # nobody went before the pause ended
        assert clock.sleeps and all(s <= 3.0 for s in clock.sleeps)
        assert lim.paused_for() == 0.0

    def test_pause_is_capped_and_only_extends(self) -> None:
        clock = StrictClock(start=0.0)
        lim = SlidingWindowLimiter(5, 10.0, clock=clock, sleep=clock.sleep)
        assert lim.max_pause == 20.0  # two windows by default
        assert lim.pause(1000.0) == 20.0
        assert lim.pause(5.0) == 20.0  # a shorter pause never shortens the current one
        clock.advance(19.0)
        lim.pause_until(clock.now + 1000.0)  # capped from now: until 39
        assert lim.paused_for() == 20.0
        assert lim.wait_until_allowed() is True
        assert clock.now == 39.0 and clock.sleeps == [20.0]
        short = SlidingWindowLimiter(5, 10.0, clock=clock, sleep=clock.sleep, max_pause=1.5)
        assert short.pause(60.0) == 1.5
        assert short.pause(-1.0) == 1.5  # nothing to add
        with pytest.raises(ValueError, match="max_pause"):
            SlidingWindowLimiter(5, 10.0, max_pause=-1.0)

    def test_validation(self) -> None:
        with pytest.raises(ValueError):
            SlidingWindowLimiter(0)
        with pytest.raises(ValueError):
            SlidingWindowLimiter(5, 0.0)
        lim = SlidingWindowLimiter(5, clock=StrictClock())
        assert lim.window == 60.0
        with pytest.raises(ValueError):
            lim.wait_until_allowed(1.5)  # type: ignore[arg-type]
