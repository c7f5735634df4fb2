"""Finding and opening the collection database for reading: the CLI's stats/query and the notebooks.

Which file is the caller's to say (a path, or the settings holding the data dir); nothing here reads
the environment. Every connection made here also sees the local catalogue (``catalogue.*``).
"""

from __future__ import annotations

from pathlib import Path

from toolkit.collection import check_schema, schema_version
from toolkit.config import Settings
from toolkit.db import Database
from toolkit.errors import DatabaseError

__all__ = ["connect", "resolve_database"]


def resolve_database(
    database: str | Path | None = None, *, settings: Settings | None = None
) -> Path:
    """``database`` as a path; None means ``settings.database_path`` (default settings if None)."""
    if database is not None:
        return Path(database).expanduser()
    return (settings if settings is not None else Settings()).database_path


def connect(
    database: str | Path | None = None,
    *,
    settings: Settings | None = None,
    read_only: bool = True,
    require_schema: bool = False,
    catalogue: bool = True,
) -> Database:
    """Open the collection database (see :func:`resolve_database`), read-only unless asked; it must exist.

    A collection database whose tables were dropped by hand raises
    :class:`~toolkit.errors.SchemaIncompleteError` naming them and the repair. With
    ``require_schema`` a database without the toolkit's tables (an unrelated DuckDB or sqlite
    file) is refused with a :class:`DatabaseError` saying so.

    With ``catalogue`` (the default) the catalogue is attached as schema ``catalogue`` (empty
    tables before any ``catalogue load``): the one of ``settings.data_dir`` when settings are
    given, else of the database's own folder (where the default data dir keeps both).
    """
    path = resolve_database(database, settings=settings)
    if not path.exists():
        raise DatabaseError(f"no database at {path}; run `discogs-toolkit pull` first")
    db = Database.connect(path, read_only=read_only)
    try:
        check_schema(db)
        if require_schema and not (schema_version(db) > 0 and db.table_exists("collection_items")):
            raise DatabaseError(
                f"{path} is not a discogs-toolkit database; run `discogs-toolkit pull` first"
            )
        if catalogue:
            from toolkit.catalogue.store import attach

            attach(db, settings.data_dir if settings is not None else path.parent)
    except BaseException:
        db.close()
        raise
    return db
