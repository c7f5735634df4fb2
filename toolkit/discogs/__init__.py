"""Talking to Discogs: the client, the simulator of the API and its data (SimCatalogue)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from toolkit.discogs.client import ClientStats, DiscogsClient, RequestEvent

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


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(f"toolkit.discogs.{_HOME[name]}"), name)
    raise AttributeError(f"module 'toolkit.discogs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "ClientStats",
    "DiscogsClient",
    "DiscogsSimulator",
    "FaultPlan",
    "RequestEvent",
    "SimCatalogue",
    "SimUser",
]
