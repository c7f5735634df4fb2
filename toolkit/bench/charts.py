"""One PNG chart per benchmark row: ours, the baseline and the spec's claim side by side."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from toolkit.bench.model import RowResult
from toolkit.chart_style import DPI, PALETTE, integer_ticks, shorten, styled

__all__ = ["chart_name", "draw_row", "png_bytes", "write_charts"]

OURS = PALETTE[0]
BASE = "#9e9e9e"
PEER = PALETTE[1]
CLAIM = PALETTE[3]
TARGET = PALETTE[2]


def chart_name(row: RowResult) -> str:
    """File name of a row's chart, e.g. ``row01_cache_hit.png``."""
    return f"row{row.number:02d}_{row.key}.png"


def _needs_log(values: Sequence[float]) -> bool:
    positive = [v for v in values if v and v > 0]
    return len(positive) >= 2 and max(positive) / min(positive) > 50


def _label(value: float) -> str:
    """A compact number for an annotation: 405,331 → 405k, 1,003 → 1,003, 0.00109 → 0.00109."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _plain_log(axis: Any) -> None:
    """Log-scale ticks as plain numbers (0.1, 1, 1,000), 2s and 5s labelled within two decades."""
    from matplotlib.ticker import FuncFormatter

    low, high = sorted(axis.get_view_interval())
    narrow = low > 0 and high / low < 100

    def minor(value: float, _pos: int) -> str:
        lead = f"{value:.0e}"[0]
        return _label(value) if narrow and lead in "25" else ""

    axis.set_major_formatter(FuncFormatter(lambda value, _pos: _label(value)))
    axis.set_minor_formatter(FuncFormatter(minor))


def _wrap(label: object, width: int = 16) -> str:
    """A tick label on at most three lines of ``width`` characters (ellipsis beyond)."""
    import textwrap

    lines = textwrap.wrap(" ".join(str(label).split()), width) or [""]
    if len(lines) > 3:
        lines = [*lines[:2], shorten(" ".join(lines[2:]), width)]
    return "\n".join(lines)


def _title(ax: Axes, row: RowResult, subtitle: str = "") -> None:
    verdict = row.verdict.upper()
    head = f"{row.number}. {row.name} — {verdict}"
    ax.set_title(head, fontsize=11, fontweight="bold", loc="left", pad=20 if subtitle else 8)
    if subtitle:
        ax.annotate(
            subtitle, xy=(0.0, 1.0), xycoords="axes fraction", xytext=(0, 5),
            textcoords="offset points", fontsize=8.5, color="#444444", va="bottom", ha="left",
        )  # fmt: skip


def _reference_lines(ax: Axes, series: dict[str, Any], *, vertical: bool) -> None:
    """Draw the spec's claim (red, shaded when a range) and our target (green, dashed)."""
    line = ax.axvline if vertical else ax.axhline
    span = ax.axvspan if vertical else ax.axhspan
    claim = series.get("claim")
    if isinstance(claim, list | tuple) and len(claim) == 2:
        span(float(claim[0]), float(claim[1]), color=CLAIM, alpha=0.12, label="spec's claim")
    elif isinstance(claim, int | float):
        line(float(claim), color=CLAIM, linestyle=":", linewidth=1.5, label="spec's claim")
    target = series.get("target")
    if isinstance(target, int | float):
        line(float(target), color=TARGET, linestyle="--", linewidth=1.5, label="our target")


