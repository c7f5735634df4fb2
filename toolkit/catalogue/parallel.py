"""A releases dump parsed by worker processes, for files big enough to pay for them.

The main process still inflates, cleans and prunes the stream (:class:`~toolkit.catalogue.parse.DumpReader`)
and writes the Parquet files; it cuts the cleaned XML into chunks of whole ``<release>`` records,
which forked workers parse into rows and Arrow tables (lxml and the record parser hold the GIL,
so threads would not help). Chunks are handed back in order, so the tables are the same as a
sequential load's. Workers are forked before the inflating thread starts: they start at once and
share the main process's imported modules.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pyarrow as pa
from lxml import etree

from toolkit.catalogue.parse import DumpReader, Rows, Skips, parse_record
from toolkit.catalogue.schema import KIND_TABLES, arrow_schema

__all__ = [
    "CHUNK_BYTES",
    "MIN_BYTES",
    "ChunkResult",
    "auto_workers",
    "iter_chunks",
    "pool",
    "rows_table",
]

#: Cleaned XML per chunk: a few hundred to a few thousand releases, a few MB of rows.
CHUNK_BYTES = 4 << 20
#: Compressed size from which a releases file is parsed in workers (below, starting them costs more).
MIN_BYTES = 8 << 20
_CLOSE = b"</release>"
_ROOT_OPEN = re.compile(rb"<releases\b[^>]*>")
_ROOT_CLOSE = b"</releases>"
_PARSER_OPTIONS: dict[str, Any] = {"resolve_entities": False, "no_network": True, "huge_tree": True}

#: Set in each worker by :func:`_init`: the releases' as-of stamp and the ids to keep.
_STATE: dict[str, Any] = {}

#: What a worker hands back: tables by file name, skip counts, records read and kept, an error.
ChunkResult = tuple[dict[str, pa.Table], dict[str, int], int, int, str | None]


def auto_workers(size: int) -> int:
    """Worker processes for a releases file of ``size`` compressed bytes (0: parse in-process)."""
    if size < MIN_BYTES or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    # One core stays the main process's (inflating, cleaning, writing): on 2 cores one worker
    # nearly doubles the speed, a second adds ~20 % for ~100 MiB more.
    return max(1, min(3, (os.cpu_count() or 1) - 1))


def rows_table(name: str, rows: list[tuple[Any, ...]]) -> pa.Table:
    """Rows of the catalogue file ``name`` as an Arrow table of its schema."""
    schema = arrow_schema(name)
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    arrays = [pa.array(values, type=f.type) for f, values in zip(schema, columns, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def iter_chunks(reader: DumpReader, size: int | None = None) -> Iterator[bytes]:
    """The records of a releases dump, about ``size`` bytes of whole ``<release>`` elements at a time.

    The prolog and the root's tags are left out (a worker wraps each chunk in a root of its own).
    A file whose root is not closed ends with a chunk that does not parse: the same error as a
    sequential load.
    """
    size = CHUNK_BYTES if size is None else size
    buffer = b""
    started = False
    while data := reader.read():
        buffer += data
        if not started:
            match = _ROOT_OPEN.search(buffer)
            if match is None:
                continue
            buffer, started = buffer[match.end() :], True
        if len(buffer) >= size:
            cut = buffer.rfind(_CLOSE)
            if cut >= 0:
                cut += len(_CLOSE)
                yield buffer[:cut]
                buffer = buffer[cut:]
    tail = buffer.rstrip()
    if tail.endswith(_ROOT_CLOSE):
        tail = tail[: -len(_ROOT_CLOSE)]
        if tail.strip():
            yield tail
    else:
        yield tail + b"<release"  # unclosed root: make the chunk fail as the whole file would


def _init(as_of: datetime | None, keep: set[int] | None) -> None:
    _STATE["as_of"] = as_of
    _STATE["keep"] = keep


def parse_chunk(chunk: bytes) -> ChunkResult:
    """Parse one chunk of releases into tables (in a worker); an XML error comes back as text."""
    names = KIND_TABLES["releases"]
    rows: Rows = {name: [] for name in names}
    skips = Skips()
    try:
        root = etree.fromstring(
            b"<releases>" + chunk + _ROOT_CLOSE, etree.XMLParser(**_PARSER_OPTIONS)
        )
    except etree.XMLSyntaxError as exc:
        return {}, {}, 0, 0, f"not well-formed XML ({exc})"
    read = kept = 0
    as_of, keep = _STATE.get("as_of"), _STATE.get("keep")
    for element in root:
        if element.tag != "release":
            continue
        read += 1
        if parse_record("releases", element, rows, skips, as_of=as_of, keep=keep):
            kept += 1
    tables = {name: rows_table(name, rows[name]) for name in names if rows[name]}
    return tables, dict(skips.counts), read, kept, None


@contextmanager
def pool(workers: int, as_of: datetime | None, keep: set[int] | None) -> Iterator[Any]:
    """``workers`` forked processes ready for :func:`parse_chunk`; stopped on the way out."""
    context = multiprocessing.get_context("fork")
    workers_pool = context.Pool(workers, initializer=_init, initargs=(as_of, keep))
    try:
        yield workers_pool
        workers_pool.close()
    finally:
        workers_pool.terminate()
        workers_pool.join()
