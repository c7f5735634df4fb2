"""Load dump files into a new catalogue generation and swap it in atomically.

Each kind's files replace that kind's data; kinds not in the run are carried over (hard links).
A failed or interrupted load removes its temporary generation and leaves the live one as it was.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from toolkit.catalogue.parallel import ChunkResult, auto_workers, iter_chunks, parse_chunk, pool
from toolkit.catalogue.parse import DumpFile, Rows, Skips, inspect_dump, iter_records, open_dump
from toolkit.catalogue.parse import parse_record as _parse_record
from toolkit.catalogue.schema import CATALOGUE_TABLES, KIND_TABLES, KINDS, arrow_schema, sql_type
from toolkit.catalogue.store import catalogue_dir, current_generation, table_path
from toolkit.db import Database
from toolkit.errors import DatabaseError, DumpError

__all__ = [
    "CollectionRefs",
    "FileReport",
    "LoadProgress",
    "LoadReport",
    "collection_refs",
    "load_dumps",
]

#: Records parsed between two writes of row groups: bounds memory (~ tens of MB of rows).
BATCH_RECORDS = 10_000
_PROGRESS_EVERY = 1_000
_COMPRESSION = "zstd"
_MERGE_MEMORY = "128MB"  # DuckDB spills beyond it: the load stays under ~400 MiB


@dataclass(frozen=True)
class CollectionRefs:
    """What a collection database references: its releases and their masters, artists, labels."""

    release_ids: frozenset[int] = frozenset()
    master_ids: frozenset[int] = frozenset()
    artist_ids: frozenset[int] = frozenset()
    label_ids: frozenset[int] = frozenset()


def collection_refs(db: Database) -> CollectionRefs:
    """The releases in ``db``'s collection and the masters, artists and labels they reference."""
    items = "SELECT release_id FROM collection_items"

    def ids(sql: str) -> frozenset[int]:
        return frozenset(int(v) for (v,) in db.fetchall(sql) if v is not None)

    return CollectionRefs(
        release_ids=ids("SELECT DISTINCT release_id FROM collection_items"),
        master_ids=ids(f"SELECT DISTINCT master_id FROM releases WHERE release_id IN ({items})"),
        artist_ids=ids(
            f"SELECT DISTINCT artist_id FROM release_artists WHERE release_id IN ({items})"
        ),
        label_ids=ids(
            f"SELECT DISTINCT label_id FROM release_labels WHERE release_id IN ({items})"
        ),
    )


@dataclass(frozen=True)
class LoadProgress:
    """Where a load stands: bytes of the current file read (compressed) and records so far."""

    path: Path
    kind: str
    bytes_read: int
    bytes_total: int
    records: int


@dataclass(frozen=True)
class FileReport:
    """One file's load: records read and kept, what was skipped or repaired, and its time."""

    path: Path
    kind: str
    dump_date: date | None
    bytes: int
    records_read: int
    records: int
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class LoadReport:
    """A finished load: a report per file and the generation now live."""

    files: tuple[FileReport, ...]
    generation: Path
    seconds: float

    def summary(self) -> str:
        """One line: what was loaded, how fast, and what was skipped."""
        parts = []
        for report in self.files:
            when = report.dump_date.isoformat() if report.dump_date else "date unknown"
            kept = (
                f"{report.records:,} {report.kind}"
                if report.records == report.records_read
                else f"{report.records:,} of {report.records_read:,} {report.kind}"
            )
            parts.append(f"{kept} ({when})")
        records = sum(r.records_read for r in self.files)
        rate = records / self.seconds if self.seconds > 0 else 0.0
        skipped: dict[str, int] = {}
        for report in self.files:
            for reason, count in report.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
        line = (
            f"catalogue loaded: {', '.join(parts)} in {self.seconds:.1f} s ({rate:,.0f} records/s)"
        )
        if skipped:
            line += "; " + ", ".join(f"{reason}: {count:,}" for reason, count in skipped.items())
        return line


# ------------------------------------------------------------------------------------- writing


class _Writer:
    """One Parquet writer per file of a kind, fed in row groups of :data:`BATCH_RECORDS`."""

    def __init__(self, tables_dir: Path, names: Sequence[str]) -> None:
        self._schemas = {name: arrow_schema(name) for name in names}
        self._writers: dict[str, pq.ParquetWriter] = {}
        try:
            for name in names:
                self._writers[name] = pq.ParquetWriter(
                    tables_dir / f"{name}.parquet", self._schemas[name], compression=_COMPRESSION
                )
        except BaseException:
            self.close()
            raise

    def write_tables(self, tables: dict[str, pa.Table]) -> None:
        """Write tables a worker built (see :mod:`toolkit.catalogue.parallel`)."""
        for name, table in tables.items():
            self._writers[name].write_table(table)

    def write(self, rows: Rows) -> None:
        for name, table_rows in rows.items():
            if not table_rows:
                continue
            schema = self._schemas[name]
            columns = list(zip(*table_rows, strict=True))
            arrays = [
                pa.array(values, type=column.type)
                for column, values in zip(schema, columns, strict=True)
            ]
            self._writers[name].write_table(pa.Table.from_arrays(arrays, schema=schema))
            table_rows.clear()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()


def _as_of(dump_date: date | None) -> datetime | None:
    return None if dump_date is None else datetime(dump_date.year, dump_date.month, dump_date.day)


def _load_file(
    dump: DumpFile,
    tables_dir: Path,
    keep: set[int] | None,
    referenced: dict[str, set[int]] | None,
    progress: Callable[[LoadProgress], None] | None,
    workers: int | None = None,
) -> FileReport:
    """Stream one dump into its kind's Parquet files; ``referenced`` collects the ids kept
    releases point at (for ``--only-collection``). A big releases file is parsed by ``workers``
    processes (None: :func:`~toolkit.catalogue.parallel.auto_workers`; 0: in this process)."""
    if dump.kind == "releases":
        count = auto_workers(dump.size) if workers is None else workers
        if count > 0:
            return _load_releases_parallel(dump, tables_dir, keep, referenced, progress, count)
    started = time.perf_counter()
    skips = Skips()
    names = KIND_TABLES[dump.kind]
    rows: Rows = {name: [] for name in names}
    as_of = _as_of(dump.dump_date)
    read = kept = pending = 0
    writer = _Writer(tables_dir, names)

    def flush() -> None:
        if referenced is not None and dump.kind == "releases":
            referenced["masters"].update(r[5] for r in rows["releases"] if r[5] is not None)
            referenced["artists"].update(r[0] for r in rows["credit_artists"])
            referenced["labels"].update(r[0] for r in rows["credit_labels"])
        writer.write(rows)

    try:
        with open_dump(dump, skips) as reader:
            for element in iter_records(reader, dump.record_tag):
                read += 1
                if _parse_record(dump.kind, element, rows, skips, as_of=as_of, keep=keep):
                    kept += 1
                    pending += 1
                    if pending >= BATCH_RECORDS:
                        flush()
                        pending = 0
                if progress is not None and read % _PROGRESS_EVERY == 0:
                    progress(LoadProgress(dump.path, dump.kind, reader.position(), dump.size, read))
            flush()
            if progress is not None:
                progress(LoadProgress(dump.path, dump.kind, dump.size, dump.size, read))
    finally:
        writer.close()
    return _file_report(dump, read, kept, skips, started)


def _load_releases_parallel(
    dump: DumpFile,
    tables_dir: Path,
    keep: set[int] | None,
    referenced: dict[str, set[int]] | None,
    progress: Callable[[LoadProgress], None] | None,
    workers: int,
) -> FileReport:
    """:func:`_load_file` for releases, parsed in ``workers`` processes (results kept in order)."""
    started = time.perf_counter()
    skips = Skips()
    names = KIND_TABLES[dump.kind]
    read = kept = 0
    writer = _Writer(tables_dir, names)

    def take(result: ChunkResult) -> None:
        nonlocal read, kept
        tables, counts, chunk_read, chunk_kept, error = result
        if error is not None:
            raise DumpError(f"{dump.path}: {error}", path=str(dump.path))
        if referenced is not None:
            if "releases" in tables:
                masters = tables["releases"].column("master_id").drop_null().to_pylist()
                referenced["masters"].update(masters)
            for table, kind in (("credit_artists", "artists"), ("credit_labels", "labels")):
                if table in tables:
                    referenced[kind].update(tables[table].column(0).to_pylist())
        writer.write_tables(tables)
        for reason, count in counts.items():
            skips.add(reason, count)
        read += chunk_read
        kept += chunk_kept

    try:
        # The pool first: its processes are forked before the inflating thread starts.
        with pool(workers, _as_of(dump.dump_date), keep) as parsers:
            with open_dump(dump, skips) as reader:
                waiting: deque[Any] = deque()
                for chunk in iter_chunks(reader):
                    waiting.append(parsers.apply_async(parse_chunk, (chunk,)))
                    # Bounded: a few chunks in flight per worker, never the whole file.
                    while len(waiting) > 2 * workers or (waiting and waiting[0].ready()):
                        take(waiting.popleft().get())
                        if progress is not None:
                            progress(LoadProgress(dump.path, dump.kind, reader.position(),
                                                  dump.size, read))  # fmt: skip
                while waiting:
                    take(waiting.popleft().get())
            if progress is not None:
                progress(LoadProgress(dump.path, dump.kind, dump.size, dump.size, read))
    finally:
        writer.close()
    return _file_report(dump, read, kept, skips, started)


