"""What a collector asks of the catalogue (notebook 04): plain SQL over ``catalogue.*`` joined with the collection.

Every function takes a :class:`~toolkit.db.Database` with the catalogue attached (as
:func:`toolkit.dbopen.connect` and :func:`toolkit.notebook.open_database` give it) and works on
both engines. "Owned" means a release in ``collection_items``; copies count once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.db import Database

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "CAPTIONS",
    "CHARTS",
    "CatalogueStatus",
    "artist_discography",
    "catalogue_status",
    "label_completion",
    "master_versions",
    "plot",
    "top_artist",
]

#: Discogs' "Various" artist: credited on compilations, no one's discography.
VARIOUS_ARTIST_ID = 194
_OWNED = "owned AS (SELECT DISTINCT release_id FROM collection_items)"


@dataclass(frozen=True)
class CatalogueStatus:
    """How big the attached catalogue is, how old (its dump dates), and how much of the collection it covers."""

    releases: int
    masters: int
    artists: int
    labels: int
    dump_dates: dict[str, date] = field(default_factory=dict)
    owned: int = 0
    owned_in_catalogue: int = 0

    def as_text(self) -> str:
        """One line, as ``discogs-toolkit stats`` prints it."""
        if not self.dump_dates:
            return "catalogue   empty (load Discogs dumps with `discogs-toolkit catalogue load`)"
        dates = sorted(set(self.dump_dates.values()))
        when = ", ".join(d.isoformat() for d in dates)
        return (
            f"catalogue   {self.releases:,} releases, {self.masters:,} masters, "
            f"{self.artists:,} artists, {self.labels:,} labels (dump of {when}); "
            f"{self.owned_in_catalogue:,} of {self.owned:,} owned releases in it"
        )


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def catalogue_status(db: Database) -> CatalogueStatus:
    """Counts of the catalogue's tables, the dump date of each kind loaded, and the coverage."""
    counts = {
        table: int(db.scalar(f"SELECT count(*) FROM catalogue.{table}"))
        for table in ("releases", "masters", "artists", "labels")
    }
    dumps = {
        str(kind): _as_date(when)
        for kind, when in db.fetchall("SELECT kind, dump_date FROM catalogue.dumps")
        if when is not None
    }
    owned = covered = 0
    if db.table_exists("collection_items"):
        owned, covered = db.fetchone(
            f"WITH {_OWNED} SELECT count(*), count(c.release_id) FROM owned o "
            "LEFT JOIN catalogue.releases c ON c.release_id = o.release_id"
        ) or (0, 0)
    return CatalogueStatus(
        **counts, dump_dates=dumps, owned=int(owned), owned_in_catalogue=int(covered)
    )


def label_completion(db: Database, n: int = 12) -> pd.DataFrame:
    """The ``n`` labels the collection owns most releases of: owned vs releases in the catalogue.

    ``completion`` is the share of the label's catalogue releases that are owned (NULL when the
    catalogue has none of them).
    """
    return db.df(
        f"WITH {_OWNED}, "
        "top AS (SELECT rl.label_id, count(DISTINCT rl.release_id) AS owned "
        "  FROM release_labels rl JOIN owned o ON o.release_id = rl.release_id "
        "  WHERE rl.label_id IS NOT NULL GROUP BY rl.label_id "
        "  ORDER BY owned DESC, rl.label_id LIMIT ?), "
        "cat AS (SELECT cl.label_id, count(DISTINCT cl.release_id) AS in_catalogue, "
        "  count(DISTINCT o.release_id) AS owned_in_catalogue "
        "  FROM catalogue.release_labels cl LEFT JOIN owned o ON o.release_id = cl.release_id "
        "  WHERE cl.label_id IN (SELECT label_id FROM top) GROUP BY cl.label_id) "
        "SELECT t.label_id, coalesce(l.name, cl.name) AS label, t.owned, "
        "  coalesce(c.in_catalogue, 0) AS in_catalogue, "
        "  coalesce(c.owned_in_catalogue, 0) AS owned_in_catalogue, "
        "  CAST(c.owned_in_catalogue AS DOUBLE) / nullif(c.in_catalogue, 0) AS completion "
        "FROM top t LEFT JOIN labels l ON l.label_id = t.label_id "
        "LEFT JOIN catalogue.labels cl ON cl.label_id = t.label_id "
        "LEFT JOIN cat c ON c.label_id = t.label_id "
        "ORDER BY t.owned DESC, t.label_id",
        [n],
    )


