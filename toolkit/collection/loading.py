"""Writing the collection: a bulk, idempotent loader and the small reads and writes the pull needs.

Rows come from :mod:`toolkit.collection.parsing`; tables and keys from :mod:`toolkit.collection.schema`.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from toolkit.arrowcols import column as arrow_column
from toolkit.arrowcols import table as arrow_table
from toolkit.collection.parsing import (
    BadValue,
    Rows,
    as_mapping,
    data_error,
    parse_basic,
    parse_id,
    parse_item,
    parse_item_fields,
    parse_release,
)
from toolkit.collection.schema import CHILD_TABLES, SCHEMA, TABLES, quote_name
from toolkit.db import SCAN, Database
from toolkit.errors import CollectionDataError, DatabaseError

__all__ = [
    "NameMemo",
    "clear_failures",
    "delete_release_rows",
    "failure_ids",
    "insert_rows",
    "known_release_ids",
    "load_collection",
    "permanent_failure_ids",
    "record_failure",
    "remove_missing_items",
]

# ------------------------------------------------------------------------------------ writing


def _storage_time(db: Database, moment: datetime) -> Any:
    """Naive UTC: a datetime for DuckDB, fixed-width ISO text for sqlite (so text compares work)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if db.engine == "duckdb":
        return moment
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _frame(db: Database, table: str, rows: Sequence[tuple[Any, ...]]) -> Any:
    """Rows as a typed Arrow table (DuckDB) or a column dict (sqlite), for Database.temp_table."""
    spec = TABLES[table]
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(spec)
    if db.engine == "sqlite":
        return {name: values for (name, _), values in zip(spec, columns, strict=True)}
    return arrow_table(columns, spec)


def _ids_frame(db: Database, ids: Iterable[int], column: str = "release_id") -> Any:
    values = list(ids)
    if db.engine == "sqlite":
        return {column: values}
    return pa.table([arrow_column(values, pa.int64())], names=[column])


#: Up to this many ids are written into the statement (``IN (1, 2, 3)``); more go through a
#: registered id table. For a batch of 10 releases the six child-table DELETEs took 8.4 ms with
#: the id table and 4.2 ms with the literal list (DuckDB): the last write of a pull waits on them.
_INLINE_IDS = 500
#: DuckDB plans an ``IN`` list of five or more constants as a hash join, which costs more than it
#: saves on a small batch: up to :data:`_SPLIT_IDS` ids are written as ``IN`` lists of four joined
#: by ``OR`` (a DELETE for 10 releases 0.44 against 0.66 ms; even at 50, 0.90 against 0.99 ms).
_SPLIT_IDS = 48
_SPLIT = 4


def _in_list(column: str, ids: Sequence[int], engine: str) -> str:
    literal = [str(int(i)) for i in ids]
    if engine != "duckdb" or len(literal) <= _SPLIT or len(literal) > _SPLIT_IDS:
        return f"{column} IN ({', '.join(literal) or 'NULL'})"
    parts = (literal[at : at + _SPLIT] for at in range(0, len(literal), _SPLIT))
    return "(" + " OR ".join(f"{column} IN ({', '.join(part)})" for part in parts) + ")"


@contextmanager
def _ids_in(db: Database, ids: Sequence[int], column: str = "release_id") -> Iterator[str]:
    """A SQL condition ``column IN (...)`` over ``ids`` (integers), valid for the block."""
    if len(ids) <= _INLINE_IDS:
        yield _in_list(column, ids, db.engine)
        return
    with db.temp_table("_tk_ids", _ids_frame(db, ids, column)):
        yield f"{column} IN (SELECT {column} FROM _tk_ids)"


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC (process-wide) for a DuckDB load; nothing built here forms cycles.

    A load allocates ~10^6 tuples, which trigger collections again and again. Measured on
    10,000 synthetic releases (201,790 rows, 7 interleaved repeats): DuckDB loads at ~370k
    rows/s paused against ~205k with the GC on, so DuckDB loads pause it. sqlite loads do not:
    they measured faster with the GC on (~294k against ~270k rows/s).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: Tables with a primary key are upserted on it (the declared ``Table.key``), except the
#: releases of a batch of detailed releases, deleted and inserted; the rest are plain inserts
#: (their rows were deleted per release first).
_KEYS: dict[str, str] = {table.name: table.key for table in SCHEMA if table.key is not None}
#: Extra conditions on an upsert. Never let basic_information (fetched_at NULL) replace a
#: detailed release.
_UPSERT_WHEN: dict[str, str] = {
    "releases": "releases.fetched_at IS NULL OR excluded.fetched_at IS NOT NULL",
}


