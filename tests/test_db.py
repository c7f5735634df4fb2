"""Tests of toolkit.db.Database on real DuckDB and sqlite files: engines, error mapping, threads."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from toolkit.db import SCAN, Database, engine_for
from toolkit.errors import (
    DatabaseError,
    DatabaseLockedError,
    QueryError,
    ReadOnlyError,
    ToolkitError,
    TransactionError,
)
from toolkit.indexes import IndexSuggestion
from toolkit.query import BuiltQuery, QueryBuilder

ENGINES = ("duckdb", "sqlite")
SUFFIX = {"duckdb": ".duckdb", "sqlite": ".sqlite"}


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = Database.connect(tmp_path / f"test{SUFFIX[request.param]}")
    database.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR, status VARCHAR)")
    database.execute(
        "INSERT INTO users VALUES (1, 'ann', 'active'), (2, 'bob', 'idle'), (3, 'cy', 'active')"
    )
    yield database
    database.close()


# ------------------------------------------------------------------------ opening


@pytest.mark.parametrize(
    ("name", "engine"),
    [
        ("a.duckdb", "duckdb"),
        ("a.sqlite", "sqlite"),
        ("a.db", "sqlite"),
        ("a.SQLITE3", "sqlite"),
        (":memory:", "duckdb"),
    ],
)
def test_engine_is_chosen_by_suffix(name: str, engine: str) -> None:
    assert engine_for(name) == engine


def test_connect_file_targets_create_parent_directories(tmp_path: Path) -> None:
    for engine, suffix in SUFFIX.items():
        target = tmp_path / "deep" / "er" / f"x{suffix}"
        with Database.connect(target) as database:
            assert database.engine == engine
            assert database.path == target
            database.execute("CREATE TABLE t (x INTEGER)")
        assert target.is_file()


def test_memory_defaults_to_duckdb_and_engine_overrides() -> None:
    with Database.connect() as duck, Database.connect(":memory:", engine="sqlite") as lite:
        assert (duck.engine, duck.path) == ("duckdb", None)
        assert (lite.engine, lite.path) == ("sqlite", None)
        assert duck.scalar("SELECT 41 + 1") == lite.scalar("SELECT 41 + 1") == 42


def test_unknown_engine_is_rejected() -> None:
    with pytest.raises(DatabaseError, match="unknown engine"):
        Database.connect(":memory:", engine="postgres")  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_file_that_is_not_a_database_raises_database_error(tmp_path: Path, engine: str) -> None:
    target = tmp_path / f"notes{SUFFIX[engine]}"
    target.write_bytes(b"these are my record-shopping notes, not a database\n" * 200)
    with pytest.raises(DatabaseError) as info:
        Database.connect(target)
    assert not isinstance(info.value, QueryError)
    assert str(target) in str(info.value)
    assert "database" in str(info.value).lower()


def test_sqlite_file_locked_by_another_connection_raises_locked(tmp_path: Path) -> None:
    target = tmp_path / "locked.sqlite"
    Database.connect(target).close()
    holder = sqlite3.connect(target, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseLockedError, match="locked"):
            Database.connect(target, timeout=0.05)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_sqlite_write_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    target = tmp_path / "busy.sqlite"
    with Database.connect(target, timeout=0.05) as database:
        database.execute("CREATE TABLE t (x INTEGER)")
        holder = sqlite3.connect(target, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(DatabaseLockedError):
                database.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(DatabaseLockedError), database.transaction():
                pass
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        database.execute("INSERT INTO t VALUES (1)")
        assert database.scalar("SELECT count(*) FROM t") == 1


def test_duckdb_file_locked_by_another_process_raises_locked(tmp_path: Path) -> None:
    target = tmp_path / "locked.duckdb"
    Database.connect(target).close()
    script = textwrap.dedent(
        f"""
        import sys, duckdb
        con = duckdb.connect({str(target)!r})
        print("ready", flush=True)
        sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseLockedError, match="locked"):
            Database.connect(target)
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()