# --------------------------------------------------------------------------- the generation


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One load at a time per catalogue folder (an advisory lock on ``.lock``)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, loads must not overlap
        yield
        return
    with (root / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise DumpError(f"another catalogue load is running in {root}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _link(source: Path, target: Path) -> None:
    """Carry a file into the new generation without copying it where the file system allows."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _quote(path: Path) -> str:
    return "'" + str(path.resolve()).replace("'", "''") + "'"


def _merge_named(work: Database, tables_dir: Path, table: str, records: str, credits: str) -> None:
    """``artists``/``labels``: the dump's records, plus ids only known from release credits."""
    key = CATALOGUE_TABLES[table][0][0]
    extra = ", ".join(
        f"NULL::{sql_type(kind, 'duckdb')} AS {name}" for name, kind in CATALOGUE_TABLES[table][2:]
    )
    own, credited = (
        _quote(tables_dir / f"{records}.parquet"),
        _quote(tables_dir / f"{credits}.parquet"),
    )
    work.execute(
        f"""COPY (
            SELECT * FROM read_parquet({own})
            UNION ALL
            SELECT c.{key}, min(c.name) AS name, {extra} FROM read_parquet({credited}) c
            WHERE c.{key} NOT IN (SELECT {key} FROM read_parquet({own}))
            GROUP BY c.{key}
        ) TO {_quote(table_path(tables_dir.parent, table))} (FORMAT parquet, COMPRESSION zstd)"""
    )


def _referenced_by_catalogue(
    work: Database, tables_dir: Path, release_ids: Iterable[int], referenced: dict[str, set[int]]
) -> None:
    """Add the masters, artists and labels the catalogue's copy of these releases references."""
    ids = pa.table({"release_id": pa.array(sorted(release_ids), type=pa.int64())})
    queries = {
        "masters": ("releases", "master_id"),
        "artists": ("release_artists", "artist_id"),
        "labels": ("release_labels", "label_id"),
    }
    with work.temp_table("_keep", ids):
        for kind, (table, column) in queries.items():
            source = _quote(tables_dir / f"{table}.parquet")
            rows = work.fetchall(
                f"SELECT DISTINCT {column} FROM read_parquet({source}) "
                f"WHERE release_id IN (SELECT release_id FROM _keep) AND {column} IS NOT NULL"
            )
            referenced[kind].update(int(v) for (v,) in rows)


def _dumps_rows(
    previous: Path | None, loaded: Sequence[FileReport], only: bool, now: datetime
) -> pa.Table:
    schema = arrow_schema("dumps")
    replaced = {report.kind for report in loaded}
    rows: list[dict[str, Any]] = []
    if previous is not None and table_path(previous, "dumps").is_file():
        old = pq.read_table(table_path(previous, "dumps"), schema=schema).to_pylist()
        rows += [row for row in old if row["kind"] not in replaced]
    for report in loaded:
        rows.append(
            {
                "kind": report.kind,
                "dump_date": report.dump_date,
                "file_name": report.path.name,
                "bytes": report.bytes,
                "records": report.records,
                "records_read": report.records_read,
                "skipped": report.skipped.get("records without an id skipped", 0),
                "only_collection": only,
                "loaded_at": now,
            }
        )
    rows.sort(key=lambda row: KINDS.index(row["kind"]))
    return pa.Table.from_pylist(rows, schema=schema)


def load_dumps(
    paths: Sequence[str | os.PathLike[str]],
    data_dir: str | os.PathLike[str],
    *,
    only: CollectionRefs | None = None,
    progress: Callable[[LoadProgress], None] | None = None,
    now: datetime | None = None,
    workers: int | None = None,
) -> LoadReport:
    """Load dump files (any of the four kinds, one file per kind) into ``<data_dir>/catalogue``.

    Every file is identified before anything is written; the new generation replaces the live
    one only when all files loaded, so a failure (:class:`DumpError`) or Ctrl-C leaves the
    previous catalogue as it was. Data and ``dumps`` rows replace per kind: loading the same
    file again gives the same tables. With ``only``, just those releases and the masters,
    artists and labels they (or the collection) reference are kept. ``workers`` processes parse
    a releases file (None: automatic, for files of 8 MiB and more; 0: none).
    """
    if not paths:
        raise DumpError("no dump files given")
    started = time.perf_counter()
    dumps = [inspect_dump(Path(p)) for p in paths]
    by_kind: dict[str, DumpFile] = {}
    for dump in dumps:
        if dump.kind in by_kind:
            raise DumpError(
                f"two {dump.kind} dumps in one load ({by_kind[dump.kind].path.name}, "
                f"{dump.path.name}): give one file per kind"
            )
        by_kind[dump.kind] = dump
    stamp = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    root = catalogue_dir(data_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DumpError(f"cannot create {root}: {exc.strerror or exc}") from None
    with _exclusive(root):
        for stale in root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        previous = current_generation(root)
        name = f"gen-{stamp:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        temp = root / f".tmp-{name}"
        tables_dir = temp / "tables"
        tables_dir.mkdir(parents=True)
        try:
            reports = _build(by_kind, previous, tables_dir, only, progress, workers)
            pq.write_table(
                _dumps_rows(previous, reports, only is not None, stamp), table_path(temp, "dumps")
            )
            generation = root / name
            temp.rename(generation)
            pointer = root / ".CURRENT.tmp"
            pointer.write_text(name + "\n", encoding="utf-8")
            os.replace(pointer, root / "CURRENT")
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        for old in root.glob("gen-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    return LoadReport(tuple(reports), generation, time.perf_counter() - started)


def _build(
    by_kind: dict[str, DumpFile],
    previous: Path | None,
    tables_dir: Path,
    only: CollectionRefs | None,
    progress: Callable[[LoadProgress], None] | None,
    workers: int | None = None,
) -> list[FileReport]:
    reports: list[FileReport] = []
    referenced: dict[str, set[int]] | None = None
    if only is not None:
        referenced = {
            "masters": set(only.master_ids),
            "artists": set(only.artist_ids),
            "labels": set(only.label_ids),
        }
    # Releases first, before DuckDB (and its threads) start: parsing workers fork from here.
    releases = by_kind.get("releases")
    releases_report = None
    if releases is not None:
        keep_releases = None if only is None else set(only.release_ids)
        releases_report = _load_file(
            releases, tables_dir, keep_releases, referenced, progress, workers
        )
    with Database.connect(":memory:", engine="duckdb") as work:
        try:
            work.execute(f"SET memory_limit = '{_MERGE_MEMORY}'")
            work.execute(f"SET temp_directory = {_quote(tables_dir.parent / 'spill')}")
            work.execute("SET preserve_insertion_order = false")
            for kind in KINDS:
                dump = by_kind.get(kind)
                if releases_report is not None and kind == "releases":
                    reports.append(releases_report)
                elif dump is not None:
                    keep = None
                    if only is not None and referenced is not None:
                        keep = set(only.release_ids) if kind == "releases" else referenced[kind]
                    reports.append(
                        _load_file(dump, tables_dir, keep, referenced, progress, workers)
                    )
                else:
                    _carry_over(kind, previous, tables_dir)
                    if kind == "releases" and referenced is not None and only is not None:
                        _referenced_by_catalogue(work, tables_dir, only.release_ids, referenced)
            _merge_named(work, tables_dir, "artists", "artist_records", "credit_artists")
            _merge_named(work, tables_dir, "labels", "label_records", "credit_labels")
        except DatabaseError as exc:
            raise DumpError(f"cannot write the catalogue: {exc}") from exc
    shutil.rmtree(tables_dir.parent / "spill", ignore_errors=True)
    return reports


def _carry_over(kind: str, previous: Path | None, tables_dir: Path) -> None:
    """Link the previous generation's files of ``kind`` (or write empty ones) into the new one."""
    for name in KIND_TABLES[kind]:
        target = tables_dir / f"{name}.parquet"
        source = None if previous is None else previous / "tables" / f"{name}.parquet"
        if source is not None and source.is_file():
            _link(source, target)
        else:
            pq.write_table(arrow_schema(name).empty_table(), target)


def _file_report(dump: DumpFile, read: int, kept: int, skips: Skips, started: float) -> FileReport:
    """The report of one loaded file; a file without a single record is not a dump of its kind."""
    if read == 0:
        raise DumpError(f"{dump.path}: no <{dump.record_tag}> records", path=str(dump.path))
    return FileReport(
        dump.path,
        dump.kind,
        dump.dump_date,
        dump.size,
        read,
        kept,
        dict(skips.counts),
        time.perf_counter() - started,
    )
