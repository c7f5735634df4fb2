"""Retrying the SQLite steps a busy timeout does not cover, for files several processes open."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["retry_while_locked"]

T = TypeVar("T")


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the file ("locked", "busy")."""
    text = str(exc)
    return "locked" in text or "busy" in text


def retry_while_locked(action: Callable[[], T], seconds: float) -> T:
    """Run ``action``, again every 0.1-0.5 ms while SQLite says the file is locked, for at most
    ``seconds``; other errors, and the lock error after that, are raised.

    Switching a file to WAL (or creating its tables) needs it to itself for an instant: processes
    opening one file together may find it taken even with a busy timeout.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.0001, 0.0005))