# ------------------------------------------------------------------------ running SQL


def test_execute_fetchall_fetchone_scalar(db: Database) -> None:
    assert db.fetchall("SELECT id, name FROM users WHERE status = ? ORDER BY id", ["active"]) == [
        (1, "ann"),
        (3, "cy"),
    ]
    assert db.fetchone("SELECT name FROM users WHERE id = ?", [2]) == ("bob",)
    assert db.fetchone("SELECT name FROM users WHERE id = ?", [99]) is None
    assert db.scalar("SELECT count(*) FROM users") == 3


def test_df_returns_a_dataframe(db: Database) -> None:
    frame = db.df("SELECT id, name FROM users ORDER BY id")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "name"]
    assert frame["name"].tolist() == ["ann", "bob", "cy"]


def test_query_builder_and_built_query_are_accepted(db: Database) -> None:
    query = QueryBuilder().select(["name"]).from_("users").where("id = ?", [3])
    assert db.fetchall(query) == [("cy",)]
    assert db.fetchall(query.build()) == [("cy",)]
    assert db.df(query)["name"].tolist() == ["cy"]
    db.execute(BuiltQuery("DELETE FROM users WHERE id = ?", [3]))
    assert db.scalar("SELECT count(*) FROM users") == 2
    with pytest.raises(QueryError, match="not both"):
        db.fetchall(query, [1])


def test_executemany(db: Database) -> None:
    db.executemany("INSERT INTO users VALUES (?, ?, ?)", [(10, "x", "a"), (11, "y", "b")])
    assert db.scalar("SELECT count(*) FROM users WHERE id >= 10") == 2


@pytest.mark.parametrize(
    ("sql", "params", "fragment"),
    [
        ("SELEC * FROM users", [], "SELEC"),
        ("SELECT * FROM no_such_table", [], "no_such_table"),
        ("SELECT * FROM users WHERE id = ?", [], "users"),
        ("SELECT * FROM users WHERE id = ?", [1, 2], "users"),
        ("INSERT INTO users VALUES (1, 'dup', 'x')", [], "users"),
    ],
)
def test_engine_errors_become_query_errors_with_the_engine_message(
    db: Database, sql: str, params: list[object], fragment: str
) -> None:
    with pytest.raises(QueryError) as info:
        db.execute(sql, params)
    assert isinstance(info.value, DatabaseError) and isinstance(info.value, ToolkitError)
    assert fragment in str(info.value)
    assert info.value.__cause__ is not None  # the engine's exception is kept as the cause


def test_table_exists_sees_this_database_only(db: Database, tmp_path: Path) -> None:
    """A table of an attached database (the catalogue is one) is not this database's table."""
    db.execute("CREATE TABLE mine (x INTEGER)")
    other = tmp_path / f"other.{'duckdb' if db.engine == 'duckdb' else 'sqlite'}"
    with Database.connect(other) as attached:
        attached.execute("CREATE TABLE theirs (x INTEGER)")
    db.execute(f"ATTACH '{other}' AS other")
    assert db.scalar("SELECT count(*) FROM other.theirs") == 0  # attached, and readable
    assert db.table_exists("mine") and not db.table_exists("theirs")


def test_mapping_params_are_rejected(db: Database) -> None:
    with pytest.raises(QueryError, match="sequence"):
        db.fetchall("SELECT * FROM users WHERE id = ?", {"id": 1})  # type: ignore[arg-type]


def test_closed_database_raises_and_close_is_idempotent(db: Database) -> None:
    db.close()
    db.close()
    assert db.closed
    with pytest.raises(DatabaseError, match="closed"):
        db.fetchall("SELECT 1")


def test_context_manager_closes(tmp_path: Path) -> None:
    with Database.connect(tmp_path / "c.sqlite") as database:
        assert not database.closed
    assert database.closed


def test_commit_failure_is_a_transaction_error(db: Database) -> None:
    with pytest.raises(TransactionError):
        db.execute("COMMIT")  # nothing to commit: the engine says so


