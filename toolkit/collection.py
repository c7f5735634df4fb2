"""The versioned collection schema (same on DuckDB and sqlite) and a bulk, idempotent loader.

Schema conventions are listed in :func:`create_schema`.
"""

from __future__ import annotations

import gc
import json
import operator
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pyarrow as pa

from toolkit.db import Database
from toolkit.errors import DatabaseError

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "CollectionDataError",
    "clear_failures",
    "create_schema",
    "failure_ids",
    "known_release_ids",
    "load_collection",
    "permanent_failure_ids",
    "record_failure",
    "remove_missing_items",
    "schema_version",
]

SCHEMA_VERSION = 2


class CollectionDataError(DatabaseError, ValueError):
    """The Discogs JSON handed to :func:`load_collection` is structurally unusable."""


# ---------------------------------------------------------------------------------------- schema

_INT, _BIG, _TXT, _DBL, _BOOL, _TS = (
    pa.int32(),
    pa.int64(),
    pa.string(),
    pa.float64(),
    pa.bool_(),
    pa.timestamp("us"),
)

#: Every table's columns and their Arrow types (the DDL below follows the same order).
TABLES: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    "collection_items": (
        ("instance_id", _BIG),
        ("username", _TXT),
        ("folder_id", _BIG),
        ("release_id", _BIG),
        ("rating", _INT),
        ("date_added", _TXT),
        ("notes", _TXT),
    ),
    "releases": (
        ("release_id", _BIG),
        ("title", _TXT),
        ("year", _INT),
        ("country", _TXT),
        ("released", _TXT),
        ("master_id", _BIG),
        ("status", _TXT),
        ("data_quality", _TXT),
        ("lowest_price", _DBL),
        ("num_for_sale", _INT),
        ("community_have", _INT),
        ("community_want", _INT),
        ("community_rating_average", _DBL),
        ("community_rating_count", _INT),
        ("fetched_at", _TS),
    ),
    "artists": (("artist_id", _BIG), ("name", _TXT)),
    "release_artists": (
        ("release_id", _BIG),
        ("artist_id", _BIG),
        ("position", _INT),
        ("anv", _TXT),
        ("join_phrase", _TXT),
        ("role", _TXT),
    ),
    "labels": (("label_id", _BIG), ("name", _TXT)),
    "release_labels": (("release_id", _BIG), ("label_id", _BIG), ("catno", _TXT)),
    "release_genres": (("release_id", _BIG), ("genre", _TXT)),
    "release_styles": (("release_id", _BIG), ("style", _TXT)),
    "release_formats": (
        ("release_id", _BIG),
        ("position", _INT),
        ("name", _TXT),
        ("qty", _INT),
        ("descriptions", _TXT),
        ("text", _TXT),
    ),
    "tracks": (
        ("release_id", _BIG),
        ("position", _TXT),
        ("sequence", _INT),
        ("title", _TXT),
        ("duration_seconds", _INT),
        ("type", _TXT),
    ),
    "pull_failures": (
        ("release_id", _BIG),
        ("error", _TXT),
        ("attempts", _INT),
        ("last_attempt", _TS),
        ("permanent", _BOOL),
    ),
}

_CHILD_TABLES = (
    "release_artists",
    "release_labels",
    "release_genres",
    "release_styles",
    "release_formats",
    "tracks",
)

