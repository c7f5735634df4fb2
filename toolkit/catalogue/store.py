"""Where the catalogue lives on disk, and how a :class:`~toolkit.db.Database` attaches it.

``<data_dir>/catalogue/CURRENT`` names the live generation directory, which holds one Parquet
file per table (``tables/<table>.parquet``). A load builds a new generation beside it and
replaces ``CURRENT`` in one rename, so readers see the old catalogue or the new one, never half.
DuckDB attaches views over the Parquet files; sqlite attaches ``catalogue.sqlite``, built from
them (once per generation, on first use).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.catalogue.schema import CATALOGUE_TABLES, sql_type
from toolkit.db import Database
from toolkit.errors import DumpError

__all__ = [
    "SCHEMA",
    "attach",
    "build_sqlite",
    "catalogue_dir",
    "current_generation",
    "detach",
    "table_path",
]

#: The name the catalogue is attached under on both engines.
SCHEMA = "catalogue"
_CURRENT = "CURRENT"
_SQLITE_FILE = "catalogue.sqlite"
_SQLITE_BATCH = 50_000
#: sqlite indexes built with the file: the release_id of every per-release table, and each id.
_SQLITE_INDEXES = {
    "releases": ("release_id", "master_id"),
    "release_artists": ("release_id", "artist_id"),
    "release_labels": ("release_id", "label_id"),
    "release_genres": ("release_id",),
    "release_styles": ("release_id",),
    "release_formats": ("release_id",),
    "tracks": ("release_id",),
    "artists": ("artist_id",),
    "labels": ("label_id",),
    "masters": ("master_id",),
}


def catalogue_dir(data_dir: str | os.PathLike[str]) -> Path:
    """The catalogue's folder under the toolkit's data directory."""
    return Path(data_dir) / "catalogue"


def current_generation(root: Path) -> Path | None:
    """The live generation directory of the catalogue folder ``root``, or None before any load."""
    try:
        name = (root / _CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DumpError(f"cannot read {root / _CURRENT}: {exc.strerror or exc}") from None
    generation = root / name
    return generation if name and generation.is_dir() else None


def table_path(generation: Path, table: str) -> Path:
    """The Parquet file of ``table`` in a generation."""
    return generation / "tables" / f"{table}.parquet"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def detach(db: Database) -> None:
    """Detach the catalogue from ``db`` if it is attached (idempotent)."""
    if db.engine == "duckdb":
        db.execute(f"DETACH DATABASE IF EXISTS {SCHEMA}")
        return
    attached = {row[1] for row in db.fetchall("PRAGMA database_list")}
    if SCHEMA in attached:
        db.execute(f"DETACH DATABASE {SCHEMA}")


def attach(db: Database, data_dir: str | os.PathLike[str]) -> Path | None:
    """Make the catalogue of ``data_dir`` queryable in ``db`` as schema ``catalogue``.

    Re-attaches when called again (to see a newer load). Before any load the tables exist and
    are empty. Returns the generation attached (None when there is none). On sqlite the first
    attach of a generation builds its ``catalogue.sqlite`` from the Parquet files.
    """
    generation = current_generation(catalogue_dir(data_dir))
    detach(db)
    if db.engine == "duckdb":
        _attach_duckdb(db, generation)
    else:
        _attach_sqlite(db, generation)
    return generation


def _attach_duckdb(db: Database, generation: Path | None) -> None:
    # READ_ONLY false: a read-only connection would otherwise refuse the in-memory database.
    db.execute(f"ATTACH ':memory:' AS {SCHEMA} (READ_ONLY false)")
    for table, columns in CATALOGUE_TABLES.items():
        path = None if generation is None else table_path(generation, table)
        if path is not None and path.is_file():
            db.execute(
                f"CREATE VIEW {SCHEMA}.{table} AS SELECT * FROM read_parquet("
                f"{_quote(str(path.resolve()))})"
            )
        else:
            ddl = ", ".join(f"{name} {sql_type(kind, 'duckdb')}" for name, kind in columns)
            db.execute(f"CREATE TABLE {SCHEMA}.{table} ({ddl})")


def _attach_sqlite(db: Database, generation: Path | None) -> None:
    if generation is None:
        db.execute(f"ATTACH DATABASE ':memory:' AS {SCHEMA}")
        for table, columns in CATALOGUE_TABLES.items():
            ddl = ", ".join(f"{name} {sql_type(kind, 'sqlite')}" for name, kind in columns)
            db.execute(f"CREATE TABLE {SCHEMA}.{table} ({ddl})")
        return
    path = generation / _SQLITE_FILE
    if not path.is_file():
        build_sqlite(generation, path)
    # Read-only whatever the connection: the file is derived data, shared by every connection.
    db.execute(f"ATTACH DATABASE ? AS {SCHEMA}", [f"{path.resolve().as_uri()}?mode=ro"])


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # as toolkit.collection stores timestamps
    if isinstance(value, date):
        return value.isoformat()
    return value


def _rows(path: Path, names: list[str]) -> Iterator[list[tuple[Any, ...]]]:
    parquet = pq.ParquetFile(path)
    # A generation written before a column was added (releases.source) lacks it: NULL there.
    present = [name for name in names if name in parquet.schema_arrow.names]
    for batch in parquet.iter_batches(batch_size=_SQLITE_BATCH, columns=present):
        columns = []
        for name in names:
            if name not in present:
                columns.append([None] * batch.num_rows)
                continue
            column = batch.column(name)
            values = column.to_pylist()
            if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
                values = [_sqlite_value(v) for v in values]
            columns.append(values)
        yield list(zip(*columns, strict=True))


def build_sqlite(generation: Path, path: Path) -> None:
    """Write the generation's tables into a sqlite file at ``path`` (atomically: temp + rename)."""
    handle, temp_name = tempfile.mkstemp(prefix=".catalogue-", suffix=".sqlite", dir=generation)
    os.close(handle)
    temp = Path(temp_name)
    try:
        conn = sqlite3.connect(temp_name, isolation_level=None)
        try:
            # A private file, renamed into place only once complete: no journal needed.
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("BEGIN")
            for table, columns in CATALOGUE_TABLES.items():
                ddl = ", ".join(f"{name} {sql_type(kind, 'sqlite')}" for name, kind in columns)
                conn.execute(f"CREATE TABLE {table} ({ddl})")
                source = table_path(generation, table)
                if source.is_file():
                    marks = ", ".join("?" * len(columns))
                    for rows in _rows(source, [name for name, _ in columns]):
                        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
                for column in _SQLITE_INDEXES.get(table, ()):
                    conn.execute(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})")
            conn.execute("COMMIT")
        finally:
            conn.close()
        temp.chmod(0o644)  # mkstemp makes it private; the Parquet files beside it are not
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise
