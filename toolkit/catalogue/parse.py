"""Stream records out of a Discogs monthly dump (``.xml.gz`` or ``.xml``) into table rows.

The file is inflated on the fly (in a thread), cleaned of the characters XML 1.0 forbids and of
elements no table uses, and parsed by lxml's ``iterparse`` one record at a time: nothing is
decompressed to disk, and each record leaves the tree once its rows are taken.
"""

from __future__ import annotations

import gzip
import json
import queue
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from lxml import etree

from toolkit.catalogue.schema import KINDS, RECORD_TAGS
from toolkit.errors import DumpError

__all__ = [
    "DumpFile",
    "DumpReader",
    "Rows",
    "Skips",
    "inspect_dump",
    "iter_records",
    "open_dump",
    "parse_record",
]

_NAME = re.compile(r"discogs_(\d{8})_([a-z]+)\.xml(?:\.gz)?", re.IGNORECASE)
_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_PEEK = 65536
_GZIP_MAGIC = b"\x1f\x8b"
#: Control characters XML 1.0 forbids (all of C0 but tab, newline and carriage return), raw ...
_FORBIDDEN = bytes(b for b in range(0x20) if b not in (0x09, 0x0A, 0x0D))
#: ... and as character references (``&#7;``, ``&#x07;``), which lxml rejects just the same.
_FORBIDDEN_REF = re.compile(
    rb"&#(?:0*(?:[0-8]|1[124-9]|2[0-9]|3[01])|[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F]));"
)
_REF_MAX = 12
#: Elements no catalogue table reads, dropped from the byte stream before lxml builds them:
#: with the per-track credits (:data:`_TRACK_CREDITS`), about half of a releases dump's XML.
_PRUNED = tuple(
    (f"<{name}>".encode(), f"</{name}>".encode())
    for name in ("images", "videos", "identifiers", "companies", "notes")
)
_TRACK_CREDITS = ((b"<extraartists>", b"</extraartists>"), (b"<artists>", b"</artists>"))
_READ = 1 << 20
_INT32 = 2**31
_INT64 = 2**63


@dataclass(frozen=True)
class DumpFile:
    """One dump file: its kind (from the root element), date (from the name, or None), size."""

    path: Path
    kind: str
    dump_date: date | None
    compressed: bool
    size: int

    @property
    def record_tag(self) -> str:
        """The element of one record (``release`` in a releases dump)."""
        return RECORD_TAGS[self.kind]


class Skips:
    """What a load dropped or repaired, by reason, reported at its end."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, reason: str, count: int = 1) -> None:
        """Count ``count`` more of ``reason``."""
        if count:
            self.counts[reason] = self.counts.get(reason, 0) + count


def _open_raw(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise DumpError(f"{path}: cannot read: {exc.strerror or exc}", path=str(path)) from None


def _describe_stream_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the gzip stream is truncated (the file is incomplete)"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt gzip data ({exc})"
    if isinstance(exc, etree.XMLSyntaxError):
        return f"not well-formed XML ({exc})"
    if isinstance(exc, OSError):
        return f"read failed ({exc.strerror or exc})"
    return str(exc)


def inspect_dump(path: str | Path) -> DumpFile:
    """Identify a dump file by its content (root element) and name; :class:`DumpError` otherwise.

    A name ``discogs_YYYYMMDD_kind.xml[.gz]`` gives the dump date; a name naming another kind than
    the content holds, or a root element that is not one of the four kinds, is an error.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise DumpError(f"{path}: no such file", path=where)
    with _open_raw(path) as raw:
        magic = raw.read(2)
        raw.seek(0)
        compressed = magic == _GZIP_MAGIC
        try:
            head = gzip.GzipFile(fileobj=raw).read(_PEEK) if compressed else raw.read(_PEEK)
        except (EOFError, OSError, zlib.error) as exc:
            # A head shorter than _PEEK in a truncated file still reads: only a stream cut inside
            # its first 64 KiB fails here; the rest is found while loading.
            raise DumpError(f"{path}: {_describe_stream_error(exc)}", path=where) from None
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    root = _root_element(head)
    if root is None:
        raise DumpError(f"{path}: not a Discogs dump (no XML root element)", path=where)
    match = _NAME.fullmatch(path.name)
    named = match.group(2).lower() if match else None
    if root not in RECORD_TAGS:
        if named is not None and named == root:
            raise DumpError(
                f"{path}: a {root} dump, a kind the catalogue does not load "
                f"(expected one of {', '.join(KINDS)})",
                path=where,
            )
        raise DumpError(
            f"{path}: not a Discogs dump (root element <{root}>, expected one of "
            f"{', '.join(f'<{k}>' for k in KINDS)})",
            path=where,
        )
    if named is not None and named != root:
        raise DumpError(f"{path}: named as a {named} dump but holds {root}", path=where)
    dump_date = None
    if match:
        digits = match.group(1)
        try:
            dump_date = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            dump_date = None
    return DumpFile(path, root, dump_date, compressed, path.stat().st_size)


