"""The built-in simulator as ``discogs-toolkit pull`` and the notebooks start it for the demo.

Used by the CLI (no token or API URL configured, or ``--simulator``) and by
:func:`toolkit.notebook.open_source`; the simulator itself lives in :mod:`toolkit.discogs.simulator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolkit.discogs.simdata import SimCatalogue
    from toolkit.discogs.simulator import DiscogsSimulator

__all__ = ["SIMULATOR_PORT", "start_simulator"]

#: The built-in simulator's preferred port: a stable URL lets a second run reuse the HTTP cache.
SIMULATOR_PORT = 47391


def start_simulator(
    rate_limit: int = 60,
    latency: float = 0.05,
    *,
    catalogue: SimCatalogue | None = None,
    port: int = SIMULATOR_PORT,
) -> DiscogsSimulator:
    """Start the built-in simulator on ``port`` (any free port if taken) and return it running.

    ``rate_limit`` applies with and without a token, so the client's limit is what the demo sets.
    """
    from toolkit.discogs.simulator import DiscogsSimulator

    options: dict[str, Any] = {
        "rate_limit": rate_limit,
        "rate_limit_unauthenticated": rate_limit,
        "latency": latency,
        "jitter": min(0.02, latency / 2),
    }
    try:
        return DiscogsSimulator(catalogue, port=port, **options).start()
    except OSError:
        return DiscogsSimulator(catalogue, port=0, **options).start()
