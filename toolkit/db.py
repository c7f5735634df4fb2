"""One connection to DuckDB or sqlite behind a single, thread-safe API.

Every engine error is translated here, once, into :class:`~toolkit.errors.DatabaseError` subclasses.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol, cast

import duckdb

from toolkit.errors import (
    DatabaseError,
    DatabaseLockedError,
    QueryError,
    ReadOnlyError,
    TransactionError,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from toolkit.indexes import IndexSuggestion

__all__ = ["SCAN", "Buildable", "Database", "Engine", "SqlLike", "engine_for"]

Engine = Literal["duckdb", "sqlite"]

_SQLITE_SUFFIXES = frozenset({".sqlite", ".sqlite3", ".db"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SQL_PREVIEW = 160
_TX_STATEMENT = re.compile(r"\s*(?:BEGIN|COMMIT|ROLLBACK|END|ABORT)\b", re.IGNORECASE)
#: The table name under which :meth:`Database.execute_with` statements read their data.
SCAN = "_tk_scan"


def _scan(conn: Any, sql: str, _tk_scan: Any) -> Any:
    """Execute ``sql`` on a DuckDB connection, whose replacement scan finds ``_tk_scan`` here.

    DuckDB looks a table name it does not know up among the locals of the calling frame: this
    one, whose only table-like local is the argument named :data:`SCAN`.
    """
    return conn.execute(sql)


class Buildable(Protocol):
    """Anything with ``build() -> (sql, params)``, such as :class:`toolkit.query.QueryBuilder`."""

    def build(self) -> tuple[str, Sequence[Any]]: ...


#: What ``execute``/``fetchall``/``df`` accept: SQL text, a BuiltQuery (a tuple) or a builder.
SqlLike = str | tuple[str, Sequence[Any]] | Buildable


def engine_for(target: str | PathLike[str], engine: Engine | None = None) -> Engine:
    """The engine a target opens with: explicit ``engine``, else by suffix (DuckDB by default)."""
    if engine is not None:
        if engine not in ("duckdb", "sqlite"):
            raise DatabaseError(f"unknown engine {engine!r}; expected 'duckdb' or 'sqlite'")
        return engine
    suffix = Path(target).suffix.lower() if str(target) != ":memory:" else ""
    return "sqlite" if suffix in _SQLITE_SUFFIXES else "duckdb"


def _preview(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= _SQL_PREVIEW else flat[: _SQL_PREVIEW - 1] + "…"


#: sqlite's primary result codes for "another connection holds the lock".
_SQLITE_LOCK_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
#: Messages that mean a lock conflict when an engine gives no code (sqlite's own wording for
#: SQLITE_BUSY / SQLITE_LOCKED, and DuckDB's for a file another process has open).
_LOCK_MESSAGES = (
    "database is locked",
    "database is busy",
    "database table is locked",
    "could not set lock on file",
    "conflicting lock",
)


def _is_locked(exc: BaseException) -> bool:
    """True only for a lock conflict: never because a name or value merely contains "busy"."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_LOCK_CODES  # extended codes keep the primary low byte
    elif isinstance(exc, duckdb.Error) and not isinstance(exc, duckdb.IOException):
        return False
    lowered = str(exc).lower()
    return any(message in lowered for message in _LOCK_MESSAGES)


def _is_read_only(exc: BaseException) -> bool:
    """True for a write refused because the database was opened read-only."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == sqlite3.SQLITE_READONLY
    return isinstance(exc, duckdb.InvalidInputException) and "read-only mode" in str(exc)


def _map_error(exc: BaseException, engine: Engine, sql: str | None = None) -> DatabaseError:
    """Translate one engine exception into the toolkit hierarchy, keeping the engine's message."""
    message = str(exc).strip() or type(exc).__name__
    locked = _is_locked(exc)
    if sql is not None:
        message = f"{message} (while running: {_preview(sql)})"
    if _is_read_only(exc):
        return ReadOnlyError(f"the database is open read-only: {message}")
    if sql is not None and _TX_STATEMENT.match(sql) and not locked:
        return TransactionError(message)
    if locked:
        return DatabaseLockedError(message)
    if engine == "sqlite":
        if type(exc) in (sqlite3.DatabaseError, sqlite3.Error):
            # "file is not a database", "database disk image is malformed": not the query's fault.
            return DatabaseError(message)
        return QueryError(message)
    if isinstance(exc, duckdb.IOException):
        return DatabaseError(message)
    if isinstance(exc, duckdb.TransactionException):
        return TransactionError(message)
    if isinstance(exc, duckdb.FatalException | duckdb.InternalException):
        return DatabaseError(message)
    return QueryError(message)