def _root_element(head: bytes) -> str | None:
    """The first element name after the XML declaration, comments and a doctype."""
    position = 0
    while True:
        start = head.find(b"<", position)
        if start < 0:
            return None
        if head.startswith(b"<?", start):
            position = head.find(b"?>", start) + 2
        elif head.startswith(b"<!--", start):
            position = head.find(b"-->", start) + 3
        elif head.startswith(b"<!", start):
            position = head.find(b">", start) + 1
        else:
            match = _ROOT.match(head, start)
            return match.group(1).decode("ascii", "replace") if match else None
        if position <= start:
            return None


class _Inflater:
    """Decompresses a gzip stream a few chunks ahead in a thread: zlib releases the GIL, so
    inflating overlaps with parsing. At most ``depth`` chunks wait in the queue."""

    def __init__(self, stream: gzip.GzipFile, raw: IO[bytes], chunk_size: int, depth: int = 4):
        self._queue: queue.Queue[tuple[bytes, int] | BaseException] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(stream, raw, chunk_size), name="dump-inflate", daemon=True
        )
        self._thread.start()

    def _run(self, stream: gzip.GzipFile, raw: IO[bytes], chunk_size: int) -> None:
        try:
            while not self._stop.is_set():
                chunk = stream.read(chunk_size)
                self._put((chunk, raw.tell()))
                if not chunk:
                    return
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._put(exc)

    def _put(self, item: tuple[bytes, int] | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)  # wakes to see close() while blocked
                return
            except queue.Full:
                continue

    def get(self) -> tuple[bytes, int]:
        """The next decompressed chunk and the compressed bytes read so far (``b""`` at the end)."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop the thread and wait for it (before the file underneath is closed)."""
        self._stop.set()
        self._thread.join()


