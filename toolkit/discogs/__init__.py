"""Talking to Discogs: the client, the simulator of the API and its data (SimCatalogue)."""

from __future__ import annotations

from toolkit.discogs.client import ClientStats, DiscogsClient, RequestEvent
from toolkit.discogs.simdata import SimCatalogue, SimUser
from toolkit.discogs.simulator import DiscogsSimulator, FaultPlan

__all__ = [
    "ClientStats",
    "DiscogsClient",
    "DiscogsSimulator",
    "FaultPlan",
    "RequestEvent",
    "SimCatalogue",
    "SimUser",
]
