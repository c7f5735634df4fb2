"""Split items into batches and run a handler over them, sequentially or a few batches at a time.

Port of the spec's BatchProcessor (section 3): results keep input order and no failed batch is dropped.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TypeVar

from toolkit.errors import BatchError

__all__ = ["BatchProcessor", "chunked"]

T = TypeVar("T")
R = TypeVar("R")


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def chunked(iterable: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of ``size`` consecutive items (the last may be shorter), consuming lazily."""
    _check_positive("size", size)
    return _chunks(iter(iterable), size)


def _chunks(iterator: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _flatten(results: dict[int, list[R]], count: int) -> list[R]:
    return [item for index in range(count) for item in results[index]]


class BatchProcessor:
    """Runs ``handler(batch) -> results`` over batches of items and returns the flattened results.

    Every batch is attempted; if any failed, :class:`~toolkit.errors.BatchError` is raised with
    ``failed`` (batch index -> exception) and ``results`` (batch index -> results) for the others.
    """

    @staticmethod
    def process_batches(
        items: Iterable[T],
        batch_size: int,
        handler: Callable[[list[T]], Iterable[R]],
    ) -> list[R]:
        """Run the batches one after another on the calling thread."""
        results: dict[int, list[R]] = {}
        failed: dict[int, BaseException] = {}
        count = 0
        for index, batch in enumerate(chunked(items, batch_size)):
            count += 1
            try:
                results[index] = list(handler(batch))
            except Exception as exc:
                failed[index] = exc
        if failed:
            raise BatchError(failed, results)
        return _flatten(results, count)

    @staticmethod
    def process_parallel_batches(
        items: Iterable[T],
        batch_size: int,
        concurrency: int,
        handler: Callable[[list[T]], Iterable[R]],
        executor: Executor | None = None,
    ) -> list[R]:
        """Run at most ``concurrency`` batches at once; results still come back in input order.

        With ``executor`` (any :class:`concurrent.futures.Executor`: threads, processes, a dask
        ``Client.get_executor()``) batches go through ``submit()`` / ``Future.result()`` only, and a
        larger executor still never sees more than ``concurrency`` batches in flight; the handler
        must then be picklable for process pools. Without one, a thread pool of ``concurrency``
        workers runs the handler. Items are consumed lazily, so generators work.
        """
        _check_positive("batch_size", batch_size)
        _check_positive("concurrency", concurrency)
        batches = enumerate(chunked(items, batch_size))
        feed_lock = threading.Lock()
        stop = threading.Event()  # set on an error that must end the whole call
        results: dict[int, list[R]] = {}
        failed: dict[int, BaseException] = {}
        fatal: list[BaseException] = []
        count = 0

        def drive() -> None:
            # Each driver keeps one batch in flight, so `concurrency` drivers bound the total
            # without relying on anything but submit() and result().
            nonlocal count
            while not stop.is_set():
                with feed_lock:
                    try:
                        index, batch = next(batches)
                    except StopIteration:
                        return
                    except BaseException as exc:  # the caller's iterable broke: re-raised below
                        fatal.append(exc)
                        stop.set()
                        return
                    count += 1
                try:
                    if executor is None:
                        outcome = list(handler(batch))
                    else:
                        outcome = list(executor.submit(handler, batch).result())
                except Exception as exc:
                    failed[index] = exc
                except BaseException as exc:  # KeyboardInterrupt and friends end the call
                    fatal.append(exc)
                    stop.set()
                    return
                else:
                    results[index] = outcome

        with ThreadPoolExecutor(concurrency, thread_name_prefix="batch-driver") as drivers:
            try:
                for future in [drivers.submit(drive) for _ in range(concurrency)]:
                    future.result()
            except BaseException:
                stop.set()  # e.g. Ctrl-C while waiting: finish in-flight batches, start no more
                raise
        if fatal:
            raise fatal[0]
        if failed:
            raise BatchError(failed, results)
        return _flatten(results, count)
