"""Tests for toolkit.batch: ordering, failures that are reported instead of dropped, in-flight limits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from toolkit.batch import BatchProcessor, chunked
from toolkit.errors import BatchError


def double_all(batch: list[int]) -> list[int]:
    """Module level so a ProcessPoolExecutor can pickle it."""
    return [item * 2 for item in batch]


def fail_on_thirteen(batch: list[int]) -> list[int]:
    """Module level so a ProcessPoolExecutor can pickle it."""
    if 13 in batch:
        raise ValueError("unlucky batch")
    return [item * 2 for item in batch]


class Tracker:
    """Counts handler calls running at once and the peak."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.calls: list[list[int]] = []
        self.barrier = barrier

    def __call__(self, batch: list[int]) -> list[int]:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.calls.append(batch)
        try:
            if self.barrier is not None:
                self.barrier.wait(timeout=10)
            return [item * 2 for item in batch]
        finally:
            with self.lock:
                self.running -= 1


def test_chunked_splits_with_short_tail() -> None:
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []


def test_chunked_is_lazy() -> None:
    consumed: list[int] = []

    def gen() -> Iterator[int]:
        for i in range(10):
            consumed.append(i)
            yield i

    chunks = chunked(gen(), 2)
    assert next(chunks) == [0, 1]
    assert consumed == [0, 1]


@pytest.mark.parametrize("size", [0, -1])
def test_chunked_rejects_bad_size_eagerly(size: int) -> None:
    with pytest.raises(ValueError):
        chunked([1, 2], size)


def test_process_batches_doubles_in_order_sequentially() -> None:
    items = list(range(100))
    threads: set[int] = set()

    def handler(batch: list[int]) -> list[int]:
        threads.add(threading.get_ident())
        return [item * 2 for item in batch]

    assert BatchProcessor.process_batches(items, 10, handler) == [i * 2 for i in items]
    assert threads == {threading.get_ident()}


def test_process_batches_accepts_generators_and_empty_input() -> None:
    assert BatchProcessor.process_batches((i for i in range(5)), 2, double_all) == [0, 2, 4, 6, 8]
    assert BatchProcessor.process_batches([], 3, double_all) == []


def test_process_batches_batch_sizes() -> None:
    seen: list[list[int]] = []

    def handler(batch: list[int]) -> list[int]:
        seen.append(batch)
        return batch

    BatchProcessor.process_batches(range(7), 3, handler)
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]


def test_process_batches_attempts_every_batch_then_raises() -> None:
    attempted: list[int] = []

    def handler(batch: list[int]) -> list[int]:
        attempted.append(batch[0])
        return fail_on_thirteen(batch)

    with pytest.raises(BatchError) as info:
        BatchProcessor.process_batches(range(30), 10, handler)
    assert attempted == [0, 10, 20]
    assert set(info.value.failed) == {1}
    assert isinstance(info.value.failed[1], ValueError)
    assert info.value.results == {0: [i * 2 for i in range(10)], 2: [i * 2 for i in range(20, 30)]}


@pytest.mark.parametrize("size", [0, -3])
def test_process_batches_rejects_bad_batch_size(size: int) -> None:
    with pytest.raises(ValueError):
        BatchProcessor.process_batches([1], size, double_all)


def test_parallel_batches_preserve_input_order() -> None:
    items = list(range(100))
    # Later batches finish first: batch k waits for batch k+1 to have started.
    started = [threading.Event() for _ in range(11)]
    started[10].set()

    def handler(batch: list[int]) -> list[int]:
        index = batch[0] // 10
        started[index].set()
        assert started[index + 1].wait(timeout=10)
        return [item * 2 for item in batch]

    result = BatchProcessor.process_parallel_batches(items, 10, 10, handler)
    assert result == [i * 2 for i in items]


def test_parallel_batches_never_exceed_concurrency() -> None:
    tracker = Tracker(threading.Barrier(2))
    result = BatchProcessor.process_parallel_batches(range(40), 2, 2, tracker)
    assert result == [i * 2 for i in range(40)]
    assert tracker.peak == 2
    assert len(tracker.calls) == 20


def test_parallel_batches_limit_holds_with_a_bigger_executor() -> None:
    tracker = Tracker(threading.Barrier(3))
    with ThreadPoolExecutor(max_workers=12) as pool:
        result = BatchProcessor.process_parallel_batches(range(60), 5, 3, tracker, executor=pool)
    assert result == [i * 2 for i in range(60)]
    assert tracker.peak == 3


def test_parallel_batches_consume_generators() -> None:
    result = BatchProcessor.process_parallel_batches((i for i in range(25)), 4, 3, double_all)
    assert result == [i * 2 for i in range(25)]


def test_parallel_batches_attempt_every_batch_then_raise() -> None:
    tracker = Tracker()

    def handler(batch: list[int]) -> list[int]:
        tracker(batch)
        return fail_on_thirteen(batch)

    with pytest.raises(BatchError) as info:
        BatchProcessor.process_parallel_batches(range(50), 5, 4, handler)
    assert sorted(batch[0] for batch in tracker.calls) == list(range(0, 50, 5))
    assert set(info.value.failed) == {2}
    assert str(info.value.failed[2]) == "unlucky batch"
    assert set(info.value.results) == set(range(10)) - {2}
    assert info.value.results[3] == [30, 32, 34, 36, 38]


def test_parallel_batches_propagate_a_broken_iterable() -> None:
    def gen() -> Iterator[int]:
        yield from range(6)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        BatchProcessor.process_parallel_batches(gen(), 2, 2, double_all)


@pytest.mark.parametrize(("size", "concurrency"), [(0, 1), (1, 0), (-1, 2), (2, -1)])
def test_parallel_batches_reject_bad_arguments(size: int, concurrency: int) -> None:
    with pytest.raises(ValueError):
        BatchProcessor.process_parallel_batches([1, 2], size, concurrency, double_all)


def test_parallel_batches_on_a_process_pool() -> None:
    with ProcessPoolExecutor(max_workers=2) as pool:
        assert BatchProcessor.process_parallel_batches(
            range(30), 4, 2, double_all, executor=pool
        ) == [i * 2 for i in range(30)]
        with pytest.raises(BatchError) as info:
            BatchProcessor.process_parallel_batches(
                range(30), 10, 3, fail_on_thirteen, executor=pool
            )
    assert set(info.value.failed) == {1}
    assert isinstance(info.value.failed[1], ValueError)
    assert info.value.results[2] == [i * 2 for i in range(20, 30)]


class Abort(BaseException):
    """Stands in for KeyboardInterrupt without interrupting pytest."""


def test_parallel_batches_stop_on_a_base_exception() -> None:
    attempted: list[int] = []

    def handler(batch: list[int]) -> list[int]:
        attempted.append(batch[0])
        if batch[0] == 4:
            raise Abort()
        return batch

    with pytest.raises(Abort):
        BatchProcessor.process_parallel_batches(range(20), 2, 1, handler)
    assert attempted == [0, 2, 4]
