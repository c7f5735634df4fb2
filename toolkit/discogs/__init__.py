"""Talking to Discogs: a deterministic catalogue and an HTTP simulator of the API for tests and benchmarks."""

from __future__ import annotations

from toolkit.discogs.catalogue import Catalogue, SimUser
from toolkit.discogs.simulator import DiscogsSimulator, FaultPlan

__all__ = [
    "Catalogue",
    "DiscogsSimulator",
    "FaultPlan",
    "SimUser",
]