def _bars(fig: Figure, row: RowResult, series: dict[str, Any]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    labels: list[str] = list(series["labels"])
    medians = [float(v) for v in series["medians"]]
    low = [float(v) for v in series.get("p5", medians)]
    high = [float(v) for v in series.get("p95", medians)]
    ours = set(series.get("ours", [0]))
    colors = [OURS if i in ours else BASE for i in range(len(labels))]
    if "peer" in series:
        for i in series["peer"]:
            colors[i] = PEER
    ypos = list(range(len(labels)))[::-1]
    err = [[max(m - lo, 0.0) for m, lo in zip(medians, low, strict=True)],
           [max(hi - m, 0.0) for m, hi in zip(medians, high, strict=True)]]  # fmt: skip
    ax.barh(ypos, medians, xerr=err, color=colors, capsize=3, height=0.6)
    ax.set_yticks(ypos, [shorten(label, 44) for label in labels], fontsize=9)
    unit = str(series.get("unit", row.unit))
    ax.set_xlabel(f"{unit} (median, whiskers p5–p95)")
    claim = series.get("claim")
    extents = [*medians, *high]
    if isinstance(claim, list | tuple):
        extents += [float(c) for c in claim]
    elif isinstance(claim, int | float):
        extents.append(float(claim))
    if isinstance(series.get("target"), int | float):
        extents.append(float(series["target"]))
    if series.get("log", _needs_log(extents)):
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
    for y, m, hi in zip(ypos, medians, high, strict=True):
        ax.annotate(f"  {_label(m)}", (max(m, hi), y), va="center", fontsize=8)
    _reference_lines(ax, series, vertical=True)
    low_edge, high_edge = ax.get_xlim()
    top = max(e for e in extents if e == e) if extents else high_edge  # room for the numbers
    ax.set_xlim(low_edge, max(high_edge, top * (2.2 if ax.get_xscale() == "log" else 1.15)))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(ax, row, str(series.get("subtitle", "")))


def _scaling(fig: Figure, row: RowResult, series: dict[str, Any]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    sizes = [float(n) for n in series["sizes"]]
    ax.plot(sizes, series["ours"], "o-", color=OURS, label=str(series.get("ours_label", "ours")))
    if "ours_p5" in series:
        ax.fill_between(sizes, series["ours_p5"], series["ours_p95"], color=OURS, alpha=0.15)
    if "baseline" in series:
        ax.plot(sizes, series["baseline"], "s--", color=BASE,
                label=str(series.get("baseline_label", row.baseline_name or "baseline")))  # fmt: skip
    _reference_lines(ax, series, vertical=False)
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,.0f}" for n in sizes])  # the sizes measured, not powers of 10
    ax.set_xticks([], minor=True)
    values = [*series["ours"], *series.get("baseline", [])]
    for ref in ("claim", "target"):
        if isinstance(series.get(ref), int | float):
            values.append(float(series[ref]))
    if _needs_log(values):
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
    ax.set_xlabel(str(series.get("xlabel", "N")))
    ax.set_ylabel(str(series.get("ylabel", row.unit)))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _title(ax, row, str(series.get("subtitle", "")))


def _trace(fig: Figure, row: RowResult, series: dict[str, Any]) -> None:
    traces: list[dict[str, Any]] = list(series["traces"])
    axes = fig.subplots(len(traces), 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, trace) in enumerate(zip(axes, traces, strict=True)):
        limit = int(trace["limit"])
        times = [t * 1e3 for t in trace["times"]]
        ax.step(times, trace["counts"], where="post", color=OURS, linewidth=1, label="in flight")
        ax.axhline(limit, color=TARGET, linestyle="--", linewidth=1.2, label=f"limit {limit}")
        ax.axhspan(limit + 0.0001, limit + 1, color=CLAIM, alpha=0.12, label="spec's ±1")
        ax.set_ylim(0, limit + 2)
        ax.set_ylabel("tasks in flight", fontsize=8)
        integer_ticks(ax.yaxis)
        ax.text(0.995, 0.92, f"peak {trace['peak']}", transform=ax.transAxes, ha="right",
                va="top", fontsize=8)  # fmt: skip
        if i == 0:  # one legend, beside the traces rather than over them
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xlabel("time since start (ms)")
    _title(axes[0], row, str(series.get("subtitle", "")))


def _grouped(fig: Figure, row: RowResult, series: dict[str, Any]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    groups: list[str] = list(series["groups"])
    bars: dict[str, list[float]] = dict(series["bars"])
    width = 0.8 / max(len(bars), 1)
    palette = [OURS, BASE, PEER, CLAIM, TARGET]
    for i, (name, values) in enumerate(bars.items()):
        xs = [g + (i - (len(bars) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, values, width=width, label=name, color=palette[i % len(palette)])
        for x, v in zip(xs, values, strict=True):
            ax.annotate(_label(v), (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), [shorten(g, 24) for g in groups], fontsize=9)
    if sum(len(g) for g in groups) > 70:  # would run into each other side by side
        ax.tick_params(axis="x", labelrotation=20)
    ax.set_ylabel(str(series.get("ylabel", row.unit)))
    flat = [v for values in bars.values() for v in values]
    if series.get("log", _needs_log(flat)):
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
    _reference_lines(ax, series, vertical=False)
    ax.legend(fontsize=8)
    _title(ax, row, str(series.get("subtitle", "")))


def _panels(fig: Figure, row: RowResult, series: dict[str, Any]) -> None:
    """Side-by-side bar panels; a panel may carry its own ``ours``, ``log`` and ``target``."""
    panels: list[dict[str, Any]] = list(series["panels"])
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        labels = list(panel["labels"])
        values = [float(v) for v in panel["values"]]
        ours = set(panel.get("ours", series.get("ours", [0])))
        colors = [OURS if i in ours else BASE for i in range(len(labels))]
        ax.bar(range(len(labels)), values, color=colors)
        ax.set_xticks(range(len(labels)), [_wrap(lab) for lab in labels], fontsize=8)
        ax.set_title(str(panel["title"]), fontsize=9)
        for x, v in enumerate(values):
            ax.annotate(_label(v), (x, v), ha="center", va="bottom", fontsize=8)
        target = panel.get("target")
        top = max([*values, float(target) if isinstance(target, int | float) else 0.0])
        top = top if top > 0 else 1.0
        if panel.get("log"):
            ax.set_yscale("log")
            bottom = min(v for v in values if v > 0) if any(v > 0 for v in values) else 1e-3
            ax.set_ylim(bottom / 3, top * 3)
            _plain_log(ax.yaxis)
        else:
            ax.set_ylim(0, top * 1.2)
            if all(float(v).is_integer() for v in values):  # counts: no 0.2 of a request
                integer_ticks(ax.yaxis)
        if isinstance(target, int | float):
            ax.axhline(float(target), color=TARGET, linestyle="--", linewidth=1.5,
                       label="our target")  # fmt: skip
            ax.legend(fontsize=7, loc="upper right")
    subtitle = str(series.get("subtitle", ""))
    fig.suptitle(f"{row.number}. {row.name} — {row.verdict.upper()}"
                 + (f"\n{subtitle}" if subtitle else ""), fontsize=11, x=0.01,
                 ha="left", fontweight="bold")  # fmt: skip


def _cumulative(fig: Figure, row: RowResult, series: dict[str, Any]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    finishes = [float(t) for t in series["finish_times"]]
    limit, window = int(series["limit"]), float(series["window"])
    ax.step(finishes, range(1, len(finishes) + 1), where="post", color=OURS,
            label="requests completed (ours)")  # fmt: skip
    end = max(finishes[-1] if finishes else 0.0, window)
    steps = int(end / window) + 2
    xs = [i * window for i in range(steps)]
    ax.step(xs, [limit * (i + 1) for i in range(steps)], where="post", color=TARGET,
            linestyle="--", label=f"most the limit allows ({limit} per {window:g} s)")  # fmt: skip
    ax.set_xlim(0, end * 1.02)
    ax.set_ylim(0, len(finishes) * 1.08 + 1)
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("requests completed (cumulative)")
    integer_ticks(ax.yaxis)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    _title(ax, row, str(series.get("subtitle", "")))


def _placeholder(fig: Figure, row: RowResult) -> None:
    ax = fig.add_subplot(1, 1, 1)
    ax.axis("off")
    message = row.note or "no chart data"
    ax.text(0.5, 0.5, f"{row.verdict}: {message}", ha="center", va="center", wrap=True)
    _title(ax, row)


_DRAW = {
    "bars": _bars,
    "scaling": _scaling,
    "trace": _trace,
    "grouped": _grouped,
    "panels": _panels,
    "cumulative": _cumulative,
}


def draw_row(row: RowResult) -> Figure:
    """A matplotlib figure for one row (a placeholder when the row was skipped or failed)."""
    kind = row.series.get("kind") if row.status == "ok" else None
    height = 4.0
    if kind == "trace":
        height = 1.6 * max(len(row.series.get("traces", [])), 1) + 1.2
    elif kind == "panels":
        height = 3.8 if row.series.get("subtitle") else 3.4
    elif kind == "bars":
        height = max(2.6, 0.55 * len(row.series.get("labels", [])) + 1.6)
    # A bare Figure (no pyplot): no global state, no backend switch, safe in notebooks.
    with styled():
        fig = Figure(figsize=(8.0, height), dpi=DPI, layout="constrained")
        draw = _DRAW.get(str(kind)) if kind else None
        if draw is None:
            _placeholder(fig, row)
        else:
            draw(fig, row, row.series)
    return fig


def write_charts(rows: Sequence[RowResult], out_dir: Path) -> list[Path]:
    """Draw every row's chart into ``out_dir/charts``; sets ``row.chart`` and returns the paths."""
    charts = out_dir / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for row in rows:
        path = charts / chart_name(row)
        draw_row(row).savefig(path, dpi=DPI)
        row.chart = f"charts/{path.name}"
        paths.append(path)
    return paths


def png_bytes(row: RowResult) -> bytes:
    """A row's chart as PNG bytes (for ``IPython.display.Image`` in notebooks)."""
    buffer = io.BytesIO()
    draw_row(row).savefig(buffer, format="png")
    return buffer.getvalue()
