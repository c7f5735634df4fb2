"""One look for every chart the toolkit saves (collection charts, pull timeline, benchmarks).

Draw inside :func:`styled` (or create figures with :func:`new_figure`, which does), and use the small
helpers for the usual pitfalls: whole-number year ticks, long labels, titles that say what and of what.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "PALETTE",
    "RC",
    "integer_ticks",
    "new_figure",
    "save",
    "shorten",
    "styled",
    "title",
    "year_ticks",
]

#: Colour-blind-safe (Okabe–Ito), in the order series take them.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
    "#000000",
    "#999999",
    "#882255",
    "#44AA99",
)
DPI = 110
#: matplotlib settings every chart is drawn with.
RC: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titlelocation": "left",
    "axes.titlepad": 10,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.dpi": DPI,
}


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """Draw with :data:`RC` and :data:`PALETTE` (text and lines take the style when created)."""
    import matplotlib as mpl
    from matplotlib.rcsetup import cycler

    settings: dict[str, Any] = {**RC, "axes.prop_cycle": cycler(color=PALETTE)}
    with mpl.rc_context(settings):  # type: ignore[arg-type]  # stubs want literal keys
        yield


def new_figure(
    width: float = 9.0, height: float = 4.5, *, pyplot: bool = True, **subplots: Any
) -> tuple[Figure, Any]:
    """A constrained-layout figure and its axes (``subplots`` as for ``Figure.subplots``).

    ``pyplot=True`` registers it with pyplot so a notebook shows it inline; ``False`` gives a bare
    Figure (no global state, for code that only saves PNGs).
    """
    with styled():
        if pyplot:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(width, height), layout="constrained")
        else:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(width, height), layout="constrained")
        axes = fig.subplots(**subplots)
    return fig, axes


def title(ax: Axes, what: str, detail: str = "") -> None:
    """A bold title saying what is shown, and of what, with an optional smaller line under it."""
    ax.set_title(what, fontweight="bold", loc="left", pad=22 if detail else 8)
    if detail:
        ax.annotate(
            detail, xy=(0.0, 1.0), xycoords="axes fraction", xytext=(0, 6),
            textcoords="offset points", fontsize=9, color="#444444", va="bottom", ha="left",
        )  # fmt: skip


def integer_ticks(axis: Axis) -> None:
    """Ticks at whole numbers only (counts, ratings), however few values there are."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def year_ticks(axis: Axis, years: Sequence[int], *, most: int = 20) -> None:
    """A tick at every year (or every 2nd, 5th ... when there are more than ``most``), as ``2007``."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    values = sorted({int(y) for y in years})
    if not values:
        return
    span = values[-1] - values[0] + 1
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100) if math.ceil(span / s) <= most or s == 100)
    first = values[0] - values[0] % step
    axis.set_major_locator(FixedLocator(list(range(first, values[-1] + 1, step))))
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:.0f}"))


def shorten(text: object, width: int = 36) -> str:
    """``text`` as one line of at most ``width`` characters, cut with an ellipsis."""
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def save(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as a PNG at the shared resolution (folders created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    return out