class DumpReader:
    """A binary file object over a dump's XML, without the characters XML 1.0 forbids.

    ``position()`` is how far the file on disk (compressed, for ``.gz``) has been read. Reads
    of ``chunk_size`` bytes bound how far lxml's tree runs ahead of the record being handled.
    A ``.gz`` is inflated in a thread (see :class:`_Inflater`): use the reader as a context
    manager, or call :meth:`close`.
    """

    def __init__(
        self, raw: IO[bytes], compressed: bool, skips: Skips, chunk_size: int = _READ
    ) -> None:
        self._raw = raw
        self._chunk_size = chunk_size
        self._inflater = (
            _Inflater(gzip.GzipFile(fileobj=raw), raw, chunk_size) if compressed else None
        )
        self._position = 0
        self._skips = skips
        self._carry = b""
        self._eof = False

    def __enter__(self) -> DumpReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the inflating thread, if any (idempotent)."""
        if self._inflater is not None:
            self._inflater.close()

    def position(self) -> int:
        """Bytes of the input file read so far."""
        return self._position

    def _next_chunk(self) -> bytes:
        if self._inflater is not None:
            chunk, self._position = self._inflater.get()
            return chunk
        chunk = self._raw.read(self._chunk_size)
        self._position = self._raw.tell()
        return chunk

    def read(self, size: int = -1) -> bytes:
        """About ``chunk_size`` bytes of cleaned XML, whatever ``size``; ``b""`` at the end."""
        while True:
            if self._eof:
                out, self._carry = self._carry, b""
                return out
            # Always a whole chunk (lxml keeps what exceeds ``size`` for its next call).
            chunk = self._next_chunk()
            if not chunk:
                self._eof = True
                continue
            cleaned = self._clean(self._carry + chunk)
            if cleaned:
                return cleaned

    def _clean(self, data: bytes) -> bytes:
        kept = data.translate(None, _FORBIDDEN)
        removed = len(data) - len(kept)
        kept, self._carry = _prune(kept)
        if not self._carry:
            # A tag or a reference cut by the chunk's end is kept back and completed by the next
            # read, so what is dropped or removed never depends on where reads fall.
            tail = kept.rfind(b"<")
            if tail >= 0 and b">" not in kept[tail:]:
                kept, self._carry = kept[:tail], kept[tail:]
            tail = kept.rfind(b"&", max(0, len(kept) - _REF_MAX))
            if tail >= 0 and b";" not in kept[tail:]:
                kept, self._carry = kept[:tail], kept[tail:] + self._carry
        if b"&#" in kept:
            kept, count = _FORBIDDEN_REF.subn(b"", kept)
            removed += count
        self._skips.add("control characters removed", removed)
        return kept


def _prune(data: bytes) -> tuple[bytes, bytes]:
    """``data`` without the elements no table uses, and an unfinished tail.

    Sound for the dumps' XML: markup characters in text and attributes are escaped and there
    are no comments or CDATA sections, so ``<videos>`` only ever opens an element. An element
    whose end is not in ``data`` yet starts the returned tail, which the next read completes.
    """
    data, tail = _cut(data, _PRUNED)
    start = data.find(b"<tracklist>")
    if start < 0:
        return data, tail
    # Inside a tracklist, per-track credits go too (the release's own credits stay).
    parts = []
    position = 0
    while start >= 0:
        parts.append(data[position:start])
        end = data.find(b"</tracklist>", start)
        if end < 0:
            return b"".join(parts), data[start:] + tail
        parts.append(_cut(data[start:end], _TRACK_CREDITS)[0])
        position = end
        start = data.find(b"<tracklist>", end)
    parts.append(data[position:])
    return b"".join(parts), tail


def _cut(data: bytes, pairs: tuple[tuple[bytes, bytes], ...]) -> tuple[bytes, bytes]:
    """Remove every ``opening ... closing`` element of ``pairs`` (which never hold one another);
    the tail starts at the first one not closed in ``data``."""
    tail = b""
    for opening, closing in pairs:
        start = data.find(opening)
        if start < 0:
            continue
        parts = []
        position = 0
        while start >= 0:
            end = data.find(closing, start)
            parts.append(data[position:start])
            if end < 0:
                tail = data[start:] + tail
                position = len(data)
                break
            position = end + len(closing)
            start = data.find(opening, position)
        parts.append(data[position:])
        data = b"".join(parts)
    return data, tail


@contextmanager
def open_dump(dump: DumpFile, skips: Skips) -> Iterator[DumpReader]:
    """Open a dump for streaming; read errors inside the block become :class:`DumpError`."""
    with _open_raw(dump.path) as raw, DumpReader(raw, dump.compressed, skips) as reader:
        try:
            yield reader
        except (EOFError, OSError, zlib.error, etree.XMLSyntaxError) as exc:
            raise DumpError(
                f"{dump.path}: {_describe_stream_error(exc)}", path=str(dump.path)
            ) from None


def iter_records(reader: IO[bytes] | DumpReader, tag: str) -> Iterator[Any]:
    """Each record element (a child of the root named ``tag``), cleared once the caller moves on.

    The element and every earlier sibling are removed from the tree before the next record is
    handled, so the tree holds the current record and those lxml already read ahead (one chunk).
    Elements of the same name nested in a record (a label's sublabels) are not records.
    """
    context = etree.iterparse(
        reader,
        events=("end",),
        tag=tag,
        resolve_entities=False,
        no_network=True,
        huge_tree=True,
    )
    for _event, element in context:
        parent = element.getparent()
        if parent is None or parent.getparent() is not None:
            continue
        yield element
        element.clear(keep_tail=False)
        while element.getprevious() is not None:  # unknown top-level elements, if any
            del parent[0]
        parent.remove(element)  # complete: lxml is building a later sibling, never this one


# ---------------------------------------------------------------------------------- records

#: Rows per output file of a kind (see schema.KIND_TABLES), appended while parsing.
Rows = dict[str, list[tuple[Any, ...]]]


def _int(text: str | None, skips: Skips, limit: int = _INT32) -> int | None:
    """Integer text -> int; blank -> None; anything else (or out of range) -> None, counted."""
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        if text.strip():
            skips.add("values that are not numbers stored as NULL")
        return None
    if -limit <= number < limit:
        return number
    skips.add("values that are not numbers stored as NULL")
    return None


def _id(text: str | None, skips: Skips) -> int | None:
    """A Discogs id: positive 64-bit; 0, blank and junk are "none" (as ``_opt_id`` in collection)."""
    number = _int(text, skips, _INT64)
    return number if number is not None and number > 0 else None


def _text(value: str | None) -> str | None:
    return value or None


def _json_list(values: list[str]) -> str | None:
    return json.dumps(values, ensure_ascii=False) if values else None


@lru_cache(maxsize=8192)
def _duration(value: str) -> int | None:
    """``"3:25"`` -> 205, ``"1:02:03"`` -> 3723; malformed -> None (as the collection parses it)."""
    parts = value.strip().split(":")
    if len(parts) > 3:
        return None
    total = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()):
            return None
        total = total * 60 + int(part)
    return total if total < _INT32 else None


def _year_of(released: str | None) -> int | None:
    """The year of ``released`` (``"1999-03-00"`` -> 1999); unknown (0 or none) -> None."""
    if released and len(released) >= 4 and released[:4].isdigit():
        return int(released[:4]) or None
    return None


def _credits(rows: Rows, rid: int, container: Any, main: bool, start: int, skips: Skips) -> int:
    """Append one ``<artists>``/``<extraartists>`` block's credits; returns the next position."""
    append = rows["release_artists"].append
    names = rows["credit_artists"]
    position = start
    for artist in container:
        if artist.tag != "artist":
            continue
        artist_id = name = anv = join = role = None
        for field in artist:
            tag = field.tag
            if tag == "id":
                artist_id = _id(field.text, skips)
            elif tag == "name":
                name = field.text or None
            elif tag == "anv":
                anv = field.text or None
            elif tag == "join":
                join = field.text or None
            elif tag == "role":
                role = field.text or None
        if artist_id is None:
            anv = anv or name  # keep the credited name when Discogs has no artist page for it
        else:
            names.append((artist_id, name))
        append((rid, artist_id, position, anv, join, None if main else (role or "")))
        position += 1
    return position


def _release(
    element: Any, rows: Rows, skips: Skips, as_of: Any, keep: set[int] | None
) -> int | None:
    rid = _id(element.get("id"), skips)
    if rid is None:
        return None
    if keep is not None and rid not in keep:
        return 0
    title = country = released = data_quality = None
    master_id = None
    main_position = extra_position = format_position = sequence = 0
    genres: dict[str, None] = {}
    styles: dict[str, None] = {}
    for child in element:
        tag = child.tag
        if tag == "title":
            title = child.text or None
        elif tag == "artists":
            main_position = _credits(rows, rid, child, True, main_position, skips)
        elif tag == "extraartists":
            extra_position = _credits(rows, rid, child, False, extra_position, skips)
        elif tag == "labels":
            for label in child:
                if label.tag != "label":
                    continue
                label_id = _id(label.get("id"), skips)
                if label_id is not None:
                    rows["credit_labels"].append((label_id, label.get("name") or None))
                rows["release_labels"].append((rid, label_id, label.get("catno")))
        elif tag == "formats":
            for fmt in child:
                if fmt.tag != "format":
                    continue
                descriptions = [
                    d.text
                    for block in fmt
                    if block.tag == "descriptions"
                    for d in block
                    if d.tag == "description" and d.text
                ]
                rows["release_formats"].append(
                    (
                        rid,
                        format_position,
                        fmt.get("name") or None,
                        _int(fmt.get("qty"), skips),
                        json.dumps(descriptions, ensure_ascii=False) if descriptions else None,
                        fmt.get("text") or None,
                    )
                )
                format_position += 1
        elif tag == "genres":
            genres.update((g.text, None) for g in child if g.tag == "genre" and g.text)
        elif tag == "styles":
            styles.update((s.text, None) for s in child if s.tag == "style" and s.text)
        elif tag == "country":
            country = child.text or None
        elif tag == "released":
            released = child.text or None
        elif tag == "data_quality":
            data_quality = child.text or None
        elif tag == "master_id":
            master_id = _id(child.text, skips)
        elif tag == "tracklist":
            append = rows["tracks"].append
            for track in child:
                if track.tag != "track":
                    continue
                position = track_title = duration = raw_duration = None
                kind = None
                for field in track:
                    ftag = field.tag
                    if ftag == "position":
                        position = field.text or None
                    elif ftag == "title":
                        track_title = field.text or None
                    elif ftag == "duration":
                        raw_duration = field.text
                        duration = _duration(raw_duration) if raw_duration else None
                    elif ftag == "sub_tracks":
                        kind = "index"  # the API's type_ for a track with sub-tracks
                if kind is None:
                    # The API's type_: a line with neither position nor duration is a heading.
                    kind = "track" if position or raw_duration else "heading"
                append((rid, position, sequence, track_title, duration, kind))
                sequence += 1
    rows["releases"].append(
        (
            rid,
            title,
            _year_of(released),
            country,
            released,
            master_id,
            element.get("status") or None,
            data_quality,
            *(None,) * 6,  # lowest_price, num_for_sale, community_*: not in the dump
            as_of,
            "catalogue",  # releases.source: the catalogue mirrors the collection's columns
        )
    )
    rows["release_genres"] += [(rid, genre) for genre in genres]
    rows["release_styles"] += [(rid, style) for style in styles]
    return rid


def _master(element: Any, rows: Rows, skips: Skips, keep: set[int] | None) -> int | None:
    mid = _id(element.get("id"), skips)
    if mid is None:
        return None
    if keep is not None and mid not in keep:
        return 0
    main = title = year = quality = None
    for child in element:
        tag = child.tag
        if tag == "main_release":
            main = _id(child.text, skips)
        elif tag == "title":
            title = child.text or None
        elif tag == "year":
            year = _int(child.text, skips) or None
        elif tag == "data_quality":
            quality = child.text or None
    rows["masters"].append((mid, main, title, year, quality))
    return mid


def _names(container: Any, tag: str) -> list[str]:
    return [e.text for e in container if e.tag == tag and e.text]


def _artist(element: Any, rows: Rows, skips: Skips, keep: set[int] | None) -> int | None:
    fields: dict[str, Any] = {}
    urls: list[str] = []
    variations: list[str] = []
    for child in element:
        tag = child.tag
        if tag == "urls":
            urls += _names(child, "url")
        elif tag == "namevariations":
            variations += _names(child, "name")
        elif isinstance(tag, str) and tag not in fields:
            fields[tag] = child.text
    aid = _id(fields.get("id"), skips)
    if aid is None:
        return None
    if keep is not None and aid not in keep:
        return 0
    rows["artist_records"].append(
        (
            aid,
            _text(fields.get("name")),
            _text(fields.get("realname")),
            _text(fields.get("profile")),
            _text(fields.get("data_quality")),
            _json_list(urls),
            _json_list(variations),
        )
    )
    return aid


def _label(element: Any, rows: Rows, skips: Skips, keep: set[int] | None) -> int | None:
    fields: dict[str, Any] = {}
    urls: list[str] = []
    parent_id = parent_name = None
    for child in element:
        tag = child.tag
        if tag == "urls":
            urls += _names(child, "url")
        elif tag == "parentLabel":
            parent_id = _id(child.get("id"), skips)
            parent_name = child.text or None
        elif isinstance(tag, str) and tag not in fields:
            fields[tag] = child.text
    lid = _id(fields.get("id"), skips)
    if lid is None:
        return None
    if keep is not None and lid not in keep:
        return 0
    rows["label_records"].append(
        (
            lid,
            _text(fields.get("name")),
            _text(fields.get("profile")),
            _text(fields.get("contactinfo")),
            parent_id,
            parent_name,
            _text(fields.get("data_quality")),
            _json_list(urls),
        )
    )
    return lid


def parse_record(
    kind: str,
    element: Any,
    rows: Rows,
    skips: Skips,
    *,
    as_of: Any = None,
    keep: set[int] | None = None,
) -> int | None:
    """Append one record's rows; returns its id, 0 when ``keep`` excludes it, None without an id.

    ``as_of`` is the releases' ``fetched_at`` (the dump date). A record without a usable id is
    counted in ``skips`` and leaves no row.
    """
    if kind == "releases":
        result = _release(element, rows, skips, as_of, keep)
    else:
        result = _PARSERS[kind](element, rows, skips, keep)
    if result is None:
        skips.add("records without an id skipped")
    return result


_PARSERS: dict[str, Callable[[Any, Rows, Skips, set[int] | None], int | None]] = {
    "masters": _master,
    "artists": _artist,
    "labels": _label,
}
