"""Run zero-argument callables on worker threads with a concurrency limit, priorities, retries and timeouts.

Port of the spec's ConcurrencyManager (section 3), without its 50 ms polling loop or its lost futures.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from toolkit.backoff import DEFAULT_CAP, backoff_delay
from toolkit.config import Settings
from toolkit.errors import TaskTimeoutError

__all__ = ["ConcurrencyManager", "ConcurrencyStats", "Task", "TaskResult"]

T = TypeVar("T")

# Job phases. BACKOFF also covers "attempt failed or timed out, retry decision pending".
_QUEUED, _RUNNING, _BACKOFF, _DONE = range(4)

# A timer on the watchdog's heap: (when, seq, job, attempt, backoff). ``backoff`` is None for the
# deadline of a running attempt, else the back-off delay after which ``job`` is re-queued. An entry
# is live while ``job`` is still in that attempt and phase (_RUNNING resp. _BACKOFF).
_Timer = tuple[float, int, "_Job", int, float | None]


@dataclass(frozen=True, slots=True)
class Task(Generic[T]):
    """A unit of work: ``execute()`` is called with no arguments on a worker thread.

    ``retries`` and ``timeout`` (seconds per attempt; ``math.inf`` for none) override the manager's
    defaults when not None. Higher ``priority`` starts first.
    """

    id: str
    execute: Callable[[], T]
    priority: int = 0
    retries: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.retries is not None and self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")


@dataclass(frozen=True, slots=True)
class TaskResult(Generic[T]):
    """Outcome of a task: ``attempt`` attempts made, ``duration`` seconds from first start to last end.

    ``error`` is the last exception (not a string) when ``success`` is false.
    """

    id: str
    success: bool
    result: T | None
    error: BaseException | None
    attempt: int
    duration: float


@dataclass(frozen=True, slots=True)
class ConcurrencyStats:
    """A snapshot of a manager's counters since its last :meth:`ConcurrencyManager.reset`.

    ``active_tasks`` counts callables running now (timed-out ones still running included);
    ``queued_tasks`` counts tasks waiting for an attempt, back-off included; ``success_rate`` is a
    percentage of finished tasks; ``average_task_duration`` is in seconds.
    """

    total_tasks: int
    completed_tasks: int
    failed_tasks: int
    active_tasks: int
    queued_tasks: int
    average_task_duration: float
    success_rate: float


class _Batch:
    """Shared result slots of one :meth:`ConcurrencyManager.enqueue_batch` call (no per-task Future)."""

    __slots__ = ("remaining", "results")

    def __init__(self, size: int) -> None:
        self.results: list[TaskResult[Any]] = cast(list[TaskResult[Any]], [None] * size)
        self.remaining = size


class _Job:
    """Mutable bookkeeping for one task; only touched under the manager's lock."""

    __slots__ = (
        "attempt",
        "batch",
        "future",
        "index",
        "max_attempts",
        "phase",
        "started",
        "task",
        "timeout",
    )

    def __init__(
        self,
        task: Task[Any],
        future: Future[TaskResult[Any]] | None,
        batch: _Batch | None,
        index: int,
        max_attempts: int,
        timeout: float | None,
    ) -> None:
        self.task = task
        self.future = future
        self.batch = batch
        self.index = index
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.attempt = 0
        self.phase = _QUEUED
        self.started: float | None = None


def _resolve(future: Future[TaskResult[Any]] | None, result: TaskResult[Any]) -> None:
    """Resolve ``future`` unless the caller already cancelled it."""
    if future is not None:
        with contextlib.suppress(InvalidStateError):
            future.set_result(result)


