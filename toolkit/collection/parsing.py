"""Discogs API JSON to rows: every value checked and normalised before anything is written.

Both engines must accept and refuse the same input, so ranges and types are checked here, in Python.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from toolkit.errors import CollectionDataError

__all__ = [
    "BadValue",
    "Rows",
    "as_mapping",
    "data_error",
    "parse_basic",
    "parse_id",
    "parse_item",
    "parse_item_fields",
    "parse_release",
]


def data_error(where: str, message: str) -> CollectionDataError:
    """The error for bad input at ``where`` (``releases[3].formats[0].qty (release 249504)``)."""
    return CollectionDataError(f"{where}: {message}")


#: Column ranges: INTEGER is 32-bit and BIGINT 64-bit on DuckDB; sqlite stores up to 64 bits.
#: Checking here, before any write, makes both engines accept and refuse the same values.
_INT32 = 2**31
_INT64 = 2**63
_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_FLOAT_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*", re.ASCII)


class BadValue(Exception):
    """A scalar that cannot be stored; the caller adds where it is (index and ids) and re-raises
    it as :class:`CollectionDataError`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def within(self, prefix: str) -> BadValue:
        return BadValue(f"{prefix}.{self.field}", self.message)


def parse_id(value: Any, where: str) -> int:
    """A required positive integer id (a BIGINT)."""
    if type(value) is int and 0 < value < _INT64:
        return value
    if type(value) is str and _INT_TEXT.fullmatch(value) and 0 < int(value) < _INT64:
        return int(value)
    raise data_error(where, f"expected a positive integer id below 2**63, got {value!r}")