def _unencodable(table: str, rows: list[tuple[Any, ...]]) -> CollectionDataError:
    """The error for text neither engine can store (a lone surrogate from ``json.loads``)."""
    spec = TABLES[table]
    for row in rows:
        for (name, _), value in zip(spec, row, strict=True):
            if type(value) is str:
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return CollectionDataError(
                        f"{table}.{name} ({spec[0][0]} {row[0]}): text that is not valid "
                        f"Unicode (a lone surrogate): {value!r}"
                    )
    return CollectionDataError(f"{table}: text that is not valid Unicode")


class NameMemo:
    """Artist and label names one writer stored, so that its later writes need not upsert them.

    A pull writes the same names again and again: the listing's ``basic_information`` holds most
    of its releases' artists and labels, and every release of an artist repeats the name. An
    upsert costs DuckDB ~2 ms per table however few of its rows are new (the pull's last write
    waits on two). :func:`load_collection` leaves out rows the memo holds unchanged and stages the
    rest; the writer calls :meth:`commit` once the transaction has committed, :meth:`discard` when
    it rolled back. The memo trusts that nobody else deletes or renames these rows meanwhile.
    """

    TABLES = ("artists", "labels")

    def __init__(self) -> None:
        self._known: dict[str, dict[int, str]] = {table: {} for table in self.TABLES}
        self._staged: dict[str, dict[int, str]] = {table: {} for table in self.TABLES}

    def stage(self, table: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows of ``table`` (id, name) to write: those not stored unchanged already."""
        known, staged = self._known[table], self._staged[table]
        fresh = [row for row in rows if known.get(row[0], _UNKNOWN) != row[1]]
        staged.update((row[0], row[1]) for row in fresh)
        return fresh

    def commit(self) -> None:
        """The staged names are stored now (their transaction committed)."""
        for table, staged in self._staged.items():
            self._known[table].update(staged)
            staged.clear()

    def discard(self) -> None:
        """The staged names are not stored (their transaction rolled back)."""
        for staged in self._staged.values():
            staged.clear()


_UNKNOWN = object()


def insert_rows(db: Database, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert whole rows (every column of ``table``, in ``TABLES`` order) set-wise: no upsert.

    DuckDB's ``executemany`` goes row by row (100 history rows took ~50 ms), so DuckDB gets one
    ``INSERT ... SELECT`` over an Arrow table; sqlite keeps ``executemany``. One transaction
    (joined when one is open): a duplicate key stores none of the rows on either engine.
    """
    if rows:
        with db.transaction():  # all or nothing on both engines (sqlite would keep a prefix)
            _write(db, table, list(rows), upsert=False)


def _write(db: Database, table: str, rows: list[tuple[Any, ...]], *, upsert: bool = True) -> None:
    """Insert (or upsert) rows set-wise: Arrow + INSERT ... SELECT on DuckDB, executemany on sqlite.

    sqlite's ``executemany`` is already set-wise in effect: one prepared statement stepped in C
    for every row, no Python round trip per row, so it needs no frame. Text that is not valid
    Unicode raises :class:`CollectionDataError` on both engines (the transaction rolls back).
    """
    try:
        _insert(db, table, rows, upsert=upsert)
    except (UnicodeEncodeError, DatabaseError) as exc:
        if isinstance(exc, UnicodeEncodeError) or isinstance(exc.__cause__, UnicodeEncodeError):
            raise _unencodable(table, rows) from exc
        raise


def _insert(db: Database, table: str, rows: list[tuple[Any, ...]], *, upsert: bool) -> None:
    names = [name for name, _ in TABLES[table]]
    columns = ", ".join(quote_name(n) for n in names)
    conflict = ""
    if upsert and table in _KEYS:
        key, condition = _KEYS[table], _UPSERT_WHEN.get(table)
        updates = ", ".join(
            f"{quote_name(n)} = excluded.{quote_name(n)}" for n in names if n != key
        )
        where = f" WHERE {condition}" if condition else ""
        conflict = f" ON CONFLICT ({key}) DO UPDATE SET {updates}{where}"
    if db.engine == "sqlite":
        marks = ", ".join("?" * len(names))
        db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}){conflict}", rows)
        return
    # "WHERE true" keeps the parser from reading ON CONFLICT as part of the SELECT.
    db.execute_with(
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {SCAN} WHERE true{conflict}",
        _frame(db, table, rows),
    )


