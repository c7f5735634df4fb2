"""Talking to Discogs: a deterministic catalogue and an HTTP simulator of the API for tests and benchmarks."""

from __future__ import annotations

from toolkit.discogs.catalogue import Catalogue, SimUser
from toolkit.discogs.client import ClientStats, DiscogsClient, RequestEvent
from toolkit.discogs.simulator import DiscogsSimulator, FaultPlan

__all__ = [
    "Catalogue",
    "ClientStats",
    "DiscogsClient",
    "DiscogsSimulator",
    "FaultPlan",
    "RequestEvent",
    "SimUser",
]