# ------------------------------------------------------------------------ temp tables


@pytest.mark.parametrize(
    "data",
    [
        pa.table({"id": pa.array([1, 3], pa.int64())}),
        pd.DataFrame({"id": [1, 3]}),
        {"id": [1, 3]},
    ],
    ids=["arrow", "pandas", "dict"],
)
def test_temp_table_makes_a_frame_queryable(db: Database, data: object) -> None:
    with db.temp_table("_picked", data):
        rows = db.fetchall(
            "SELECT name FROM users WHERE id IN (SELECT id FROM _picked) ORDER BY name"
        )
    assert rows == [("ann",), ("cy",)]
    with pytest.raises(QueryError):
        db.fetchall("SELECT * FROM _picked")


@pytest.mark.parametrize("replacements", [True, False], ids=["scan", "registered"])
def test_execute_with_reads_the_data_as_the_scan_table(db: Database, replacements: bool) -> None:
    """One statement reads an Arrow table as ``SCAN``: by replacement scan on DuckDB, registered
    when the connection has replacement scans off, and as a temp table on sqlite."""
    db.execute("CREATE TABLE picked (id INTEGER, name VARCHAR)")
    if db.engine == "duckdb" and not replacements:
        with db.transaction():  # the setting read in a transaction: on
            db.execute_with(f"SELECT * FROM {SCAN}", pa.table({"id": [1]}))
        db.execute("SET python_enable_replacements = false")  # read again by the next transaction
    data = pa.table({"id": pa.array([1, 3], pa.int64())})
    with db.transaction():  # as the loader uses it: no failed attempt may abort the transaction
        db.execute_with(
            f"INSERT INTO picked SELECT u.id, u.name FROM users u JOIN {SCAN} s ON s.id = u.id",
            data,
        )
        db.execute("INSERT INTO picked VALUES (9, 'zed')")
    assert db.fetchall("SELECT id, name FROM picked ORDER BY id") == [
        (1, "ann"), (3, "cy"), (9, "zed"),
    ]  # fmt: skip
    with pytest.raises(QueryError):  # only the statement sees it
        db.fetchall(f"SELECT * FROM {SCAN}")


def test_execute_with_names_another_missing_table(db: Database) -> None:
    with pytest.raises(QueryError, match="no_such_table"), db.transaction():
        db.execute_with(
            f"SELECT * FROM {SCAN} JOIN no_such_table USING (id)",
            pa.table({"id": pa.array([1], pa.int64())}),
        )


def test_temp_table_rejects_bad_names(db: Database) -> None:
    with pytest.raises(QueryError), db.temp_table("x; DROP TABLE users", {"a": [1]}):
        pass
    assert db.scalar("SELECT count(*) FROM users") == 3


# ------------------------------------------------------------------------ threads


def test_one_database_shared_by_threads(db: Database) -> None:
    db.execute("CREATE TABLE hits (thread INTEGER, n INTEGER)")

    def work(thread: int) -> None:
        for n in range(25):
            with db.transaction():
                db.execute("INSERT INTO hits VALUES (?, ?)", [thread, n])
                db.execute("INSERT INTO hits VALUES (?, ?)", [thread, -n])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert db.fetchall("SELECT thread, count(*) FROM hits GROUP BY thread ORDER BY thread") == [
        (t, 50) for t in range(4)
    ]


