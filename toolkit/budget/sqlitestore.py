"""The shared window in a SQLite file of the data directory: no server, every local process.

WAL lets readers (``status``) run beside a writer; every change is one ``BEGIN IMMEDIATE``
transaction, so two processes never read the same window and both take its last slot. A busy
file is waited on (``busy_timeout``), never reported as "database is locked".
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from toolkit.budget.window import WindowState
from toolkit.errors import BudgetError
from toolkit.sqlitewait import retry_while_locked

__all__ = ["BUDGET_FILE", "SQLiteWindowStorage"]

T = TypeVar("T")

#: The file under the data directory (``Settings.budget_path``).
BUDGET_FILE = "rate_budget.sqlite"
#: Completed requests are kept this long for the monitor's chart.
HISTORY_SECONDS = 3600.0
#: A process that has not published for this long is forgotten.
FORGET_SECONDS = 600.0
_BUSY_MS = 60_000
#: SQLite's own busy handler sleeps up to 100 ms between tries; transactions here last well under
#: a millisecond, so a taken lock is retried by :func:`_begin` every few hundred microseconds.
_SHORT_BUSY_MS = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (key TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS processes (
    key TEXT NOT NULL, owner TEXT NOT NULL, info TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (key, owner)
);
CREATE TABLE IF NOT EXISTS history (key TEXT NOT NULL, t REAL NOT NULL, owner TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_key_t ON history (key, t);
"""


class SQLiteWindowStorage:
    """Windows, processes and request history in the SQLite file ``path`` (WAL mode).

    One connection per instance, used by one thread at a time; ``clock`` (default wall time) is
    what every local process shares.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._clock = clock
        self._lock = threading.Lock()
        self._writes = 0
        self._con: sqlite3.Connection | None = None
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        """Open (and if new, create) the file: on first use, so a client that never sends a
        request never touches it. Raises BudgetError naming the file."""
        con: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(
                str(self.path), timeout=_BUSY_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            _retry(lambda: con.execute("PRAGMA journal_mode = WAL"))
            con.execute("PRAGMA synchronous = NORMAL")
            _retry(lambda: con.executescript(_SCHEMA))
            con.execute(f"PRAGMA busy_timeout = {_SHORT_BUSY_MS}")
        except (sqlite3.Error, OSError) as exc:
            if con is not None:
                con.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise BudgetError(
                f"the shared rate budget file {self.path} cannot be opened ({reason}); "
                "delete it, or set TOOLKIT_DATA_DIR to a writable directory"
            ) from None
        return con

    def _connection(self) -> sqlite3.Connection:
        """The open connection (opened on first use); call with ``_lock`` held."""
        if self._closed:
            raise BudgetError(f"the shared rate budget {self.path} is closed")
        if self._con is None:
            self._con = self._open()
        return self._con

    def clock(self) -> float:
        """Wall-clock seconds (shared by every process on this machine)."""
        return self._clock()

    def update(self, key: str, step: Callable[[WindowState], T]) -> T:
        """Run ``step`` on ``key``'s window inside one ``BEGIN IMMEDIATE`` transaction."""
        with self._lock:
            con = self._connection()
            try:
                _begin(con)
                try:
                    row = con.execute("SELECT state FROM windows WHERE key = ?", (key,)).fetchone()
                    state = WindowState.loads(row[0] if row else None)
                    result = step(state)
                    con.execute(
                        "INSERT INTO windows (key, state) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
                        (key, state.dumps()),
                    )
                    if state.events:
                        con.executemany(
                            "INSERT INTO history (key, t, owner) VALUES (?, ?, ?)",
                            [(key, t, owner) for t, owner in state.events],
                        )
                        self._writes += 1
                        if self._writes % 500 == 0:
                            con.execute(
                                "DELETE FROM history WHERE t < ?",
                                (self._clock() - HISTORY_SECONDS,),
                            )
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            return result

    def read(self, key: str) -> WindowState:
        """``key``'s window as stored."""
        row = self._query("SELECT state FROM windows WHERE key = ?", (key,))
        return WindowState.loads(row[0][0] if row else None)

    def hosts(self) -> list[str]:
        """Every API host with a window in the file."""
        return [str(r[0]) for r in self._query("SELECT key FROM windows ORDER BY key", ())]

    def publish(self, key: str, owner: str, info: dict[str, Any]) -> None:
        """Store process ``owner``'s ``info``; forget processes silent for ten minutes."""
        updated = float(info.get("updated", self._clock()))
        with self._lock:
            con = self._connection()
            try:
                _begin(con)
                con.execute(
                    "INSERT INTO processes (key, owner, info, updated) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (key, owner) DO UPDATE SET info = excluded.info, "
                    "updated = excluded.updated",
                    (key, owner, json.dumps(info), updated),
                )
                con.execute("DELETE FROM processes WHERE updated < ?", (updated - FORGET_SECONDS,))
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise self._error(exc) from None

    def withdraw(self, key: str, owner: str) -> None:
        """Forget process ``owner``."""
        with self._lock:
            con = self._connection()
            try:
                _begin(con)
                con.execute("DELETE FROM processes WHERE key = ? AND owner = ?", (key, owner))
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise self._error(exc) from None

    def processes(self, key: str) -> dict[str, dict[str, Any]]:
        """Every published process of ``key`` by owner."""
        rows = self._query("SELECT owner, info FROM processes WHERE key = ?", (key,))
        return {str(owner): json.loads(info) for owner, info in rows}

    def history(self, key: str, since: float) -> list[tuple[float, str]]:
        """Completed requests (time, owner) since ``since``, oldest first."""
        rows = self._query(
            "SELECT t, owner FROM history WHERE key = ? AND t >= ? ORDER BY t", (key, since)
        )
        return [(float(t), str(owner)) for t, owner in rows]

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            try:
                return self._connection().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def _error(self, exc: sqlite3.Error) -> BudgetError:
        return BudgetError(f"the shared rate budget file {self.path} failed: {exc}")

    def close(self) -> None:
        """Close the connection (idempotent and final)."""
        with self._lock:
            self._closed = True
            con, self._con = self._con, None
        if con is not None:
            con.close()

    def __repr__(self) -> str:
        return f"SQLiteWindowStorage({self.where!r})"


def _begin(con: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, retried every 0.1-0.5 ms while another process holds the lock."""
    retry_while_locked(lambda: con.execute("BEGIN IMMEDIATE"), _BUSY_MS / 1000)


def _retry(action: Callable[[], object]) -> None:
    """Run ``action``, again while the file is locked (for at most the busy timeout)."""
    retry_while_locked(action, _BUSY_MS / 1000)
