"""Helpers the notebooks call: choose the API or the simulator, pull, chart a pull's timeline.

Each helper resolves :class:`~toolkit.config.Settings` once (or takes them) and passes them down.
Running the notebooks headless lives in :mod:`toolkit.notebook_runner`; its names are re-exported
here, and ``python -m toolkit.notebook --output reports`` still runs it (``make demo``).
"""

from __future__ import annotations

from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from toolkit.config import Settings
from toolkit.dbopen import connect, resolve_database
from toolkit.demo import start_simulator
from toolkit.notebook_runner import (
    NOTEBOOK_DIR,
    NOTEBOOKS,
    inject_parameters,
    main,
    run_notebook,
    run_notebooks,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from toolkit.db import Database
    from toolkit.discogs.client import DiscogsClient
    from toolkit.discogs.simulator import DiscogsSimulator
    from toolkit.pull import PullReport

__all__ = [
    "NOTEBOOKS",
    "NOTEBOOK_DIR",
    "TIMELINE_CAPTION",
    "PullSource",
    "PullSummary",
    "chart_pull",
    "inject_parameters",
    "main",
    "open_database",
    "open_source",
    "plot_timeline",
    "run_notebook",
    "run_notebooks",
    "run_pull",
    "summarize",
]


@dataclass
class PullSource:
    """Where a notebook pulls from: a client, whose collection, and the simulator if one was started."""

    client: DiscogsClient
    username: str
    simulator: DiscogsSimulator | None
    description: str

    def close(self) -> None:
        """Close the client and stop the simulator (if any)."""
        self.client.close()
        if self.simulator is not None:
            self.simulator.stop()

    def __enter__(self) -> PullSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_source(
    username: str | None = None,
    *,
    use_simulator: bool | None = None,
    api_url: str | None = None,
    simulator_items: int | None = None,
    simulator_rate_limit: int = 600,
    simulator_latency: float = 0.0,
    settings: Settings | None = None,
    simulator_epoch: int = 0,
) -> PullSource:
    """A client for the real API (token or ``DISCOGS_API_URL`` set, or ``api_url`` given) or the simulator.

    ``use_simulator=None`` picks the simulator only when nothing points at a real server. On the
    simulator, ``simulator_items`` creates a user of that size (default: ``demo``, whose ~1,000
    items are the real releases of the bundled dump sample).
    On a real server with a token, ``username=None`` means the token's owner. The description
    never contains the token. ``simulator_epoch`` serves the simulated world after that many
    changes (:meth:`~toolkit.discogs.simdata.SimCatalogue.advance`), as ``pull --simulator-epoch``.
    """
    from toolkit.discogs.client import DiscogsClient

    settings = settings or Settings.from_env()
    real = api_url is not None or settings.discogs_api_url_configured or settings.has_token
    # Whatever is opened is closed again if a later step raises; a returned source owns it all.
    with ExitStack() as opened:
        if use_simulator or (use_simulator is None and not real):
            from toolkit.discogs.simdata import DEMO_USER, SimCatalogue

            catalogue = SimCatalogue()
            for _ in range(simulator_epoch):
                catalogue.advance()
            name = username or (DEMO_USER if simulator_items is None else "notebook")
            if simulator_items is not None:
                catalogue.user(name, items=simulator_items)
            simulator = opened.enter_context(
                start_simulator(simulator_rate_limit, simulator_latency, catalogue=catalogue)
            )
            client = opened.enter_context(
                DiscogsClient("", base_url=simulator.url, settings=settings)
            )
            text = (
                f"simulator at {simulator.url} ({simulator_rate_limit} requests/min), user {name!r}"
            )
            source = PullSource(client, name, simulator, text)
        else:
            client = opened.enter_context(DiscogsClient.from_settings(settings, base_url=api_url))
            if username is None:
                if not client.has_token:
                    raise ValueError("username is required without a DISCOGS_TOKEN")
                username = str(client.identity()["username"])
            token = "set" if client.has_token else "not set"
            text = f"{client.base_url} (token {token}), user {username!r}"
            source = PullSource(client, username, None, text)
        opened.pop_all()
    return source


def open_database(
    database: str | Path | None = None, *, settings: Settings | None = None
) -> Database:
    """Notebook 02's database, read-only: ``database``, else the settings' default (env honoured).

    Dropped tables raise :class:`~toolkit.errors.SchemaIncompleteError` naming them and the repair.
    """
    return connect(database, settings=settings or Settings.from_env(), read_only=True)


def run_pull(
    username: str | None = None,
    database: str | Path | None = None,
    *,
    use_simulator: bool | None = None,
    api_url: str | None = None,
    simulator_items: int | None = None,
    simulator_rate_limit: int = 600,
    simulator_latency: float = 0.0,
    details: bool = True,
    concurrency: int | None = None,
    progress: bool = True,
    settings: Settings | None = None,
    simulator_epoch: int = 0,
) -> PullReport:
    """Notebook 01's pull: open the source (:func:`open_source`), say where from and to, pull, close.

    The report is saved under the data dir like ``discogs-toolkit pull`` saves it
    (:func:`toolkit.pull.save_pull`), so :func:`chart_pull` can fall back on the last pull that
    sent ``/releases`` requests. ``settings`` default to the environment's, read once.
    """
    from toolkit.pull import pull_collection, save_pull

    settings = settings or Settings.from_env()
    db_path = resolve_database(database, settings=settings)
    with open_source(
        username,
        use_simulator=use_simulator,
        api_url=api_url,
        simulator_items=simulator_items,
        simulator_rate_limit=simulator_rate_limit,
        simulator_latency=simulator_latency,
        settings=settings,
        simulator_epoch=simulator_epoch,
    ) as source:
        print(f"source:   {source.description}")
        print(f"database: {db_path}")
        db_path.parent.mkdir(parents=True, exist_ok=True)
        report = pull_collection(
            source.username,
            db_path,
            client=source.client,
            details=details,
            # Given explicitly so the pull uses these settings, not the environment's.
            concurrency=settings.concurrency_max_tasks if concurrency is None else concurrency,
            retries=settings.concurrency_retries,
            progress=progress,
            settings=settings,
        )
    with suppress(OSError):  # the saved copy is a convenience; the pull itself succeeded
        save_pull(report, settings.data_dir)
    return report


def chart_pull(
    report: PullReport, output_dir: str | Path | None = None, *, data_dir: str | Path | None = None
) -> PullReport:
    """Chart a pull's requests against the rate limit (``pull-timeline.png`` in ``output_dir``).

    ``report`` is charted when it sent ``/releases`` requests; a warm re-pull sends none (it only
    lists the pages), so then the last pull that did is charted instead, as saved in
    ``last_network_pull.json`` under ``data_dir`` (default: the settings' data dir), e.g.
    ``make demo``'s cold pull. Prints which pull it is; returns it.
    """
    from toolkit.pull import LAST_NETWORK_PULL_FILE, load_saved_pull

    charted = report
    if not report.release_requests:
        folder = Settings.from_env().data_dir if data_dir is None else Path(data_dir)
        charted = load_saved_pull(folder, LAST_NETWORK_PULL_FILE) or report
    which = "this pull" if charted is report else "last pull with /releases requests"
    print(
        f"{which} ({charted.username}): {charted.network_requests} requests in "
        f"{charted.elapsed_seconds:.1f} s, rate bound {charted.rate_bound_seconds:.1f} s, "
        f"{charted.rate_limited} answered 429"
    )
    plot_timeline(charted, None if output_dir is None else Path(output_dir) / "pull-timeline.png")
    return charted


#: The one-line caption of ``pull-timeline.png`` (the demo's ``index.html``).
TIMELINE_CAPTION = (
    "The pull's requests over time against the most the rate limit lets through; red dots are 429s."
)


@dataclass(frozen=True)
class PullSummary:
    """A PullReport in five lines (items, requests, time against the rate bound, 429s, failures).

    Shown as text in a notebook; ``report.to_frame()`` is the full table.
    """

    report: PullReport

    def lines(self) -> list[str]:
        """The summary's lines."""
        r = self.report
        cached = f", {r.cache_hits:,} answered from the HTTP cache" if r.cache_hits else ""
        if r.network_requests and r.rate_bound_seconds > 0:
            pace = (
                f"{r.elapsed_seconds:.1f} s; the rate limit ({r.rate_limit} per {r.rate_window:g} s) "
                f"allows it in {r.rate_bound_seconds:.1f} s at the least "
                f"({r.elapsed_seconds / r.rate_bound_seconds:.2f}x)"
            )
        else:
            pace = f"{r.elapsed_seconds:.1f} s (within one rate-limit window: no wait was needed)"
        failed = r.failures + r.pages_failed
        return [
            f"items:     {r.items:,} in {r.username}'s collection ({r.pages} pages; "
            f"{r.releases_fetched:,} releases fetched, {r.releases_skipped:,} already stored"
            + (f", {r.items_removed:,} removed" if r.items_removed else "")
            + ")",
            f"requests:  {r.network_requests:,} over the network{cached}, {r.retries} retried",
            f"time:      {pace}",
            f"429s:      {r.rate_limited}"
            + (" (none: the limit was never hit)" if not r.rate_limited else ""),
            f"failures:  {failed}"
            + (
                f" ({r.failures} releases, {r.pages_failed} pages; the next pull retries them)"
                if failed
                else " (complete)"
            ),
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def summarize(report: PullReport) -> PullSummary:
    """A short readable summary of ``report`` (the full table: ``report.to_frame()``)."""
    return PullSummary(report)


def plot_timeline(report: PullReport, path: str | Path | None = None) -> Figure:
    """Cumulative network requests over time against the most the rate limit allows.

    The staircase is ``limit * (1 + floor(t / window))``: a moving window lets ``limit`` requests go at
    once and ``limit`` more each window after. 429 answers are marked in red. Saved as PNG to ``path``.
    """
    from toolkit.chart_style import PALETTE, integer_ticks, new_figure, save, styled, title

    frame = report.timeline_frame().sort_values("finished")
    fig, ax = new_figure(9.0, 4.5)
    title(
        ax,
        f"Pulling {report.username}'s collection: requests against the rate limit",
        f"{report.network_requests:,} requests in {report.elapsed_seconds:.1f} s; the limit "
        f"allows them in {report.rate_bound_seconds:.1f} s at the least; "
        f"{report.rate_limited} answered 429",
    )
    with styled():
        if len(frame):
            finished = frame["finished"].to_numpy()
            ax.step(finished, range(1, len(frame) + 1), where="post", color=PALETTE[0],
                    label="requests answered")  # fmt: skip
            end = max(float(finished[-1]), report.rate_window * 0.05)
            steps = int(end // report.rate_window) + 1
            xs: list[float] = []
            ys: list[float] = []
            for k in range(steps):
                xs.extend([k * report.rate_window, min((k + 1) * report.rate_window, end)])
                ys.extend([report.rate_limit * (k + 1)] * 2)
            ax.set_xlim(0, end * 1.02)
            top = max(len(frame), 1) * 1.15
            if min(ys) <= top:  # a limit far above the requests made would flatten the curve
                ax.plot(xs, ys, "--", color="#777777",
                        label=f"most the limit allows ({report.rate_limit} per "
                        f"{report.rate_window:g} s)")  # fmt: skip
            ax.set_ylim(0, top)
            throttled = frame[frame["status"] == 429]
            if len(throttled):
                rank = frame.reset_index(drop=True)
                idx = rank.index[rank["status"] == 429].to_numpy() + 1
                ax.scatter(rank.loc[rank["status"] == 429, "finished"], idx, color="red", s=12,
                           label="answered 429", zorder=3)  # fmt: skip
        else:
            ax.text(
                0.5,
                0.5,
                "no network requests (everything came from the database or cache)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        ax.set_xlabel("seconds since the pull started")
        ax.set_ylabel("requests answered (cumulative)")
        integer_ticks(ax.yaxis)
        ax.grid(True)
        if ax.get_legend_handles_labels()[0]:  # nothing to label when no request was made
            ax.legend(loc="upper left")
    if path is not None:
        save(fig, path)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
