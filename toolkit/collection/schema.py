"""The collection schema, declared once: tables, columns, keys and indexes; DDL and migrations follow.

Both engines get their DDL from :data:`SCHEMA`, so DuckDB, sqlite and the Arrow frames the loader
builds can never disagree on a column's name, order or type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from toolkit.db import Database, Engine
from toolkit.errors import DatabaseError, SchemaIncompleteError

__all__ = [
    "CHILD_TABLES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TABLES",
    "Column",
    "Index",
    "SchemaRepair",
    "Table",
    "check_schema",
    "create_schema",
    "create_table_sql",
    "missing_tables",
    "quote_name",
    "repair_schema",
    "schema_version",
]

# Version 3: collection history (pulls, events, value, market, wants, custom fields);
# version 4: releases.source (details from the catalogue or the API).
SCHEMA_VERSION = 4


@dataclass(frozen=True)
class Column:
    """One column: its name, its Arrow type (which picks the SQL type), whether NULL is refused, and
    the schema version that added it to an existing table (its migration adds it, at the end)."""

    name: str
    type: pa.DataType
    not_null: bool = False
    since: int = 1


@dataclass(frozen=True)
class Index:
    """A secondary index (sqlite only: DuckDB's zone maps serve these scans, ART would slow loads)."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table: columns in order, the primary-key column (upserts conflict on it), indexes, and the
    schema version that introduced it (its migration creates it)."""

    name: str
    columns: tuple[Column, ...]
    key: str | None = None
    indexes: tuple[Index, ...] = ()
    since: int = 1


_INT, _BIG, _TXT, _DBL, _BOOL, _TS = (
    pa.int32(),
    pa.int64(),
    pa.string(),
    pa.float64(),
    pa.bool_(),
    pa.timestamp("us"),
)

#: Arrow type -> (DuckDB type, sqlite declared type). sqlite keeps BOOLEAN as declared because
#: toolkit.db reads columns declared BOOLEAN back as bools; timestamps are fixed-width text there.
_SQL_TYPES: tuple[tuple[pa.DataType, str, str], ...] = (
    (_INT, "INTEGER", "INTEGER"),
    (_BIG, "BIGINT", "INTEGER"),
    (_TXT, "VARCHAR", "TEXT"),
    (_DBL, "DOUBLE", "REAL"),
    (_BOOL, "BOOLEAN", "BOOLEAN"),
    (_TS, "TIMESTAMP", "TEXT"),
)


def _c(name: str, kind: pa.DataType, not_null: bool = False, since: int = 1) -> Column:
    return Column(name, kind, not_null, since)


def _by_release(table: str) -> tuple[Index, ...]:
    return (Index(f"ix_{table}_release", ("release_id",)),)


#: The whole schema. Conventions (multi-value fields as rows, NULLs, timestamps) are listed in
#: :func:`create_schema`.
SCHEMA: tuple[Table, ...] = (
    Table(
        "collection_items",
        (
            _c("instance_id", _BIG),
            _c("username", _TXT),
            _c("folder_id", _BIG),
            _c("release_id", _BIG, True),
            _c("rating", _INT),
            _c("date_added", _TXT),
        ),
        key="instance_id",
        indexes=(
            Index("ix_collection_items_release", ("release_id",)),
            Index("ix_collection_items_user", ("username", "folder_id")),
        ),
    ),
    Table(
        "releases",
        (
            _c("release_id", _BIG),
            _c("title", _TXT),
            _c("year", _INT),
            _c("country", _TXT),
            _c("released", _TXT),
            _c("master_id", _BIG),
            _c("status", _TXT),
            _c("data_quality", _TXT),
            _c("lowest_price", _DBL),
            _c("num_for_sale", _INT),
            _c("community_have", _INT),
            _c("community_want", _INT),
            _c("community_rating_average", _DBL),
            _c("community_rating_count", _INT),
            _c("fetched_at", _TS),
            # details-from: where the details came from ('api' | 'catalogue'; NULL = only a
            # collection page's basic_information). fetched_at is then the as-of date.
            _c("source", _TXT, since=4),
        ),
        key="release_id",
    ),
    Table("artists", (_c("artist_id", _BIG), _c("name", _TXT)), key="artist_id"),
    Table(
        "release_artists",
        (
            _c("release_id", _BIG, True),
            _c("artist_id", _BIG),
            _c("position", _INT, True),
            _c("anv", _TXT),
            _c("join_phrase", _TXT),
            _c("role", _TXT),
        ),
        indexes=_by_release("release_artists"),
    ),
    Table("labels", (_c("label_id", _BIG), _c("name", _TXT)), key="label_id"),
    Table(
        "release_labels",
        (_c("release_id", _BIG, True), _c("label_id", _BIG), _c("catno", _TXT)),
        indexes=_by_release("release_labels"),
    ),
    Table(
        "release_genres",
        (_c("release_id", _BIG, True), _c("genre", _TXT, True)),
        indexes=_by_release("release_genres"),
    ),
    Table(
        "release_styles",
        (_c("release_id", _BIG, True), _c("style", _TXT, True)),
        indexes=_by_release("release_styles"),
    ),
    Table(
        "release_formats",
        (
            _c("release_id", _BIG, True),
            _c("position", _INT, True),
            _c("name", _TXT),
            _c("qty", _INT),
            _c("descriptions", _TXT),
            _c("text", _TXT),
        ),
        indexes=_by_release("release_formats"),
    ),
    Table(
        "tracks",
        (
            _c("release_id", _BIG, True),
            _c("position", _TXT),
            _c("sequence", _INT, True),
            _c("title", _TXT),
            _c("duration_seconds", _INT),
            _c("type", _TXT),
        ),
        indexes=_by_release("tracks"),
    ),
    Table(
        "pull_failures",
        (
            _c("release_id", _BIG),
            _c("error", _TXT),
            _c("attempts", _INT, True),
            _c("last_attempt", _TS),
            _c("permanent", _BOOL, True),
        ),
        key="release_id",
        since=2,
    ),
    # History (version 3): every pull, what it changed, and the value, prices and wants it saw.
    Table(
        "pulls",
        (
            _c("pull_id", _BIG),
            _c("username", _TXT, True),
            _c("folder_id", _BIG, True),
            _c("started_at", _TS, True),
            _c("finished_at", _TS),
            _c("items", _INT),
            _c("added", _INT),
            _c("removed", _INT),
            _c("requests", _INT),
            _c("rate_limited", _INT),
            _c("complete", _BOOL),
        ),
        key="pull_id",
        since=3,
    ),
    Table(
        "item_events",
        (
            _c("pull_id", _BIG, True),
            _c("instance_id", _BIG, True),
            _c("release_id", _BIG, True),
            _c("event", _TXT, True),
            _c("at", _TS, True),
        ),
        indexes=(Index("ix_item_events_pull", ("pull_id",)),),
        since=3,
    ),
    Table(
        "collection_value",
        (
            _c("pull_id", _BIG),
            _c("at", _TS, True),
            _c("currency", _TXT, True),
            _c("minimum", _DBL),
            _c("median", _DBL),
            _c("maximum", _DBL),
        ),
        key="pull_id",
        since=3,
    ),
    Table(
        "market_stats",
        (
            _c("release_id", _BIG, True),
            _c("at", _TS, True),
            _c("currency", _TXT),
            _c("lowest_price", _DBL),
            _c("num_for_sale", _INT),
            _c("blocked_from_sale", _BOOL),
        ),
        indexes=_by_release("market_stats"),
        since=3,
    ),
    Table(
        "wants",
        (
            _c("username", _TXT, True),
            _c("release_id", _BIG, True),
            _c("date_added", _TXT),
            _c("rating", _INT),
            _c("notes", _TXT),
        ),
        indexes=(Index("ix_wants_user", ("username", "release_id")),),
        since=3,
    ),
    Table(
        "collection_fields",
        (
            _c("username", _TXT, True),
            _c("field_id", _BIG, True),
            _c("name", _TXT),
            _c("type", _TXT),
            _c("options", _TXT),
            _c("position", _INT),
            _c("public", _BOOL),
        ),
        since=3,
    ),
    Table(
        "item_fields",
        (_c("instance_id", _BIG, True), _c("field_id", _BIG, True), _c("value", _TXT)),
        indexes=(Index("ix_item_fields_instance", ("instance_id",)),),
        since=3,
    ),
)

_BY_NAME = {table.name: table for table in SCHEMA}

#: Every table's columns and their Arrow types, in DDL order (derived from :data:`SCHEMA`).
TABLES: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    table.name: tuple((column.name, column.type) for column in table.columns) for table in SCHEMA
}

#: Tables holding rows per release; a full release replaces all of its rows in them.
CHILD_TABLES: tuple[str, ...] = (
    "release_artists",
    "release_labels",
    "release_genres",
    "release_styles",
    "release_formats",
    "tracks",
)

#: Tables whose rows come only with a release's details: losing one means re-fetching them.
_DETAIL_TABLES = frozenset({*CHILD_TABLES, "artists", "labels"})

_VERSION_TABLE = "schema_version"
#: Names only a toolkit database has; one of them (and another of ours) marks a file as one.
_DISTINCTIVE = frozenset({*CHILD_TABLES, "collection_items", "pull_failures"}) - {"tracks"}
_VIEW_NAME = "collection"
#: Each item's custom fields by name (long form: one row per item and field that has a value).
_FIELDS_VIEW_NAME = "item_fields_named"
_FIELDS_VIEW = """CREATE VIEW item_fields_named AS
SELECT ci.instance_id, ci.username, ci.release_id, f.field_id,
    COALESCE(cf.name, 'Field ' || CAST(f.field_id AS VARCHAR)) AS name, f.value
FROM item_fields f
JOIN collection_items ci ON ci.instance_id = f.instance_id
LEFT JOIN collection_fields cf ON cf.username = ci.username AND cf.field_id = f.field_id"""


def _sql_type(kind: pa.DataType, engine: Engine) -> str:
    for arrow, duck, lite in _SQL_TYPES:
        if kind == arrow:
            return duck if engine == "duckdb" else lite
    raise TypeError(f"no SQL type declared for Arrow type {kind}")  # a SCHEMA typo, not user input


#: Column names DuckDB's parser reserves: quoted wherever the toolkit writes them (``"at"``).
RESERVED_NAMES = frozenset({"at"})


def quote_name(name: str) -> str:
    """``name`` as an SQL identifier: double-quoted when DuckDB reserves it, else as is."""
    return f'"{name}"' if name in RESERVED_NAMES else name


def create_table_sql(table: Table, engine: Engine, version: int = SCHEMA_VERSION) -> str:
    """``CREATE TABLE`` for ``table`` on ``engine``, with the columns it had at ``version``."""
    parts = []
    for column in table.columns:
        if column.since > version:
            continue
        part = f"{quote_name(column.name)} {_sql_type(column.type, engine)}"
        if column.name == table.key:
            part += " PRIMARY KEY"
        elif column.not_null:
            part += " NOT NULL"
        parts.append(part)
    return f"CREATE TABLE {table.name} ({', '.join(parts)})"


def _migration(engine: Engine, version: int) -> tuple[str, ...]:
    """The statements that bring a database from ``version - 1`` to ``version``: tables as they
    were at ``version``, and the columns ``version`` added to older tables."""
    statements = [create_table_sql(t, engine, version) for t in SCHEMA if t.since == version]
    for table in SCHEMA:
        if table.since < version:
            statements += [
                f"ALTER TABLE {table.name} ADD COLUMN {quote_name(c.name)} {_sql_type(c.type, engine)}"
                for c in table.columns
                if c.since == version
            ]
    return (*statements, *_BACKFILL.get(version, ()))


#: Data a migration sets after its DDL. Version 4: every release stored with details before it
#: came from the API.
_BACKFILL: dict[int, tuple[str, ...]] = {
    4: ("UPDATE releases SET source = 'api' WHERE fetched_at IS NOT NULL",),
}


def _notes_to_item_fields(db: Database) -> None:
    """Version 3: move the JSON text of ``collection_items.notes`` into ``item_fields`` rows and
    drop the column (a note that is not a ``[{field_id, value}]`` list is kept as field 0)."""
    import json

    if "notes" not in _column_names(db, "collection_items"):
        return  # created by version 3's declaration already
    rows: list[tuple[int, int, str | None]] = []
    for instance_id, text in db.fetchall(
        "SELECT instance_id, notes FROM collection_items WHERE notes IS NOT NULL"
    ):
        try:
            notes = json.loads(text)
        except ValueError:
            notes = None
        if not isinstance(notes, list):
            rows.append((int(instance_id), 0, str(text)))
            continue
        for note in notes:
            if isinstance(note, dict) and str(note.get("field_id", "")).isdigit():
                value = note.get("value")
                text_value = None if value in (None, "") else str(value)
                rows.append((int(instance_id), int(note["field_id"]), text_value))
    if rows:
        db.executemany(
            "INSERT INTO item_fields (instance_id, field_id, value) VALUES (?, ?, ?)", rows
        )
    db.execute("ALTER TABLE collection_items DROP COLUMN notes")


#: Data steps of a version, run after its tables are created (inside the migration transaction).
_DATA_STEPS: dict[int, Callable[[Database], None]] = {3: _notes_to_item_fields}


def _index_sql(engine: Engine) -> Iterator[str]:
    if engine != "sqlite":
        return
    for table in SCHEMA:
        for index in table.indexes:
            columns = ", ".join(index.columns)
            yield f"CREATE INDEX IF NOT EXISTS {index.name} ON {table.name} ({columns})"


_VIEW = """CREATE VIEW collection AS
WITH artist_agg AS (
    SELECT release_id, {agg_name_pos} AS artists FROM (
        SELECT ra.release_id, ra.position, COALESCE(a.name, ra.anv) AS name
        FROM release_artists ra LEFT JOIN artists a ON a.artist_id = ra.artist_id
        WHERE ra.role IS NULL ORDER BY ra.release_id, ra.position) AS s
    GROUP BY release_id),
label_agg AS (
    SELECT release_id, {agg_name_name} AS labels FROM (
        SELECT DISTINCT rl.release_id, lb.name
        FROM release_labels rl JOIN labels lb ON lb.label_id = rl.label_id
        WHERE lb.name IS NOT NULL ORDER BY 1, 2) AS s
    GROUP BY release_id),
catno_agg AS (
    SELECT release_id, {agg_catno} AS catnos FROM (
        SELECT DISTINCT release_id, catno FROM release_labels
        WHERE catno IS NOT NULL ORDER BY 1, 2) AS s
    GROUP BY release_id),
genre_agg AS (
    SELECT release_id, {agg_genre} AS genres FROM (
        SELECT release_id, genre FROM release_genres ORDER BY 1, 2) AS s
    GROUP BY release_id),
style_agg AS (
    SELECT release_id, {agg_style} AS styles FROM (
        SELECT release_id, style FROM release_styles ORDER BY 1, 2) AS s
    GROUP BY release_id),
format_agg AS (
    SELECT release_id, {agg_name_pos} AS formats FROM (
        SELECT release_id, position, name FROM release_formats
        WHERE name IS NOT NULL ORDER BY 1, 2) AS s
    GROUP BY release_id)
SELECT ci.instance_id, ci.username, ci.folder_id, ci.release_id, ci.rating, ci.date_added,
    aa.artists, r.title, la.labels, ca.catnos, r.year, r.country, r.released,
    ga.genres, sa.styles, fa.formats, r.master_id, r.status, r.data_quality,
    r.lowest_price, r.num_for_sale, r.community_have, r.community_want,
    r.community_rating_average, r.community_rating_count, r.fetched_at, r.source
FROM collection_items ci
LEFT JOIN releases r ON r.release_id = ci.release_id
LEFT JOIN artist_agg aa ON aa.release_id = ci.release_id
LEFT JOIN label_agg la ON la.release_id = ci.release_id
LEFT JOIN catno_agg ca ON ca.release_id = ci.release_id
LEFT JOIN genre_agg ga ON ga.release_id = ci.release_id
LEFT JOIN style_agg sa ON sa.release_id = ci.release_id
LEFT JOIN format_agg fa ON fa.release_id = ci.release_id"""


def _view_sql(engine: Engine) -> str:
    def agg(column: str, order: str) -> str:
        if engine == "duckdb":
            return f"string_agg({column}, ', ' ORDER BY {order})"
        # sqlite < 3.44 has no ORDER BY in aggregates, so the inner subquery is ordered and
        # group_concat takes rows in that order. sqlite documents that order as arbitrary, but
        # for this shape (an ordered subquery, grouped on its leading sort key) it keeps it;
        # test_view_aggregates_in_order checks it. Not the 3.44 syntax: a view written with it
        # would make the whole file unreadable to an older sqlite.
        return f"group_concat({column}, ', ')"

    return _VIEW.format(
        agg_name_pos=agg("name", "position"),
        agg_name_name=agg("name", "name"),
        agg_catno=agg("catno", "catno"),
        agg_genre=agg("genre", "genre"),
        agg_style=agg("style", "style"),
    )


def _existing(db: Database) -> set[str]:
    """Names of the tables and views in the main schema."""
    if db.engine == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
    else:
        # This database's own: an attached one (the catalogue) has a "main" schema too.
        sql = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_catalog = current_database()"
        )
    return {str(name) for (name,) in db.fetchall(sql)}


def schema_version(db: Database) -> int:
    """The schema version stored in ``db`` (0 when the schema was never created)."""
    if not db.table_exists(_VERSION_TABLE):
        return 0
    return int(db.scalar(f"SELECT max(version) FROM {_VERSION_TABLE}") or 0)


def _expected_version(db: Database, existing: set[str]) -> int:
    """The stored version; without the version table, the newest one its remaining tables show."""
    if _VERSION_TABLE in existing:
        return schema_version(db)
    version = max((t.since for t in SCHEMA if t.name in existing), default=0)
    for table in SCHEMA:  # a column added by a later version shows that version too
        later = [c for c in table.columns if c.since > version]
        if table.name in existing and later:
            present = _column_names(db, table.name)
            version = max([version, *(c.since for c in later if c.name in present)])
    return version


def _column_names(db: Database, table: str) -> set[str]:
    if db.engine == "sqlite":
        return {str(row[1]) for row in db.fetchall(f"PRAGMA main.table_info({table})")}
    sql = (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' "
        "AND table_catalog = current_database() AND table_name = ?"
    )
    return {str(name) for (name,) in db.fetchall(sql, [table])}


def missing_tables(db: Database, *, view: bool = True) -> tuple[str, ...]:
    """Tables (and, with ``view``, the ``collection`` view) a collection database should have but lacks.

    Empty for a complete schema and for a file that is not a collection database (new, or
    unrelated even if it has a ``releases`` table). Tables of later versions than the stored one are not missing: a migration
    adds them.
    """
    existing = _existing(db)
    present = existing & {_VERSION_TABLE, _VIEW_NAME, *TABLES}
    if len(present) < 2 or not present & _DISTINCTIVE:
        return ()  # new, or someone else's file that merely has a "releases" or "labels" table
    version = _expected_version(db, existing)
    wanted = [_VERSION_TABLE, *(t.name for t in SCHEMA if t.since <= version)]
    if view:
        wanted.append(_VIEW_NAME)
    return tuple(name for name in wanted if name not in existing)


def check_schema(db: Database, *, view: bool = True) -> None:
    """Raise :class:`SchemaIncompleteError` when tables of the collection schema were dropped."""
    missing = missing_tables(db, view=view)
    if missing:
        raise SchemaIncompleteError(missing, None if db.path is None else str(db.path))


def create_schema(db: Database) -> int:
    """Create or upgrade the collection schema to :data:`SCHEMA_VERSION`; idempotent.

    Applies the missing migrations in one transaction, then (re)creates the ``collection`` view
    (one row per collection item, artists/labels/genres/... aggregated as ", "-joined text).
    A database written by a newer toolkit raises :class:`DatabaseError`; one whose tables were
    dropped by hand raises :class:`SchemaIncompleteError` (see :func:`repair_schema`). Returns
    the version.

    Conventions: multi-value fields are rows (one genre per row, never split on commas); year 0
    ("unknown" on Discogs) is NULL; in ``release_artists`` ``role IS NULL`` marks the release's
    main artists while credits (``extraartists``) carry their role text; ``position`` orders
    artists and formats; ``release_formats.descriptions`` holds the API's list as JSON text;
    an item's custom fields (the API's ``notes``) are ``item_fields`` rows, named by the
    ``item_fields_named`` view; ``tracks.sequence`` is the index in the tracklist (heading rows are
    kept, their empty position stored as NULL); ``releases.source`` says where a release's
    details came from (``'api'``, ``'catalogue'``; NULL for ``basic_information`` only) and
    ``fetched_at`` is then their as-of time (when the API answered, or the dump's date); it is
    naive UTC (TIMESTAMP on
    DuckDB, ``YYYY-MM-DD HH:MM:SS.ffffff`` text on sqlite) and NULL for releases known only from
    a collection page's ``basic_information``. Empty strings from the API are stored as NULL.
    """
    with db.transaction():
        current = schema_version(db)
        if current > SCHEMA_VERSION:
            raise DatabaseError(
                f"the database has collection schema version {current}, newer than this "
                f"toolkit's {SCHEMA_VERSION}: upgrade discogs-toolkit"
            )
        check_schema(db, view=False)  # the view is recreated below anyway
        # Views first: a migration may drop a column they name.
        db.execute(f"DROP VIEW IF EXISTS {_FIELDS_VIEW_NAME}")
        db.execute(f"DROP VIEW IF EXISTS {_VIEW_NAME}")
        if current == 0:
            db.execute(f"CREATE TABLE {_VERSION_TABLE} (version INTEGER NOT NULL)")
            db.execute(f"INSERT INTO {_VERSION_TABLE} VALUES (0)")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _migration(db.engine, version):
                db.execute(statement)
            step = _DATA_STEPS.get(version)
            if step is not None and current > 0:
                step(db)
        if current != SCHEMA_VERSION:
            db.execute(f"UPDATE {_VERSION_TABLE} SET version = ?", [SCHEMA_VERSION])
        for statement in _index_sql(db.engine):
            db.execute(statement)
        db.execute(_view_sql(db.engine))
        db.execute(_FIELDS_VIEW)
    return SCHEMA_VERSION


@dataclass(frozen=True)
class SchemaRepair:
    """What :func:`repair_schema` did: tables recreated (empty) and releases marked for re-fetch."""

    recreated: tuple[str, ...]
    releases_to_refetch: int


def repair_schema(db: Database) -> SchemaRepair:
    """Recreate the tables (and view) dropped from a collection database, in one transaction.

    Recreated tables are empty. When one of them held rows that come with a release's details
    (tracks, genres, artists ...), every release is marked as not yet fetched (``fetched_at``
    NULL), so the next pull fetches the details again (from the HTTP cache where it still has
    them) and fills the tables; nothing else is touched.
    """
    with db.transaction():
        existing = _existing(db)
        missing = missing_tables(db)
        if not missing:
            create_schema(db)
            return SchemaRepair((), 0)
        version = _expected_version(db, existing)
        if version > SCHEMA_VERSION:
            create_schema(db)  # raises: written by a newer toolkit
        if _VERSION_TABLE in missing:
            db.execute(f"CREATE TABLE {_VERSION_TABLE} (version INTEGER NOT NULL)")
            db.execute(f"INSERT INTO {_VERSION_TABLE} VALUES (?)", [version])
        for name in missing:
            if name in _BY_NAME:
                db.execute(create_table_sql(_BY_NAME[name], db.engine))
        refetch = 0
        if _DETAIL_TABLES & set(missing) and "releases" not in missing:
            refetch = int(
                db.scalar("SELECT count(*) FROM releases WHERE fetched_at IS NOT NULL") or 0
            )
            # details-from: a release to fetch again has no source yet either.
            source = ", source = NULL" if "source" in _column_names(db, "releases") else ""
            db.execute(
                f"UPDATE releases SET fetched_at = NULL{source} WHERE fetched_at IS NOT NULL"
            )
        create_schema(db)
    return SchemaRepair(missing, refetch)
