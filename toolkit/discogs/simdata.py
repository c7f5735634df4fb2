"""The simulator's data (``SimCatalogue``): 1,000 real releases from the CC0 dump, extended from a seed.

Not to be confused with :mod:`toolkit.catalogue`, the local copy of Discogs' monthly dumps; this
module can write its releases in that dump format (:meth:`SimCatalogue.write_dump`).

The ``demo`` user owns the real releases themselves (:mod:`toolkit.discogs.demo_collection`); other
users, and catalogues larger than the sample, draw on releases recombined from real ones.

Release and collection dicts carry ``https://api.discogs.com`` URLs, exactly like the real API; pass
``base_url=`` (or let :class:`~toolkit.discogs.simulator.DiscogsSimulator` do it) to point them elsewhere.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
import os
import random
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from toolkit.discogs.demo_collection import demo_items, split_wantlist
from toolkit.money import format_money

__all__ = [
    "API_ROOT",
    "DEFAULT_FOLDERS",
    "DEMO_ITEMS",
    "DEMO_USER",
    "MAX_RELEASES",
    "SimCatalogue",
    "SimUser",
    "real_releases",
]

#: The real API's base URL; every URL in the catalogue's dicts starts with it.
API_ROOT = "https://api.discogs.com"
#: The largest catalogue the simulator generates.
MAX_RELEASES = 100_000
DEMO_USER = "demo"
#: Items of the ``demo`` user of a seed-0 catalogue holding the whole sample: 970 real releases (the
#: other 30 are its wantlist) and 21 second or third copies.
DEMO_ITEMS = 991
#: Folder names of a simulated user besides "All" (folder 0); the first one gets id 1.
DEFAULT_FOLDERS: tuple[str, ...] = ("Uncategorized", "LPs", "7s", "CDs")

_DUMP = "discogs_20200806_releases.xml.gz"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CONDITIONS = (
    "Mint (M)",
    "Near Mint (NM or M-)",
    "Very Good Plus (VG+)",
    "Very Good (VG)",
    "Good Plus (G+)",
)
#: Grades the demo owner uses too (toolkit.discogs.demo_collection), best first.
_MEDIA_GRADES = ("Good (G)",)
_MEDIA_ORDER = (
    "Mint (M)", "Near Mint (NM or M-)", "Very Good Plus (VG+)", "Very Good (VG)",
    "Good Plus (G+)", "Good (G)",
)  # fmt: skip
#: The simulator's exchange rates from USD and the decimals each currency's prices carry.
_RATES: dict[str, tuple[float, int]] = {
    "USD": (1.0, 2), "GBP": (0.79, 2), "EUR": (0.92, 2), "CAD": (1.36, 2), "AUD": (1.52, 2),
    "JPY": (151.0, 0), "CHF": (0.88, 2), "MXN": (17.1, 2), "BRL": (5.05, 2), "NZD": (1.66, 2),
    "SEK": (10.6, 2), "ZAR": (18.4, 2),
}  # fmt: skip
_NOTE_TEXTS = ("first pressing", "signed", "gift", "bought at a fair", "needs cleaning", "sealed")
_CONTRIBUTORS = ("memory", "vargind", "alistairk", "hog", "rwrackham", "jan_marian", "djcarbines")
_WEIGHT = {"Vinyl": 230, "CD": 85, "Cassette": 60, "CDr": 85, "File": 0, "DVD": 90, "Box Set": 400}
_JSON = dict[str, Any]


def _text(el: ET.Element | None) -> str:
    # Not stripped: the dump has no indentation, so any whitespace is Discogs' own data.
    return (el.text or "") if el is not None else ""


def _artists(parent: ET.Element | None) -> list[_JSON]:
    out: list[_JSON] = []
    if parent is None:
        return out
    for a in parent.iterfind("artist"):
        aid = int(_text(a.find("id")) or 0)
        out.append(
            {
                "name": _text(a.find("name")),
                "anv": _text(a.find("anv")),
                "join": _text(a.find("join")),
                "role": _text(a.find("role")),
                "tracks": _text(a.find("tracks")),
                "id": aid,
                "resource_url": f"{API_ROOT}/artists/{aid}",
            }
        )
    return out


def _released_formatted(released: str) -> str:
    parts = released.split("-")
    if not parts or not parts[0].isdigit():
        return ""
    year = parts[0]
    month = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    day = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
    if month < 1 or month > 12:
        return year
    if day < 1:
        return f"{_MONTHS[month - 1]} {year}"
    return f"{day:02d} {_MONTHS[month - 1]} {year}"


def _track(tr: ET.Element) -> _JSON:
    position = _text(tr.find("position"))
    duration = _text(tr.find("duration"))
    track: _JSON = {
        "position": position,
        "type_": "track" if position or duration else "heading",
        "title": _text(tr.find("title")),
        "duration": duration,
    }
    if (artists := _artists(tr.find("artists"))) != []:
        track["artists"] = artists
    if (extra := _artists(tr.find("extraartists"))) != []:
        track["extraartists"] = extra
    subs = tr.find("sub_tracks")
    if subs is not None:
        track["type_"] = "index"
        track["sub_tracks"] = [_track(s) for s in subs.iterfind("track")]
    return track


def _parse_release(el: ET.Element) -> _JSON:
    """One dump ``<release>`` as the static part of a /releases/{id} body (no community, prices)."""
    rid = int(el.get("id", "0"))
    released = _text(el.find("released"))
    year = int(released[:4]) if released[:4].isdigit() else 0
    master = el.find("master_id")
    labels = [
        {
            "name": lab.get("name", ""),
            "catno": lab.get("catno", ""),
            "entity_type": "1",
            "entity_type_name": "Label",
            "id": int(lab.get("id") or 0),
            "resource_url": f"{API_ROOT}/labels/{int(lab.get('id') or 0)}",
        }
        for lab in el.iterfind("labels/label")
    ]
    formats: list[_JSON] = []
    for fmt in el.iterfind("formats/format"):
        entry: _JSON = {
            "name": fmt.get("name", ""),
            "qty": fmt.get("qty", "1") or "1",
            "descriptions": [_text(d) for d in fmt.iterfind("descriptions/description")],
        }
        if fmt.get("text"):
            entry["text"] = fmt.get("text")
        formats.append(entry)
    companies = [
        {
            "name": _text(c.find("name")),
            "catno": _text(c.find("catno")),
            "entity_type": _text(c.find("entity_type")),
            "entity_type_name": _text(c.find("entity_type_name")),
            "id": int(_text(c.find("id")) or 0),
            "resource_url": f"{API_ROOT}/labels/{int(_text(c.find('id')) or 0)}",
        }
        for c in el.iterfind("companies/company")
    ]
    identifiers = []
    for ident in el.iterfind("identifiers/identifier"):
        item = {"type": ident.get("type", ""), "value": ident.get("value", "")}
        if ident.get("description"):
            item["description"] = ident.get("description", "")
        identifiers.append(item)
    videos = [
        {
            "uri": v.get("src", ""),
            "title": _text(v.find("title")),
            "description": _text(v.find("description")),
            "duration": int(v.get("duration") or 0),
            "embed": v.get("embed") == "true",
        }
        for v in el.iterfind("videos/video")
    ]
    images = [
        {
            "type": img.get("type", "secondary"),
            "width": int(img.get("width") or 600),
            "height": int(img.get("height") or 600),
        }
        for img in el.iterfind("images/image")
    ]
    return {
        "id": rid,
        "status": el.get("status", "Accepted"),
        "title": _text(el.find("title")),
        "artists": _artists(el.find("artists")),
        "extraartists": _artists(el.find("extraartists")),
        "labels": labels,
        "companies": companies,
        "formats": formats,
        "genres": [_text(g) for g in el.iterfind("genres/genre")],
        "styles": [_text(s) for s in el.iterfind("styles/style")],
        "country": _text(el.find("country")),
        "released": released,
        "year": year,
        "notes": _text(el.find("notes")),
        "data_quality": _text(el.find("data_quality")) or "Needs Vote",
        "master_id": int(_text(master) or 0),
        "tracklist": [_track(t) for t in el.iterfind("tracklist/track")],
        "identifiers": identifiers,
        "videos": videos,
        "images": images,
    }


@functools.cache
def real_releases() -> tuple[_JSON, ...]:
    """The 1,000 real releases of the bundled dump sample, parsed once per process, sorted by id.

    Treat the result as read-only: it is shared.
    """
    out: list[_JSON] = []
    data = resources.files("toolkit.discogs").joinpath("data", _DUMP)
    with data.open("rb") as raw, gzip.open(raw) as xml:
        for _event, el in ET.iterparse(xml):
            if el.tag == "release":
                out.append(_parse_release(el))
                el.clear()
    out.sort(key=lambda r: int(r["id"]))
    return tuple(out)


@functools.cache
def _title_words() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Words of real release titles and whole real track titles, to recombine."""
    words: list[str] = []
    tracks: list[str] = []
    for rel in real_releases():
        words.extend(w for w in re.split(r"\s+", rel["title"]) if w)
        tracks.extend(t["title"] for t in rel["tracklist"] if t["title"])
    return tuple(words), tuple(tracks)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S-08:00")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "release"