def master_versions(db: Database, n: int | None = None) -> pd.DataFrame:
    """Each owned master: how many versions the catalogue has, how many and which are owned.

    Most versions first (``n`` of them, or all). ``title`` and ``year`` are the master's when
    the masters dump is loaded, else those of an owned version.
    """
    limit = "" if n is None else f" LIMIT {int(n)}"
    return db.df(
        f"WITH {_OWNED}, "
        "mine AS (SELECT r.master_id, r.release_id, r.title, r.year FROM releases r "
        "  JOIN owned o ON o.release_id = r.release_id WHERE r.master_id IS NOT NULL), "
        "versions AS (SELECT master_id, count(*) AS versions FROM catalogue.releases "
        "  WHERE master_id IN (SELECT master_id FROM mine) GROUP BY master_id) "
        "SELECT mi.master_id, coalesce(m.title, min(mi.title)) AS title, "
        "  coalesce(m.year, min(mi.year)) AS year, "
        "  coalesce(v.versions, 0) AS versions, count(*) AS owned_versions, "
        "  group_concat(CAST(mi.release_id AS VARCHAR), ', ') AS owned_release_ids "
        "FROM mine mi LEFT JOIN catalogue.masters m ON m.master_id = mi.master_id "
        "LEFT JOIN versions v ON v.master_id = mi.master_id "
        "GROUP BY mi.master_id, m.title, m.year, v.versions "
        f"ORDER BY versions DESC, owned_versions DESC, mi.master_id{limit}"
    )


def top_artist(db: Database) -> tuple[int, str] | None:
    """The main artist the collection owns most releases of ("Various" aside): (id, name)."""
    row = db.fetchone(
        f"WITH {_OWNED} SELECT ra.artist_id, coalesce(a.name, min(ra.anv)) AS name "
        "FROM release_artists ra JOIN owned o ON o.release_id = ra.release_id "
        "LEFT JOIN artists a ON a.artist_id = ra.artist_id "
        "WHERE ra.role IS NULL AND ra.artist_id IS NOT NULL AND ra.artist_id <> ? "
        "GROUP BY ra.artist_id, a.name "
        "ORDER BY count(DISTINCT ra.release_id) DESC, ra.artist_id LIMIT 1",
        [VARIOUS_ARTIST_ID],
    )
    return None if row is None else (int(row[0]), str(row[1]))


def artist_discography(db: Database, artist_id: int | None = None) -> pd.DataFrame:
    """Releases per year crediting ``artist_id`` as a main artist: existing (catalogue) vs owned.

    Default: :func:`top_artist`. ``year`` is NULL for releases of unknown year.
    """
    if artist_id is None:
        top = top_artist(db)
        artist_id = -1 if top is None else top[0]
    return db.df(
        f"WITH {_OWNED}, "
        "disc AS (SELECT DISTINCT release_id FROM catalogue.release_artists "
        "  WHERE artist_id = ? AND role IS NULL) "
        "SELECT c.year, count(*) AS existing, count(o.release_id) AS owned "
        "FROM disc d JOIN catalogue.releases c ON c.release_id = d.release_id "
        "LEFT JOIN owned o ON o.release_id = d.release_id "
        "GROUP BY c.year ORDER BY c.year",
        [artist_id],
    )


# ---------------------------------------------------------------------------- charts


def _figure(what: str, detail: str, height: float) -> tuple[Figure, Any]:
    from toolkit.chart_style import new_figure, title

    fig, ax = new_figure(9.0, height)
    title(ax, what, detail)
    return fig, ax