class _Engine:
    """The manager's state and threads; holds no reference to its :class:`ConcurrencyManager`.

    Worker and watchdog threads run the engine's methods, so a manager nobody references can be
    collected, and its finalizer closes the engine, which lets those threads end.
    """

    def __init__(
        self,
        max_concurrent: int,
        retries: int,
        timeout: float | None,
        backoff_base: float,
        retry_on: Callable[[BaseException], bool] | None,
        *,
        backoff_cap: float,
        sleep: Callable[[float], object],
        clock: Callable[[], float],
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout}")
        if backoff_base < 0:
            raise ValueError(f"backoff_base must be >= 0, got {backoff_base}")
        if backoff_cap < 0:
            raise ValueError(f"backoff_cap must be >= 0, got {backoff_cap}")
        self._max = max_concurrent
        self._retries = retries
        self._timeout = timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._retry_on = retry_on
        self._sleep = sleep
        self._clock = clock

        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # workers: a job or a slot appeared
        self._watch = threading.Condition(self._lock)  # watchdog: an earlier deadline appeared
        self._done = threading.Condition(self._lock)  # wait_all / enqueue_batch waiters
        self._seq = itertools.count()
        self._heap: list[tuple[int, int, _Job]] = []  # (-priority, seq, job)
        self._timers: list[_Timer] = []  # the watchdog's heap: attempt deadlines and back-offs
        self._stale = 0  # estimate of timer entries that are no longer live
        self._in_flight: dict[str, _Job] = {}
        self._results: dict[str, TaskResult[Any]] = {}
        self._active = 0
        self._peak = 0
        self._idle = 0  # workers waiting that nobody has notified yet
        self._workers: set[threading.Thread] = set()
        self._watchdog: threading.Thread | None = None
        self._backing_off = 0
        self._closed = False
        self._total = 0
        self._completed = 0
        self._failed = 0
        self._duration_sum = 0.0
        self._duration_count = 0

    # ------------------------------------------------------------------ public API (delegated)

    @property
    def peak_active(self) -> int:
        """See :meth:`ConcurrencyManager.peak_active`."""
        with self._lock:
            return self._peak

    def enqueue(self, task: Task[T]) -> Future[TaskResult[T]]:
        """See :meth:`ConcurrencyManager.enqueue`."""
        future: Future[TaskResult[T]] = Future()
        job = self._make_job(task, cast("Future[TaskResult[Any]]", future), None, 0)
        with self._lock:
            self._check_open()
            if task.id in self._in_flight:
                raise ValueError(f"task id {task.id!r} is already in flight")
            self._admit_locked(job)
            self._wake_locked(1)
        return future

    def enqueue_batch(self, tasks: Iterable[Task[T]]) -> list[TaskResult[T]]:
        """See :meth:`ConcurrencyManager.enqueue_batch`."""
        task_list = list(tasks)
        if not task_list:
            return []
        batch = _Batch(len(task_list))
        jobs = [self._make_job(task, None, batch, i) for i, task in enumerate(task_list)]
        with self._lock:
            self._check_open()
            seen: set[str] = set()
            for task in task_list:
                if task.id in seen or task.id in self._in_flight:
                    raise ValueError(f"task id {task.id!r} is already in flight")
                seen.add(task.id)
            for job in jobs:
                self._admit_locked(job)
            self._wake_locked(len(jobs))
            while batch.remaining:
                self._done.wait()
        return cast(list[TaskResult[T]], batch.results)

    def get_result(self, task_id: str) -> TaskResult[Any] | None:
        """See :meth:`ConcurrencyManager.get_result`."""
        with self._lock:
            return self._results.get(task_id)

    def get_successful(self) -> list[TaskResult[Any]]:
        """See :meth:`ConcurrencyManager.get_successful`."""
        with self._lock:
            return [r for r in self._results.values() if r.success]

    def get_failed(self) -> list[TaskResult[Any]]:
        """See :meth:`ConcurrencyManager.get_failed`."""
        with self._lock:
            return [r for r in self._results.values() if not r.success]

    def get_stats(self) -> ConcurrencyStats:
        """See :meth:`ConcurrencyManager.get_stats`."""
        with self._lock:
            finished = self._completed + self._failed
            return ConcurrencyStats(
                total_tasks=self._total,
                completed_tasks=self._completed,
                failed_tasks=self._failed,
                active_tasks=self._active,
                queued_tasks=len(self._heap) + self._backing_off,
                average_task_duration=(
                    self._duration_sum / self._duration_count if self._duration_count else 0.0
                ),
                success_rate=100.0 * self._completed / finished if finished else 0.0,
            )

    def wait_all(self, timeout: float | None = None) -> bool:
        """See :meth:`ConcurrencyManager.wait_all`."""
        with self._lock:
            return self._done.wait_for(lambda: not self._in_flight, timeout)

    def reset(self) -> None:
        """See :meth:`ConcurrencyManager.reset`."""
        with self._lock:
            self._results.clear()
            self._total = len(self._in_flight)
            self._completed = self._failed = 0
            self._duration_sum = 0.0
            self._duration_count = 0
            self._peak = self._active

    def clear(self) -> int:
        """See :meth:`ConcurrencyManager.clear`."""
        with self._lock:
            removed = [entry[2] for entry in sorted(self._heap)]
            removed += [job for job in self._in_flight.values() if job.phase == _BACKOFF]
            self._heap.clear()
            now = self._clock()
            resolved = []
            for job in removed:
                if job.phase == _BACKOFF:
                    self._backing_off -= 1
                    self._stale += 1  # its back-off timer, if it has one yet
                error = CancelledError(f"task {job.task.id!r} removed by clear()")
                resolved.append((job.future, self._record_locked(job, False, None, error, now)))
        for future, result in resolved:
            _resolve(future, result)
        return len(removed)

    def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """See :meth:`ConcurrencyManager.close`."""
        if cancel_pending:
            self.clear()
        with self._lock:
            self._closed = True
            self._notify_exit_locked()
        if not wait:
            return
        self.wait_all()
        with self._lock:
            workers = list(self._workers) if self._active == 0 else []
            watchdog = self._watchdog
        current = threading.current_thread()
        for thread in workers:
            if thread is not current:
                thread.join()
        if watchdog is not None and watchdog is not current:
            watchdog.join()

    # ------------------------------------------------------------------ admission

    def _make_job(
        self,
        task: Task[Any],
        future: Future[TaskResult[Any]] | None,
        batch: _Batch | None,
        index: int,
    ) -> _Job:
        retries = self._retries if task.retries is None else task.retries
        timeout = self._timeout if task.timeout is None else task.timeout
        if timeout is not None and math.isinf(timeout):
            timeout = None
        return _Job(task, future, batch, index, retries + 1, timeout)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("ConcurrencyManager is closed")

    def _admit_locked(self, job: _Job) -> None:
        self._in_flight[job.task.id] = job
        self._total += 1
        heapq.heappush(self._heap, (-job.task.priority, next(self._seq), job))

    def _wake_locked(self, count: int) -> None:
        """Make sure up to ``count`` workers will look at the queue: notify idle ones, else spawn."""
        for _ in range(count):
            if self._idle:
                self._idle -= 1
                self._work.notify()
            elif len(self._workers) < self._max:
                thread = threading.Thread(
                    target=self._worker_loop,
                    name=f"concurrency-worker-{len(self._workers)}",
                    daemon=True,
                )
                self._workers.add(thread)
                thread.start()
            else:
                return

    def _notify_exit_locked(self) -> None:
        if self._closed and not self._in_flight:
            self._idle = 0
            self._work.notify_all()
            self._watch.notify_all()

    # ------------------------------------------------------------------ workers

    def _take_locked(self) -> _Job | None:
        """Pop the next job and start its attempt, if there is one.

        No slot check here: the caller is a worker thread, and there are at most ``max_concurrent``.
        """
        heap = self._heap
        while heap:
            job = heapq.heappop(heap)[2]
            if (
                job.attempt == 0
                and job.future is not None
                and not job.future.set_running_or_notify_cancel()
            ):
                error = CancelledError(f"task {job.task.id!r} was cancelled")
                self._record_locked(job, False, None, error, self._clock())
                continue
            job.attempt += 1
            job.phase = _RUNNING
            self._active += 1
            if self._active > self._peak:
                self._peak = self._active
            if job.started is None or job.timeout is not None:
                now = self._clock()
                if job.started is None:
                    job.started = now
                if job.timeout is not None:
                    self._add_timer_locked(now + job.timeout, job, None)
            return job
        return None

    def _worker_loop(self) -> None:
        job: _Job | None = None
        attempt = 0
        ok = False
        value: Any = None
        error: BaseException | None = None
        while True:
            after: Callable[[], None] | None = None
            with self._lock:
                if job is not None:
                    after = self._complete_locked(job, attempt, ok, value, error)
                job = self._take_locked()
                while job is None and after is None:
                    if self._closed and not self._in_flight:
                        self._workers.discard(threading.current_thread())
                        return
                    self._idle += 1
                    self._work.wait()
                    job = self._take_locked()
                if job is not None:
                    attempt = job.attempt
            if after is not None:
                after()
            if job is None:
                continue
            try:
                value = job.task.execute()
                ok, error = True, None
            except BaseException as exc:  # recorded in the TaskResult, like a Future would
                ok, value, error = False, None, exc

    def _complete_locked(
        self, job: _Job, attempt: int, ok: bool, value: Any, error: BaseException | None
    ) -> Callable[[], None] | None:
        """Account for a returned callable; returns what to do once the lock is released."""
        self._active -= 1
        if job.phase != _RUNNING or job.attempt != attempt:
            return None  # this attempt timed out earlier: its outcome is discarded
        if job.timeout is not None:
            self._stale += 1  # its deadline timer
        if ok:
            result = self._record_locked(job, True, value, None, self._clock())
            future = job.future
            return None if future is None else lambda: _resolve(future, result)
        job.phase = _BACKOFF
        self._backing_off += 1
        failure = cast(BaseException, error)
        return lambda: self._after_failure(job, attempt, failure)

    def _record_locked(
        self, job: _Job, success: bool, value: Any, error: BaseException | None, end: float
    ) -> TaskResult[Any]:
        """Record the final result (before any future resolves) and retire the job."""
        duration = 0.0 if job.started is None else max(0.0, end - job.started)
        result: TaskResult[Any] = TaskResult(
            job.task.id, success, value, error, job.attempt, duration
        )
        job.phase = _DONE
        task_id = job.task.id
        self._results.pop(task_id, None)  # re-insert so dict order is completion order
        self._results[task_id] = result
        del self._in_flight[task_id]
        if success:
            self._completed += 1
        else:
            self._failed += 1
        if job.attempt:
            self._duration_sum += duration
            self._duration_count += 1
        batch = job.batch
        if batch is not None:
            batch.results[job.index] = result
            batch.remaining -= 1
            if not batch.remaining:
                self._done.notify_all()
        if not self._in_flight:
            self._done.notify_all()
            self._notify_exit_locked()
        return result

    # ------------------------------------------------------------------ failures and retries

    def _retryable(self, error: BaseException) -> bool:
        if not isinstance(error, Exception):
            return False
        if self._retry_on is None:
            return True
        try:
            return bool(self._retry_on(error))
        except Exception:  # a broken predicate must not strand the task
            return False

    def _after_failure(self, job: _Job, attempt: int, error: BaseException) -> None:
        """Back off or give up; called outside the lock, since ``retry_on`` is user code."""
        retry = attempt < job.max_attempts and self._retryable(error)
        with self._lock:
            if job.phase != _BACKOFF:
                return  # removed by clear() meanwhile
            if retry:
                delay = backoff_delay(attempt, self._backoff_base, self._backoff_cap)
                # An injected sleep is called by the watchdog, so its timer is due at once.
                start = self._clock()
                self._add_timer_locked(
                    start + delay if self._sleep is time.sleep else start, job, delay
                )
                return
            self._backing_off -= 1
            result = self._record_locked(job, False, None, error, self._clock())
        _resolve(job.future, result)

    def _requeue_locked(self, job: _Job, attempt: int) -> None:
        """End ``job``'s back-off after ``attempt``, unless clear() removed it meanwhile."""
        if job.phase == _BACKOFF and job.attempt == attempt:
            self._backing_off -= 1
            job.phase = _QUEUED
            heapq.heappush(self._heap, (-job.task.priority, next(self._seq), job))
            self._wake_locked(1)

    # ------------------------------------------------------------------ the watchdog's timers

    def _add_timer_locked(self, when: float, job: _Job, backoff: float | None) -> None:
        if self._stale > 256 and 2 * self._stale > len(self._timers):
            self._compact_timers_locked()
        entry: _Timer = (when, next(self._seq), job, job.attempt, backoff)
        heapq.heappush(self._timers, entry)
        if self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watchdog_loop, name="concurrency-watchdog", daemon=True
            )
            self._watchdog.start()
        elif self._timers[0] is entry:
            self._watch.notify()

    @staticmethod
    def _live(entry: _Timer) -> bool:
        job, attempt, backoff = entry[2], entry[3], entry[4]
        return job.attempt == attempt and job.phase == (_RUNNING if backoff is None else _BACKOFF)

    def _compact_timers_locked(self) -> None:
        self._timers = [e for e in self._timers if self._live(e)]
        heapq.heapify(self._timers)
        self._stale = 0

    def _watchdog_loop(self) -> None:
        """Fire due timers: fail attempts past their deadline, re-queue tasks whose back-off ended.

        Sleeps until the earliest timer (or a new earlier one), never polls.
        """
        while True:
            expired: list[tuple[_Job, int]] = []
            sleeps: list[tuple[_Job, int, float]] = []
            with self._lock:
                while not (expired or sleeps):
                    if self._closed and not self._in_flight:
                        self._watchdog = None
                        return
                    timers = self._timers
                    now = self._clock()
                    while timers and timers[0][0] <= now:
                        entry = heapq.heappop(timers)
                        _, _, job, attempt, backoff = entry
                        if not self._live(entry):
                            self._stale = max(0, self._stale - 1)
                        elif backoff is None:  # the attempt timed out
                            job.phase = _BACKOFF
                            self._backing_off += 1
                            expired.append((job, attempt))
                        elif self._sleep is time.sleep:
                            self._requeue_locked(job, attempt)
                        else:
                            sleeps.append((job, attempt, backoff))
                    if not (expired or sleeps):
                        wait = timers[0][0] - now if timers else None
                        self._watch.wait(None if wait is None else min(wait, threading.TIMEOUT_MAX))
            for job, attempt in expired:
                error = TaskTimeoutError(
                    f"task {job.task.id!r}: attempt {attempt} hit its timeout of {job.timeout:g} s"
                )
                self._after_failure(job, attempt, error)
            for job, attempt, delay in sleeps:
                # A broken injected sleep must not stop the watchdog: the back-off just ends.
                with contextlib.suppress(Exception):
                    self._sleep(delay)
                with self._lock:
                    self._requeue_locked(job, attempt)