class SimUser:
    """A simulated Discogs user: a collection (``items``), folders and a wantlist, all deterministic.

    ``items`` are collection-page entries in the API shape (``id``, ``instance_id``, ``folder_id``,
    ``rating``, ``date_added``, ``basic_information``, sometimes ``notes``), oldest first. With
    ``releases`` the user owns exactly those (see :func:`~toolkit.discogs.demo_collection.demo_items`)
    and ``items`` is ignored; otherwise ``items`` are drawn from the whole catalogue.
    """

    def __init__(
        self,
        catalogue: SimCatalogue,
        name: str,
        *,
        items: int,
        folders: Sequence[str] = DEFAULT_FOLDERS,
        releases: Sequence[int] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.name = name
        self._rng = random.Random(f"discogs-sim/{catalogue.seed}/user/{name}")
        self.id = self._rng.randrange(100_000, 9_000_000)
        names = list(folders) or ["Uncategorized"]
        self.folders: list[_JSON] = [{"id": 1, "name": names[0]}]
        for extra in names[1:]:
            self.folders.append({"id": self._rng.randrange(200_000, 3_000_000), "name": extra})
        self._next_instance = self._rng.randrange(10_000_000, 20_000_000)
        self._clock = dt.datetime(2008, 1, 1, 12, 0, 0) + dt.timedelta(
            seconds=self._rng.randrange(0, 86400 * 365)
        )
        self._span = dt.timedelta(days=365 * 16)
        self.items: list[_JSON] = []
        self._lock = threading.RLock()
        if releases is not None:
            owned, wanted = split_wantlist(releases, self._rng)
            self._own(owned)
            self.wants: list[_JSON] = [self._want(rid) for rid in wanted]
            return
        self._add(items, spread=self._span)
        wants_n = max(3, min(300, items // 10))
        self.wants = [self._want(rid) for rid in self.catalogue._sample_ids(self._rng, wants_n)]

    def __repr__(self) -> str:
        return f"SimUser({self.name!r}, items={len(self.items)})"

    def _want(self, release_id: int) -> _JSON:
        return {
            "id": release_id,
            "resource_url": f"{API_ROOT}/users/{self.name}/wants/{release_id}",
            "rating": self._rng.choice((0, 0, 0, 3, 4, 5)),
            "date_added": _iso(self._clock - dt.timedelta(days=self._rng.randrange(0, 3000))),
            "basic_information": self.catalogue.basic_information(release_id),
            "notes": "",
        }

    def _own(self, release_ids: Sequence[int]) -> None:
        """Own exactly these releases, with simulated dates, folders, ratings, notes and copies."""
        rng = self._rng
        folder_ids = {f["name"]: f["id"] for f in self.folders}
        bodies = []
        for rid in release_ids:
            full = self.catalogue._full(rid, deleted_too=True)
            if full is None:
                raise KeyError(rid)
            bodies.append(full)
        for owned in demo_items(bodies, list(folder_ids), rng):
            self._next_instance += rng.randrange(1, 5000)
            item: _JSON = {
                "id": owned.release_id,
                "instance_id": self._next_instance,
                "folder_id": folder_ids[owned.folder],
                "rating": owned.rating,
                "date_added": _iso(owned.date_added),
                "basic_information": self.catalogue.basic_information(owned.release_id),
            }
            if owned.notes:
                item["notes"] = [{"field_id": f, "value": v} for f, v in owned.notes]
            self.items.append(item)
            self._clock = max(self._clock, owned.date_added)

    def _add(self, n: int, *, spread: dt.timedelta) -> list[_JSON]:
        rng = self._rng
        ids = self.catalogue._sample_ids(rng, n)
        step = spread / max(n, 1)
        added: list[_JSON] = []
        for release_id in ids:
            self._clock += dt.timedelta(seconds=rng.uniform(0.2, 1.8) * step.total_seconds())
            self._next_instance += rng.randrange(1, 5000)
            item: _JSON = {
                "id": release_id,
                "instance_id": self._next_instance,
                "folder_id": rng.choice(self.folders)["id"],
                "rating": rng.choice((1, 2, 3, 4, 5)) if rng.random() < 0.4 else 0,
                "date_added": _iso(self._clock),
                "basic_information": self.catalogue.basic_information(release_id),
            }
            if rng.random() < 0.2:
                notes = [{"field_id": 1, "value": rng.choice(_CONDITIONS)}]
                if rng.random() < 0.5:
                    notes.append({"field_id": 2, "value": rng.choice(_CONDITIONS)})
                if rng.random() < 0.5:
                    notes.append({"field_id": 3, "value": rng.choice(_NOTE_TEXTS)})
                item["notes"] = notes
            added.append(item)
        self.items.extend(added)
        return added

    def add_items(self, n: int) -> list[_JSON]:
        """Add ``n`` newer items (fresh instance ids, later date_added); returns them."""
        with self._lock:
            return self._add(n, spread=dt.timedelta(days=30))

    def remove_items(self, instance_ids: Iterable[int]) -> int:
        """Remove the items with these instance ids; returns how many were removed."""
        drop = set(instance_ids)
        with self._lock:
            before = len(self.items)
            self.items = [it for it in self.items if it["instance_id"] not in drop]
            return before - len(self.items)

    def folder_items(self, folder_id: int) -> list[_JSON] | None:
        """Items of one folder (0 = all), or None when the folder does not exist."""
        items = self.items
        if folder_id == 0:
            return list(items)
        if not any(f["id"] == folder_id for f in self.folders):
            return None
        return [it for it in items if it["folder_id"] == folder_id]

    def folder_list(self) -> list[_JSON]:
        """Folders with counts as /collection/folders lists them ("All" first)."""
        counts: dict[int, int] = {}
        for it in self.items:
            counts[it["folder_id"]] = counts.get(it["folder_id"], 0) + 1
        out = [{"id": 0, "name": "All", "count": len(self.items)}]
        out += [
            {"id": f["id"], "name": f["name"], "count": counts.get(f["id"], 0)}
            for f in self.folders
        ]
        for f in out:
            f["resource_url"] = f"{API_ROOT}/users/{self.name}/collection/folders/{f['id']}"
        return out

    def profile(self) -> _JSON:
        """The /users/{name} body."""
        base = f"{API_ROOT}/users/{self.name}"
        rated = [it["rating"] for it in self.items if it["rating"]]
        return {
            "id": self.id,
            "username": self.name,
            "resource_url": base,
            "uri": f"https://www.discogs.com/user/{self.name}",
            "name": self.name.title(),
            "home_page": "",
            "location": "",
            "profile": "",
            "registered": "2008-01-01T00:00:00-08:00",
            "rank": 1.0,
            "num_pending": 0,
            "num_for_sale": 0,
            "num_lists": 0,
            "releases_contributed": 0,
            "releases_rated": len(rated),
            "rating_avg": round(sum(rated) / len(rated), 2) if rated else 0.0,
            "inventory_url": f"{base}/inventory",
            "collection_folders_url": f"{base}/collection/folders",
            "collection_fields_url": f"{base}/collection/fields",
            "wantlist_url": f"{base}/wants",
            "avatar_url": "",
            "banner_url": "",
            "curr_abbr": "USD",
            "activated": True,
            "marketplace_suspended": False,
            "buyer_rating": 100.0,
            "buyer_rating_stars": 5.0,
            "buyer_num_ratings": 0,
            "seller_rating": 100.0,
            "seller_rating_stars": 5.0,
            "seller_num_ratings": 0,
            "is_staff": False,
            "num_collection": len(self.items),
            "num_wantlist": len(self.wants),
        }

    # ---- history: custom fields, currency, changes between pulls ---------------------------

    #: The currency of the user's collection value (its format follows, see toolkit.money).
    currency: str = "USD"

    def collection_fields(self) -> list[_JSON]:
        """The /users/{u}/collection/fields list: Discogs' three default fields."""
        options = sorted({*_CONDITIONS, *_MEDIA_GRADES}, key=_MEDIA_ORDER.index)
        return [
            {"id": 1, "name": "Media Condition", "type": "dropdown", "options": options,
             "public": True, "position": 1},
            {"id": 2, "name": "Sleeve Condition", "type": "dropdown", "options": options,
             "public": True, "position": 2},
            {"id": 3, "name": "Notes", "type": "textarea", "lines": 3, "public": True,
             "position": 3},
        ]  # fmt: skip

    def change(self, seed: int, *, add: int = 0, remove: int = 0) -> tuple[list[int], list[int]]:
        """Between two pulls: remove ``remove`` items and add ``add`` newer ones, drop a want and
        want a release not owned, all seeded. Returns (added, removed) instance ids."""
        rng = random.Random(f"discogs-sim/{self.catalogue.seed}/change/{self.name}/{seed}")
        with self._lock:
            doomed = rng.sample(
                [it["instance_id"] for it in self.items], min(remove, len(self.items))
            )
            self.remove_items(doomed)
            added = [it["instance_id"] for it in self._add(add, spread=dt.timedelta(days=30))]
            if self.wants:
                self.wants.pop(rng.randrange(len(self.wants)))
            held = {it["id"] for it in self.items} | {w["id"] for w in self.wants}
            spare = [r for r in self.catalogue._sample_ids(rng, 50) if r not in held]
            if spare:
                self.wants.append(self._want(spare[0]))
        return added, doomed


class SimCatalogue:
    """``releases`` releases (the real dump ones first, then generated ids above them) and users.

    Generated releases recombine real ones (genres with their styles, artists, labels, formats,
    tracklists, years) with ``random.Random`` keyed by ``seed`` and id, lazily on demand, so a
    100,000-release catalogue costs nothing until asked. The ``demo`` user exists from the start and
    owns the catalogue's real releases only.
    Thread-safe for the simulator's concurrent reads.
    """

    def __init__(self, releases: int = 5000, seed: int = 0) -> None:
        if not 1 <= releases <= MAX_RELEASES:
            raise ValueError(f"releases must be in 1..{MAX_RELEASES}, got {releases}")
        self.size = releases
        self.seed = seed
        reals = real_releases()
        self._real = {int(r["id"]): r for r in reals[:releases]}
        self._real_ids = sorted(self._real)
        self.first_generated_id = int(reals[-1]["id"]) + 1
        self._generated = max(0, releases - len(reals))
        self._deleted: set[int] = set()
        self._overrides: dict[int, str] = {}
        self._cache: dict[int, _JSON] = {}
        self._basic: dict[int, _JSON] = {}
        self._lock = threading.RLock()
        self._users: dict[str, SimUser] = {}
        self.user(DEMO_USER, releases=self._real_ids)

    def __repr__(self) -> str:
        return f"SimCatalogue(releases={self.size}, seed={self.seed})"

    def __len__(self) -> int:
        return self.size

    # ---- releases -------------------------------------------------------------------------

    def release_ids(self) -> list[int]:
        """Every release id of the catalogue, ascending (deleted ones included)."""
        gen = range(self.first_generated_id, self.first_generated_id + self._generated)
        return [*self._real_ids, *gen]

    def _exists(self, release_id: int) -> bool:
        if release_id in self._real:
            return True
        return self.first_generated_id <= release_id < self.first_generated_id + self._generated

    def _sample_ids(self, rng: random.Random, n: int) -> list[int]:
        """``n`` release ids; distinct while the catalogue has enough, plus ~1% duplicate copies."""
        ids = self.release_ids()
        if n <= 0:
            return []
        picked = rng.sample(ids, n) if n <= len(ids) else [rng.choice(ids) for _ in range(n)]
        for i in range(len(picked)):
            if i and rng.random() < 0.01:
                picked[i] = picked[rng.randrange(i)]
        return picked

    def delete_release(self, release_id: int) -> None:
        """Make /releases/{id} answer 404 from now on (collection items keep their snapshot)."""
        self._deleted.add(release_id)

    def is_deleted(self, release_id: int) -> bool:
        """True when :meth:`delete_release` was called for this id."""
        return release_id in self._deleted

    def override_release(self, release_id: int, body: Any) -> None:
        """Serve ``body`` (any JSON value) as ``/releases/{release_id}`` from now on.

        For malformed answers (a missing ``title``, ``"artists": "x"``) and merged releases (the
        body of another id). ``body`` is copied now; ``None`` restores the catalogue's release.
        Collection entries, wantlists and marketplace stats keep the catalogue's data, and
        :meth:`delete_release` still wins (404).
        """
        with self._lock:
            if body is None:
                self._overrides.pop(release_id, None)
            else:
                self._overrides[release_id] = json.dumps(body)

    def _full(self, release_id: int, *, deleted_too: bool = False) -> _JSON | None:
        """The shared cached body (API_ROOT URLs), or None: do not mutate it."""
        if not self._exists(release_id) or (release_id in self._deleted and not deleted_too):
            return None
        cached = self._cache.get(release_id)
        if cached is None:
            base = self._real.get(release_id)
            if base is None:
                base = self._recombine(release_id)
            cached = self._finish(base)
            with self._lock:
                cached = self._cache.setdefault(release_id, cached)
        return cached

    def release(self, release_id: int, *, base_url: str = API_ROOT) -> _JSON | None:
        """The /releases/{id} body (a fresh copy), or None for unknown or deleted ids.

        URLs start with ``base_url`` (default: the real API's, as in captured responses).
        """
        text = self.release_json(release_id)
        if text is None:
            return None
        if base_url != API_ROOT:
            text = text.replace(API_ROOT, base_url.rstrip("/"))
        result: _JSON = json.loads(text)
        return result

    def release_json(self, release_id: int) -> str | None:
        """The /releases/{id} body serialised (API_ROOT URLs), or None."""
        if release_id in self._deleted:
            return None
        override = self._overrides.get(release_id)
        if override is not None:
            return override
        full = self._full(release_id)
        return None if full is None else json.dumps(full)

    def served_release(self, release_id: int) -> _JSON | None:
        """The catalogue's /releases/{id} body (shared: do not mutate), or None when not served so.

        None for unknown and deleted ids and for ids whose answer a test overrode.
        """
        if release_id in self._overrides:
            return None
        return self._full(release_id)

    def write_dump(
        self,
        directory: str | os.PathLike[str],
        dump_date: dt.date,
        *,
        release_ids: Iterable[int] | None = None,
    ) -> list[Path]:
        """Write the releases (all, or ``release_ids``) as a Discogs monthly dump of ``dump_date``.

        The four gzipped files (releases, masters, artists, labels) go to ``directory``; see
        :mod:`toolkit.discogs.simdump`. Returns their paths.
        """
        from toolkit.discogs.simdump import write_dump

        return write_dump(self, directory, dump_date, release_ids=release_ids)

    def basic_information(self, release_id: int) -> _JSON:
        """The ``basic_information`` of a collection or wantlist entry for this release."""
        cached = self._basic.get(release_id)
        if cached is not None:
            return _clone(cached)
        full = self._full(release_id, deleted_too=True)
        if full is None:
            raise KeyError(release_id)
        master_id = int(full.get("master_id", 0))
        basic: _JSON = {
            "id": release_id,
            "master_id": master_id,
            "master_url": f"{API_ROOT}/masters/{master_id}" if master_id else None,
            "resource_url": full["resource_url"],
            "thumb": full["thumb"],
            "cover_image": full["images"][0]["uri"] if full["images"] else "",
            "title": full["title"],
            "year": full["year"],
            "formats": full["formats"],
            "labels": full["labels"],
            "artists": full["artists"],
            "genres": full["genres"],
            "styles": full["styles"],
        }
        self._basic[release_id] = basic
        return _clone(basic)

    def marketplace_stats(self, release_id: int) -> _JSON | None:
        """The /marketplace/stats/{id} body, or None for unknown or deleted ids."""
        full = self._full(release_id)
        if full is None:
            return None
        price = full["lowest_price"]
        return {
            "lowest_price": None if price is None else {"currency": "USD", "value": price},
            "num_for_sale": full["num_for_sale"],
            "blocked_from_sale": full["blocked_from_sale"],
        }

    def _recombine(self, release_id: int) -> _JSON:
        """A new release from pieces of real ones, deterministic from seed and id."""
        rng = random.Random(f"discogs-sim/{self.seed}/recombine/{release_id}")
        reals = real_releases()
        donor = rng.choice(reals)  # genres + styles + country stay coherent
        artist_src = donor if rng.random() < 0.3 else rng.choice(reals)
        label_src = rng.choice(reals)
        format_src = rng.choice(reals)
        track_src = rng.choice(reals)
        year_src = rng.choice(reals)
        words, track_titles = _title_words()
        title = " ".join(rng.choice(words) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
        year = int(year_src["year"])
        released = ""
        if year and rng.random() < 0.92:
            year = max(1950, min(2024, year + rng.randint(-12, 6)))
            released = f"{year}-{rng.randint(1, 12):02d}-{rng.choice((0, rng.randint(1, 28))):02d}"
        else:
            year = 0
        labels = [dict(lab) for lab in (label_src["labels"] or donor["labels"])]
        for lab in labels:
            prefix = re.sub(r"[^A-Z]", "", str(lab["catno"]).upper())[:4] or "CAT"
            lab["catno"] = f"{prefix} {rng.randint(1, 999):03d}"
        tracklist = [
            track
            if track.get("type_") == "heading"
            else {**track, "title": rng.choice(track_titles)}
            for track in track_src["tracklist"]
        ]
        master_id = rng.randrange(100_000, 2_000_000) if rng.random() < 0.6 else 0
        images = [
            {"type": "primary" if i == 0 else "secondary", "width": 600, "height": 600}
            for i in range(rng.choice((0, 1, 1, 2, 3, 4)))
        ]
        return {
            "id": release_id,
            "status": "Accepted",
            "title": title,
            "artists": artist_src["artists"],
            "extraartists": rng.choice(reals)["extraartists"][:6],
            "labels": labels,
            "companies": label_src["companies"][:4],
            "formats": format_src["formats"],
            "genres": list(donor["genres"]),
            "styles": list(donor["styles"]),
            "country": donor["country"],
            "released": released,
            "year": year,
            "notes": "",
            "data_quality": rng.choice(
                ("Needs Vote", "Needs Vote", "Correct", "Complete and Correct")
            ),
            "master_id": master_id,
            "tracklist": tracklist,
            "identifiers": [],
            "videos": [],
            "images": images,
        }

    def _finish(self, base: _JSON) -> _JSON:
        """Add the API-only fields (URLs, community, prices, dates) to a static release."""
        rid = int(base["id"])
        rng = random.Random(f"discogs-sim/{self.seed}/release/{rid}")
        have = int(rng.lognormvariate(4.0, 1.4))
        # mostly fewer wants than haves (median ~0.6), a rare record wanted twice over
        want = int(have * (0.05 + 2.0 * (rng.uniform(0.1, 2.5) / 2.5) ** 2))
        votes = min(have, int(have * rng.uniform(0.02, 0.2)))
        for_sale = 0 if rng.random() < 0.3 else int(rng.lognormvariate(1.5, 1.2)) + 1
        price = round(rng.lognormvariate(1.8, 0.9), 2) if for_sale else None
        added = dt.datetime(2001, 1, 1) + dt.timedelta(seconds=rng.randrange(0, 86400 * 365 * 22))
        changed = added + dt.timedelta(seconds=rng.randrange(0, 86400 * 365 * 3))
        images = []
        for i, img in enumerate(base["images"]):
            uri = f"https://i.discogs.com/R-{rid}-{1100000000 + rid * 7 + i}.jpeg"
            images.append(
                {
                    "type": img["type"],
                    "uri": uri,
                    "resource_url": uri,
                    "uri150": uri.replace(".jpeg", "-150.jpeg"),
                    "width": img["width"],
                    "height": img["height"],
                }
            )
        users = rng.sample(_CONTRIBUTORS, rng.randint(1, 4))
        qty = 0
        weight = 0
        for fmt in base["formats"]:
            n = int(fmt["qty"]) if str(fmt["qty"]).isdigit() else 1
            qty += n
            weight += n * _WEIGHT.get(str(fmt["name"]), 100)
        artists = base["artists"]
        body: _JSON = {
            "id": rid,
            "status": base["status"],
            "year": base["year"],
            "resource_url": f"{API_ROOT}/releases/{rid}",
            "uri": f"https://www.discogs.com/release/{rid}-{_slug(base['title'])}",
            "artists": artists,
            "artists_sort": "".join(
                f"{a['anv'] or a['name']}{' ' + a['join'] + ' ' if a['join'] and i < len(artists) - 1 else ''}"
                for i, a in enumerate(artists)
            ),
            "labels": base["labels"],
            "series": [],
            "companies": base["companies"],
            "formats": base["formats"],
            "data_quality": base["data_quality"],
            "community": {
                "have": have,
                "want": want,
                "rating": {
                    "count": votes,
                    "average": round(rng.uniform(2.5, 4.9), 2) if votes else 0,
                },
                "submitter": {"username": users[0], "resource_url": f"{API_ROOT}/users/{users[0]}"},
                "contributors": [
                    {"username": u, "resource_url": f"{API_ROOT}/users/{u}"} for u in users
                ],
                "data_quality": base["data_quality"],
                "status": base["status"],
            },
            "format_quantity": qty,
            "date_added": _iso(added),
            "date_changed": _iso(changed),
            "num_for_sale": for_sale,
            "lowest_price": price,
            "blocked_from_sale": rng.random() < 0.02,
            "title": base["title"],
            "country": base["country"],
            "released": base["released"],
            "released_formatted": _released_formatted(base["released"]),
            "notes": base["notes"],
            "identifiers": base["identifiers"],
            "videos": base["videos"],
            "genres": list(base["genres"]),
            "styles": list(base["styles"]),
            "tracklist": base["tracklist"],
            "extraartists": base["extraartists"],
            "images": images,
            "thumb": images[0]["uri150"] if images else "",
            "estimated_weight": weight,
        }
        if base["master_id"]:
            body["master_id"] = base["master_id"]
            body["master_url"] = f"{API_ROOT}/masters/{base['master_id']}"
        return body

    # ---- users ----------------------------------------------------------------------------

    @property
    def users(self) -> Mapping[str, SimUser]:
        """Users by name (a read-only view; create them with :meth:`user`)."""
        return dict(self._users)

    def user(
        self,
        name: str,
        items: int = 100,
        folders: Sequence[str] = DEFAULT_FOLDERS,
        *,
        releases: Sequence[int] | None = None,
    ) -> SimUser:
        """The user ``name``, created with ``items`` collection items if new (else returned as is).

        ``releases`` makes a new user own exactly those release ids instead (as ``demo`` does).
        Names are matched case-insensitively, like Discogs usernames.
        """
        with self._lock:
            existing = self.find_user(name)
            if existing is not None:
                return existing
            created = SimUser(self, name, items=items, folders=folders, releases=releases)
            self._users[name] = created
            return created

    def find_user(self, name: str) -> SimUser | None:
        """The user called ``name`` (case-insensitive), or None."""
        found = self._users.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        for key, value in self._users.items():
            if key.lower() == lowered:
                return value
        return None

    def collection_value(self, user: SimUser) -> dict[str, str]:
        """The /users/{u}/collection/value body: totals of estimated low, median and high prices."""
        low = med = high = 0.0
        for item in user.items:
            full = self._full(item["id"])
            price = full.get("lowest_price") if full else None
            base = float(price) if price is not None else 2.0
            low += base
            med += base * 1.6
            high += base * 3.1
        return {"minimum": _money(low), "median": _money(med), "maximum": _money(high)}

    # ---- history: prices that move, currencies -------------------------------------------

    #: How many times :meth:`advance` ran: prices and collections move with it.
    epoch: int = 0

    def price_factor(self, release_id: int) -> float:
        """How far a release's prices moved from its base by now (1.0 before any :meth:`advance`)."""
        if self.epoch == 0:
            return 1.0
        rng = random.Random(f"discogs-sim/{self.seed}/price/{self.epoch}/{release_id}")
        return rng.uniform(0.75, 1.4)

    def advance(self, seed: int | None = None) -> dict[str, tuple[list[int], list[int]]]:
        """Move the world on between two pulls: prices change and every user adds and removes a
        few items (about 1% each way, at least one) and one want. Deterministic from ``seed``
        (default: the new epoch). Returns (added, removed) instance ids per user."""
        with self._lock:
            self.epoch += 1
            key = self.epoch if seed is None else seed
            changes = {}
            for name, user in self._users.items():
                n = max(1, len(user.items) // 100)
                changes[name] = user.change(key, add=n + 1, remove=n)
            return changes

    def market_stats(self, release_id: int, currency: str = "USD") -> _JSON | None:
        """:meth:`marketplace_stats` with moved prices, in ``currency`` (one of toolkit.money's)."""
        stats = self.marketplace_stats(release_id)
        if stats is None or stats["lowest_price"] is None:
            return stats
        rate, decimals = _RATES.get(currency, _RATES["USD"])
        code = currency if currency in _RATES else "USD"
        value = round(
            stats["lowest_price"]["value"] * self.price_factor(release_id) * rate, decimals
        )
        stats["lowest_price"] = {"currency": code, "value": value}
        return stats

    def user_value(self, user: SimUser) -> dict[str, str]:
        """/users/{u}/collection/value in the user's currency and format, with moved prices."""
        low = med = high = 0.0
        for item in user.items:
            full = self._full(item["id"])
            price = full.get("lowest_price") if full else None
            base = (float(price) if price is not None else 2.0) * self.price_factor(item["id"])
            low += base
            med += base * 1.6
            high += base * 3.1
        rate, _ = _RATES.get(user.currency, _RATES["USD"])
        code = user.currency if user.currency in _RATES else "USD"
        return {
            "minimum": format_money(low * rate, code),
            "median": format_money(med * rate, code),
            "maximum": format_money(high * rate, code),
        }

    def genre_counts(self, release_ids: Iterable[int] | None = None) -> dict[str, int]:
        """How many releases carry each genre (over ``release_ids``, default all): for tests and notebooks."""
        counts: dict[str, int] = {}
        for rid in self.release_ids() if release_ids is None else release_ids:
            full = self._full(rid)
            for genre in full["genres"] if full else ():
                counts[genre] = counts.get(genre, 0) + 1
        return counts


def _clone(value: _JSON) -> _JSON:
    """A deep copy of a JSON-able dict (much faster than copy.deepcopy)."""
    result: _JSON = json.loads(json.dumps(value))
    return result


def _money(value: float) -> str:
    return f"${value:,.2f}"