# Written with DuckDB type names; _ddl() maps them for sqlite.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE collection_items (
            instance_id BIGINT PRIMARY KEY, username VARCHAR, folder_id BIGINT,
            release_id BIGINT NOT NULL, rating INTEGER, date_added VARCHAR, notes VARCHAR)""",
        """CREATE TABLE releases (
            release_id BIGINT PRIMARY KEY, title VARCHAR, year INTEGER, country VARCHAR,
            released VARCHAR, master_id BIGINT, status VARCHAR, data_quality VARCHAR,
            lowest_price DOUBLE, num_for_sale INTEGER, community_have INTEGER,
            community_want INTEGER, community_rating_average DOUBLE,
            community_rating_count INTEGER, fetched_at TIMESTAMP)""",
        "CREATE TABLE artists (artist_id BIGINT PRIMARY KEY, name VARCHAR)",
        """CREATE TABLE release_artists (
            release_id BIGINT NOT NULL, artist_id BIGINT, position INTEGER NOT NULL,
            anv VARCHAR, join_phrase VARCHAR, role VARCHAR)""",
        "CREATE TABLE labels (label_id BIGINT PRIMARY KEY, name VARCHAR)",
        """CREATE TABLE release_labels (
            release_id BIGINT NOT NULL, label_id BIGINT, catno VARCHAR)""",
        "CREATE TABLE release_genres (release_id BIGINT NOT NULL, genre VARCHAR NOT NULL)",
        "CREATE TABLE release_styles (release_id BIGINT NOT NULL, style VARCHAR NOT NULL)",
        """CREATE TABLE release_formats (
            release_id BIGINT NOT NULL, position INTEGER NOT NULL, name VARCHAR, qty INTEGER,
            descriptions VARCHAR, text VARCHAR)""",
        """CREATE TABLE tracks (
            release_id BIGINT NOT NULL, position VARCHAR, sequence INTEGER NOT NULL,
            title VARCHAR, duration_seconds INTEGER, type VARCHAR)""",
    ),
    2: (
        """CREATE TABLE pull_failures (
            release_id BIGINT PRIMARY KEY, error VARCHAR, attempts INTEGER NOT NULL,
            last_attempt TIMESTAMP, permanent BOOLEAN NOT NULL)""",
    ),
}

_SQLITE_INDEXES = (
    *(f"CREATE INDEX IF NOT EXISTS ix_{t}_release ON {t} (release_id)" for t in _CHILD_TABLES),
    "CREATE INDEX IF NOT EXISTS ix_collection_items_release ON collection_items (release_id)",
    "CREATE INDEX IF NOT EXISTS ix_collection_items_user ON collection_items (username, folder_id)",
)

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
    r.community_rating_average, r.community_rating_count, ci.notes, r.fetched_at
FROM collection_items ci
LEFT JOIN releases r ON r.release_id = ci.release_id
LEFT JOIN artist_agg aa ON aa.release_id = ci.release_id
LEFT JOIN label_agg la ON la.release_id = ci.release_id
LEFT JOIN catno_agg ca ON ca.release_id = ci.release_id
LEFT JOIN genre_agg ga ON ga.release_id = ci.release_id
LEFT JOIN style_agg sa ON sa.release_id = ci.release_id
LEFT JOIN format_agg fa ON fa.release_id = ci.release_id"""


def _ddl(db: Database, statement: str) -> str:
    if db.engine == "duckdb":
        return statement
    return (
        statement.replace("BIGINT", "INTEGER")
        .replace("VARCHAR", "TEXT")
        .replace("DOUBLE", "REAL")
        .replace("TIMESTAMP", "TEXT")
    )


def _view_sql(db: Database) -> str:
    def agg(column: str, order: str) -> str:
        if db.engine == "duckdb":
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


def schema_version(db: Database) -> int:
    """The schema version stored in ``db`` (0 when the schema was never created)."""
    if not db.table_exists("schema_version"):
        return 0
    return int(db.scalar("SELECT max(version) FROM schema_version") or 0)


def create_schema(db: Database) -> int:
    """Create or upgrade the collection schema to :data:`SCHEMA_VERSION`; idempotent.

    Applies the missing migrations in one transaction, then (re)creates the ``collection`` view
    (one row per collection item, artists/labels/genres/... aggregated as ", "-joined text).
    A database written by a newer toolkit raises :class:`DatabaseError`. Returns the version.

    Conventions: multi-value fields are rows (one genre per row, never split on commas); year 0
    ("unknown" on Discogs) is NULL; in ``release_artists`` ``role IS NULL`` marks the release's
    main artists while credits (``extraartists``) carry their role text; ``position`` orders
    artists and formats; ``release_formats.descriptions`` and ``collection_items.notes`` hold the
    API's list as JSON text; ``tracks.sequence`` is the index in the tracklist (heading rows are
    kept, their empty position stored as NULL); ``fetched_at`` is naive UTC (TIMESTAMP on
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
        if not db.table_exists("schema_version"):
            db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            db.execute("INSERT INTO schema_version VALUES (0)")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                db.execute(_ddl(db, statement))
        if current != SCHEMA_VERSION:
            db.execute("UPDATE schema_version SET version = ?", [SCHEMA_VERSION])
        if db.engine == "sqlite":
            for statement in _SQLITE_INDEXES:
                db.execute(statement)
        db.execute("DROP VIEW IF EXISTS collection")
        db.execute(_view_sql(db))
    return SCHEMA_VERSION


# ------------------------------------------------------------------------------------ parsing


def _bad(where: str, message: str) -> CollectionDataError:
    return CollectionDataError(f"{where}: {message}")


#: Column ranges: INTEGER is 32-bit and BIGINT 64-bit on DuckDB; sqlite stores up to 64 bits.
#: Checking here, before any write, makes both engines accept and refuse the same values.
_INT32 = 2**31
_INT64 = 2**63
_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_FLOAT_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*", re.ASCII)


class _BadValue(Exception):
    """A scalar that cannot be stored; the caller adds where it is (index and ids) and re-raises
    it as :class:`CollectionDataError`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def within(self, prefix: str) -> _BadValue:
        return _BadValue(f"{prefix}.{self.field}", self.message)


