"""Tests for toolkit.backoff: the one back-off schedule, its cap and jitter, and the retry bound."""

from __future__ import annotations

import random

import pytest

from toolkit.backoff import (
    DEFAULT_CAP,
    RetryBound,
    backoff_delay,
    nested_retry_bound,
    total_backoff,
)


def test_schedule_doubles_then_stays_at_the_cap() -> None:
    assert [backoff_delay(n, 0.1) for n in range(1, 5)] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert [backoff_delay(n, 0.5, 1.5) for n in range(1, 6)] == [0.5, 1.0, 1.5, 1.5, 1.5]
    assert backoff_delay(10_000, 0.5) == DEFAULT_CAP  # no overflow, however many attempts
    assert backoff_delay(3, 0.0) == 0.0


def test_jitter_randomises_only_its_share_and_never_exceeds_the_delay() -> None:
    rng = random.Random(7)
    for attempt in range(1, 8):
        full = backoff_delay(attempt, 0.5, 4.0)
        for _ in range(50):
            delay = backoff_delay(attempt, 0.5, 4.0, jitter=0.5, rng=rng)
            assert full / 2 <= delay <= full
    spread = {backoff_delay(3, 1.0, jitter=1.0, rng=rng) for _ in range(20)}
    assert len(spread) > 1 and all(0.0 <= d <= 4.0 for d in spread)


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "jitter"),
    [(0, 0.1, 1.0, 0.0), (1, -0.1, 1.0, 0.0), (1, 0.1, -1.0, 0.0), (1, 0.1, 1.0, 1.5)],
)
def test_bad_arguments_raise(attempt: int, base: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(attempt, base, cap, jitter)


def test_total_and_nested_bound() -> None:
    assert total_backoff(0, 0.5) == 0.0
    assert total_backoff(4, 0.5, 1.5) == 0.5 + 1.0 + 1.5 + 1.5
    bound = nested_retry_bound(2, 0.5, 0.75, 3, 1.0, 1.5)
    assert bound == RetryBound(attempts=12, backoff_seconds=4 * (0.5 + 0.75) + (1.0 + 1.5 + 1.5))
