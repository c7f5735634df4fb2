"""Canned queries and matplotlib charts over the collection database, for the CLI and the notebooks.

Every query works on DuckDB and sqlite alike and returns a pandas DataFrame; every chart saves a PNG.
``connect`` and ``resolve_database`` live in :mod:`toolkit.dbopen` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.db import Database
from toolkit.dbopen import connect, resolve_database
from toolkit.discogs.httpcache import clear_http_cache, http_cache_stats
from toolkit.query import CommonQueries, QueryBuilder

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "CHARTS",
    "CollectionSummary",
    "additions_over_time",
    "clear_http_cache",
    "collection_summary",
    "community_have_want",
    "connect",
    "formats",
    "genres_by_decade",
    "http_cache_stats",
    "lowest_prices",
    "plot",
    "ratings",
    "recent_additions",
    "resolve_database",
    "styles_by_decade",
    "top_artists",
    "top_labels",
]


# ---------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class CollectionSummary:
    """Totals of a collection database (years exclude unknown ones) and its top genres and styles."""

    items: int
    releases: int
    detailed_releases: int
    genres: int
    styles: int
    year_min: int | None
    year_max: int | None
    top_genres: list[tuple[str, int]]
    top_styles: list[tuple[str, int]]

    def as_text(self) -> str:
        """A short human-readable report, as ``discogs-toolkit stats`` prints it."""
        years = (
            f"{self.year_min}-{self.year_max}" if self.year_min is not None else "no known years"
        )
        lines = [
            f"items       {self.items}",
            f"releases    {self.releases} ({self.detailed_releases} with details)",
            f"genres      {self.genres}",
            f"styles      {self.styles}",
            f"years       {years}",
            "top genres  " + ", ".join(f"{name} ({n})" for name, n in self.top_genres),
            "top styles  " + ", ".join(f"{name} ({n})" for name, n in self.top_styles),
        ]
        return "\n".join(lines)


def _top(db: Database, table: str, column: str, n: int) -> list[tuple[str, int]]:
    rows = db.fetchall(
        f"SELECT x.{column}, count(*) AS n FROM {table} x "
        "JOIN (SELECT DISTINCT release_id FROM collection_items) c ON c.release_id = x.release_id "
        f"GROUP BY x.{column} ORDER BY n DESC, x.{column} LIMIT ?",
        [n],
    )
    return [(str(name), int(count)) for name, count in rows]


def collection_summary(db: Database, top: int = 10) -> CollectionSummary:
    """Totals over the items in the collection: releases, distinct genres/styles, year range, tops."""
    items = int(db.scalar(CommonQueries.count("collection_items")) or 0)
    in_collection = "release_id IN (SELECT release_id FROM collection_items)"
    releases = int(
        db.scalar(f"SELECT count(DISTINCT release_id) FROM releases WHERE {in_collection}") or 0
    )
    detailed = int(
        db.scalar(f"SELECT count(*) FROM releases WHERE fetched_at IS NOT NULL AND {in_collection}")
        or 0
    )
    genres = int(
        db.scalar(f"SELECT count(DISTINCT genre) FROM release_genres WHERE {in_collection}") or 0
    )
    styles = int(
        db.scalar(f"SELECT count(DISTINCT style) FROM release_styles WHERE {in_collection}") or 0
    )
    row = db.fetchone(
        f"SELECT min(year), max(year) FROM releases WHERE year > 0 AND {in_collection}"
    )
    year_min, year_max = row if row is not None else (None, None)
    return CollectionSummary(
        items=items,
        releases=releases,
        detailed_releases=detailed,
        genres=genres,
        styles=styles,
        year_min=None if year_min is None else int(year_min),
        year_max=None if year_max is None else int(year_max),
        top_genres=_top(db, "release_genres", "genre", top),
        top_styles=_top(db, "release_styles", "style", top),
    )


# ---------------------------------------------------------------------------- canned queries
# Counts are of collection items (a release owned twice counts twice), joined through
# collection_items so releases kept only as a cache of details never count.


def genres_by_decade(db: Database) -> pd.DataFrame:
    """Items per (decade, genre); releases of unknown year are left out."""
    return db.df(
        "SELECT r.year - (r.year % 10) AS decade, g.genre, count(*) AS items "
        "FROM collection_items ci JOIN releases r ON r.release_id = ci.release_id "
        "JOIN release_genres g ON g.release_id = ci.release_id "
        "WHERE r.year IS NOT NULL AND r.year > 0 "
        "GROUP BY decade, g.genre ORDER BY decade, items DESC, g.genre"
    )


def styles_by_decade(db: Database, top: int = 8) -> pd.DataFrame:
    """Items per (decade, style) for the ``top`` styles overall."""
    return db.df(
        "WITH top AS (SELECT s.style FROM collection_items ci "
        "  JOIN release_styles s ON s.release_id = ci.release_id "
        "  GROUP BY s.style ORDER BY count(*) DESC, s.style LIMIT ?) "
        "SELECT r.year - (r.year % 10) AS decade, s.style, count(*) AS items "
        "FROM collection_items ci JOIN releases r ON r.release_id = ci.release_id "
        "JOIN release_styles s ON s.release_id = ci.release_id "
        "WHERE r.year IS NOT NULL AND r.year > 0 AND s.style IN (SELECT style FROM top) "
        "GROUP BY decade, s.style ORDER BY decade, items DESC, s.style",
        [top],
    )


def formats(db: Database) -> pd.DataFrame:
    """Items per format name (Vinyl, CD, ...), from each release's first format."""
    return db.df(
        "SELECT coalesce(f.name, 'unknown') AS format, count(*) AS items "
        "FROM collection_items ci LEFT JOIN release_formats f "
        "ON f.release_id = ci.release_id AND f.position = 0 "
        "GROUP BY format ORDER BY items DESC, format"
    )


