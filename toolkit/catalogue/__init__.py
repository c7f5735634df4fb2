"""The catalogue: Discogs' monthly data dumps, streamed into a local ``catalogue`` schema.

``load_dumps`` loads dump files into ``<data_dir>/catalogue`` (Parquet, swapped in atomically);
``attach`` makes it queryable as ``catalogue.*`` from a DuckDB or sqlite :class:`~toolkit.db.Database`.
"""

from __future__ import annotations

from toolkit.catalogue.load import (
    CollectionRefs,
    FileReport,
    LoadProgress,
    LoadReport,
    collection_refs,
    load_dumps,
)
from toolkit.catalogue.parse import DumpFile, inspect_dump
from toolkit.catalogue.schema import CATALOGUE_TABLES, KINDS
from toolkit.catalogue.store import SCHEMA, attach, catalogue_dir, current_generation, detach

__all__ = [
    "CATALOGUE_TABLES",
    "KINDS",
    "SCHEMA",
    "CollectionRefs",
    "DumpFile",
    "FileReport",
    "LoadProgress",
    "LoadReport",
    "attach",
    "catalogue_dir",
    "collection_refs",
    "current_generation",
    "detach",
    "inspect_dump",
    "load_dumps",
]
