"""Notebook 05's queries and charts: the collection over time, its value, prices, wants and conditions.

Reads what :mod:`toolkit.history` records. Every query works on an empty history (a database pulled
without ``--value``/``--market``/``--wants``): its chart then says "no data".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.db import Database

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "HISTORY_CAPTIONS",
    "HISTORY_CHARTS",
    "additions_per_month",
    "items_by_media_condition",
    "most_valuable",
    "plot",
    "price_history",
    "pulls",
    "size_over_time",
    "value_over_time",
    "wants_by_genre_and_decade",
    "wants_for_sale",
]

#: Media grades best first (Discogs' Goldmine scale); anything else sorts after them.
_GRADES = (
    "Mint (M)",
    "Near Mint (NM or M-)",
    "Very Good Plus (VG+)",
    "Very Good (VG)",
    "Good Plus (G+)",
    "Good (G)",
    "Fair (F)",
    "Poor (P)",
)


def pulls(db: Database) -> pd.DataFrame:
    """The ``pulls`` table, oldest first."""
    return db.df(
        "SELECT pull_id, username, started_at, items, added, removed, requests, complete "
        "FROM pulls ORDER BY pull_id"
    )


def size_over_time(db: Database) -> pd.DataFrame:
    """Collection size at the end of each month: today's items by ``date_added``, plus the items
    pulls saw removed, counted until their removal (their own ``date_added`` is gone with them)."""
    import pandas as pd

    added = db.df("SELECT substr(date_added, 1, 7) AS month FROM collection_items "
                  "WHERE date_added IS NOT NULL")  # fmt: skip
    removed = db.df(
        "SELECT strftime(e.\"at\", '%Y-%m') AS month FROM item_events e WHERE e.event = 'removed'"
        if db.engine == "duckdb"
        else "SELECT substr(e.\"at\", 1, 7) AS month FROM item_events e WHERE e.event = 'removed'"
    )
    if added.empty:
        return pd.DataFrame(columns=["month", "items"])
    months = pd.period_range(
        min(added["month"]), max([*added["month"], *removed["month"]]), freq="M"
    )
    per_month = added["month"].value_counts()
    gone = removed["month"].value_counts()
    total = len(removed)  # removed items were there from the start of this series
    rows = []
    for month in months:
        key = str(month)
        total += int(per_month.get(key, 0)) - int(gone.get(key, 0))
        rows.append((month.to_timestamp(how="end").normalize(), total))
    return pd.DataFrame(rows, columns=["month", "items"])


def additions_per_month(db: Database, months: int = 36) -> pd.DataFrame:
    """Items added per month (``date_added``) and removed per month (pulls' events), last ``months``."""
    import pandas as pd

    added = db.df("SELECT substr(date_added, 1, 7) AS month, count(*) AS added "
                  "FROM collection_items WHERE date_added IS NOT NULL GROUP BY 1")  # fmt: skip
    month_sql = "strftime(\"at\", '%Y-%m')" if db.engine == "duckdb" else 'substr("at", 1, 7)'
    removed = db.df(f"SELECT {month_sql} AS month, count(*) AS removed FROM item_events "
                    "WHERE event = 'removed' GROUP BY 1")  # fmt: skip
    frame = pd.merge(added, removed, on="month", how="outer").fillna(0)
    if frame.empty:
        return pd.DataFrame(columns=["month", "added", "removed"])
    frame = frame.sort_values("month").tail(months)
    frame["added"] = frame["added"].astype(int)
    frame["removed"] = frame["removed"].astype(int)
    return frame.reset_index(drop=True)


def value_over_time(db: Database) -> pd.DataFrame:
    """The collection's value (minimum, median, maximum) at each pull that recorded it."""
    return db.df(
        'SELECT v.pull_id, v."at", v.currency, v.minimum, v.median, v.maximum, p.items '
        'FROM collection_value v LEFT JOIN pulls p USING (pull_id) ORDER BY v."at"'
    )


_LATEST = """latest AS (
    SELECT release_id, lowest_price, num_for_sale, currency FROM (
        SELECT m.*, row_number() OVER (PARTITION BY release_id ORDER BY "at" DESC) AS n
        FROM market_stats m) AS s
    WHERE n = 1)"""


def most_valuable(db: Database, n: int = 15) -> pd.DataFrame:
    """The ``n`` releases of the collection with the highest latest lowest price (``--market``)."""
    return db.df(
        f"WITH {_LATEST} "
        "SELECT l.release_id, r.title, r.year, l.lowest_price, l.currency, l.num_for_sale "
        "FROM latest l LEFT JOIN releases r ON r.release_id = l.release_id "
        "WHERE l.lowest_price IS NOT NULL "
        "AND l.release_id IN (SELECT release_id FROM collection_items) "
        "ORDER BY l.lowest_price DESC, l.release_id LIMIT ?",
        [n],
    )


def price_history(db: Database, release_id: int | None = None) -> pd.DataFrame:
    """Every ``market_stats`` row of one release (default: the one with most priced rows, then the
    dearest), oldest first, with its title."""
    if release_id is None:
        best = db.fetchone(
            "SELECT release_id FROM market_stats WHERE lowest_price IS NOT NULL "
            "GROUP BY release_id ORDER BY count(*) DESC, max(lowest_price) DESC, release_id "
            "LIMIT 1"
        )
        release_id = None if best is None else int(best[0])
    return db.df(
        'SELECT m.release_id, r.title, m."at", m.lowest_price, m.currency, m.num_for_sale '
        "FROM market_stats m LEFT JOIN releases r ON r.release_id = m.release_id "
        'WHERE m.release_id = ? ORDER BY m."at"',
        [-1 if release_id is None else release_id],
    )


def wants_by_genre_and_decade(db: Database) -> pd.DataFrame:
    """Wants per (decade, genre) of the wanted release; unknown years left out."""
    return db.df(
        "SELECT r.year - (r.year % 10) AS decade, g.genre, count(*) AS items "
        "FROM wants w JOIN releases r ON r.release_id = w.release_id "
        "JOIN release_genres g ON g.release_id = w.release_id "
        "WHERE r.year IS NOT NULL AND r.year > 0 "
        "GROUP BY decade, g.genre ORDER BY decade, items DESC, g.genre"
    )


def wants_for_sale(db: Database, n: int = 20) -> pd.DataFrame:
    """Wants for sale now and from what price: the latest ``market_stats`` row when there is one,
    else the figures that came with the release's details."""
    return db.df(
        f"WITH {_LATEST} "
        "SELECT w.release_id, r.title, r.year, "
        "COALESCE(l.lowest_price, r.lowest_price) AS lowest_price, "
        "COALESCE(l.num_for_sale, r.num_for_sale) AS num_for_sale, l.currency "
        "FROM wants w LEFT JOIN releases r ON r.release_id = w.release_id "
        "LEFT JOIN latest l ON l.release_id = w.release_id "
        "WHERE COALESCE(l.num_for_sale, r.num_for_sale) > 0 "
        "ORDER BY lowest_price, w.release_id LIMIT ?",
        [n],
    )


def items_by_media_condition(db: Database) -> pd.DataFrame:
    """Items per "Media Condition" custom field value (best grade first; unset last)."""
    frame = db.df(
        "SELECT COALESCE(f.value, 'not recorded') AS condition, count(*) AS items "
        "FROM collection_items ci LEFT JOIN item_fields_named f "
        "ON f.instance_id = ci.instance_id AND f.name = 'Media Condition' "
        "GROUP BY 1"
    )
    order = {grade: i for i, grade in enumerate(_GRADES)}
    frame["rank"] = [
        order.get(c, len(order) + (1 if c == "not recorded" else 0)) for c in frame["condition"]
    ]
    return frame.sort_values(["rank", "condition"]).drop(columns="rank").reset_index(drop=True)


# ------------------------------------------------------------------------------------ charts


def _figure(what: str, detail: str = "", height: float = 4.5) -> tuple[Figure, Any]:
    from toolkit.chart_style import new_figure, title

    fig, ax = new_figure(9.0, height)
    title(ax, what, detail)
    return fig, ax


def _empty(ax: Any, why: str = "no data") -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _date_axis(ax: Any) -> None:
    """Dates that stay readable whether the pulls are months or seconds apart."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _plot_size(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, styled

    fig, ax = _figure(
        "Collection size over time",
        "items at each month's end: today's items by date added, removed ones until their removal",
    )
    if frame.empty:
        _empty(ax)
        return fig
    with styled():
        ax.plot(frame["month"], frame["items"], color=PALETTE[0], drawstyle="steps-post")
        ax.fill_between(frame["month"], frame["items"], step="post", color=PALETTE[0], alpha=0.15)
        ax.set_ylabel("items")
        ax.set_ylim(0, float(frame["items"].max()) * 1.08)
        integer_ticks(ax.yaxis)
        ax.grid(axis="y")
    return fig


def _plot_value(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, styled

    currency = "" if frame.empty else str(frame["currency"].iloc[-1])
    fig, ax = _figure(
        "Collection value over time",
        f"Discogs' estimate at each pull with --value ({currency or 'no currency yet'}): "
        "band minimum–maximum, line median",
    )
    if frame.empty:
        _empty(ax, "no value recorded yet: pull --value (needs the owner's token)")
        return fig
    with styled():
        x = frame["at"]
        ax.fill_between(x, frame["minimum"], frame["maximum"], color=PALETTE[0], alpha=0.2,
                        label="minimum–maximum")  # fmt: skip
        ax.plot(x, frame["median"], color=PALETTE[0], marker="o", label="median")
        ax.set_ylabel(f"value ({currency})")
        ax.set_ylim(0, float(frame["maximum"].max()) * 1.1)
        ax.grid(axis="y")
        ax.legend(loc="upper left")
        _date_axis(ax)
    return fig


def _plot_additions(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, styled

    fig, ax = _figure(
        "Items added and removed per month",
        "added: by date added on Discogs; removed: as pulls saw it (last 36 months with any)",
    )
    if frame.empty:
        _empty(ax)
        return fig
    with styled():
        x = range(len(frame))
        ax.bar(x, frame["added"], color=PALETTE[2], label="added")
        ax.bar(x, -frame["removed"], color=PALETTE[3], label="removed")
        step = max(1, len(frame) // 12)
        ax.set_xticks(list(x)[::step], list(frame["month"])[::step], rotation=45)
        ax.axhline(0, color="#444444", linewidth=0.6)
        ax.set_ylabel("items")
        integer_ticks(ax.yaxis)
        ax.grid(axis="y")
        ax.legend(loc="upper left")
    return fig


def _release_label(row: Any) -> str:
    import pandas as pd

    from toolkit.chart_style import shorten

    year = "" if pd.isna(row.year) else f" ({int(row.year)})"
    return shorten(f"{row.title or row.release_id}{year}", 40)


def _plot_valuable(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, styled

    currency = "" if frame.empty else str(frame["currency"].dropna().iloc[0])
    fig, ax = _figure(
        "Most valuable items by latest lowest price",
        f"cheapest copy for sale at the latest pull --market ({currency or '-'})",
        height=max(3.5, 0.3 * len(frame) + 1.5),
    )
    if frame.empty:
        _empty(ax, "no prices recorded yet: pull --market")
        return fig
    with styled():
        labels = [_release_label(row) for row in frame.itertuples()]
        ax.barh(labels[::-1], list(frame["lowest_price"])[::-1], color=PALETTE[1])
        ax.set_xlabel(f"lowest price ({currency})")
        ax.grid(axis="x")
    return fig


def _plot_price_history(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, shorten, styled

    name = "" if frame.empty else shorten(frame["title"].iloc[0] or frame["release_id"].iloc[0], 50)
    fig, ax = _figure(
        f"Price history of one release{': ' + name if name else ''}",
        "lowest price at each pull --market (dots) and copies for sale (grey squares, right axis)",
    )
    if frame.empty:
        _empty(ax, "no prices recorded yet: pull --market")
        return fig
    with styled():
        twin = ax.twinx()
        twin.plot(frame["at"], frame["num_for_sale"], color=PALETTE[8], marker="s", linestyle=":")
        twin.set_ylim(0, max(1.0, float(frame["num_for_sale"].max()) * 1.3))
        integer_ticks(twin.yaxis)
        twin.set_ylabel("copies for sale")
        twin.spines["right"].set_visible(True)
        ax.plot(frame["at"], frame["lowest_price"], color=PALETTE[3], marker="o")
        currencies = frame["currency"].dropna()
        ax.set_ylabel(f"lowest price ({currencies.iloc[-1] if len(currencies) else '-'})")
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_ylim(0, float(frame["lowest_price"].max()) * 1.2)
        ax.grid(axis="y")
        _date_axis(ax)
    return fig


def _plot_wants_decades(frame: pd.DataFrame) -> Figure:
    from toolkit.explore import _stacked_by_decade

    fig = _stacked_by_decade(
        frame,
        "genre",
        "The wantlist by decade and genre",
        "wanted releases per decade of release; a release with two genres counts in both",
    )
    if not frame.empty:
        ax = fig.axes[0]
        ax.set_ylabel("wanted releases")
        totals = frame.groupby("decade")["items"].sum()
        ax.set_ylim(0, float(totals.max()) * 1.1)
    return fig


def _plot_wants_for_sale(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, styled

    fig, ax = _figure(
        "Wants for sale now, cheapest first",
        "lowest price of each wanted release on sale; the number of copies at the bar's end",
        height=max(3.5, 0.3 * len(frame) + 1.5),
    )
    if frame.empty:
        _empty(ax, "no wants for sale (or no wantlist yet: pull --wants)")
        return fig
    with styled():
        labels = [_release_label(row) for row in frame.itertuples()]
        prices = list(frame["lowest_price"].fillna(0))
        bars = ax.barh(labels[::-1], prices[::-1], color=PALETTE[2])
        for bar, count in zip(bars, list(frame["num_for_sale"])[::-1], strict=True):
            ax.annotate(f" {int(count)} for sale", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                        va="center", fontsize=8)  # fmt: skip
        ax.set_xlabel("lowest price")
        ax.set_xlim(0, max(prices) * 1.3 if prices else 1)
        ax.grid(axis="x")
    return fig


def _plot_conditions(frame: pd.DataFrame) -> Figure:
    from toolkit.chart_style import PALETTE, integer_ticks, styled

    unset = frame[frame["condition"] == "not recorded"]["items"].sum() if not frame.empty else 0
    graded = frame[frame["condition"] != "not recorded"] if not frame.empty else frame
    fig, ax = _figure(
        "Items by media condition",
        f"the 'Media Condition' custom field, best grade first ({int(unset)} items without one)",
    )
    if graded.empty:
        _empty(ax, "no media condition recorded")
        return fig
    with styled():
        ax.barh(list(graded["condition"])[::-1], list(graded["items"])[::-1], color=PALETTE[0])
        ax.set_xlabel("items")
        integer_ticks(ax.xaxis)
        ax.grid(axis="x")
    return fig


#: chart name -> (query, drawing), as :data:`toolkit.explore.CHARTS`.
HISTORY_CHARTS: dict[
    str, tuple[Callable[[Database], pd.DataFrame], Callable[[pd.DataFrame], Figure]]
] = {
    "size_over_time": (size_over_time, _plot_size),
    "value_over_time": (value_over_time, _plot_value),
    "additions_per_month": (additions_per_month, _plot_additions),
    "most_valuable": (most_valuable, _plot_valuable),
    "price_history": (price_history, _plot_price_history),
    "wants_by_decade": (wants_by_genre_and_decade, _plot_wants_decades),
    "wants_for_sale": (wants_for_sale, _plot_wants_for_sale),
    "media_condition": (items_by_media_condition, _plot_conditions),
}

#: chart name -> a one-line caption for the demo's ``index.html``.
HISTORY_CAPTIONS: dict[str, str] = {
    "size_over_time": "The collection's size month by month, from the dates items were added and what pulls saw removed.",
    "value_over_time": "What Discogs estimates the collection is worth at each pull with --value: minimum to maximum, and the median.",
    "additions_per_month": "Items added per month, and the items pulls saw removed.",
    "most_valuable": "The items whose cheapest copy for sale costs most, at the latest pull --market.",
    "price_history": "One release's lowest price and copies for sale at each pull --market.",
    "wants_by_decade": "The wantlist by decade of release and genre.",
    "wants_for_sale": "Wanted releases for sale now, cheapest first, with how many copies are on sale.",
    "media_condition": "Items per media condition, from the Media Condition custom field.",
}  # fmt: skip


def plot(name: str, frame: pd.DataFrame, output_dir: str | Path | None = None) -> Figure:
    """Draw chart ``name`` (a key of :data:`HISTORY_CHARTS`) from ``frame``; save ``<name>.png``."""
    from toolkit.chart_style import save

    fig = HISTORY_CHARTS[name][1](frame)
    if output_dir is not None:
        save(fig, Path(output_dir) / f"{name}.png")
    return fig
