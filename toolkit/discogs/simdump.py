"""The simulator's data written as a Discogs monthly dump (all four kinds, gzipped XML).

So tests and ``make demo`` run the real loader (:mod:`toolkit.catalogue`) on the real format with
the data the simulated API serves: the sample's real releases are written as the sample has them
(byte for byte), recombined ones are serialised from the body ``/releases/{id}`` answers.
Masters, artists and labels are derived from the releases written (the simulator has no other
data about them): names as the last release (by id) credits them, as loading the API answers in
id order leaves them; a master's main release is its lowest id.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lxml import etree

if TYPE_CHECKING:
    from toolkit.discogs.simdata import SimCatalogue

__all__ = ["dump_file_name", "write_dump"]

_SAMPLE = "discogs_20200806_releases.xml.gz"
_KINDS = ("releases", "masters", "artists", "labels")
_JSON = dict[str, Any]


def dump_file_name(kind: str, dump_date: dt.date) -> str:
    """``discogs_YYYYMMDD_<kind>.xml.gz``, as Discogs names its monthly files."""
    return f"discogs_{dump_date:%Y%m%d}_{kind}.xml.gz"


@functools.cache
def _sample_records() -> Mapping[int, bytes]:
    """The bundled sample's ``<release>`` records, serialised unchanged, by id (parsed once)."""
    out: dict[int, bytes] = {}
    data = resources.files("toolkit.discogs").joinpath("data", _SAMPLE)
    with data.open("rb") as raw, gzip.open(raw) as xml:
        for _event, element in etree.iterparse(xml, tag="release"):
            out[int(element.get("id", "0"))] = etree.tostring(element, encoding="utf-8")
            element.clear()
    return out


def _sub(
    parent: etree._Element, tag: str, value: Any = None, attrs: Mapping[str, str] | None = None
) -> etree._Element:
    child = etree.SubElement(parent, tag, dict(attrs or {}))
    if value is not None and value != "":
        child.text = str(value)
    return child


def _credits(parent: etree._Element, tag: str, artists: Iterable[_JSON]) -> None:
    block = _sub(parent, tag)
    for artist in artists:
        entry = _sub(block, "artist")
        for field in ("id", "name", "anv", "join", "role", "tracks"):
            _sub(entry, field, artist.get(field))


def _track(parent: etree._Element, track: _JSON) -> None:
    entry = _sub(parent, "track")
    _sub(entry, "position", track.get("position"))
    _sub(entry, "title", track.get("title"))
    _sub(entry, "duration", track.get("duration"))
    if track.get("artists"):
        _credits(entry, "artists", track["artists"])
    if track.get("extraartists"):
        _credits(entry, "extraartists", track["extraartists"])
    if track.get("sub_tracks"):
        subs = _sub(entry, "sub_tracks")
        for sub in track["sub_tracks"]:
            _track(subs, sub)


def release_xml(body: _JSON, *, main_release: bool) -> bytes:
    """One ``/releases/{id}`` body as the dump's ``<release>`` record (fields the dump has)."""
    release = etree.Element("release", {"id": str(body["id"]), "status": str(body["status"])})
    _credits(release, "artists", body["artists"])
    _sub(release, "title", body["title"])
    labels = _sub(release, "labels")
    for label in body["labels"]:
        _sub(labels, "label", None,
             {"name": label["name"], "catno": label["catno"], "id": str(label["id"])})  # fmt: skip
    _credits(release, "extraartists", body["extraartists"])
    formats = _sub(release, "formats")
    for fmt in body["formats"]:
        attrs = {"name": fmt["name"], "qty": str(fmt["qty"]), "text": fmt.get("text", "")}
        entry = _sub(formats, "format", None, attrs)
        if fmt.get("descriptions"):
            descriptions = _sub(entry, "descriptions")
            for description in fmt["descriptions"]:
                _sub(descriptions, "description", description)
    genres = _sub(release, "genres")
    for genre in body["genres"]:
        _sub(genres, "genre", genre)
    styles = _sub(release, "styles")
    for style in body["styles"]:
        _sub(styles, "style", style)
    for field in ("country", "released", "notes", "data_quality"):
        _sub(release, field, body.get(field))
    if body.get("master_id"):
        main = {"is_main_release": "true" if main_release else "false"}
        _sub(release, "master_id", body["master_id"], main)
    tracklist = _sub(release, "tracklist")
    for track in body["tracklist"]:
        _track(tracklist, track)
    return bytes(etree.tostring(release, encoding="utf-8"))