def test_another_threads_statement_never_joins_an_open_transaction(db: Database) -> None:
    db.execute("CREATE TABLE log (who VARCHAR)")
    inside = threading.Event()
    release = threading.Event()
    other_done = threading.Event()

    def owner() -> None:
        try:
            with db.transaction():
                db.execute("INSERT INTO log VALUES ('owner')")
                inside.set()
                release.wait(timeout=30)
                raise RuntimeError("roll back the owner's work")
        except RuntimeError:
            pass

    def other() -> None:
        inside.wait(timeout=30)
        db.execute("INSERT INTO log VALUES ('other')")
        other_done.set()

    threads = [threading.Thread(target=owner), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    assert inside.wait(timeout=30)
    # The other thread must wait for the transaction to end, not write into it.
    assert not other_done.wait(timeout=0.3)
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert db.fetchall("SELECT who FROM log") == [("other",)]


# ------------------------------------------------------------------------ lock errors, precisely


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT busy FROM users",
        'SELECT * FROM "database is locked"',
        "SELECT name FROM users WHERE status = busy",
    ],
)
def test_an_error_that_merely_mentions_busy_or_locked_is_a_query_error(
    db: Database, sql: str
) -> None:
    with pytest.raises(QueryError) as info:
        db.fetchall(sql)
    assert not isinstance(info.value, DatabaseLockedError)


# ------------------------------------------------------------------------ df dtypes


_DTYPES_SQL = """CREATE TABLE typed (
    id INTEGER, big BIGINT, maybe INTEGER, price DOUBLE, title VARCHAR, flag BOOLEAN,
    seen TIMESTAMP, vacant INTEGER)"""
_DTYPES_ROWS = """INSERT INTO typed VALUES
    (1, 9007199254740993, NULL, 1.5, 'Björk', true, '2024-05-06 07:08:09', NULL),
    (2, -3, 1990, NULL, NULL, false, NULL, NULL),
    (3, 0, 2001, 2.0, 'x', NULL, '1999-12-31 23:59:59.5', NULL)"""


def _frames(folder: Path, sql: str) -> dict[str, pd.DataFrame]:
    """The same data in a fresh file per engine, and ``df(sql)`` of each."""
    frames = {}
    for engine, suffix in SUFFIX.items():
        with Database.connect(folder / f"typed{suffix}") as database:
            if not database.table_exists("typed"):
                database.execute(_DTYPES_SQL)
                database.execute(_DTYPES_ROWS)
            frames[engine] = database.df(sql)
    return frames


def test_df_gives_equal_frames_and_dtypes_on_both_engines(tmp_path: Path) -> None:
    frames = _frames(tmp_path, "SELECT * FROM typed ORDER BY id")
    pd.testing.assert_frame_equal(frames["duckdb"], frames["sqlite"], check_dtype=True)
    frame = frames["sqlite"]
    text = pd.Series(["a"]).dtype  # pandas' default string dtype
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        "id": "Int64",
        "big": "Int64",
        "maybe": "Int64",
        "price": "float64",
        "title": str(text),
        "flag": "boolean",
        "seen": "datetime64[us]",
        "vacant": "object",
    }
    assert frame["big"].tolist()[0] == 9007199254740993  # no float round trip
    assert frame["maybe"].isna().tolist() == [True, False, False]
    assert frame["flag"].tolist()[:2] == [True, False] and frame["flag"].isna().tolist()[2]
    assert frame["vacant"].tolist() == [None, None, None]


def test_df_of_expressions_and_empty_results_match_across_engines(tmp_path: Path) -> None:
    frames = _frames(
        tmp_path,
        "SELECT count(*) AS n, sum(maybe) AS total, avg(price) AS mean, max(title) AS last "
        "FROM typed",
    )
    pd.testing.assert_frame_equal(frames["duckdb"], frames["sqlite"], check_dtype=True)
    assert frames["duckdb"].dtypes.astype(str).tolist()[:3] == ["Int64", "Int64", "float64"]
    empty = _frames(tmp_path, "SELECT id, title, flag FROM typed WHERE id > 99")
    pd.testing.assert_frame_equal(empty["duckdb"], empty["sqlite"], check_dtype=True)
    assert list(empty["duckdb"].columns) == ["id", "title", "flag"]
    assert len(empty["duckdb"]) == 0


