"""The one exponential back-off schedule (base, cap, jitter) of every retry loop in the toolkit.

``DiscogsClient`` retries a request inside one call and the ``ConcurrencyManager`` retries the
whole call, so their retries multiply. Per call of the manager's task (e.g. one release) that
fails every time with a 5xx, a connection failure or a malformed body, the server sees at most
``(client_retries + 1) * (manager_retries + 1)`` requests, and the back-off waits add up to at
most ``(manager_retries + 1) * total_backoff(client_retries, ...) + total_backoff(manager_retries,
...)`` seconds (:func:`nested_retry_bound` computes both). 429 answers are not failures: each
client call waits out at most ``2 * client_retries + 10`` of them, each wait capped by the
limiter's ``max_pause``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["DEFAULT_CAP", "RetryBound", "backoff_delay", "nested_retry_bound", "total_backoff"]

#: The longest single back-off unless a caller says otherwise, in seconds.
DEFAULT_CAP = 30.0
# 2.0 ** 1024 overflows; any exponent past this already exceeds every sensible cap.
_MAX_EXPONENT = 64


def backoff_delay(
    attempt: int,
    base: float,
    cap: float = DEFAULT_CAP,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``min(cap, base * 2**(attempt-1))``.

    The last ``jitter`` fraction of it is drawn uniformly (0.5: half fixed, half random), so a
    delay never exceeds the capped exponential and concurrent retries spread out.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if base < 0 or cap < 0:
        raise ValueError(f"base and cap must be >= 0 seconds, got {base!r} and {cap!r}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be between 0 and 1, got {jitter!r}")
    delay = min(cap, base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    if jitter == 0.0:
        return delay
    spread = delay * jitter
    return delay - spread + (rng or random).uniform(0.0, spread)


def total_backoff(retries: int, base: float, cap: float = DEFAULT_CAP) -> float:
    """The most seconds ``retries`` back-offs can add up to (jitter only shortens them)."""
    return sum(backoff_delay(n, base, cap) for n in range(1, retries + 1))


@dataclass(frozen=True, slots=True)
class RetryBound:
    """Worst case of an inner retry loop run inside an outer one: requests sent and back-off seconds."""

    attempts: int
    backoff_seconds: float


def nested_retry_bound(
    inner_retries: int,
    inner_base: float,
    inner_cap: float,
    outer_retries: int,
    outer_base: float,
    outer_cap: float,
) -> RetryBound:
    """The bound of the module docstring: inner = the client's retries, outer = the manager's."""
    calls = outer_retries + 1
    return RetryBound(
        attempts=(inner_retries + 1) * calls,
        backoff_seconds=calls * total_backoff(inner_retries, inner_base, inner_cap)
        + total_backoff(outer_retries, outer_base, outer_cap),
    )
