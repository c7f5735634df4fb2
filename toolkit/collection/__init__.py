"""The collection database: its schema (:mod:`.schema`), Discogs JSON to rows (:mod:`.parsing`) and
the loader with the pull's helpers (:mod:`.loading`)."""

from __future__ import annotations

from toolkit.collection.loading import (
    NameMemo,
    clear_failures,
    delete_release_rows,
    failure_ids,
    known_release_ids,
    load_collection,
    permanent_failure_ids,
    record_failure,
    remove_missing_items,
)
from toolkit.collection.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    SchemaRepair,
    check_schema,
    create_schema,
    missing_tables,
    repair_schema,
    schema_version,
)
from toolkit.errors import CollectionDataError, SchemaIncompleteError

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "TABLES",
    "CollectionDataError",
    "NameMemo",
    "SchemaIncompleteError",
    "SchemaRepair",
    "check_schema",
    "clear_failures",
    "create_schema",
    "delete_release_rows",
    "failure_ids",
    "known_release_ids",
    "load_collection",
    "missing_tables",
    "permanent_failure_ids",
    "record_failure",
    "remove_missing_items",
    "repair_schema",
    "schema_version",
]