def top_labels(db: Database, n: int = 15) -> pd.DataFrame:
    """The ``n`` labels with the most items."""
    return db.df(
        "SELECT l.name AS label, count(DISTINCT ci.instance_id) AS items "
        "FROM collection_items ci JOIN release_labels rl ON rl.release_id = ci.release_id "
        "JOIN labels l ON l.label_id = rl.label_id "
        "GROUP BY l.name ORDER BY items DESC, label LIMIT ?",
        [n],
    )


def top_artists(db: Database, n: int = 15) -> pd.DataFrame:
    """The ``n`` main artists (credits excluded) with the most items."""
    return db.df(
        "SELECT coalesce(a.name, ra.anv) AS artist, count(DISTINCT ci.instance_id) AS items "
        "FROM collection_items ci JOIN release_artists ra ON ra.release_id = ci.release_id "
        "LEFT JOIN artists a ON a.artist_id = ra.artist_id "
        "WHERE ra.role IS NULL AND coalesce(a.name, ra.anv) IS NOT NULL "
        "AND coalesce(a.name, ra.anv) <> 'Various' "
        "GROUP BY artist ORDER BY items DESC, artist LIMIT ?",
        [n],
    )


def additions_over_time(db: Database) -> pd.DataFrame:
    """Items added per year (from ``date_added``) and the running total."""
    frame = db.df(
        "SELECT CAST(substr(date_added, 1, 4) AS INTEGER) AS year, count(*) AS added "
        "FROM collection_items WHERE date_added IS NOT NULL "
        "GROUP BY year ORDER BY year"
    )
    frame["total"] = frame["added"].cumsum()
    return frame


def recent_additions(db: Database, n: int = 10) -> pd.DataFrame:
    """The ``n`` latest additions, built with :class:`~toolkit.query.QueryBuilder` on the view."""
    query = (
        QueryBuilder()
        .select(["date_added", "artists", "title", "year", "formats", "rating"])
        .from_("collection")
        .order_by("date_added", "DESC")
        .limit(n)
    )
    return db.df(query)


def ratings(db: Database) -> pd.DataFrame:
    """Items per personal rating (0 = unrated) next to the community's average rating."""
    return db.df(
        "SELECT coalesce(ci.rating, 0) AS rating, count(*) AS items, "
        "avg(r.community_rating_average) AS community_average "
        "FROM collection_items ci LEFT JOIN releases r ON r.release_id = ci.release_id "
        "GROUP BY coalesce(ci.rating, 0) ORDER BY rating"
    )


def community_have_want(db: Database, n: int = 15) -> pd.DataFrame:
    """The ``n`` most wanted releases of the collection, with have, want and want/have."""
    return db.df(
        "SELECT r.release_id, r.title, r.year, r.community_have AS have, "
        "r.community_want AS want, "
        "CAST(r.community_want AS DOUBLE) / nullif(r.community_have, 0) AS want_per_have "
        "FROM releases r WHERE r.release_id IN (SELECT release_id FROM collection_items) "
        "AND r.community_want IS NOT NULL "
        "ORDER BY want DESC, r.release_id LIMIT ?",
        [n],
    )