def _coerce_int(value: Any, field: str, limit: int) -> int | None:
    """The slow path of :func:`_opt_int`: text, floats, out-of-range and wrong-typed values."""
    if isinstance(value, bool):
        raise BadValue(field, f"expected an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise BadValue(field, f"expected an integer, got {value!r}")
        number = int(value)
    elif isinstance(value, str):
        if not value.strip():
            return None
        if not _INT_TEXT.fullmatch(value):
            raise BadValue(field, f"expected an integer, got {value!r}")
        number = int(value)
    elif hasattr(value, "__index__"):
        number = operator.index(value)
    else:
        raise BadValue(field, f"expected an integer, got {type(value).__name__} {value!r}")
    if not -limit <= number < limit:
        bits = 32 if limit == _INT32 else 64
        raise BadValue(field, f"{number} does not fit the column (a {bits}-bit integer)")
    return number


def _opt_int(value: Any, field: str) -> int | None:
    """An optional 32-bit integer: None and blank text become None; ints, integral floats and
    integer text are accepted; anything else (``"--5"``, ``"²"``, ``3.5``, ``True``, a value
    beyond 32 bits) raises :class:`BadValue`."""
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
        raise BadValue(field, f"expected a number, got {value!r}")
    if isinstance(value, str):
        if not value.strip():
            return None
        if not _FLOAT_TEXT.fullmatch(value):
            raise BadValue(field, f"expected a number, got {value!r}")
    elif not isinstance(value, int | float):
        raise BadValue(field, f"expected a number, got {type(value).__name__} {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise BadValue(field, f"{value!r} is too large for a double") from None
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


def as_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if type(value) is dict:
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise data_error(where, f"expected an object, got {type(value).__name__}")
    return value


def _records(value: Any, where: str) -> list[Mapping[str, Any]]:
    """A list of objects (None → []); entries are checked here so loops can trust ``.get``."""
    if value is None:
        return []
    if type(value) is not list:
        raise data_error(where, f"expected a list, got {type(value).__name__}")
    for index, entry in enumerate(value):
        if type(entry) is not dict and not isinstance(entry, Mapping):
            raise data_error(f"{where}[{index}]", f"expected an object, got {type(entry).__name__}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if type(value) is not list:
        raise data_error(where, f"expected a list of strings, got {type(value).__name__}")
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


class Rows:
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

    def extend(self, other: Rows) -> None:
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
    out: Rows, rid: int, entries: list[Mapping[str, Any]], main: bool, key: str
) -> None:
    append, names = out.artists.append, out.artist_names
    for position, artist in enumerate(entries):
        get = artist.get
        try:
            artist_id = _opt_id(get("id"), "id")
        except BadValue as exc:
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


def _common(out: Rows, rid: int, data: Mapping[str, Any], where: str) -> None:
    """Artists, labels, genres, styles and formats: shared by full releases and basic_information."""
    _credit_rows(out, rid, _records(data.get("artists"), f"{where}.artists"), True, "artists")
    for index, label in enumerate(_records(data.get("labels"), f"{where}.labels")):
        try:
            label_id = _opt_id(label.get("id"), "id")
        except BadValue as exc:
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
        except BadValue as exc:
            raise exc.within(f"formats[{position}]") from None
        out.formats.append(
            (
                rid,
                position,
                _text(fmt.get("name")),
                qty,
                # An empty list is no descriptions, as in the dump: NULL (see toolkit.catalogue).
                json.dumps(descriptions, ensure_ascii=False)
                if type(descriptions) is list and descriptions
                else None,
                _text(fmt.get("text")),
            )
        )


def _year(value: Any) -> int | None:
    year = _opt_int(value, "year")
    return year if year else None  # 0 is Discogs' "unknown"


def parse_release(out: Rows, rid: int, data: Mapping[str, Any], where: str, stamp: Any) -> None:
    """Append the rows of one full ``/releases/{id}`` object to ``out``, stamped ``stamp``."""
    community = as_mapping(data.get("community"), f"{where}.community")
    rating = as_mapping(community.get("rating"), f"{where}.community.rating")
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
            "api",
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


def parse_item(
    index: int, item: Any, username: str | None
) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
    """One collection page entry: its ``collection_items`` row and its ``basic_information``."""
    where = f"items[{index}]"
    item = as_mapping(item, where)
    basic = as_mapping(item.get("basic_information"), f"{where}.basic_information")
    instance_id = parse_id(item.get("instance_id"), f"{where}.instance_id")
    raw_id = item.get("id", basic.get("id"))
    release_id = parse_id(raw_id, f"{where}.id")
    if basic.get("id") is not None and parse_id(basic.get("id"), where) != release_id:
        raise data_error(
            where, f"id {raw_id!r} differs from basic_information.id {basic.get('id')!r}"
        )
    try:
        folder_id = _opt_big(item.get("folder_id"), "folder_id")
        rating = _opt_int(item.get("rating"), "rating")
    except BadValue as exc:
        raise data_error(
            f"{where}.{exc.field} (instance {instance_id}, release {release_id})", exc.message
        ) from None
    row = (
        instance_id,
        username if username is not None else _text(item.get("username")),
        folder_id,
        release_id,
        rating,
        _text(item.get("date_added")),
    )
    return row, basic


def parse_item_fields(
    index: int, item: Mapping[str, Any], instance_id: int
) -> list[tuple[Any, ...]]:
    """An item's custom fields (the API's ``notes``: ``[{field_id, value}]``) as ``item_fields`` rows.

    Blank values are left out (Discogs shows them as unset); ``notes`` that is not a list (an old
    free-text note) is kept whole as field 0, so nothing the user wrote is lost.
    """
    where = f"items[{index}].notes"
    notes = item.get("notes")
    if notes is None or notes == "" or notes == []:
        return []
    if not isinstance(notes, list):
        return [(instance_id, 0, _text(notes))]
    rows: dict[int, tuple[Any, ...]] = {}
    for position, note in enumerate(notes):
        note = as_mapping(note, f"{where}[{position}]")
        field_id = parse_id(
            note.get("field_id"), f"{where}[{position}].field_id (instance {instance_id})"
        )
        value = _text(note.get("value"))
        if value is not None:
            rows[field_id] = (instance_id, field_id, value)
    return list(rows.values())


def parse_basic(rid: int, basic: Mapping[str, Any], where: str) -> Rows:
    """Rows (release without details, artists, labels ...) from an item's ``basic_information``."""
    out = Rows()
    try:
        out.releases.append(
            (
                rid,
                _text(basic.get("title")),
                _year(basic.get("year")),
                *(None,) * 2,
                _opt_id(basic.get("master_id"), "master_id"),
                *(None,) * 10,
            )
        )
        _common(out, rid, basic, where)
    except BadValue as exc:
        raise data_error(f"{where}.{exc.field} (release {rid})", exc.message) from None
    return out