#: What a statement can raise: the engines' errors, plus what the drivers raise while binding
#: or converting values (sqlite3: OverflowError for ints beyond 64 bits, UnicodeEncodeError for
#: lone surrogates, ValueError from a declared-type converter). All become QueryError.
_ENGINE_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.Error,
    duckdb.Error,
    OverflowError,
    ValueError,
)


def _sqlite_lower(value: Any) -> Any:
    """Unicode-aware ``lower()`` for sqlite (its built-in folds ASCII only; DuckDB's is Unicode)."""
    if type(value) is str:
        return value.lower()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").lower()
    return None if value is None else str(value).lower()


def _sqlite_bool(raw: bytes) -> Any:
    """Converter for columns declared BOOLEAN/BOOL: sqlite stores 1/0, read back as True/False."""
    try:
        return float(raw) != 0
    except ValueError:
        return raw.decode("utf-8", "replace")


def _is_data_frame(data: object) -> bool:
    """True for a pandas DataFrame, without importing pandas (none exists unless it is loaded)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def _prepare_sqlite(conn: sqlite3.Connection) -> None:
    """Per-connection functions: sqlite's LOWER made Unicode-aware, like DuckDB's."""
    conn.create_function("lower", 1, _sqlite_lower, deterministic=True)
    for name in ("BOOLEAN", "BOOL"):
        # The converter registry is sqlite3's, process-wide: only fill it, never replace one.
        if name not in sqlite3.converters:
            sqlite3.register_converter(name, _sqlite_bool)


class Database:
    """A DuckDB or sqlite connection with one API; safe to share between threads.

    A re-entrant lock serialises every call, and a transaction holds it until it ends, so
    statements from another thread never land inside someone else's transaction.
    """

    def __init__(
        self, connection: Any, engine: Engine, path: Path | None, *, read_only: bool = False
    ) -> None:
        """Wrap an open connection; prefer :meth:`connect`."""
        self._conn = connection
        self.read_only = read_only
        self.engine: Engine = engine
        self.path: Path | None = path
        self._lock = threading.RLock()
        self._depth = 0
        #: DuckDB's python_enable_replacements as read in the open transaction (None: not yet),
        #: for execute_with: read once per transaction, not once per statement.
        self._replacements: bool | None = None
        self._rollback_only = False
        self._rollback_reason = ""
        self._closed = False
        # IMMEDIATE takes sqlite's write lock up front, so a busy file fails at BEGIN, not mid-way.
        self._begin_sql = (
            "BEGIN IMMEDIATE" if engine == "sqlite" and not read_only else "BEGIN TRANSACTION"
        )

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    def connect(
        cls,
        target: str | PathLike[str] = ":memory:",
        *,
        engine: Engine | None = None,
        timeout: float = 5.0,
        read_only: bool = False,
    ) -> Database:
        """Open ``target``: ``*.duckdb`` (and ``:memory:``) with DuckDB, ``*.sqlite``/``*.db`` with sqlite.

        ``engine`` overrides the suffix. Parent directories of a file are created. A file locked by
        another process raises :class:`DatabaseLockedError` (sqlite waits ``timeout`` seconds first);
        a file that is not a database raises :class:`DatabaseError`.
        """
        chosen = engine_for(target, engine)
        memory = str(target) == ":memory:"
        path = None if memory else Path(target).expanduser()
        if path is not None and not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(f"cannot create directory {path.parent}: {exc}") from exc
        if chosen == "duckdb":
            try:
                conn: Any = duckdb.connect(
                    ":memory:" if path is None else str(path), read_only=read_only
                )
            except duckdb.Error as exc:
                raise cls._open_error(exc, chosen, path) from exc
            return cls(conn, chosen, path, read_only=read_only)
        options: dict[str, Any] = {
            "isolation_level": None,
            "check_same_thread": False,
            "timeout": timeout,
            # Declared types pick converters: BOOLEAN columns read back as bools, as on DuckDB.
            "detect_types": sqlite3.PARSE_DECLTYPES,
        }
        try:
            if path is None:
                conn = sqlite3.connect(":memory:", **options)
            elif read_only:
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, **options)
            else:
                conn = sqlite3.connect(str(path), **options)
        except sqlite3.Error as exc:
            raise cls._open_error(exc, chosen, path) from exc
        try:
            _prepare_sqlite(conn)
            # sqlite opens lazily: touch the file now so a non-database fails here, clearly.
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            if path is not None and not read_only:
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
        except BaseException as exc:
            conn.close()  # the probe failed: never leave the file open behind an error
            if isinstance(exc, sqlite3.Error):
                raise cls._open_error(exc, chosen, path) from exc
            raise
        return cls(conn, chosen, path, read_only=read_only)

    @staticmethod
    def _open_error(exc: BaseException, engine: Engine, path: Path | None) -> DatabaseError:
        mapped = _map_error(exc, engine)
        where = str(path) if path is not None else ":memory:"
        if isinstance(mapped, DatabaseLockedError):
            return DatabaseLockedError(
                f"{where} is locked by another process (close it there, or wait): {exc}"
            )
        return DatabaseError(f"cannot open {where} as a {engine} database: {exc}")

    def close(self) -> None:
        """Close the connection (idempotent); an open transaction is rolled back."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.close()
            except _ENGINE_ERRORS as exc:
                raise _map_error(exc, self.engine) from exc

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else ":memory:"
        state = "closed" if self._closed else "open"
        return f"Database(engine={self.engine!r}, path={where!r}, {state})"

    @property
    def lock(self) -> threading.RLock:
        """The re-entrant lock guarding the connection (hold it to run several calls together)."""
        return self._lock

    # ------------------------------------------------------------------ running SQL

    @staticmethod
    def _resolve(query: SqlLike, params: Sequence[Any]) -> tuple[str, Sequence[Any]]:
        if isinstance(query, str):
            return query, params
        if isinstance(query, tuple):
            sql, built_params = query
        elif hasattr(query, "build"):
            sql, built_params = query.build()
        else:
            raise QueryError(f"expected SQL text, a BuiltQuery or a QueryBuilder, got {query!r}")
        if params:
            raise QueryError("pass params either inside the built query or separately, not both")
        return sql, built_params

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseError("the database is closed")

    def _check_usable(self) -> None:
        """Open, and not inside a transaction that can only roll back (caller holds the lock)."""
        self._check_open()
        if self._rollback_only and self._depth > 0:
            raise TransactionError(
                f"the transaction can only roll back ({self._rollback_reason}): no further "
                "statement runs in it, and it is rolled back when the outermost block ends"
            )

    def _mark_rollback_only(self, reason: str) -> None:
        if self._depth > 0 and not self._rollback_only:
            self._rollback_only = True
            self._rollback_reason = reason

    def _error(self, exc: BaseException, sql: str | None = None) -> DatabaseError:
        """Map an engine error; inside a transaction, also make that transaction rollback-only.

        DuckDB aborts a transaction on any failed statement while sqlite carries on; marking it
        here gives both engines DuckDB's rule, so a caught error never commits half of the work.
        """
        mapped = _map_error(exc, self.engine, sql)
        self._mark_rollback_only(f"a statement failed inside it: {mapped}")
        return mapped

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        """Execute under the lock (caller holds it) and return the engine's cursor/result."""
        self._check_usable()
        if isinstance(params, Mapping):
            raise QueryError("params must be a sequence matching the '?' placeholders")
        try:
            return self._conn.execute(sql, list(params)) if params else self._conn.execute(sql)
        except _ENGINE_ERRORS as exc:
            raise self._error(exc, sql) from exc

    def execute(self, query: SqlLike, params: Sequence[Any] = ()) -> None:
        """Run one statement for its effect."""
        sql, values = self._resolve(query, params)
        with self._lock:
            self._run(sql, values)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row.

        On sqlite this is the set-wise path: one prepared statement stepped in C for every row,
        without a Python round trip per row (hundreds of thousands of rows/s). DuckDB's
        ``executemany`` is row by row (under 2,000 rows/s): give it frames via :meth:`temp_table`.
        """
        with self._lock:
            self._check_usable()
            try:
                self._conn.executemany(sql, rows if self.engine == "sqlite" else list(rows))
            except _ENGINE_ERRORS as exc:
                raise self._error(exc, sql) from exc

    def fetchall(self, query: SqlLike, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query and return every row as a tuple."""
        sql, values = self._resolve(query, params)
        with self._lock:
            cursor = self._run(sql, values)
            try:
                return [tuple(row) for row in cursor.fetchall()]
            except _ENGINE_ERRORS as exc:
                raise self._error(exc, sql) from exc

    def fetchone(self, query: SqlLike, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run a query and return its first row, or None."""
        sql, values = self._resolve(query, params)
        with self._lock:
            cursor = self._run(sql, values)
            try:
                row = cursor.fetchone()
            except _ENGINE_ERRORS as exc:
                raise self._error(exc, sql) from exc
            return None if row is None else tuple(row)

    def scalar(self, query: SqlLike, params: Sequence[Any] = ()) -> Any:
        """Run a query and return the first column of its first row (None when no row)."""
        row = self.fetchone(query, params)
        return None if row is None else row[0]

    def df(self, query: SqlLike, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a query and return the result as a pandas DataFrame, with the same dtypes on both engines.

        Column dtypes follow one rule on both engines (sqlite knows a value's type, not the
        column's, so the rule is by value):

        - integers: ``Int64`` (nullable; NULL is ``pd.NA``), whatever their width or NULLs;
        - floating point: ``float64`` (NULL is NaN);
        - booleans: ``boolean`` (nullable): DuckDB BOOLEAN, and sqlite columns *declared*
          BOOLEAN/BOOL (sqlite stores 1/0; an expression such as ``NOT flag`` stays an integer);
        - text: pandas' default string dtype (``str`` on pandas 3; NULL is NaN);
        - timestamps and dates: ``datetime64[us]`` (NULL is NaT);
        - a column with no non-NULL value, so every column of an empty result: ``object``;
        - anything else (blobs, decimals on sqlite, lists, mixed sqlite columns): ``object``.
        """
        sql, values = self._resolve(query, params)
        with self._lock:
            cursor = self._run(sql, values)
            try:
                if self.engine == "duckdb":
                    description = cursor.description or ()
                    raw: pd.DataFrame = cursor.df()
                else:
                    names = [d[0] for d in cursor.description or ()]
                    rows = cursor.fetchall()
            except _ENGINE_ERRORS as exc:
                raise self._error(exc, sql) from exc
        from toolkit.frames import duckdb_frame, sqlite_frame  # pandas only when a frame is asked

        if self.engine == "duckdb":
            return duckdb_frame(raw, description)
        return sqlite_frame(names, rows)

    def table_exists(self, name: str) -> bool:
        """True when a table or view of that name exists in the main schema (of this database
        file: never an attached one's, such as the catalogue's)."""
        if self.engine == "sqlite":
            sql = "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?"
        else:
            sql = (
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ? "
                "AND table_schema = 'main' AND table_catalog = current_database()"
            )
        return bool(self.scalar(sql, [name]))

    def explain(self, query: SqlLike, params: Sequence[Any] = ()) -> list[str]:
        """The query plan as text lines (sqlite's EXPLAIN QUERY PLAN, DuckDB's plan tree)."""
        from toolkit.indexes import explain

        sql, values = self._resolve(query, params)
        return explain(self, sql, values)

    def suggest_indexes(self, query: SqlLike, params: Sequence[Any] = ()) -> list[IndexSuggestion]:
        """Indexes that would serve ``query`` (see :mod:`toolkit.indexes`); creates nothing.

        sqlite: one per full scan or temporary sort an index would remove. DuckDB: only for a
        selective equality filter on a large table (:data:`toolkit.indexes.DUCKDB_NOTE` says why).
        """
        from toolkit.indexes import suggest_indexes

        sql, values = self._resolve(query, params)
        return suggest_indexes(self, sql, values)

    # ------------------------------------------------------------------ transactions

    @property
    def in_transaction(self) -> bool:
        """True inside :meth:`transaction` (on any thread: the lock makes that thread the owner)."""
        return self._depth > 0

    def _tx(self, statement: str) -> None:
        self._check_open()
        try:
            self._conn.execute(statement)
        except _ENGINE_ERRORS as exc:
            mapped = _map_error(exc, self.engine)
            if not isinstance(mapped, DatabaseLockedError):
                mapped = TransactionError(f"{statement} failed: {exc}")
            raise mapped from exc

    def _rollback_quietly(self) -> None:
        with suppress(*_ENGINE_ERRORS):
            self._conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block atomically: commit at the end, roll back and re-raise on any exception.

        Nested blocks join the outermost transaction (DuckDB has no savepoints, so both engines
        behave alike). The transaction becomes *rollback-only* when an exception escapes a
        nested block or when any statement in it fails (even if the error is caught): from then
        on every statement in it raises :class:`TransactionError` at once, and the outermost
        block, if it ends without an exception, rolls back and raises :class:`TransactionError`
        rather than commit half of the work. (DuckDB itself aborts a transaction on a failed
        statement; sqlite would carry on. This rule makes both behave the same.)
        """
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._replacements = None  # the setting may have changed between transactions
                try:
                    self._tx(self._begin_sql)
                except BaseException:
                    # Ctrl-C can land after BEGIN took effect but before it returned: never leave
                    # a transaction open that no block owns (ROLLBACK is harmless when none is).
                    self._rollback_quietly()
                    raise
                self._rollback_only = False
                self._rollback_reason = ""
            self._depth += 1
            try:
                yield
            except BaseException as exc:
                if not outer:
                    self._mark_rollback_only(
                        f"a nested transaction block failed: {type(exc).__name__}: {exc}"
                    )
                self._depth -= 1
                if outer:
                    self._rollback_quietly()
                raise
            self._depth -= 1
            if not outer:
                return
            if self._rollback_only:
                self._rollback_quietly()
                raise TransactionError(
                    f"the whole transaction was rolled back because {self._rollback_reason}"
                )
            try:
                self._tx("COMMIT")
            except DatabaseError:
                self._rollback_quietly()
                raise

    def _fail(self, message: str) -> NoReturn:
        raise QueryError(message)

    # ------------------------------------------------------------------ frames as tables

    @contextmanager
    def temp_table(
        self,
        name: str,
        data: pa.Table | pd.DataFrame | Mapping[str, Sequence[Any]],
    ) -> Iterator[None]:
        """Make ``data`` queryable as table ``name`` for the duration of the block (set-wise SQL).

        DuckDB registers the Arrow table / DataFrame (zero-copy); sqlite copies the rows into a
        TEMP table with ``executemany``. Plain ``{column: values}`` dicts work on both (DuckDB
        converts them to Arrow, so give typed Arrow tables when a column may be all NULL).
        """
        if not _NAME.fullmatch(name):
            self._fail(f"invalid temporary table name {name!r}")
        with self._lock:
            self._check_usable()
            if self.engine == "duckdb":
                yield from self._duckdb_temp(name, data)
            else:
                yield from self._sqlite_temp(name, data)

    def execute_with(self, sql: str, data: pa.Table | Mapping[str, Sequence[Any]]) -> None:
        """Run one statement in which the table :data:`SCAN` reads ``data``.

        On DuckDB an Arrow ``data`` is read by a replacement scan (DuckDB finds the Python
        variable named in the SQL): about half the cost of registering and unregistering it,
        which adds up in the pull's sixteen-statement writes. A connection with
        ``python_enable_replacements`` off, and sqlite, get :meth:`temp_table`. The setting is
        read first (once per transaction), not tried: inside a transaction a failed statement
        would abort it.
        """
        if self.engine == "duckdb" and not isinstance(data, Mapping):
            with self._lock:
                self._check_usable()
                try:
                    replacements = self._replacements
                    if replacements is None:
                        [(setting,)] = self._conn.execute(
                            "SELECT current_setting('python_enable_replacements')"
                        ).fetchall()
                        replacements = setting in (True, "true")
                        if self._depth:  # kept for the rest of this transaction only
                            self._replacements = replacements
                    if replacements:
                        _scan(self._conn, sql, data)
                        return
                except _ENGINE_ERRORS as exc:
                    raise self._error(exc, sql) from exc
        with self.temp_table(SCAN, data):
            self.execute(sql)

    def _duckdb_temp(
        self, name: str, data: pa.Table | pd.DataFrame | Mapping[str, Sequence[Any]]
    ) -> Iterator[None]:
        if isinstance(data, Mapping):
            import pyarrow as pa

            data = pa.table({key: list(values) for key, values in data.items()})
        try:
            self._conn.register(name, data)
        except _ENGINE_ERRORS as exc:
            raise self._error(exc) from exc
        try:
            yield
        finally:
            with suppress(*_ENGINE_ERRORS):
                self._conn.unregister(name)

    def _sqlite_temp(
        self, name: str, data: pa.Table | pd.DataFrame | Mapping[str, Sequence[Any]]
    ) -> Iterator[None]:
        columns: list[str]
        if isinstance(data, Mapping):
            columns = list(data)
            rows: Iterable[Sequence[Any]] = zip(*data.values(), strict=True)
        elif _is_data_frame(data):
            frame = cast("pd.DataFrame", data)
            columns = [str(c) for c in frame.columns]
            rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False)
        else:
            table = cast("pa.Table", data)
            columns = list(table.column_names)
            rows = zip(*(col.to_pylist() for col in table.columns), strict=True)
        for column in columns:
            if not _NAME.fullmatch(column):
                self._fail(f"invalid column name {column!r} in temporary table {name}")
        column_list = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        self._run(f"DROP TABLE IF EXISTS temp.{name}", ())
        self._run(f"CREATE TEMP TABLE {name} ({column_list})", ())
        try:
            self.executemany(f"INSERT INTO temp.{name} VALUES ({marks})", rows)
            yield
        finally:
            with suppress(*_ENGINE_ERRORS):
                self._conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
