"""The ``demo`` user's collection: whole real releases of the bundled dump sample, owned plausibly.

The releases are the dump's records as they are; only what a dump cannot say about an owner is drawn
here, from a seeded ``random.Random``: when each item was added, its folder, rating, notes and copies.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIRST_ADDED",
    "LAST_ADDED",
    "OwnedItem",
    "demo_items",
    "split_wantlist",
]

#: The demo owner's first and last additions: the collection grows between them.
FIRST_ADDED = dt.datetime(2009, 3, 14, 11, 0, 0)
LAST_ADDED = dt.datetime(2026, 9, 30, 22, 0, 0)
# Relative additions per year from FIRST_ADDED's year on: a slow start, a buying spree, a lull
# (moving house, a child), a second wind. Seeded noise on top keeps it from looking drawn.
_YEAR_SHAPE = (2, 5, 9, 16, 21, 12, 6, 3, 2, 4, 7, 11, 17, 13, 8, 6, 5, 4)
# Rated items get mostly 4s and 5s: people rate what they love.
_RATINGS = (1, 2, 3, 4, 5)
_RATING_WEIGHTS = (2, 5, 18, 40, 35)
_RATED_SHARE = 0.28
_MEDIA = ("Mint (M)", "Near Mint (NM or M-)", "Very Good Plus (VG+)", "Very Good (VG)", "Good (G)")
_MEDIA_WEIGHTS = (3, 30, 40, 20, 7)
_NOTES = (
    "first pressing",
    "bought at a record fair",
    "gift",
    "signed sleeve",
    "needs cleaning",
    "still sealed",
    "from my dad's boxes",
    "inner sleeve missing",
)
_COPIES_SHARE = 0.02


@dataclass(frozen=True)
class OwnedItem:
    """What the owner adds to one real release: the collection entry's simulated fields."""

    release_id: int
    folder: str
    rating: int
    date_added: dt.datetime
    notes: tuple[tuple[int, str], ...] = ()


def split_wantlist(
    release_ids: Sequence[int], rng: random.Random, share: float = 0.03
) -> tuple[list[int], list[int]]:
    """(collection, wantlist) ids: a small seeded share is wanted rather than owned, never both."""
    wanted = set(rng.sample(list(release_ids), int(len(release_ids) * share)))
    return [r for r in release_ids if r not in wanted], [r for r in release_ids if r in wanted]


def _folder(release: Mapping[str, Any], folders: Sequence[str], rng: random.Random) -> str:
    """The folder an owner who sorts by format would use (some items never get sorted)."""
    first = folders[0]
    if rng.random() < 0.12:
        return first
    formats = release.get("formats") or [{}]
    name = str(formats[0].get("name", ""))
    descriptions = {str(d) for d in formats[0].get("descriptions", [])}
    wanted = first
    if name in ("Vinyl", "Shellac"):
        wanted = "7s" if '7"' in descriptions or '10"' in descriptions else "LPs"
    elif name in ("CD", "CDr"):
        wanted = "CDs"
    return wanted if wanted in folders else first


def _year_weights(rng: random.Random, first: int, last: int) -> dict[int, float]:
    shape = _YEAR_SHAPE
    return {
        year: shape[min(i, len(shape) - 1)] * rng.uniform(0.75, 1.3)
        for i, year in enumerate(range(first, last + 1))
    }


def _date_added(release_year: int, weights: Mapping[int, float], rng: random.Random) -> dt.datetime:
    """A moment in a year drawn from ``weights``, never before the release came out."""
    years = [y for y in weights if y >= release_year] or [max(weights)]
    year = rng.choices(years, weights=[weights[y] for y in years])[0]
    start = max(FIRST_ADDED, dt.datetime(year, 1, 1))
    end = min(LAST_ADDED, dt.datetime(year, 12, 31, 23, 59, 59))
    return start + dt.timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))


def _notes(release: Mapping[str, Any], rng: random.Random) -> tuple[tuple[int, str], ...]:
    """Discogs' default fields: 1 = media condition, 2 = sleeve condition, 3 = free text."""
    if rng.random() >= 0.22:
        return ()
    physical = any(
        str(f.get("name")) in ("Vinyl", "Shellac", "CD", "Cassette") for f in release["formats"]
    )
    notes: list[tuple[int, str]] = []
    if physical:
        media = rng.choices(_MEDIA, weights=_MEDIA_WEIGHTS)[0]
        notes.append((1, media))
        if rng.random() < 0.6:
            notes.append((2, rng.choices(_MEDIA, weights=_MEDIA_WEIGHTS)[0]))
    if not notes or rng.random() < 0.35:
        notes.append((3, rng.choice(_NOTES)))
    return tuple(notes)


def demo_items(
    releases: Sequence[Mapping[str, Any]], folders: Sequence[str], rng: random.Random
) -> list[OwnedItem]:
    """One item per release (a few owned twice or three times), oldest addition first.

    ``releases`` are release dicts with ``id``, ``year`` and ``formats`` (the dump's); ``folders``
    are folder names, the first being where unsorted items go.
    """
    weights = _year_weights(rng, FIRST_ADDED.year, LAST_ADDED.year)
    items: list[OwnedItem] = []
    for release in releases:
        copies = 1 if rng.random() >= _COPIES_SHARE else rng.choice((2, 2, 3))
        for _ in range(copies):
            rated = rng.random() < _RATED_SHARE
            items.append(
                OwnedItem(
                    release_id=int(release["id"]),
                    folder=_folder(release, folders, rng),
                    rating=rng.choices(_RATINGS, weights=_RATING_WEIGHTS)[0] if rated else 0,
                    date_added=_date_added(int(release["year"] or 0), weights, rng),
                    notes=_notes(release, rng),
                )
            )
    items.sort(key=lambda item: (item.date_added, item.release_id))
    return items