class ConcurrencyManager:
    """Runs :class:`Task` callables on at most ``max_concurrent`` worker threads at once.

    The limit is enforced in one place: at most ``max_concurrent`` worker threads ever exist and
    each runs one callable at a time. Waiting tasks start by priority (higher first), FIFO among
    equals. An attempt running past its timeout fails with :class:`~toolkit.errors.TaskTimeoutError`;
    Python cannot kill a thread, so the abandoned callable keeps its worker thread, and so counts
    against ``max_concurrent``, until it returns.

    A failed attempt is retried ``retries`` times (``retry_on(exc)`` may veto; it runs on the thread
    that saw the failure, a worker or for timeouts the watchdog, so keep it quick) after a back-off
    of :func:`toolkit.backoff.backoff_delay` (``backoff_base * 2**(n-1)``, at most ``backoff_cap``,
    no jitter) that holds no slot. With the default ``sleep=time.sleep``
    a back-off is a deadline on the heap of the single watchdog thread (which also fires timeouts
    and sleeps until the earliest deadline, measured with ``clock``), so any number of back-offs run
    at once and each task is re-queued as soon as its own back-off ends. An injected ``sleep`` is
    for tests: the watchdog calls ``sleep(delay)`` for each back-off, one at a time, then re-queues
    the task (a fake ``sleep`` that advances a fake ``clock`` makes back-offs instant and visible).
    ``clock`` measures durations and deadlines. Futures may be cancelled while their task is queued.

    Tasks that call a retrying client multiply retries: see :mod:`toolkit.backoff` for the bound.
    A manager that is never closed is closed (without waiting) when it is garbage-collected: its
    queued tasks still finish, then its threads end.
    """

    def __init__(
        self,
        max_concurrent: int = 5,
        retries: int = 2,
        timeout: float | None = 30.0,
        backoff_base: float = 0.1,
        retry_on: Callable[[BaseException], bool] | None = None,
        *,
        backoff_cap: float = DEFAULT_CAP,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = _Engine(
            max_concurrent,
            retries,
            timeout,
            backoff_base,
            retry_on,
            backoff_cap=backoff_cap,
            sleep=sleep,
            clock=clock,
        )
        # The engine's threads never reference the manager, so this runs once nobody else does.
        weakref.finalize(self, self._engine.close, False)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ConcurrencyManager:
        """A manager sized by ``Settings.concurrency_max_tasks`` / ``_retries`` / ``_timeout``."""
        kwargs: dict[str, Any] = {
            "max_concurrent": settings.concurrency_max_tasks,
            "retries": settings.concurrency_retries,
            "timeout": settings.concurrency_timeout,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def max_concurrent(self) -> int:
        """The most callables this manager ever runs at once."""
        return self._engine._max

    @property
    def peak_active(self) -> int:
        """The most callables that ran at once since construction or the last :meth:`reset`."""
        return self._engine.peak_active

    def enqueue(self, task: Task[T]) -> Future[TaskResult[T]]:
        """Queue ``task``; the future resolves (never raises) with its :class:`TaskResult`.

        Raises ValueError if a task with the same id is still queued, running or backing off.
        """
        return self._engine.enqueue(task)

    def enqueue_batch(self, tasks: Iterable[Task[T]]) -> list[TaskResult[T]]:
        """Run ``tasks`` and block until all finish; results come back in input order.

        All-or-nothing admission: a duplicate id (within ``tasks`` or in flight) raises ValueError
        before any task is queued. Do not call from inside a task of the same manager.
        """
        return self._engine.enqueue_batch(tasks)

    def get_result(self, task_id: str) -> TaskResult[Any] | None:
        """The recorded result of ``task_id``, or None if it has not finished (or was reset)."""
        return self._engine.get_result(task_id)

    def get_successful(self) -> list[TaskResult[Any]]:
        """Successful results in completion order."""
        return self._engine.get_successful()

    def get_failed(self) -> list[TaskResult[Any]]:
        """Failed results (including tasks removed by :meth:`clear`) in completion order."""
        return self._engine.get_failed()

    def get_stats(self) -> ConcurrencyStats:
        """A consistent snapshot of the counters."""
        return self._engine.get_stats()

    def wait_all(self, timeout: float | None = None) -> bool:
        """Block until no task is queued, running or backing off; False if ``timeout`` ran out.

        Abandoned (timed-out) callables still running are not waited for.
        """
        return self._engine.wait_all(timeout)

    def reset(self) -> None:
        """Forget recorded results and statistics; tasks in flight keep running and count anew."""
        self._engine.reset()

    def clear(self) -> int:
        """Remove tasks not running an attempt (queued or backing off); returns how many.

        Each removed task gets a failed result with a :class:`~concurrent.futures.CancelledError`,
        recorded and delivered to its future or batch, so no caller waits forever.
        """
        return self._engine.clear()

    def close(self, wait: bool = True, *, cancel_pending: bool = False) -> None:
        """Stop accepting tasks; with ``wait``, let queued tasks finish first.

        ``cancel_pending`` first calls :meth:`clear`. Worker threads are joined unless an abandoned
        timed-out callable is still running (they are daemon threads and exit when it returns).
        """
        self._engine.close(wait, cancel_pending=cancel_pending)

    def __enter__(self) -> ConcurrencyManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        stats = self.get_stats()
        return (
            f"ConcurrencyManager(max_concurrent={self.max_concurrent}, active={stats.active_tasks}, "
            f"queued={stats.queued_tasks}, total={stats.total_tasks})"
        )
