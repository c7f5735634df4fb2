"""The catalogue: Discogs' monthly data dumps, streamed into a local ``catalogue`` schema.

``load_dumps`` loads dump files into ``<data_dir>/catalogue`` (Parquet, swapped in atomically);
``attach`` makes it queryable as ``catalogue.*`` from a DuckDB or sqlite :class:`~toolkit.db.Database`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolkit.lazy import lazy_exports

if TYPE_CHECKING:
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

#: Where each public name lives: imported on first use, so a pull that only asks whether a
#: catalogue is there does not load lxml and the dump parser.
_HOME = {
    **dict.fromkeys(
        [
            "CollectionRefs",
            "FileReport",
            "LoadProgress",
            "LoadReport",
            "collection_refs",
            "load_dumps",
        ],
        "load",
    ),
    **dict.fromkeys(["DumpFile", "inspect_dump"], "parse"),
    **dict.fromkeys(["CATALOGUE_TABLES", "KINDS"], "schema"),
    **dict.fromkeys(["SCHEMA", "attach", "catalogue_dir", "current_generation", "detach"], "store"),
}


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

__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