def _element(tag: str, fields: Iterable[tuple[str, Any]], **attrs: str) -> bytes:
    element = etree.Element(tag, attrs)
    for name, value in fields:
        _sub(element, name, value)
    return bytes(etree.tostring(element, encoding="utf-8"))


class _DumpWriter:
    """One gzipped dump file written record by record, renamed into place when complete."""

    def __init__(self, path: Path, root: str) -> None:
        self.path = path
        self._temp = path.with_name(f".{path.name}.tmp")
        self._raw: IO[bytes] = open(self._temp, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=6)
        self._gz.write(f"<{root}>".encode())
        self._root = root
        self.records = 0

    def write(self, record: bytes) -> None:
        self._gz.write(record)
        self._gz.write(b"\n")
        self.records += 1

    def close(self, *, keep: bool) -> None:
        if keep:
            self._gz.write(f"</{self._root}>\n".encode())
        self._gz.close()
        self._raw.close()
        if keep:
            os.replace(self._temp, self.path)
        else:
            self._temp.unlink(missing_ok=True)


def write_dump(
    catalogue: SimCatalogue,
    directory: str | os.PathLike[str],
    dump_date: dt.date,
    *,
    release_ids: Iterable[int] | None = None,
) -> list[Path]:
    """Write ``catalogue`` (or just ``release_ids`` of it) as the four dump files; return their paths.

    Releases the API does not serve as the catalogue has them (deleted, or overridden by a test)
    are left out. Each file appears complete or not at all.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    sample = _sample_records()
    ids = sorted(set(catalogue.release_ids() if release_ids is None else release_ids))
    bodies: list[_JSON] = []
    for rid in ids:
        body = catalogue.served_release(rid)
        if body is not None:
            bodies.append(body)
    main_of: dict[int, int] = {}
    for body in bodies:
        master = int(body.get("master_id") or 0)
        if master:
            main_of.setdefault(master, int(body["id"]))  # bodies ascend: the lowest id
    writers = {kind: _DumpWriter(folder / dump_file_name(kind, dump_date), kind) for kind in _KINDS}
    done = False
    try:
        artists: dict[int, str] = {}
        labels: dict[int, str] = {}
        for body in bodies:
            rid = int(body["id"])
            record = sample.get(rid)
            if record is None:
                master = int(body.get("master_id") or 0)
                record = release_xml(body, main_release=main_of.get(master) == rid)
            writers["releases"].write(record)
            for artist in (*body["artists"], *body["extraartists"]):
                if int(artist.get("id") or 0):
                    artists[int(artist["id"])] = str(artist.get("name") or "")
            for label in body["labels"]:
                if int(label.get("id") or 0):
                    labels[int(label["id"])] = str(label.get("name") or "")
        by_id = {int(body["id"]): body for body in bodies}
        for master, main in sorted(main_of.items()):
            body = by_id[main]
            fields = [("main_release", main), ("title", body["title"]),
                      ("year", body["year"] or None), ("data_quality", "Correct")]  # fmt: skip
            writers["masters"].write(_element("master", fields, id=str(master)))
        for artist_id, name in sorted(artists.items()):
            fields = [("id", artist_id), ("name", name), ("data_quality", "Needs Vote")]
            writers["artists"].write(_element("artist", fields))
        for label_id, name in sorted(labels.items()):
            fields = [("id", label_id), ("name", name), ("data_quality", "Needs Vote")]
            writers["labels"].write(_element("label", fields))
        done = True
    finally:
        for writer in writers.values():
            writer.close(keep=done)
    return [writers[kind].path for kind in _KINDS]