def load_collection(
    db: Database,
    items: Sequence[Mapping[str, Any]] = (),
    releases: Sequence[Mapping[str, Any]] = (),
    *,
    username: str | None = None,
    fetched_at: datetime | None = None,
    deleted: Collection[int] = (),
    names: NameMemo | None = None,
) -> dict[str, int]:
    """Write collection items and full releases (Discogs API JSON) in one transaction.

    ``items`` are entries of a collection page's ``releases[]`` (with ``basic_information``);
    ``releases`` are full ``/releases/{id}`` objects, stamped ``fetched_at`` (default: now, UTC).
    Idempotent: the same input with the same ``fetched_at`` leaves identical tables. A full
    release replaces all its child rows; an item whose release has no details yet gets a release
    row (``fetched_at`` NULL) and child rows from ``basic_information``, which never overwrite a
    detailed release. Returns the number of rows written per table.

    Bad input raises :class:`CollectionDataError`, the same on both engines, naming the place
    (``releases[3].formats[0].qty (release 249504)``) and leaving the database unchanged:
    structural problems (a list where an object belongs, a missing id) and values a column
    cannot hold (``"--5"`` as a rating, an integer beyond the column's 32 or 64 bits, an id of
    2**63 or more) are found before the transaction starts; text that is not valid Unicode
    (a lone surrogate) when it is written, which rolls the transaction back. Blank text and
    None are NULL; integral floats and integer text (``"3"``) are accepted as integers.

    ``deleted``: releases whose rows the caller already deleted in the transaction this call
    joins (the pull deletes its last round's while their answers travel); their DELETEs are
    skipped. ``names``: artist and label names known to be stored (see :class:`NameMemo`); rows
    repeating one are not written again.
    """
    with _gc_paused() if db.engine == "duckdb" else nullcontext():
        stamp = _storage_time(db, fetched_at if fetched_at is not None else datetime.now(UTC))
        unique: dict[int, tuple[int, Mapping[str, Any]]] = {}
        for index, data in enumerate(releases):
            data = as_mapping(data, f"releases[{index}]")
            unique[parse_id(data.get("id"), f"releases[{index}].id")] = (index, data)
        out = Rows()
        for rid, (index, data) in unique.items():
            where = f"releases[{index}]"
            try:
                parse_release(out, rid, data, where, stamp)
            except BadValue as exc:
                raise data_error(f"{where}.{exc.field} (release {rid})", exc.message) from None
        item_rows: dict[int, tuple[Any, ...]] = {}
        field_rows: dict[int, list[tuple[Any, ...]]] = {}
        basics: dict[int, tuple[Mapping[str, Any], str]] = {}
        for index, item in enumerate(items):
            row, basic = parse_item(index, item, username)
            item_rows[row[0]] = row
            field_rows[row[0]] = parse_item_fields(index, item, row[0])
            if row[3] not in unique:
                basics[row[3]] = (basic, f"items[{index}].basic_information")
        parsed_basics = {
            rid: parse_basic(rid, basic, where) for rid, (basic, where) in basics.items()
        }

        with db.transaction():
            if parsed_basics:
                with _ids_in(db, list(parsed_basics)) as among:
                    already = db.fetchall(
                        f"SELECT release_id FROM releases WHERE fetched_at IS NOT NULL AND {among}"
                    )
                for (rid,) in already:
                    del parsed_basics[rid]
            for basic_rows in parsed_basics.values():
                out.extend(basic_rows)
            rows: dict[str, list[tuple[Any, ...]]] = {
                "releases": out.releases,
                "collection_items": list(item_rows.values()),
                "item_fields": [row for rows_ in field_rows.values() for row in rows_],
                "release_artists": out.artists,
                "release_labels": out.labels,
                "release_genres": out.genres,
                "release_styles": out.styles,
                "release_formats": out.formats,
                "tracks": out.tracks,
                "artists": list(out.artist_names.items()),
                "labels": list(out.label_names.items()),
            }
            if names is not None:
                for table in NameMemo.TABLES:
                    rows[table] = names.stage(table, rows[table])
            if item_rows:
                # An item's fields are replaced whole: a field cleared on Discogs goes here too.
                with db.temp_table("_tk_items", _ids_frame(db, item_rows, "instance_id")):
                    db.execute(
                        "DELETE FROM item_fields "
                        "WHERE instance_id IN (SELECT instance_id FROM _tk_items)"
                    )
            replaced = [row[0] for row in out.releases]
            # Only detailed releases (the pull's details): their rows are replaced whole, so a
            # DELETE and a plain INSERT do what the upsert would, for a third of its cost on
            # DuckDB (the last write of a pull waits on it). Rows from basic_information keep
            # the upsert, whose condition never lets them replace a detailed release.
            whole = bool(replaced) and not parsed_basics
            if stale := [rid for rid in replaced if rid not in deleted]:
                _delete_rows(db, stale, (*CHILD_TABLES, "releases") if whole else CHILD_TABLES)
            for table, table_rows in rows.items():
                if table_rows:
                    _write(db, table, table_rows, upsert=not (whole and table == "releases"))
    return {table: len(table_rows) for table, table_rows in rows.items()}


