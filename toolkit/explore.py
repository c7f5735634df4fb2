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
    "CAPTIONS",
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


def _figure(what: str, detail: str = "", height: float = 4.5) -> tuple[Figure, Any]:
    from toolkit.chart_style import new_figure, title

    fig, ax = new_figure(9.0, height)
    title(ax, what, detail)
    return fig, ax


def _empty(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _stacked_by_decade(frame: pd.DataFrame, column: str, what: str, detail: str) -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, shorten, styled

    fig, ax = _figure(what, detail)
    if frame.empty:
        _empty(ax)
        return fig
    table = frame.pivot_table(
        index="decade", columns=column, values="items", fill_value=0, aggfunc="sum"
    )
    order = table.sum().sort_values(ascending=False).index
    shown = list(order[:9])
    if len(order) > len(shown):  # the rest as one band, so the bars keep their true height
        table["other"] = table[list(order[len(shown) :])].sum(axis=1)
        shown.append("other")
    table = table[shown]
    labels = [f"{int(d)}s" for d in table.index]
    bottom = [0.0] * len(table)
    with styled():
        for i, name in enumerate(shown):
            values = [float(v) for v in table[name]]
            color = "#BBBBBB" if name == "other" else PALETTE[i % len(PALETTE)]
            ax.bar(labels, values, bottom=bottom, width=0.75, label=shorten(name, 28), color=color)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xlabel("decade of release")
        ax.set_ylabel("collection items")
        integer_ticks(ax.yaxis)
        ax.grid(axis="y")
        ax.legend(title=column, loc="upper left", bbox_to_anchor=(1.01, 1.0), reverse=True)
    return fig


def _barh(
    labels: list[str], values: list[float], what: str, xlabel: str, detail: str = ""
) -> Figure:
    from toolkit.chart_style import integer_ticks, styled

    fig, ax = _figure(what, detail, height=max(3.0, 0.32 * len(labels) + 1.6))
    if not labels:
        _empty(ax)
        return fig
    with styled():
        ypos = list(range(len(labels)))[::-1]
        bars = ax.barh(ypos, values, height=0.7)
        ax.set_yticks(ypos, labels)
        whole = all(float(v).is_integer() for v in values)
        ax.bar_label(bars, labels=[f"{v:,.0f}" if whole else f"{v:,.2f}" for v in values],
                     padding=3, fontsize=8)  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_xlim(0, max(values) * 1.12 if max(values) > 0 else 1)
        if whole:
            integer_ticks(ax.xaxis)
        ax.grid(axis="x")
    return fig


def _release_label(row: Any) -> str:
    import pandas as pd

    from toolkit.chart_style import shorten

    year = 0 if pd.isna(row["year"]) else int(row["year"])
    return shorten(row["title"], 38) + (f" ({year})" if year else "")


def _plot_formats(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import shorten

    return _barh(
        [shorten(v, 30) for v in frame["format"]] if not frame.empty else [],
        [float(v) for v in frame["items"]],
        "Collection items by format",
        "collection items",
        "each release counted by its first format (Vinyl, CD ...)",
    )


def _plot_top(frame: pd.DataFrame, column: str, what: str) -> Figure:
    from toolkit.chart_style import shorten

    return _barh(
        [shorten(v, 36) for v in frame[column]] if not frame.empty else [],
        [float(v) for v in frame["items"]],
        f"The {len(frame)} {what} with the most items in the collection",
        "collection items",
    )


def _plot_additions(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, styled, year_ticks

    fig, ax = _figure(
        "Items added to the collection per year",
        "bars: items added that year (left axis); line: collection size at the year's end (right)",
    )
    if frame.empty:
        _empty(ax)
        return fig
    years = [int(y) for y in frame["year"]]
    with styled():
        bars = ax.bar(years, frame["added"], width=0.75, color=PALETTE[0], label="added that year")
        twin = ax.twinx()
        (line,) = twin.plot(years, frame["total"], color=PALETTE[3], marker="o", markersize=3,
                            label="collection size")  # fmt: skip
        year_ticks(ax.xaxis, years)
        ax.tick_params(axis="x", labelrotation=45 if len(years) > 12 else 0)
        ax.set_xlabel("year added")
        ax.set_ylabel("items added")
        twin.set_ylabel("collection size (items)")
        twin.spines["right"].set_visible(True)
        twin.set_ylim(0, float(frame["total"].max()) * 1.08)
        integer_ticks(ax.yaxis)
        integer_ticks(twin.yaxis)
        ax.grid(axis="y")
        ax.legend([bars, line], ["added that year", "collection size"], loc="upper left")
    return fig


def _plot_ratings(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, styled

    total = int(frame["items"].sum()) if not frame.empty else 0
    rated = int(frame.loc[frame["rating"] > 0, "items"].sum()) if not frame.empty else 0
    fig, ax = _figure(
        "The owner's ratings of the collection items",
        f"{rated:,} of {total:,} items rated ({rated / total:.0%})" if total else "",
    )
    if frame.empty:
        _empty(ax)
        return fig
    by_rating = {int(r): int(n) for r, n in zip(frame["rating"], frame["items"], strict=True)}
    names = ["unrated", "1", "2", "3", "4", "5"]
    counts = [by_rating.get(i, 0) for i in range(6)]
    with styled():
        colors = ["#BBBBBB", *[PALETTE[0]] * 5]
        bars = ax.bar(names, counts, color=colors, width=0.7)
        ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=2, fontsize=8)
        ax.set_xlabel("rating (stars out of 5)")
        ax.set_ylabel("collection items")
        ax.set_ylim(0, max(counts) * 1.12 if max(counts) else 1)
        integer_ticks(ax.yaxis)
        ax.grid(axis="y")
    return fig


def _plot_have_want(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, styled

    fig, ax = _figure(
        f"The {len(frame)} most wanted releases of the collection",
        "Discogs users who want each release, and users who have it",
        height=max(3.0, 0.42 * len(frame) + 1.8),
    )
    if frame.empty:
        _empty(ax)
        return fig
    labels = [_release_label(row) for _, row in frame.iterrows()]
    ypos = list(range(len(labels)))[::-1]
    with styled():
        ax.barh([y + 0.2 for y in ypos], frame["want"], height=0.4, color=PALETTE[3],
                label="want")  # fmt: skip
        ax.barh([y - 0.2 for y in ypos], frame["have"], height=0.4, color=PALETTE[0],
                label="have")  # fmt: skip
        ax.set_yticks(ypos, labels)
        ax.set_xlabel("Discogs users")
        integer_ticks(ax.xaxis)
        ax.grid(axis="x")
        ax.legend(loc="lower right")
    return fig


def _plot_prices(frame: pd.DataFrame) -> Figure:
    return _barh(
        [_release_label(row) for _, row in frame.iterrows()],
        [float(v) for v in frame["lowest_price"]],
        f"The {len(frame)} dearest releases of the collection",
        "lowest price on the Discogs marketplace (USD)",
        "by the price of the cheapest copy for sale",
    )


#: chart name -> (query, plot); :func:`plot` draws one and saves ``<name>.png``.
CHARTS: dict[str, tuple[Callable[[Database], pd.DataFrame], Callable[[pd.DataFrame], Figure]]] = {
    "genres_by_decade": (
        genres_by_decade,
        lambda f: _stacked_by_decade(
            f,
            "genre",
            "Collection items by decade of release and genre",
            "an item with two genres counts in both; unknown years left out",
        ),
    ),
    "styles_by_decade": (
        styles_by_decade,
        lambda f: _stacked_by_decade(
            f,
            "style",
            "Collection items by decade of release, for the most common styles",
            "an item with two styles counts in both; unknown years left out",
        ),
    ),
    "formats": (formats, _plot_formats),
    "top_labels": (top_labels, lambda f: _plot_top(f, "label", "labels")),
    "top_artists": (top_artists, lambda f: _plot_top(f, "artist", "artists")),
    "additions_over_time": (additions_over_time, _plot_additions),
    "ratings": (ratings, _plot_ratings),
    "community_have_want": (community_have_want, _plot_have_want),
    "lowest_prices": (lowest_prices, _plot_prices),
}

#: chart name -> a one-line caption (the demo's ``index.html`` shows it under the PNG).
CAPTIONS: dict[str, str] = {
    "genres_by_decade": "How the collection spreads over the decades its releases came out in, by genre.",
    "styles_by_decade": "The same by style, for the styles that occur most.",
    "formats": "What the collection is on: vinyl, CD, cassette, files ...",
    "top_labels": "The labels the collection holds most releases of.",
    "top_artists": "The artists the collection holds most releases of (credits left out).",
    "additions_over_time": "When the items were added: per year, and the collection's size over time.",
    "ratings": "The owner's star ratings; most items are never rated.",
    "community_have_want": "The most wanted releases of the collection, against how many users have them.",
    "lowest_prices": "The releases whose cheapest copy for sale costs most.",
}


def plot(name: str, frame: pd.DataFrame, output_dir: str | Path | None = None) -> Figure:
    """Draw chart ``name`` (a key of :data:`CHARTS`) from ``frame``; save ``<name>.png`` if asked."""
    from toolkit.chart_style import save

    fig = CHARTS[name][1](frame)
    if output_dir is not None:
        save(fig, Path(output_dir) / f"{name}.png")
    return fig