def _id(value: Any, where: str) -> int:
    """A required positive integer id (a BIGINT)."""
    if type(value) is int and 0 < value < _INT64:
        return value
    if type(value) is str and _INT_TEXT.fullmatch(value) and 0 < int(value) < _INT64:
        return int(value)
    raise _bad(where, f"expected a positive integer id below 2**63, got {value!r}")


def _coerce_int(value: Any, field: str, limit: int) -> int | None:
    """The slow path of :func:`_opt_int`: text, floats, out-of-range and wrong-typed values."""
    if isinstance(value, bool):
        raise _BadValue(field, f"expected an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise _BadValue(field, f"expected an integer, got {value!r}")
        number = int(value)
    elif isinstance(value, str):
        if not value.strip():
            return None
        if not _INT_TEXT.fullmatch(value):
            raise _BadValue(field, f"expected an integer, got {value!r}")
        number = int(value)
    elif hasattr(value, "__index__"):
        number = operator.index(value)
    else:
        raise _BadValue(field, f"expected an integer, got {type(value).__name__} {value!r}")
    if not -limit <= number < limit:
        bits = 32 if limit == _INT32 else 64
        raise _BadValue(field, f"{number} does not fit the column (a {bits}-bit integer)")
    return number


def _opt_int(value: Any, field: str) -> int | None:
    """An optional 32-bit integer: None and blank text become None; ints, integral floats and
    integer text are accepted; anything else (``"--5"``, ``"²"``, ``3.5``, ``True``, a value
    beyond 32 bits) raises :class:`_BadValue`."""
    if type(value) is int and -_INT32 <= value < _INT32:
        return value
    if value is None:
        return None
    return _coerce_int(value, field, _INT32)


def _opt_big(value: Any, field: str) -> int | None:
    """:func:`_opt_int` for a 64-bit (BIGINT) column."""
    if type(value) is int and -_INT64 <= value < _INT64:
        return value
    if value is None:
        return None
    return _coerce_int(value, field, _INT64)


def _opt_id(value: Any, field: str) -> int | None:
    """An optional id (a BIGINT): 0 and negatives mean "none" in Discogs JSON and become None."""
    if type(value) is int and 0 < value < _INT64:
        return value
    if value is None:
        return None
    number = _coerce_int(value, field, _INT64)
    return number if number is not None and number > 0 else None


def _opt_float(value: Any, field: str) -> float | None:
    """An optional float: NaN becomes None (sqlite would store NULL, DuckDB NaN)."""
    if type(value) is float:
        return value if value == value else None
    if value is None:
        return None
    if isinstance(value, bool):
        raise _BadValue(field, f"expected a number, got {value!r}")
    if isinstance(value, str):
        if not value.strip():
            return None
        if not _FLOAT_TEXT.fullmatch(value):
            raise _BadValue(field, f"expected a number, got {value!r}")
    elif not isinstance(value, int | float):
        raise _BadValue(field, f"expected a number, got {type(value).__name__} {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise _BadValue(field, f"{value!r} is too large for a double") from None
    return number if number == number else None


def _text(value: Any) -> str | None:
    """Optional text: None and '' become None; other scalars are stringified."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    if isinstance(value, Mapping | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(where, f"expected an object, got {type(value).__name__}")
    return value


def _records(value: Any, where: str) -> list[Mapping[str, Any]]:
    """A list of objects (None → []); entries are checked here so loops can trust ``.get``."""
    if value is None:
        return []
    if type(value) is not list:
        raise _bad(where, f"expected a list, got {type(value).__name__}")
    for index, entry in enumerate(value):
        if type(entry) is not dict and not isinstance(entry, Mapping):
            raise _bad(f"{where}[{index}]", f"expected an object, got {type(entry).__name__}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if type(value) is not list:
        raise _bad(where, f"expected a list of strings, got {type(value).__name__}")
    seen: dict[str, None] = {}
    for entry in value:
        text = entry if type(entry) is str else _text(entry)
        if text:
            seen[text] = None
    return list(seen)


@lru_cache(maxsize=8192)
def _parse_duration(value: str) -> int | None:
    parts = value.strip().split(":")
    if len(parts) > 3:
        return None
    total = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()):
            return None
        total = total * 60 + int(part)
    return total if total < _INT32 else None


def _duration(value: Any) -> int | None:
    """``"3:25"`` → 205, ``"1:02:03"`` → 3723; empty or malformed → None."""
    if type(value) is not str or not value:
        return None
    return _parse_duration(value)


class _Rows:
    """Rows for every table a batch of releases touches, appended while parsing."""

    __slots__ = (
        "artist_names",
        "artists",
        "formats",
        "genres",
        "label_names",
        "labels",
        "releases",
        "styles",
        "tracks",
    )

    def __init__(self) -> None:
        self.releases: list[tuple[Any, ...]] = []
        self.artists: list[tuple[Any, ...]] = []
        self.artist_names: dict[int, str | None] = {}
        self.labels: list[tuple[Any, ...]] = []
        self.label_names: dict[int, str | None] = {}
        self.genres: list[tuple[int, str]] = []
        self.styles: list[tuple[int, str]] = []
        self.formats: list[tuple[Any, ...]] = []
        self.tracks: list[tuple[Any, ...]] = []

    def extend(self, other: _Rows) -> None:
        """Append another batch's rows (used to merge the basic_information batches kept)."""
        self.releases += other.releases
        self.artists += other.artists
        self.artist_names.update(other.artist_names)
        self.labels += other.labels
        self.label_names.update(other.label_names)
        self.genres += other.genres
        self.styles += other.styles
        self.formats += other.formats
        self.tracks += other.tracks


def _credit_rows(
    out: _Rows, rid: int, entries: list[Mapping[str, Any]], main: bool, key: str
) -> None:
    append, names = out.artists.append, out.artist_names
    for position, artist in enumerate(entries):
        get = artist.get
        try:
            artist_id = _opt_id(get("id"), "id")
        except _BadValue as exc:
            raise exc.within(f"{key}[{position}]") from None
        name = get("name")
        name = (name or None) if type(name) is str else _text(name)
        anv = get("anv")
        anv = (anv or None) if type(anv) is str else _text(anv)
        join = get("join")
        join = (join or None) if type(join) is str else _text(join)
        if artist_id is None:
            anv = anv or name  # keep the credited name when Discogs has no artist page for it
        else:
            names[artist_id] = name
        role = None if main else (_text(get("role")) or "")
        append((rid, artist_id, position, anv, join, role))


def _common(out: _Rows, rid: int, data: Mapping[str, Any], where: str) -> None:
    """Artists, labels, genres, styles and formats: shared by full releases and basic_information."""
    _credit_rows(out, rid, _records(data.get("artists"), f"{where}.artists"), True, "artists")
    for index, label in enumerate(_records(data.get("labels"), f"{where}.labels")):
        try:
            label_id = _opt_id(label.get("id"), "id")
        except _BadValue as exc:
            raise exc.within(f"labels[{index}]") from None
        if label_id is not None:
            out.label_names[label_id] = _text(label.get("name"))
        catno = label.get("catno")
        out.labels.append((rid, label_id, None if catno is None else str(catno)))
    out.genres += [(rid, g) for g in _strings(data.get("genres"), f"{where}.genres")]
    out.styles += [(rid, s) for s in _strings(data.get("styles"), f"{where}.styles")]
    for position, fmt in enumerate(_records(data.get("formats"), f"{where}.formats")):
        descriptions = fmt.get("descriptions")
        try:
            qty = _opt_int(fmt.get("qty"), "qty")
        except _BadValue as exc:
            raise exc.within(f"formats[{position}]") from None
        out.formats.append(
            (
                rid,
                position,
                _text(fmt.get("name")),
                qty,
                json.dumps(descriptions, ensure_ascii=False)
                if type(descriptions) is list
                else None,
                _text(fmt.get("text")),
            )
        )


def _year(value: Any) -> int | None:
    year = _opt_int(value, "year")
    return year if year else None  # 0 is Discogs' "unknown"


def _parse_release(out: _Rows, rid: int, data: Mapping[str, Any], where: str, stamp: Any) -> None:
    community = _mapping(data.get("community"), f"{where}.community")
    rating = _mapping(community.get("rating"), f"{where}.community.rating")
    out.releases.append(
        (
            rid,
            _text(data.get("title")),
            _year(data.get("year")),
            _text(data.get("country")),
            _text(data.get("released")),
            _opt_id(data.get("master_id"), "master_id"),
            _text(data.get("status")),
            _text(data.get("data_quality") or community.get("data_quality")),
            _opt_float(data.get("lowest_price"), "lowest_price"),
            _opt_int(data.get("num_for_sale"), "num_for_sale"),
            _opt_int(community.get("have"), "community.have"),
            _opt_int(community.get("want"), "community.want"),
            _opt_float(rating.get("average"), "community.rating.average"),
            _opt_int(rating.get("count"), "community.rating.count"),
            stamp,
        )
    )
    _common(out, rid, data, where)
    extra = _records(data.get("extraartists"), f"{where}.extraartists")
    _credit_rows(out, rid, extra, False, "extraartists")
    append = out.tracks.append
    for sequence, track in enumerate(_records(data.get("tracklist"), f"{where}.tracklist")):
        get = track.get
        position = get("position")
        position = (position or None) if type(position) is str else _text(position)
        title = get("title")
        title = (title or None) if type(title) is str else _text(title)
        kind = get("type_") or get("type")
        kind = kind if type(kind) is str else (_text(kind) or "track")
        append((rid, position, sequence, title, _duration(get("duration")), kind))


def _parse_item(
    index: int, item: Any, username: str | None
) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
    where = f"items[{index}]"
    item = _mapping(item, where)
    basic = _mapping(item.get("basic_information"), f"{where}.basic_information")
    instance_id = _id(item.get("instance_id"), f"{where}.instance_id")
    raw_id = item.get("id", basic.get("id"))
    release_id = _id(raw_id, f"{where}.id")
    if basic.get("id") is not None and _id(basic.get("id"), where) != release_id:
        raise _bad(where, f"id {raw_id!r} differs from basic_information.id {basic.get('id')!r}")
    notes = item.get("notes")
    try:
        folder_id = _opt_big(item.get("folder_id"), "folder_id")
        rating = _opt_int(item.get("rating"), "rating")
    except _BadValue as exc:
        raise _bad(
            f"{where}.{exc.field} (instance {instance_id}, release {release_id})", exc.message
        ) from None
    row = (
        instance_id,
        username if username is not None else _text(item.get("username")),
        folder_id,
        release_id,
        rating,
        _text(item.get("date_added")),
        None if notes is None or notes == [] else _text(notes),
    )
    return row, basic


def _parse_basic(rid: int, basic: Mapping[str, Any], where: str) -> _Rows:
    out = _Rows()
    try:
        out.releases.append(
            (
                rid,
                _text(basic.get("title")),
                _year(basic.get("year")),
                *(None,) * 2,
                _opt_id(basic.get("master_id"), "master_id"),
                *(None,) * 9,
            )
        )
        _common(out, rid, basic, where)
    except _BadValue as exc:
        raise _bad(f"{where}.{exc.field} (release {rid})", exc.message) from None
    return out


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
    return pa.table(
        [pa.array(values, type=kind) for (_, kind), values in zip(spec, columns, strict=True)],
        names=[name for name, _ in spec],
    )


def _ids_frame(db: Database, ids: Iterable[int], column: str = "release_id") -> Any:
    values = list(ids)
    if db.engine == "sqlite":
        return {column: values}
    return pa.table([pa.array(values, type=_BIG)], names=[column])


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


#: Conflict handling per table: (key, extra condition) for upserts; absent = plain insert.
_UPSERTS: dict[str, tuple[str, str | None]] = {
    # Never let basic_information (fetched_at NULL) replace a detailed release.
    "releases": ("release_id", "releases.fetched_at IS NULL OR excluded.fetched_at IS NOT NULL"),
    "collection_items": ("instance_id", None),
    "artists": ("artist_id", None),
    "labels": ("label_id", None),
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


def _write(db: Database, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert (or upsert) rows set-wise: Arrow + INSERT ... SELECT on DuckDB, executemany on sqlite.

    sqlite's ``executemany`` is already set-wise in effect: one prepared statement stepped in C
    for every row, no Python round trip per row, so it needs no frame. Text that is not valid
    Unicode raises :class:`CollectionDataError` on both engines (the transaction rolls back).
    """
    try:
        _insert(db, table, rows)
    except (UnicodeEncodeError, DatabaseError) as exc:
        if isinstance(exc, UnicodeEncodeError) or isinstance(exc.__cause__, UnicodeEncodeError):
            raise _unencodable(table, rows) from exc
        raise


def _insert(db: Database, table: str, rows: list[tuple[Any, ...]]) -> None:
    names = [name for name, _ in TABLES[table]]
    columns = ", ".join(names)
    conflict = ""
    if table in _UPSERTS:
        key, condition = _UPSERTS[table]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != key)
        where = f" WHERE {condition}" if condition else ""
        conflict = f" ON CONFLICT ({key}) DO UPDATE SET {updates}{where}"
    if db.engine == "sqlite":
        marks = ", ".join("?" * len(names))
        db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}){conflict}", rows)
        return
    with db.temp_table(f"_tk_{table}", _frame(db, table, rows)):
        # "WHERE true" keeps the parser from reading ON CONFLICT as part of the SELECT.
        db.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _tk_{table} WHERE true{conflict}"
        )


def load_collection(
    db: Database,
    items: Sequence[Mapping[str, Any]] = (),
    releases: Sequence[Mapping[str, Any]] = (),
    *,
    username: str | None = None,
    fetched_at: datetime | None = None,
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
    """
    with _gc_paused() if db.engine == "duckdb" else nullcontext():
        stamp = _storage_time(db, fetched_at if fetched_at is not None else datetime.now(UTC))
        unique: dict[int, tuple[int, Mapping[str, Any]]] = {}
        for index, data in enumerate(releases):
            data = _mapping(data, f"releases[{index}]")
            unique[_id(data.get("id"), f"releases[{index}].id")] = (index, data)
        out = _Rows()
        for rid, (index, data) in unique.items():
            where = f"releases[{index}]"
            try:
                _parse_release(out, rid, data, where, stamp)
            except _BadValue as exc:
                raise _bad(f"{where}.{exc.field} (release {rid})", exc.message) from None
        item_rows: dict[int, tuple[Any, ...]] = {}
        basics: dict[int, tuple[Mapping[str, Any], str]] = {}
        for index, item in enumerate(items):
            row, basic = _parse_item(index, item, username)
            item_rows[row[0]] = row
            if row[3] not in unique:
                basics[row[3]] = (basic, f"items[{index}].basic_information")
        parsed_basics = {
            rid: _parse_basic(rid, basic, where) for rid, (basic, where) in basics.items()
        }

        with db.transaction():
            if parsed_basics:
                with db.temp_table("_tk_ids", _ids_frame(db, parsed_basics)):
                    already = db.fetchall(
                        "SELECT release_id FROM releases WHERE fetched_at IS NOT NULL "
                        "AND release_id IN (SELECT release_id FROM _tk_ids)"
                    )
                for (rid,) in already:
                    del parsed_basics[rid]
            for basic_rows in parsed_basics.values():
                out.extend(basic_rows)
            rows: dict[str, list[tuple[Any, ...]]] = {
                "releases": out.releases,
                "collection_items": list(item_rows.values()),
                "release_artists": out.artists,
                "release_labels": out.labels,
                "release_genres": out.genres,
                "release_styles": out.styles,
                "release_formats": out.formats,
                "tracks": out.tracks,
                "artists": list(out.artist_names.items()),
                "labels": list(out.label_names.items()),
            }
            replaced = [row[0] for row in out.releases]
            with db.temp_table("_tk_ids", _ids_frame(db, replaced)):
                for table in _CHILD_TABLES:
                    db.execute(
                        f"DELETE FROM {table} WHERE release_id IN (SELECT release_id FROM _tk_ids)"
                    )
            for table, table_rows in rows.items():
                if table_rows:
                    _write(db, table, table_rows)
    return {table: len(table_rows) for table, table_rows in rows.items()}


# ------------------------------------------------------------------------ pull pipeline helpers


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