# ------------------------------------------------------------------------ pull pipeline helpers


def delete_release_rows(db: Database, release_ids: Sequence[int]) -> None:
    """Delete these releases' rows and their child rows, for a ``load_collection(...,
    deleted=release_ids)`` later in the same transaction (the pull's last round, deleted while
    its answers travel so that only the inserts wait for the last answer)."""
    with db.transaction():
        _delete_rows(db, release_ids, (*CHILD_TABLES, "releases"))


def _delete_rows(db: Database, release_ids: Sequence[int], tables: Sequence[str]) -> None:
    """Delete the rows of these releases from ``tables``."""
    with _ids_in(db, release_ids) as among:
        for table in tables:
            db.execute(f"DELETE FROM {table} WHERE {among}")


def known_release_ids(db: Database, fresh_since: datetime | None = None) -> set[int]:
    """Ids of releases with full details (``fetched_at`` set), optionally fetched at/after a time.

    A naive ``fresh_since`` is taken as UTC.
    """
    sql = "SELECT release_id FROM releases WHERE fetched_at IS NOT NULL"
    params: list[Any] = []
    if fresh_since is not None:
        sql += " AND fetched_at >= ?"
        params.append(_storage_time(db, fresh_since))
    return {int(rid) for (rid,) in db.fetchall(sql, params)}


def remove_missing_items(
    db: Database, username: str, folder_id: int, keep_instance_ids: Iterable[int]
) -> int:
    """Delete ``username``'s items (in ``folder_id``; 0 = every folder) not in ``keep_instance_ids``.

    Releases stay (they are a cache of details). Returns the number of items deleted.
    """
    keep = _ids_frame(db, {int(i) for i in keep_instance_ids}, "instance_id")
    condition = "username = ?"
    params: list[Any] = [username]
    if folder_id != 0:
        condition += " AND folder_id = ?"
        params.append(folder_id)
    condition += " AND instance_id NOT IN (SELECT instance_id FROM _tk_keep)"
    with db.transaction(), db.temp_table("_tk_keep", keep):
        doomed = int(db.scalar(f"SELECT count(*) FROM collection_items WHERE {condition}", params))
        if doomed:
            db.execute(
                "DELETE FROM item_fields WHERE instance_id IN "
                f"(SELECT instance_id FROM collection_items WHERE {condition})",
                params,
            )
            db.execute(f"DELETE FROM collection_items WHERE {condition}", params)
    return doomed


def record_failure(
    db: Database,
    release_id: int,
    error: str,
    permanent: bool,
    *,
    now: datetime | None = None,
) -> int:
    """Note a failed fetch of ``release_id`` (attempts += 1, last_attempt = now); returns attempts."""
    stamp = _storage_time(db, now if now is not None else datetime.now(UTC))
    with db.transaction():
        db.execute(
            "INSERT INTO pull_failures (release_id, error, attempts, last_attempt, permanent) "
            "VALUES (?, ?, 1, ?, ?) ON CONFLICT (release_id) DO UPDATE SET "
            "error = excluded.error, attempts = pull_failures.attempts + 1, "
            "last_attempt = excluded.last_attempt, permanent = excluded.permanent",
            [release_id, error, stamp, bool(permanent)],
        )
        attempts = db.scalar(
            "SELECT attempts FROM pull_failures WHERE release_id = ?", [release_id]
        )
    return int(attempts)


def clear_failures(db: Database, release_ids: Iterable[int]) -> int:
    """Forget the failures of these releases (e.g. after a successful fetch); returns rows deleted."""
    ids = {int(i) for i in release_ids}
    if not ids:
        return 0
    condition = "release_id IN (SELECT release_id FROM _tk_ids)"
    with db.transaction(), db.temp_table("_tk_ids", _ids_frame(db, ids)):
        doomed = int(db.scalar(f"SELECT count(*) FROM pull_failures WHERE {condition}"))
        if doomed:
            db.execute(f"DELETE FROM pull_failures WHERE {condition}")
    return doomed


def permanent_failure_ids(db: Database) -> set[int]:
    """Releases whose failure was marked permanent (e.g. 404): not worth fetching again."""
    return failure_ids(db, permanent=True)


def failure_ids(db: Database, *, permanent: bool) -> set[int]:
    """Releases recorded in ``pull_failures`` as permanent (or, with False, as worth retrying)."""
    condition = "permanent" if permanent else "NOT permanent"
    rows = db.fetchall(f"SELECT release_id FROM pull_failures WHERE {condition}")
    return {int(rid) for (rid,) in rows}
