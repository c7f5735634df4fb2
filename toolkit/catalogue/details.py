"""Release details from the catalogue: copy the dump's rows of given releases into the collection.

A pull with ``--details-from auto`` (or ``catalogue``) takes every release the attached catalogue
holds from here, set-wise (one ``INSERT ... SELECT`` per table, on DuckDB and sqlite alike), and
asks the API only for the rest. Copied ``releases`` rows carry ``source = 'catalogue'`` and
``fetched_at`` = the dump's date (their as-of date); the fields the dump lacks (community
have/want/rating, lowest_price, num_for_sale) stay NULL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from toolkit.collection.schema import CHILD_TABLES, TABLES
from toolkit.db import Database
from toolkit.errors import DatabaseError

__all__ = [
    "DETAILS_FROM",
    "catalogue_as_of",
    "catalogue_sourced_ids",
    "copy_from_catalogue",
]

#: The values of ``pull --details-from``: both sources, only the catalogue, only the API.
DETAILS_FROM: tuple[str, ...] = ("auto", "catalogue", "api")

_IDS = "_tk_catalogue_ids"


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


def catalogue_as_of(db: Database) -> datetime | None:
    """The as-of date of the catalogue attached to ``db`` (its releases dump's date, else when it
    was loaded), or None when no catalogue is attached or no releases dump was loaded."""
    try:
        row = db.fetchone(
            "SELECT dump_date, loaded_at FROM catalogue.dumps WHERE kind = 'releases' "
            "ORDER BY loaded_at DESC LIMIT 1"
        )
    except DatabaseError:  # not attached
        return None
    if row is None:
        return None
    return _as_datetime(row[0]) or _as_datetime(row[1])


def catalogue_sourced_ids(db: Database) -> set[int]:
    """Releases of the collection whose details came from the catalogue."""
    rows = db.fetchall("SELECT release_id FROM releases WHERE source = 'catalogue'")
    return {int(rid) for (rid,) in rows}


def _ids_frame(db: Database, ids: Iterable[int]) -> Any:
    values = sorted({int(i) for i in ids})
    if db.engine == "sqlite":
        return {"release_id": values}
    return pa.table([pa.array(values, type=pa.int64())], names=["release_id"])


def _stamp(db: Database, moment: datetime) -> Any:
    # As toolkit.collection stores timestamps: a datetime on DuckDB, fixed-width text on sqlite.
    return moment if db.engine == "duckdb" else moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def copy_from_catalogue(db: Database, release_ids: Iterable[int], as_of: datetime) -> set[int]:
    """Copy the catalogue's rows of those ``release_ids`` it holds into the collection tables, in
    one transaction; returns the ids copied.

    Upserts like the loader: a copied release replaces its ``releases`` row and all its child rows
    (artists, labels, genres, styles, formats, tracks); artist and label names are upserted.
    ``source`` is ``'catalogue'``; ``fetched_at`` is the row's dump date, or ``as_of`` where the
    dump's date was unknown. ``db`` must have the catalogue attached (see
    :func:`toolkit.catalogue.attach`).
    """
    wanted = _ids_frame(db, release_ids)
    if not len(wanted["release_id"]):
        return set()
    in_ids = f"release_id IN (SELECT release_id FROM {_IDS})"
    with db.temp_table(_IDS, wanted):
        found = db.fetchall(f"SELECT DISTINCT release_id FROM catalogue.releases WHERE {in_ids}")
    held = {int(rid) for (rid,) in found}
    if not held:
        return set()
    with db.transaction(), db.temp_table(_IDS, _ids_frame(db, held)):
        for table in CHILD_TABLES:
            db.execute(f"DELETE FROM {table} WHERE {in_ids}")
        # Named columns, not *: a catalogue generation loaded before releases.source existed
        # lacks it, and the literal makes every copied row say where it came from anyway.
        names = [name for name, _ in TABLES["releases"]]
        chosen = ", ".join(
            "'catalogue'"
            if n == "source"
            else "COALESCE(fetched_at, ?)"
            if n == "fetched_at"
            else n
            for n in names
        )
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "release_id")
        db.execute(
            f"INSERT INTO releases ({', '.join(names)}) SELECT {chosen} FROM catalogue.releases "
            f"WHERE {in_ids} ON CONFLICT (release_id) DO UPDATE SET {updates}",
            [_stamp(db, as_of)],
        )
        for table in CHILD_TABLES:
            columns = ", ".join(name for name, _ in TABLES[table])
            db.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM catalogue.{table} "
                f"WHERE {in_ids}"
            )
        for table, key, via in (
            ("artists", "artist_id", "release_artists"),
            ("labels", "label_id", "release_labels"),
        ):
            # Grouped: one row per key, as an upsert of a set must have (DuckDB refuses repeats).
            db.execute(
                f"INSERT INTO {table} ({key}, name) SELECT {key}, max(name) FROM catalogue.{table} "
                f"WHERE name IS NOT NULL AND {key} IN (SELECT {key} FROM {via} WHERE {in_ids}) "
                f"GROUP BY {key} ON CONFLICT ({key}) DO UPDATE SET name = excluded.name"
            )
    return held