def test_sqlite_reads_declared_booleans_as_bools_like_duckdb(tmp_path: Path) -> None:
    for suffix in SUFFIX.values():
        with Database.connect(tmp_path / f"flags{suffix}") as database:
            database.execute("CREATE TABLE f (id INTEGER, flag BOOLEAN)")
            database.execute("INSERT INTO f VALUES (1, true), (2, false), (3, NULL)")
            rows = database.fetchall("SELECT flag FROM f ORDER BY id")
            assert rows == [(True,), (False,), (None,)]
            assert [type(v) for (v,) in rows[:2]] == [bool, bool]


class _InterruptAfterBegin:
    """A connection stand-in: runs each statement, then acts as if Ctrl-C landed after BEGIN."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        result = self._conn.execute(sql, *args)
        if sql.lstrip().upper().startswith("BEGIN"):
            raise KeyboardInterrupt
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_ctrl_c_right_after_begin_leaves_no_transaction_open(db: Database) -> None:
    real = db._conn
    db._conn = _InterruptAfterBegin(real)
    with pytest.raises(KeyboardInterrupt), db.transaction():
        pytest.fail("the block must not run")  # pragma: no cover
    db._conn = real
    # The next transaction starts cleanly (it would fail if BEGIN were still open) and commits.
    with db.transaction():
        db.execute("INSERT INTO users VALUES (4, 'di', 'new')")
    assert db.scalar("SELECT count(*) FROM users") == 4


# ------------------------------------------------------------------------ opening read-only


@pytest.mark.parametrize("suffix", [".duckdb", ".sqlite"])
def test_explore_connect_is_read_only_by_default(tmp_path: Path, suffix: str) -> None:
    from toolkit.collection import create_schema
    from toolkit.explore import connect

    path = tmp_path / f"ro{suffix}"
    with Database.connect(path) as database:
        create_schema(database)
        database.execute("INSERT INTO release_genres VALUES (1, 'Jazz')")
    with connect(path) as database:
        assert database.read_only
        with pytest.raises(ReadOnlyError, match="read-only"):
            database.execute("DROP TABLE release_genres")
    with connect(path, read_only=False) as database:
        assert database.fetchall("SELECT genre FROM release_genres") == [("Jazz",)]


def test_resolve_database_takes_the_data_dir_from_its_caller(tmp_path: Path) -> None:
    from toolkit.config import Settings
    from toolkit.explore import resolve_database

    settings = Settings(data_dir=tmp_path / "elsewhere")
    assert resolve_database(settings=settings) == tmp_path / "elsewhere" / "collection.duckdb"
    assert resolve_database("x.sqlite", settings=settings) == Path("x.sqlite")


# ------------------------------------------------------------------------ index suggestions


def _genre_db(path: Path, releases: int) -> Database:
    from toolkit.collection import create_schema

    database = Database.connect(path)
    create_schema(database)
    genres = ("Rock", "Jazz", "Electronic", "Pop", "Classical", "Folk")
    with database.transaction():
        database.executemany(
            "INSERT INTO release_genres VALUES (?, ?)",
            [(i, genres[(i * k) % len(genres)]) for i in range(1, releases + 1) for k in (1, 2)],
        )
        database.executemany(
            "INSERT INTO collection_items (instance_id, username, release_id) VALUES (?, 'u', ?)",
            [(i, i) for i in range(1, releases + 1)],
        )
    return database


GENRE_QUERY = (
    "SELECT count(*) FROM collection_items ci "
    "JOIN release_genres g ON g.release_id = ci.release_id WHERE g.genre = ?"
)


def test_sqlite_suggests_an_index_for_a_genre_filter_and_the_plan_uses_it(tmp_path: Path) -> None:
    with _genre_db(tmp_path / "ix.sqlite", 500) as database:
        before = database.explain(GENRE_QUERY, ["Jazz"])
        assert any(line.strip().startswith("SCAN") for line in before), before
        suggestions = database.suggest_indexes(GENRE_QUERY, ["Jazz"])
        assert len(suggestions) == 1
        suggestion = suggestions[0]
        assert isinstance(suggestion, IndexSuggestion)
        assert suggestion.table == "release_genres"
        assert suggestion.columns[0] == "genre"
        assert suggestion.sql.startswith("CREATE INDEX IF NOT EXISTS ix_release_genres_genre")
        assert "genre" in suggestion.reason
        with pytest.raises(FrozenInstanceError):
            suggestion.table = "x"  # type: ignore[misc]
        count = database.scalar(GENRE_QUERY, ["Jazz"])
        database.execute(suggestion.sql)
        after = database.explain(GENRE_QUERY, ["Jazz"])
        genre_line = next(line for line in after if " g " in f" {line.strip()} ")
        assert "USING COVERING INDEX ix_release_genres_genre" in genre_line, after
        assert "(genre=?" in genre_line
        assert not any(line.strip().startswith("SCAN") for line in after), after
        assert database.scalar(GENRE_QUERY, ["Jazz"]) == count
        assert database.suggest_indexes(GENRE_QUERY, ["Jazz"]) == []


def test_sqlite_suggests_an_index_for_a_sort(tmp_path: Path) -> None:
    with _genre_db(tmp_path / "sort.sqlite", 10) as database:
        (suggestion,) = database.suggest_indexes("SELECT title FROM releases ORDER BY year")
        assert suggestion.columns[0] == "year"
        assert "sorted" in suggestion.reason


def test_suggestions_write_nothing_and_work_read_only(tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite"
    _genre_db(path, 20).close()
    with Database.connect(path, read_only=True) as database:
        schema = "SELECT type, name FROM sqlite_master ORDER BY name"
        before = database.fetchall(schema)
        assert database.suggest_indexes(GENRE_QUERY, ["Jazz"])
        assert database.fetchall(schema) == before


def test_bad_sql_in_suggest_indexes_is_a_query_error(tmp_path: Path) -> None:
    with _genre_db(tmp_path / "bad.sqlite", 1) as database, pytest.raises(QueryError):
        database.suggest_indexes("SELEC nonsense")


def test_duckdb_suggests_only_selective_point_lookups_on_large_tables(tmp_path: Path) -> None:
    from toolkit.indexes import DUCKDB_POINT_LOOKUP_MIN_ROWS

    with Database.connect(tmp_path / "big.duckdb") as database:
        rows = DUCKDB_POINT_LOOKUP_MIN_ROWS + 1000
        database.execute(
            "CREATE TABLE t AS SELECT i AS id, i % 6 AS genre, 'x' || i AS catno FROM range(?) r(i)",
            [rows],
        )
        assert database.suggest_indexes("SELECT * FROM t WHERE genre = 3") == []
        (suggestion,) = database.suggest_indexes("SELECT * FROM t WHERE catno = 'x42'")
        assert (suggestion.table, suggestion.columns) == ("t", ("catno",))
        assert "point lookup" in suggestion.reason
        database.execute(suggestion.sql)
        assert database.suggest_indexes("SELECT * FROM t WHERE catno = 'x42'") == []
        database.execute(
            "CREATE TABLE small AS SELECT i AS id, 'x' || i AS catno FROM range(100) r(i)"
        )
        assert database.suggest_indexes("SELECT * FROM small WHERE catno = 'x42'") == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count open files")
def test_a_failed_sqlite_probe_leaves_no_file_open(tmp_path: Path) -> None:
    target = tmp_path / "garbage.sqlite"
    target.write_bytes(b"this is not a database" * 100)

    def open_files() -> set[str]:
        found = set()
        for fd in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):
                found.add(str(fd.readlink()))
        return found

    assert str(target) not in open_files()
    # The raised error (and its traceback, which holds the frames) is kept alive on purpose.
    with pytest.raises(DatabaseError, match="cannot open") as caught:
        Database.connect(target)
    assert str(target) not in open_files(), caught.value


def test_read_only_errors_name_the_statement(tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite"
    Database.connect(path).close()
    with (
        Database.connect(path, read_only=True) as database,
        pytest.raises(ReadOnlyError, match=r"read-only.*while running: CREATE TABLE t"),
    ):
        database.execute("CREATE TABLE t (x INTEGER)")
