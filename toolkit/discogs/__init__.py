"""Talking to Discogs: the client, the simulator of the API and its data (SimCatalogue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.discogs.client import ClientStats, DiscogsClient, RequestEvent
from toolkit.lazy import lazy_exports

if TYPE_CHECKING:
    from toolkit.discogs.simdata import SimCatalogue, SimUser
    from toolkit.discogs.simulator import DiscogsSimulator, FaultPlan

#: The simulator's names are imported on first use: a client never needs them.
_HOME = {
    "SimCatalogue": "simdata",
    "SimUser": "simdata",
    "DiscogsSimulator": "simulator",
    "FaultPlan": "simulator",
}


__all__ = [
    "ClientStats",
    "DiscogsClient",
    "DiscogsSimulator",
    "FaultPlan",
    "RequestEvent",
    "SimCatalogue",
    "SimUser",
]

__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
