"""Tests for toolkit.concurrency: limits, priorities, retries, back-off, timeouts, bookkeeping."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.concurrency import ConcurrencyManager, ConcurrencyStats, Task, TaskResult
from toolkit.config import Settings
from toolkit.errors import TaskTimeoutError
from toolkit.testing import WAIT, FakeClock, wait_until

pytestmark = pytest.mark.timeout(60)


class Flaky:
    """Raises ``error`` for the first ``failures`` calls, then returns ``value``."""

    def __init__(self, failures: int, value: object = "ok", error: type[Exception] = OSError):
        self.failures = failures
        self.value = value
        self.error = error
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.value


class Gate:
    """A task body that blocks until released; records that it started."""

    def __init__(self, value: object = "gate") -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.value = value

    def __call__(self) -> object:
        self.started.set()
        try:
            assert self.release.wait(WAIT), "gate never released"
            return self.value
        finally:
            self.finished.set()


@pytest.fixture
def gates() -> Iterator[list[Gate]]:
    """Gates created by a test; all released at teardown so no worker stays blocked."""
    made: list[Gate] = []
    yield made
    for gate in made:
        gate.release.set()


def make_gate(gates: list[Gate], value: object = "gate") -> Gate:
    gate = Gate(value)
    gates.append(gate)
    return gate


# ---------------------------------------------------------------- basics


def test_enqueue_returns_future_with_result() -> None:
    with ConcurrencyManager() as manager:
        future = manager.enqueue(Task("a", lambda: 42))
        assert isinstance(future, Future)
        result = future.result(timeout=WAIT)
    assert isinstance(result, TaskResult)
    assert (result.id, result.success, result.result, result.error, result.attempt) == (
        "a",
        True,
        42,
        None,
        1,
    )
    assert result.duration >= 0.0


@pytest.mark.parametrize("count", [0, 1, 7, 200])
def test_enqueue_batch_returns_input_order(count: int) -> None:
    tasks = [Task(f"t{i}", partial(pow, i, 2), priority=i % 3) for i in range(count)]
    with ConcurrencyManager(max_concurrent=4) as manager:
        results = manager.enqueue_batch(tasks)
        stats = manager.get_stats()
    assert [r.id for r in results] == [t.id for t in tasks]
    assert [r.result for r in results] == [i * i for i in range(count)]
    assert stats.completed_tasks == stats.total_tasks == count


def test_many_noop_tasks_complete() -> None:
    with ConcurrencyManager(max_concurrent=5) as manager:
        results = manager.enqueue_batch(Task(str(i), lambda: None) for i in range(10_000))
        futures = [manager.enqueue(Task(f"f{i}", lambda: 1)) for i in range(2_000)]
        assert all(f.result(timeout=WAIT).success for f in futures)
        assert manager.peak_active <= 5
    assert all(r.success for r in results)


def test_failures_keep_the_exception_object() -> None:
    boom = KeyError("missing")

    def fail() -> None:
        raise boom

    with ConcurrencyManager(retries=0) as manager:
        result = manager.enqueue(Task("x", fail)).result(timeout=WAIT)
    assert result.success is False
    assert result.error is boom
    assert result.result is None


def test_validation() -> None:
    with pytest.raises(ValueError):
        ConcurrencyManager(max_concurrent=0)
    with pytest.raises(ValueError):
        ConcurrencyManager(retries=-1)
    with pytest.raises(ValueError):
        ConcurrencyManager(timeout=0)
    with pytest.raises(ValueError):
        Task("t", lambda: None, retries=-1)
    with pytest.raises(ValueError):
        Task("t", lambda: None, timeout=-1.0)


def test_from_settings() -> None:
    settings_ = Settings(concurrency_max_tasks=7, concurrency_retries=4, concurrency_timeout=1.5)
    sleeps = FakeClock()  # its sleep records the back-offs
    manager = ConcurrencyManager.from_settings(settings_, backoff_base=0.5, sleep=sleeps.sleep)
    flaky = Flaky(failures=10)
    with manager:
        assert manager.max_concurrent == 7
        result = manager.enqueue(Task("f", flaky)).result(timeout=WAIT)
    assert result.attempt == 5
    assert sleeps.sleeps == pytest.approx([0.5, 1.0, 2.0, 4.0])


# ---------------------------------------------------------------- limit


def test_never_more_than_max_concurrent_and_reaches_it() -> None:
    lock = threading.Lock()
    running = 0
    peak = 0
    barrier = threading.Barrier(3)

    def body() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            barrier.wait(timeout=WAIT)  # groups of 3 must overlap, so the limit is reached
        finally:
            with lock:
                running -= 1

    with ConcurrencyManager(max_concurrent=3, retries=0) as manager:
        futures = [manager.enqueue(Task(str(i), body)) for i in range(51)]
        results = [f.result(timeout=WAIT) for f in futures]
        assert manager.peak_active == 3
    assert all(r.success for r in results), [r.error for r in results if not r.success][:1]
    assert peak == 3


def test_stats_count_active_and_queued(gates: list[Gate]) -> None:
    gate_a, gate_b = make_gate(gates), make_gate(gates)
    with ConcurrencyManager(max_concurrent=2) as manager:
        manager.enqueue(Task("a", gate_a))
        manager.enqueue(Task("b", gate_b))
        assert gate_a.started.wait(WAIT) and gate_b.started.wait(WAIT)
        later = [manager.enqueue(Task(f"q{i}", lambda: None)) for i in range(3)]
        stats = manager.get_stats()
        assert (stats.active_tasks, stats.queued_tasks, stats.total_tasks) == (2, 3, 5)
        gate_a.release.set()
        gate_b.release.set()
        assert all(f.result(timeout=WAIT).success for f in later)


# ---------------------------------------------------------------- priority


def test_higher_priority_starts_first_fifo_among_equals(gates: list[Gate]) -> None:
    order: list[str] = []
    blocker = make_gate(gates)

    def record(name: str) -> Callable[[], str]:
        def body() -> str:
            order.append(name)
            return name

        return body

    with ConcurrencyManager(max_concurrent=1) as manager:
        manager.enqueue(Task("blocker", blocker))
        assert blocker.started.wait(WAIT)
        for name, priority in [("low1", 0), ("high1", 10), ("mid", 5), ("low2", 0), ("high2", 10)]:
            manager.enqueue(Task(name, record(name), priority=priority))
        blocker.release.set()
        assert manager.wait_all(timeout=WAIT)
    assert order == ["high1", "high2", "mid", "low1", "low2"]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=12))
def test_start_order_is_priority_then_fifo(priorities: list[int]) -> None:
    order: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def blocker() -> None:
        started.set()
        release.wait(WAIT)

    with ConcurrencyManager(max_concurrent=1) as manager:
        manager.enqueue(Task("blocker", blocker))
        assert started.wait(WAIT)
        for i, priority in enumerate(priorities):
            manager.enqueue(Task(str(i), partial(order.append, i), priority=priority))
        release.set()
        assert manager.wait_all(timeout=WAIT)
    assert order == sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))


# ---------------------------------------------------------------- retries and back-off


def test_backoff_schedule_and_attempt_count() -> None:
    sleeps = FakeClock()  # its sleep records the back-offs
    flaky = Flaky(failures=100)
    with ConcurrencyManager(retries=3, backoff_base=0.1, sleep=sleeps.sleep) as manager:
        result = manager.enqueue(Task("f", flaky)).result(timeout=WAIT)
    assert sleeps.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert flaky.calls == 4
    assert result.attempt == 4
    assert result.success is False
    assert isinstance(result.error, OSError)
    assert str(result.error) == "failure 4"


def test_backoff_is_capped() -> None:
    sleeps = FakeClock()  # its sleep records the back-offs
    with ConcurrencyManager(
        retries=5, backoff_base=0.1, backoff_cap=0.5, sleep=sleeps.sleep
    ) as manager:
        result = manager.enqueue(Task("f", Flaky(failures=100))).result(timeout=WAIT)
    assert sleeps.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert result.attempt == 6
    with pytest.raises(ValueError, match="backoff_cap"):
        ConcurrencyManager(backoff_cap=-1.0)


def test_zero_retries_means_exactly_one_attempt() -> None:
    sleeps = FakeClock()  # its sleep records the back-offs
    flaky = Flaky(failures=1)
    with ConcurrencyManager(retries=0, sleep=sleeps.sleep) as manager:
        result = manager.enqueue(Task("f", flaky)).result(timeout=WAIT)
    assert flaky.calls == 1
    assert result.attempt == 1
    assert not result.success
    assert sleeps.sleeps == []


def test_retry_then_success() -> None:
    sleeps = FakeClock()  # its sleep records the back-offs
    flaky = Flaky(failures=2, value="finally")
    with ConcurrencyManager(retries=2, sleep=sleeps.sleep) as manager:
        result = manager.enqueue(Task("f", flaky)).result(timeout=WAIT)
    assert (result.success, result.result, result.attempt, result.error) == (
        True,
        "finally",
        3,
        None,
    )
    assert sleeps.sleeps == pytest.approx([0.1, 0.2])


def test_task_retries_override_the_default() -> None:
    sleeps = FakeClock()  # its sleep records the back-offs
    with ConcurrencyManager(retries=5, sleep=sleeps.sleep) as manager:
        once = Flaky(failures=100)
        r1 = manager.enqueue(Task("once", once, retries=0)).result(timeout=WAIT)
        twice = Flaky(failures=100)
        r2 = manager.enqueue(Task("twice", twice, retries=1)).result(timeout=WAIT)
    assert (once.calls, r1.attempt) == (1, 1)
    assert (twice.calls, r2.attempt) == (2, 2)


def test_retry_on_decides_what_is_retried() -> None:
    sleeps = FakeClock()  # its sleep records the back-offs

    def connection_only(exc: BaseException) -> bool:
        return isinstance(exc, ConnectionError)

    with ConcurrencyManager(retries=3, retry_on=connection_only, sleep=sleeps.sleep) as manager:
        permanent = Flaky(failures=100, error=ValueError)
        transient = Flaky(failures=2, error=ConnectionError)
        r_perm = manager.enqueue(Task("perm", permanent)).result(timeout=WAIT)
        r_tran = manager.enqueue(Task("tran", transient)).result(timeout=WAIT)
    assert (permanent.calls, r_perm.success, r_perm.attempt) == (1, False, 1)
    assert isinstance(r_perm.error, ValueError)
    assert (transient.calls, r_tran.success, r_tran.attempt) == (3, True, 3)


def test_a_raising_retry_on_gives_up_instead_of_hanging() -> None:
    def broken(exc: BaseException) -> bool:
        raise RuntimeError("predicate bug")

    flaky = Flaky(failures=100)
    with ConcurrencyManager(retries=3, retry_on=broken, sleep=FakeClock().sleep) as manager:
        result = manager.enqueue(Task("f", flaky)).result(timeout=WAIT)
    assert flaky.calls == 1
    assert isinstance(result.error, OSError)


def test_duration_spans_first_start_to_last_end_including_backoff() -> None:
    clock = FakeClock()
    calls = 0

    def body() -> str:
        nonlocal calls
        calls += 1
        clock.advance(1.0)  # each attempt "takes" one second
        if calls < 3:
            raise OSError("again")
        return "done"

    with ConcurrencyManager(retries=2, sleep=clock.sleep, clock=clock) as manager:
        result = manager.enqueue(Task("d", body)).result(timeout=WAIT)
    # 3 attempts of 1 s plus back-off of 0.1 s and 0.2 s.
    assert result.duration == pytest.approx(3.3)
    assert result.attempt == 3


def test_backoff_does_not_hold_a_slot(gates: list[Gate]) -> None:
    in_backoff = threading.Event()
    end_backoff = threading.Event()
    gates_ = make_gate(gates)

    def slow_sleep(seconds: float) -> None:
        in_backoff.set()
        end_backoff.wait(WAIT)

    flaky = Flaky(failures=1)
    try:
        with ConcurrencyManager(max_concurrent=1, retries=1, sleep=slow_sleep) as manager:
            future = manager.enqueue(Task("flaky", flaky))
            assert in_backoff.wait(WAIT)
            # The only slot is free while "flaky" backs off, so another task can run now.
            other = manager.enqueue(Task("other", gates_))
            assert gates_.started.wait(WAIT)
            assert manager.get_stats().queued_tasks == 1
            gates_.release.set()
            assert other.result(timeout=WAIT).success
            end_backoff.set()
            assert future.result(timeout=WAIT).attempt == 2
    finally:
        end_backoff.set()


def test_many_backoffs_overlap_on_the_watchdog_and_never_end_early(gates: list[Gate]) -> None:
    """Default sleep: a back-off is a deadline on the watchdog's heap, not a sleeping thread.

    200 tasks fail once; with one worker and a sentinel queued after them, the sentinel starts only
    once every failure has been handed to the watchdog. At that moment all 200 are backing off at
    once (the old design slept them on a pool of 32 threads, so the rest queued and retried late)
    and the manager has started no thread beyond its worker and the watchdog.
    """
    n, base = 200, 0.05
    lock = threading.Lock()
    failed_at: dict[str, float] = {}
    retried_at: dict[str, float] = {}
    retry_order: list[str] = []

    def body(name: str) -> Callable[[], str]:
        def run() -> str:
            now = time.monotonic()
            with lock:
                if name not in failed_at:
                    failed_at[name] = now
                    raise OSError(f"{name} fails once")
                retried_at[name] = now
                retry_order.append(name)
            return name

        return run

    sentinel = make_gate(gates)
    before = set(threading.enumerate())
    with ConcurrencyManager(
        max_concurrent=1, retries=1, timeout=None, backoff_base=base
    ) as manager:
        futures = [manager.enqueue(Task(f"t{i:03}", body(f"t{i:03}"))) for i in range(n)]
        done = manager.enqueue(Task("sentinel", sentinel))
        assert sentinel.started.wait(WAIT)
        stats = manager.get_stats()
        assert (stats.active_tasks, stats.queued_tasks) == (1, n)  # all 200 are backing off
        assert len(failed_at) == n and not retried_at  # the only worker is in the sentinel
        new_threads = [t for t in threading.enumerate() if t not in before]
        assert len(new_threads) <= 2, [t.name for t in new_threads]  # one worker + the watchdog
        sentinel.release.set()
        results = [f.result(timeout=WAIT) for f in futures]
        assert done.result(timeout=WAIT).success
    assert all(r.success and r.attempt == 2 for r in results)
    for name, failed in failed_at.items():
        assert retried_at[name] >= failed + base, name  # never before its own back-off ended
    # One worker failed them in order, so their back-offs end, and they re-queue, in that order.
    assert retry_order == sorted(failed_at, key=failed_at.__getitem__)


def test_timeout_then_real_backoff_then_success(gates: list[Gate]) -> None:
    """Default sleep: the watchdog fires the timeout, then re-queues the task after its back-off.

    Deadlines and back-offs are measured on a fake clock, moved in steps shorter than the timeout
    only while the retry has not started: however slowly it runs, it cannot time out too.
    """
    clock = FakeClock()
    stuck = make_gate(gates)
    calls = 0

    def body() -> object:
        nonlocal calls
        calls += 1
        return stuck() if calls == 1 else "second"

    with ConcurrencyManager(
        max_concurrent=2, retries=1, timeout=0.05, backoff_base=0.01, clock=clock
    ) as manager:
        future = manager.enqueue(Task("t", body))
        assert stuck.started.wait(WAIT)
        deadline = time.monotonic() + WAIT
        # The abandoned first attempt keeps one slot; a second active task is the retry.
        while not future.done() and manager.get_stats().active_tasks < 2:
            assert time.monotonic() < deadline, "the retry never started"
            clock.advance(0.01)
            time.sleep(0.002)
        result = future.result(timeout=WAIT)
        stuck.release.set()
    assert (result.success, result.result, result.attempt) == (True, "second", 2)
    # The timeout, then the back-off, on the fake clock (less a float rounding allowance).
    assert result.duration > 0.05 + 0.01 - 1e-9


def test_a_raising_injected_sleep_still_requeues_and_keeps_the_watchdog() -> None:
    def broken_sleep(seconds: float) -> None:
        raise RuntimeError("sleep bug")

    with ConcurrencyManager(retries=2, sleep=broken_sleep) as manager:
        first = manager.enqueue(Task("a", Flaky(failures=2))).result(timeout=WAIT)
        second = manager.enqueue(Task("b", Flaky(failures=1))).result(timeout=WAIT)
    assert (first.success, first.attempt) == (True, 3)
    assert (second.success, second.attempt) == (True, 2)


# ---------------------------------------------------------------- timeouts


def test_timeout_fails_the_attempt_and_still_counts_against_the_limit(gates: list[Gate]) -> None:
    slow = make_gate(gates, value="late")
    queued = make_gate(gates, value="queued")
    queued.release.set()
    with ConcurrencyManager(max_concurrent=1, retries=0, timeout=0.05) as manager:
        slow_future = manager.enqueue(Task("slow", slow))
        queued_future = manager.enqueue(Task("queued", queued, timeout=WAIT))
        result = slow_future.result(timeout=WAIT)
        assert result.success is False
        assert isinstance(result.error, TaskTimeoutError)
        assert "timeout" in str(result.error).lower()
        assert result.attempt == 1
        # The timed-out callable is still running: it keeps the only slot.
        assert not slow.finished.is_set()
        assert manager.get_stats().active_tasks == 1
        assert not queued.started.is_set()
        assert not queued_future.done()
        slow.release.set()
        assert queued_future.result(timeout=WAIT).result == "queued"
        assert slow.finished.is_set()
        # The late return of the abandoned attempt does not overwrite the recorded failure.
        late = manager.get_result("slow")
        assert late is not None and late.success is False


def test_timed_out_attempt_and_its_retry_coexist_within_the_limit(gates: list[Gate]) -> None:
    stuck = make_gate(gates)
    calls = 0
    sleeps = FakeClock()  # its sleep records the back-offs

    def body() -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            return stuck()
        return "second attempt"

    clock = FakeClock()  # only the test moves it: the retry cannot time out, however slow
    with ConcurrencyManager(
        max_concurrent=2, retries=1, timeout=0.05, sleep=sleeps.sleep, clock=clock
    ) as manager:
        future = manager.enqueue(Task("t", body))
        assert stuck.started.wait(WAIT)
        clock.advance(1.0)  # past the first attempt's deadline
        result = future.result(timeout=WAIT)
        assert (result.success, result.result, result.attempt) == (True, "second attempt", 2)
        assert sleeps.sleeps == pytest.approx([0.1])
        assert manager.peak_active == 2
        assert manager.get_stats().active_tasks == 1  # the abandoned first attempt
        stuck.release.set()


def test_late_return_of_an_abandoned_attempt_is_discarded(gates: list[Gate]) -> None:
    first, second = make_gate(gates, value="first"), make_gate(gates, value="second")
    calls = 0

    def body() -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            return first()
        if calls == 2:
            return second()  # times out too, but only after attempt 1 has returned
        return "third"

    sleeps = FakeClock()  # its sleep records the back-offs
    clock = FakeClock()  # only the test moves it, so each attempt times out exactly when told
    with ConcurrencyManager(
        max_concurrent=3, retries=2, timeout=0.2, sleep=sleeps.sleep, clock=clock
    ) as manager:
        future = manager.enqueue(Task("t", body))
        assert first.started.wait(WAIT)
        clock.advance(1.0)  # attempt 1 times out
        assert second.started.wait(WAIT)
        first.release.set()  # attempt 1 returns "first" while attempt 2 is running
        wait_until(lambda: manager.get_stats().active_tasks == 1, "attempt 1 to return")
        assert not future.done()  # its late "first" was discarded
        clock.advance(1.0)  # attempt 2 times out
        result = future.result(timeout=WAIT)
        second.release.set()
    assert (result.success, result.result, result.attempt) == (True, "third", 3)
    assert sleeps.sleeps == pytest.approx([0.1, 0.2])


def test_retry_after_timeout_waits_for_the_slot(gates: list[Gate]) -> None:
    stuck = make_gate(gates)
    second_started = threading.Event()
    backoff_requested = threading.Event()
    calls = 0

    def body() -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            return stuck()
        second_started.set()
        return "retried"

    def sleep(seconds: float) -> None:
        backoff_requested.set()

    clock = FakeClock()  # only the test moves it: the retry cannot time out, however slow
    with ConcurrencyManager(
        max_concurrent=1, retries=1, timeout=0.05, sleep=sleep, clock=clock
    ) as manager:
        future = manager.enqueue(Task("t", body))
        assert stuck.started.wait(WAIT)
        clock.advance(1.0)  # past the first attempt's deadline
        assert backoff_requested.wait(WAIT)
        assert not second_started.is_set()
        assert not future.done()
        stuck.release.set()
        result = future.result(timeout=WAIT)
    assert (result.success, result.result, result.attempt) == (True, "retried", 2)


def test_manager_default_timeout_applies_and_inf_disables(gates: list[Gate]) -> None:
    stuck = make_gate(gates)
    patient = make_gate(gates, value="patient")
    with ConcurrencyManager(max_concurrent=2, retries=0, timeout=0.05) as manager:
        timed = manager.enqueue(Task("timed", stuck))
        untimed = manager.enqueue(Task("untimed", patient, timeout=float("inf")))
        assert isinstance(timed.result(timeout=WAIT).error, TaskTimeoutError)
        assert not untimed.done()
        patient.release.set()
        stuck.release.set()
        assert untimed.result(timeout=WAIT).result == "patient"


def test_huge_timeouts_do_not_break_the_watchdog(gates: list[Gate]) -> None:
    stuck = make_gate(gates)
    with ConcurrencyManager(timeout=1e15, retries=0) as manager:
        assert manager.enqueue(Task("x", lambda: 1)).result(timeout=WAIT).result == 1
        result = manager.enqueue(Task("y", stuck, timeout=0.05)).result(timeout=WAIT)
        assert isinstance(result.error, TaskTimeoutError)
        stuck.release.set()


# ---------------------------------------------------------------- bookkeeping


def test_result_is_recorded_before_the_future_resolves() -> None:
    seen: list[tuple[TaskResult[object] | None, int]] = []
    with ConcurrencyManager() as manager:
        future = manager.enqueue(Task("r", lambda: "v"))

        def check(done: Future[TaskResult[str]]) -> None:
            seen.append((manager.get_result("r"), manager.get_stats().completed_tasks))

        future.add_done_callback(check)
        assert future.result(timeout=WAIT).result == "v"
        assert manager.wait_all(timeout=WAIT)
    assert len(seen) == 1
    recorded, completed = seen[0]
    assert recorded is not None and recorded.result == "v"
    assert completed == 1


def test_successful_failed_and_stats() -> None:
    clock = FakeClock()

    def ok(value: int) -> Callable[[], int]:
        def body() -> int:
            clock.advance(2.0)
            return value

        return body

    def bad() -> None:
        clock.advance(2.0)
        raise ValueError("bad")

    tasks: list[Task[object]] = [
        Task("a", ok(1)),
        Task("b", ok(2)),
        Task("c", bad),
        Task("d", ok(3)),
    ]
    with ConcurrencyManager(max_concurrent=1, retries=0, clock=clock) as manager:
        manager.enqueue_batch(tasks)
        stats = manager.get_stats()
        assert stats.average_task_duration == pytest.approx(2.0)
        assert stats == ConcurrencyStats(
            total_tasks=4,
            completed_tasks=3,
            failed_tasks=1,
            active_tasks=0,
            queued_tasks=0,
            average_task_duration=stats.average_task_duration,
            success_rate=75.0,
        )
        assert sorted(r.id for r in manager.get_successful()) == ["a", "b", "d"]
        assert [r.id for r in manager.get_failed()] == ["c"]
        assert manager.get_result("b") is not None
        assert manager.get_result("nope") is None


def test_reset_forgets_results_and_statistics() -> None:
    with ConcurrencyManager(retries=0) as manager:
        first: list[Task[object]] = [Task("a", lambda: 1), Task("b", Flaky(failures=1))]
        manager.enqueue_batch(first)
        assert manager.get_stats().total_tasks == 2
        manager.reset()
        assert manager.get_result("a") is None
        assert manager.get_successful() == [] and manager.get_failed() == []
        assert manager.get_stats() == ConcurrencyStats(0, 0, 0, 0, 0, 0.0, 0.0)
        assert manager.peak_active == 0
        manager.enqueue_batch([Task("a", lambda: 2)])
        assert manager.get_stats().total_tasks == 1
        result = manager.get_result("a")
        assert result is not None and result.result == 2


def test_duplicate_id_in_flight_is_rejected(gates: list[Gate]) -> None:
    gate = make_gate(gates)
    with ConcurrencyManager() as manager:
        first = manager.enqueue(Task("same", gate))
        with pytest.raises(ValueError, match="same"):
            manager.enqueue(Task("same", lambda: None))
        with pytest.raises(ValueError):
            manager.enqueue_batch([Task("other", lambda: None), Task("same", lambda: None)])
        assert manager.get_stats().total_tasks == 1  # the batch was rejected as a whole
        with pytest.raises(ValueError):
            manager.enqueue_batch([Task("x", lambda: None), Task("x", lambda: None)])
        gate.release.set()
        assert first.result(timeout=WAIT).success
        again = manager.enqueue(Task("same", lambda: "again")).result(timeout=WAIT)
        assert again.result == "again"


def test_clear_resolves_removed_futures_with_failure(gates: list[Gate]) -> None:
    blocker = make_gate(gates)
    ran: list[str] = []
    with ConcurrencyManager(max_concurrent=1) as manager:
        running = manager.enqueue(Task("blocker", blocker))
        assert blocker.started.wait(WAIT)
        queued = [manager.enqueue(Task(f"q{i}", partial(ran.append, f"q{i}"))) for i in range(3)]
        assert manager.clear() == 3
        for i, future in enumerate(queued):
            assert future.done()
            result = future.result()
            assert (result.id, result.success, result.attempt) == (f"q{i}", False, 0)
            assert isinstance(result.error, CancelledError)
        assert manager.get_stats().failed_tasks == 3
        assert not running.done()
        blocker.release.set()
        assert running.result(timeout=WAIT).success
        assert manager.wait_all(timeout=WAIT)
    assert ran == []


def test_clear_releases_a_blocked_enqueue_batch(gates: list[Gate]) -> None:
    blocker, first = make_gate(gates), make_gate(gates, value="first")
    batch_results: list[list[TaskResult[object]]] = []
    with ConcurrencyManager(max_concurrent=2) as manager:
        manager.enqueue(Task("blocker", blocker))
        assert blocker.started.wait(WAIT)
        tasks: list[Task[object]] = [Task("b0", first)]
        tasks += [Task(f"b{i}", lambda: None) for i in range(1, 4)]
        caller = threading.Thread(target=lambda: batch_results.append(manager.enqueue_batch(tasks)))
        caller.start()
        # Admission is all-or-nothing, so once b0 runs the whole batch is queued.
        assert first.started.wait(WAIT)
        assert manager.clear() == 3
        first.release.set()
        caller.join(WAIT)
        assert not caller.is_alive()
        blocker.release.set()
    [results] = batch_results
    assert [r.id for r in results] == ["b0", "b1", "b2", "b3"]
    assert [r.success for r in results] == [True, False, False, False]
    assert all(isinstance(r.error, CancelledError) for r in results[1:])


def test_clear_removes_a_task_in_backoff() -> None:
    in_backoff = threading.Event()
    end_backoff = threading.Event()

    def slow_sleep(seconds: float) -> None:
        in_backoff.set()
        end_backoff.wait(WAIT)

    flaky = Flaky(failures=1)
    try:
        with ConcurrencyManager(retries=2, sleep=slow_sleep) as manager:
            future = manager.enqueue(Task("f", flaky))
            assert in_backoff.wait(WAIT)
            assert manager.clear() == 1
            result = future.result(timeout=WAIT)
            assert isinstance(result.error, CancelledError)
            assert result.attempt == 1
            end_backoff.set()
            assert manager.wait_all(timeout=WAIT)
    finally:
        end_backoff.set()
    assert flaky.calls == 1


def test_cancelled_future_skips_its_task(gates: list[Gate]) -> None:
    blocker = make_gate(gates)
    ran: list[str] = []
    with ConcurrencyManager(max_concurrent=1) as manager:
        manager.enqueue(Task("blocker", blocker))
        assert blocker.started.wait(WAIT)
        future = manager.enqueue(Task("victim", lambda: ran.append("victim")))
        assert future.cancel()
        blocker.release.set()
        assert manager.wait_all(timeout=WAIT)
        result = manager.get_result("victim")
    assert ran == []
    assert result is not None and isinstance(result.error, CancelledError)


def test_wait_all_times_out_then_succeeds(gates: list[Gate]) -> None:
    gate = make_gate(gates)
    with ConcurrencyManager() as manager:
        assert manager.wait_all(timeout=0) is True
        manager.enqueue(Task("g", gate))
        assert manager.wait_all(timeout=0.01) is False
        gate.release.set()
        assert manager.wait_all(timeout=WAIT) is True


def test_close_drains_the_queue_then_rejects_new_tasks() -> None:
    ran: list[int] = []
    manager = ConcurrencyManager(max_concurrent=2)
    for i in range(20):
        manager.enqueue(Task(str(i), partial(ran.append, i)))
    manager.close()
    assert sorted(ran) == list(range(20))
    with pytest.raises(RuntimeError):
        manager.enqueue(Task("late", lambda: None))
    with pytest.raises(RuntimeError):
        manager.enqueue_batch([Task("late", lambda: None)])


def test_close_cancel_pending(gates: list[Gate]) -> None:
    blocker = make_gate(gates)
    manager = ConcurrencyManager(max_concurrent=1)
    running = manager.enqueue(Task("blocker", blocker))
    assert blocker.started.wait(WAIT)
    pending = manager.enqueue(Task("pending", lambda: "never"))
    manager.close(wait=False, cancel_pending=True)
    assert isinstance(pending.result(timeout=0).error, CancelledError)
    assert not running.done()
    blocker.release.set()
    manager.close()
    assert running.result(timeout=0).success


def test_a_dropped_manager_stops_its_threads() -> None:
    manager = ConcurrencyManager(max_concurrent=3, retries=1, sleep=FakeClock().sleep)
    futures = [manager.enqueue(Task(f"t{n}", Flaky(failures=1, value=n))) for n in range(6)]
    assert [f.result(timeout=WAIT).result for f in futures] == list(range(6))
    engine = manager._engine
    threads = [*engine._workers, engine._watchdog]
    assert len(threads) >= 2 and all(t is not None and t.is_alive() for t in threads)
    ref = weakref.ref(manager)
    del manager
    gc.collect()
    assert ref() is None, "the manager's own threads must not keep it alive"
    for thread in threads:
        assert thread is not None
        thread.join(WAIT)
        assert not thread.is_alive()


def test_a_dropped_manager_still_finishes_its_queued_tasks(gates: list[Gate]) -> None:
    gate = make_gate(gates)
    manager = ConcurrencyManager(max_concurrent=1)
    running = manager.enqueue(Task("gate", gate))
    queued = manager.enqueue(Task("queued", lambda: "done"))
    assert gate.started.wait(WAIT)
    workers = list(manager._engine._workers)
    del manager
    gc.collect()
    gate.release.set()
    assert running.result(timeout=WAIT).success
    assert queued.result(timeout=WAIT).result == "done"
    for thread in workers:
        thread.join(WAIT)
        assert not thread.is_alive()
