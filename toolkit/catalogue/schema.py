"""The ``catalogue`` schema: every table's columns with Arrow types, and which dump kind fills it.

Tables named like the collection's have exactly the collection's columns and types (taken from
:data:`toolkit.collection.TABLES`); ``artists`` and ``labels`` add the dumps' own fields after them.
"""

from __future__ import annotations

import pyarrow as pa

from toolkit.collection import TABLES as _COLLECTION_TABLES

__all__ = [
    "CATALOGUE_TABLES",
    "FILE_COLUMNS",
    "KINDS",
    "KIND_TABLES",
    "RECORD_TAGS",
    "arrow_schema",
    "sql_type",
]

#: The four kinds of monthly dump, in the order a run loads them (releases first: with
#: ``--only-collection`` they decide which masters, artists and labels are kept).
KINDS: tuple[str, ...] = ("releases", "masters", "artists", "labels")

#: Root element of each kind's file -> the element of one record.
RECORD_TAGS: dict[str, str] = {
    "releases": "release",
    "masters": "master",
    "artists": "artist",
    "labels": "label",
}

_BIG, _INT, _TXT, _TS, _DATE, _BOOL = (
    pa.int64(),
    pa.int32(),
    pa.string(),
    pa.timestamp("us"),
    pa.date32(),
    pa.bool_(),
)

_SAME_AS_COLLECTION = (
    "releases",
    "release_artists",
    "release_labels",
    "release_genres",
    "release_styles",
    "release_formats",
    "tracks",
)

#: Every catalogue table's columns and Arrow types.
CATALOGUE_TABLES: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    **{name: _COLLECTION_TABLES[name] for name in _SAME_AS_COLLECTION},
    "artists": (
        *_COLLECTION_TABLES["artists"],
        ("realname", _TXT),
        ("profile", _TXT),
        ("data_quality", _TXT),
        ("urls", _TXT),
        ("name_variations", _TXT),
    ),
    "labels": (
        *_COLLECTION_TABLES["labels"],
        ("profile", _TXT),
        ("contact_info", _TXT),
        ("parent_label_id", _BIG),
        ("parent_label_name", _TXT),
        ("data_quality", _TXT),
        ("urls", _TXT),
    ),
    "masters": (
        ("master_id", _BIG),
        ("main_release", _BIG),
        ("title", _TXT),
        ("year", _INT),
        ("data_quality", _TXT),
    ),
    "dumps": (
        ("kind", _TXT),
        ("dump_date", _DATE),
        ("file_name", _TXT),
        ("bytes", _BIG),
        ("records", _BIG),
        ("records_read", _BIG),
        ("skipped", _BIG),
        ("only_collection", _BOOL),
        ("loaded_at", _TS),
    ),
}

#: Files each kind writes. ``credit_*`` hold (id, name) of the artists and labels a release
#: credits, so ``artists``/``labels`` have names even without their own dump; they are merged
#: into those tables at the end of every load and are not tables of the schema.
KIND_TABLES: dict[str, tuple[str, ...]] = {
    "releases": (*_SAME_AS_COLLECTION, "credit_artists", "credit_labels"),
    "masters": ("masters",),
    "artists": ("artist_records",),
    "labels": ("label_records",),
}

#: Column layouts of the files that are not schema tables.
FILE_COLUMNS: dict[str, tuple[tuple[str, pa.DataType], ...]] = {
    **CATALOGUE_TABLES,
    "credit_artists": _COLLECTION_TABLES["artists"],
    "credit_labels": _COLLECTION_TABLES["labels"],
    "artist_records": CATALOGUE_TABLES["artists"],
    "label_records": CATALOGUE_TABLES["labels"],
}


def arrow_schema(name: str) -> pa.Schema:
    """The Arrow schema of a catalogue table or kind file."""
    return pa.schema([pa.field(column, kind) for column, kind in FILE_COLUMNS[name]])


_DUCKDB_TYPES = {
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us"): "TIMESTAMP",
    pa.date32(): "DATE",
}
# sqlite follows the collection's mapping (toolkit.collection._ddl): timestamps and dates as text.
_SQLITE_TYPES = {
    pa.int64(): "INTEGER",
    pa.int32(): "INTEGER",
    pa.string(): "TEXT",
    pa.float64(): "REAL",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us"): "TEXT",
    pa.date32(): "TEXT",
}


def sql_type(kind: pa.DataType, engine: str) -> str:
    """The column type an engine declares for an Arrow type (as the collection's DDL does)."""
    return (_DUCKDB_TYPES if engine == "duckdb" else _SQLITE_TYPES)[kind]