def lowest_prices(db: Database, n: int = 15) -> pd.DataFrame:
    """The ``n`` releases of the collection with the highest lowest marketplace price."""
    return db.df(
        "SELECT r.release_id, r.title, r.year, r.lowest_price, r.num_for_sale "
        "FROM releases r WHERE r.release_id IN (SELECT release_id FROM collection_items) "
        "AND r.lowest_price IS NOT NULL "
        "ORDER BY r.lowest_price DESC, r.release_id LIMIT ?",
        [n],
    )


# ---------------------------------------------------------------------------- charts


def _figure(title: str) -> tuple[Figure, Any]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.set_title(title)
    return fig, ax


def _empty(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _stacked_by_decade(frame: pd.DataFrame, column: str, title: str) -> Figure:
    fig, ax = _figure(title)
    if frame.empty:
        _empty(ax)
        return fig
    table = frame.pivot_table(index="decade", columns=column, values="items", fill_value=0)
    top = table.sum().sort_values(ascending=False).index[:10]
    table = table[top]
    table.index = [f"{int(d)}s" for d in table.index]
    table.plot.bar(stacked=True, ax=ax, width=0.8)
    ax.set_xlabel("decade")
    ax.set_ylabel("items")
    ax.legend(fontsize="small", ncols=2)
    return fig


def _barh(frame: pd.DataFrame, label: str, value: str, title: str, xlabel: str) -> Figure:
    fig, ax = _figure(title)
    if frame.empty:
        _empty(ax)
        return fig
    data = frame.iloc[::-1]
    ax.barh([str(v)[:40] for v in data[label]], data[value])
    ax.set_xlabel(xlabel)
    return fig


def _plot_additions(frame: pd.DataFrame) -> Figure:
    fig, ax = _figure("Items added per year")
    if frame.empty:
        _empty(ax)
        return fig
    ax.bar(frame["year"], frame["added"], label="added")
    twin = ax.twinx()
    twin.plot(frame["year"], frame["total"], color="black", marker=".", label="total")
    ax.set_xlabel("year")
    ax.set_ylabel("items added")
    twin.set_ylabel("collection size")
    return fig


def _plot_ratings(frame: pd.DataFrame) -> Figure:
    fig, ax = _figure("Personal ratings (0 = unrated)")
    if frame.empty:
        _empty(ax)
        return fig
    ax.bar(frame["rating"].astype(str), frame["items"])
    ax.set_xlabel("rating")
    ax.set_ylabel("items")
    return fig


def _plot_have_want(frame: pd.DataFrame) -> Figure:
    fig, ax = _figure("Community have vs want (most wanted releases)")
    if frame.empty:
        _empty(ax)
        return fig
    ax.scatter(frame["have"], frame["want"])
    for _, row in frame.head(8).iterrows():
        ax.annotate(str(row["title"])[:24], (row["have"], row["want"]), fontsize="x-small")
    ax.set_xlabel("have")
    ax.set_ylabel("want")
    return fig


#: chart name -> (query, plot); :func:`plot` draws one and saves ``<name>.png``.
CHARTS: dict[str, tuple[Callable[[Database], pd.DataFrame], Callable[[pd.DataFrame], Figure]]] = {
    "genres_by_decade": (
        genres_by_decade,
        lambda f: _stacked_by_decade(f, "genre", "Genres by decade"),
    ),
    "styles_by_decade": (
        styles_by_decade,
        lambda f: _stacked_by_decade(f, "style", "Top styles by decade"),
    ),
    "formats": (formats, lambda f: _barh(f, "format", "items", "Formats", "items")),
    "top_labels": (top_labels, lambda f: _barh(f, "label", "items", "Top labels", "items")),
    "top_artists": (top_artists, lambda f: _barh(f, "artist", "items", "Top artists", "items")),
    "additions_over_time": (additions_over_time, _plot_additions),
    "ratings": (ratings, _plot_ratings),
    "community_have_want": (community_have_want, _plot_have_want),
    "lowest_prices": (
        lowest_prices,
        lambda f: _barh(f, "title", "lowest_price", "Highest lowest prices", "lowest price"),
    ),
}


def plot(name: str, frame: pd.DataFrame, output_dir: str | Path | None = None) -> Figure:
    """Draw chart ``name`` (a key of :data:`CHARTS`) from ``frame``; save ``<name>.png`` if asked."""
    fig = CHARTS[name][1](frame)
    fig.tight_layout()
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / f"{name}.png", dpi=100)
    return fig