def _empty(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _paired_barh(
    labels: list[str], existing: list[int], owned: list[int], what: str, detail: str
) -> Figure:
    """Per row a light bar (in the catalogue) with the owned part drawn over it."""
    from toolkit.chart_style import PALETTE, integer_ticks, styled

    fig, ax = _figure(what, detail, height=max(3.0, 0.34 * len(labels) + 1.8))
    if not labels:
        _empty(ax)
        return fig
    with styled():
        ypos = list(range(len(labels)))[::-1]
        ax.barh(ypos, existing, height=0.7, color=PALETTE[5], alpha=0.45, label="in the catalogue")
        bars = ax.barh(ypos, owned, height=0.7, color=PALETTE[0], label="owned")
        ax.bar_label(bars, labels=[f"{o:,} / {e:,}" for o, e in zip(owned, existing, strict=True)],
                     padding=3, fontsize=8)  # fmt: skip
        ax.set_yticks(ypos, labels)
        ax.set_xlabel("releases")
        top = max([*existing, *owned, 1])
        ax.set_xlim(0, top * 1.18)
        integer_ticks(ax.xaxis)
        ax.grid(axis="x")
        ax.legend(loc="lower right")
    return fig


def _plot_labels(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import shorten

    return _paired_barh(
        [shorten(name, 34) for name in frame["label"].fillna("(unnamed)")],
        [int(v) for v in frame["in_catalogue"]],
        [int(v) for v in frame["owned_in_catalogue"]],
        "Label completion: owned releases of the collection's top labels",
        "owned / releases the catalogue (the Discogs dump) lists for the label",
    )


def _plot_masters(frame: pd.DataFrame) -> Figure:
    import pandas as pd

    from toolkit.chart_style import shorten

    top = frame.head(15)
    labels = [
        shorten(row["title"] or f"master {row['master_id']}", 34)
        + ("" if pd.isna(row["year"]) else f" ({int(row['year'])})")
        for _, row in top.iterrows()
    ]
    return _paired_barh(
        labels,
        [int(v) for v in top["versions"]],
        [int(v) for v in top["owned_versions"]],
        "Master versions: how many versions exist of the masters owned",
        "owned versions / versions in the catalogue, the 15 masters with most versions",
    )


def _plot_discography(frame: pd.DataFrame, artist: str = "the top artist") -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, styled, year_ticks

    known = frame.dropna(subset=["year"])
    fig, ax = _figure(
        f"Discography of {artist} by year: owned vs existing",
        "releases crediting the artist as a main artist; unknown years left out",
        4.5,
    )
    if known.empty:
        _empty(ax)
        return fig
    with styled():
        years = [int(y) for y in known["year"]]
        ax.bar(years, known["existing"], width=0.8, color=PALETTE[5], alpha=0.45,
               label="in the catalogue")  # fmt: skip
        ax.bar(years, known["owned"], width=0.8, color=PALETTE[0], label="owned")
        year_ticks(ax.xaxis, years)
        integer_ticks(ax.yaxis)
        ax.set_ylabel("releases")
        ax.grid(axis="y")
        ax.legend(loc="upper left")
    return fig


#: chart name -> (function computing its DataFrame from a Database, function drawing it).
CHARTS: dict[str, tuple[Callable[[Database], pd.DataFrame], Callable[[pd.DataFrame], Figure]]] = {
    "catalogue_label_completion": (label_completion, _plot_labels),
    "catalogue_master_versions": (master_versions, _plot_masters),
    "catalogue_artist_discography": (artist_discography, _plot_discography),
}

#: chart name -> a one-line caption (the demo's ``index.html`` shows it under the PNG).
CAPTIONS: dict[str, str] = {
    "catalogue_label_completion": "For the labels the collection holds most of: how many of "
    "each label's releases in the catalogue are owned.",
    "catalogue_master_versions": "For the masters owned: how many versions the catalogue knows, "
    "and how many of them are owned.",
    "catalogue_artist_discography": "The discography of the collection's top artist, year by "
    "year: what exists in the catalogue and what is owned.",
}


def plot(
    name: str, frame: pd.DataFrame, output_dir: str | Path | None = None, **options: Any
) -> Figure:
    """Draw chart ``name`` (a key of :data:`CHARTS`) from ``frame``; save ``<name>.png`` if asked.

    ``options`` go to the drawing function (``artist=`` names the discography's artist).
    """
    from toolkit.chart_style import save

    draw: Callable[..., Figure] = CHARTS[name][1]
    fig = draw(frame, **options)
    if output_dir is not None:
        save(fig, Path(output_dir) / f"{name}.png")
    return fig
