"""Helpers the notebooks call: choose the API or the simulator, pull, chart a pull's timeline, run notebooks.

``python -m toolkit.notebook --output reports`` executes the notebooks headless (used by ``make demo``,
with ``--simulator`` so they never leave the simulator) and prints where everything went.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from toolkit.config import PROJECT_ROOT, Settings
from toolkit.dbopen import connect, resolve_database
from toolkit.demo import start_simulator

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from toolkit.db import Database
    from toolkit.discogs.client import DiscogsClient
    from toolkit.discogs.simulator import DiscogsSimulator
    from toolkit.pull import PullReport

__all__ = [
    "NOTEBOOKS",
    "NOTEBOOK_DIR",
    "PullSource",
    "chart_pull",
    "inject_parameters",
    "main",
    "open_database",
    "open_source",
    "plot_timeline",
    "run_notebook",
    "run_notebooks",
    "run_pull",
]

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
#: The notebooks ``make demo`` runs, in order (03-benchmarks belongs to the benchmark suite).
NOTEBOOKS: tuple[str, ...] = ("01-pull-collection.ipynb", "02-explore-collection.ipynb")


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
) -> PullSource:
    """A client for the real API (token or ``DISCOGS_API_URL`` set, or ``api_url`` given) or the simulator.

    ``use_simulator=None`` picks the simulator only when nothing points at a real server. On the
    simulator, ``simulator_items`` creates a user of that size (default: the 1,500-item ``demo``).
    On a real server with a token, ``username=None`` means the token's owner. The description
    never contains the token.
    """
    from toolkit.discogs.client import DiscogsClient

    settings = settings or Settings.from_env()
    real = api_url is not None or settings.discogs_api_url_configured or settings.has_token
    if use_simulator or (use_simulator is None and not real):
        from toolkit.discogs.catalogue import DEMO_USER, Catalogue

        catalogue = Catalogue()
        name = username or (DEMO_USER if simulator_items is None else "notebook")
        if simulator_items is not None:
            catalogue.user(name, items=simulator_items)
        simulator = start_simulator(simulator_rate_limit, simulator_latency, catalogue=catalogue)
        client = DiscogsClient("", base_url=simulator.url, settings=settings)
        text = f"simulator at {simulator.url} ({simulator_rate_limit} requests/min), user {name!r}"
        return PullSource(client, name, simulator, text)
    client = DiscogsClient.from_settings(settings, base_url=api_url)
    if username is None:
        if not client.has_token:
            client.close()
            raise ValueError("username is required without a DISCOGS_TOKEN")
        username = str(client.identity()["username"])
    token = "set" if client.has_token else "not set"
    text = f"{client.base_url} (token {token}), user {username!r}"
    return PullSource(client, username, None, text)


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
) -> PullReport:
    """Notebook 01's pull: open the source (:func:`open_source`), say where from and to, pull, close.

    The report is saved under the data dir like ``discogs-toolkit pull`` saves it
    (:func:`toolkit.pull.save_pull`), so :func:`chart_pull` can fall back on the last pull that
    sent ``/releases`` requests.
    """
    from toolkit.pull import pull_collection, save_pull

    settings = Settings.from_env()
    db_path = resolve_database(database, settings=settings)
    with open_source(
        username,
        use_simulator=use_simulator,
        api_url=api_url,
        simulator_items=simulator_items,
        simulator_rate_limit=simulator_rate_limit,
        simulator_latency=simulator_latency,
        settings=settings,
    ) as source:
        print(f"source:   {source.description}")
        print(f"database: {db_path}")
        db_path.parent.mkdir(parents=True, exist_ok=True)
        report = pull_collection(
            source.username,
            db_path,
            client=source.client,
            details=details,
            concurrency=concurrency,
            progress=progress,
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
        charted = load_saved_pull(data_dir, LAST_NETWORK_PULL_FILE) or report
    which = "this pull" if charted is report else "last pull with /releases requests"
    print(
        f"{which} ({charted.username}): {charted.network_requests} requests in "
        f"{charted.elapsed_seconds:.1f} s, rate bound {charted.rate_bound_seconds:.1f} s, "
        f"{charted.rate_limited} answered 429"
    )
    plot_timeline(charted, None if output_dir is None else Path(output_dir) / "pull-timeline.png")
    return charted


def plot_timeline(report: PullReport, path: str | Path | None = None) -> Figure:
    """Cumulative network requests over time against the most the rate limit allows.

    The staircase is ``limit * (1 + floor(t / window))``: a moving window lets ``limit`` requests go at
    once and ``limit`` more each window after. 429 answers are marked in red. Saved as PNG to ``path``.
    """
    import matplotlib.pyplot as plt

    frame = report.timeline_frame().sort_values("finished")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if len(frame):
        finished = frame["finished"].to_numpy()
        ax.step(finished, range(1, len(frame) + 1), where="post", label="requests made")
        end = max(float(finished[-1]), report.rate_window * 0.05)
        steps = int(end // report.rate_window) + 1
        xs: list[float] = []
        ys: list[float] = []
        for k in range(steps):
            xs.extend([k * report.rate_window, min((k + 1) * report.rate_window, end)])
            ys.extend([report.rate_limit * (k + 1)] * 2)
        ax.set_xlim(0, end * 1.02)
        ax.plot(
            xs,
            ys,
            "--",
            color="grey",
            label=f"rate limit ({report.rate_limit}/{report.rate_window:g} s)",
        )
        ax.set_ylim(0, max(len(frame), 1) * 1.15)
        throttled = frame[frame["status"] == 429]
        if len(throttled):
            rank = frame.reset_index(drop=True)
            idx = rank.index[rank["status"] == 429].to_numpy() + 1
            ax.scatter(
                rank.loc[rank["status"] == 429, "finished"], idx, color="red", s=12, label="429"
            )
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
    ax.set_ylabel("network requests")
    ax.set_title(
        f"{report.network_requests} requests in {report.elapsed_seconds:.1f} s "
        f"(rate bound {report.rate_bound_seconds:.0f} s)"
    )
    if ax.get_legend_handles_labels()[0]:  # nothing to label when no request was made
        ax.legend(loc="upper left")
    fig.tight_layout()
    if path is not None:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    return fig


def inject_parameters(notebook: Any, parameters: Mapping[str, Any]) -> None:
    """Insert a cell assigning ``parameters`` right after the ``parameters``-tagged cell (papermill style)."""
    import nbformat

    if not parameters:
        return
    source = "# Parameters injected by toolkit.notebook\n" + "\n".join(
        f"{name} = {value!r}" for name, value in parameters.items()
    )
    cell = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
    cell.metadata["tags"] = ["injected-parameters"]
    cells = notebook.cells
    index = next(
        (i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])),
        -1,
    )
    cells.insert(index + 1, cell)


def run_notebook(
    source: str | Path,
    output_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: float = 900.0,
    html: bool = True,
) -> Path:
    """Execute one notebook headless (cwd = its folder) into ``output_dir``; returns the .ipynb written.

    Raises :class:`PullError`-free nbclient errors as they are (a failing cell stops the run). The
    executed copy is checked for the Discogs token, which must never appear in outputs.
    """
    import nbformat
    from nbclient import NotebookClient

    src = Path(source)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(src, as_version=4)  # type: ignore[no-untyped-call]
    inject_parameters(notebook, dict(parameters or {}))
    client = NotebookClient(
        notebook,
        timeout=int(timeout),
        kernel_name="python3",
        resources={"metadata": {"path": str(src.parent)}},
    )
    client.execute()
    text = nbformat.writes(notebook)  # type: ignore[no-untyped-call]
    token = Settings.from_env().discogs_token
    if token and token in text:
        raise RuntimeError(f"{src.name}: the Discogs token appeared in the outputs; not saved")
    target = out_dir / src.name
    target.write_text(text, encoding="utf-8")
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(notebook)  # type: ignore[no-untyped-call]
        target.with_suffix(".html").write_text(body, encoding="utf-8")
    return target


def run_notebooks(
    output_dir: str | Path = PROJECT_ROOT / "reports",
    parameters: Mapping[str, Any] | None = None,
    *,
    notebooks: Sequence[str] = NOTEBOOKS,
    timeout: float = 900.0,
    html: bool = True,
) -> list[Path]:
    """Run ``notebooks`` (names in ``notebooks/``) in order, each getting ``parameters`` it declares.

    ``output_dir`` is also passed to every notebook as its ``output_dir`` parameter (absolute).
    """
    import nbformat

    out = Path(output_dir).resolve()
    written: list[Path] = []
    for name in notebooks:
        path = NOTEBOOK_DIR / name
        declared = _declared_parameters(nbformat.read(path, as_version=4))  # type: ignore[no-untyped-call]
        given = {"output_dir": str(out), **dict(parameters or {})}
        written.append(
            run_notebook(
                path,
                out,
                {k: v for k, v in given.items() if k in declared},
                timeout=timeout,
                html=html,
            )
        )
    return written


def _declared_parameters(notebook: Any) -> set[str]:
    import ast

    for cell in notebook.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {
                target.id
                for node in tree.body
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
    return set()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m toolkit.notebook``: execute the notebooks into an output folder, say where."""
    parser = argparse.ArgumentParser(
        prog="python -m toolkit.notebook", description="Execute the notebooks headless."
    )
    parser.add_argument("--output", default=str(PROJECT_ROOT / "reports"), help="output folder")
    parser.add_argument("--notebook", action="append", help="notebook file name (repeatable)")
    parser.add_argument(
        "--simulator",
        action="store_true",
        help="pull from the built-in simulator even when DISCOGS_TOKEN / DISCOGS_API_URL are set",
    )
    parser.add_argument("--simulator-rate-limit", type=int, default=None)
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=JSON", help="extra parameter"
    )
    parser.add_argument("--no-html", dest="html", action="store_false")
    args = parser.parse_args(argv)
    parameters: dict[str, Any] = {}
    if args.simulator:
        parameters["use_simulator"] = True
    if args.simulator_rate_limit is not None:
        parameters["simulator_rate_limit"] = args.simulator_rate_limit
    for item in args.param:
        name, _, raw = item.partition("=")
        try:
            parameters[name] = json.loads(raw)
        except ValueError:
            parameters[name] = raw
    names = tuple(args.notebook) if args.notebook else NOTEBOOKS
    written = run_notebooks(args.output, parameters, notebooks=names, html=args.html)
    for path in written:
        print(f"executed {path}" + (f" (+ {path.with_suffix('.html').name})" if args.html else ""))
    database = parameters.get("database")
    out = Path(args.output).resolve()
    settings = Settings.from_env()
    db_path = resolve_database(database if isinstance(database, str) else None, settings=settings)
    print(f"database:  {db_path}")
    print(f"data dir:  {settings.data_dir}  (HTTP cache, saved pull reports)")
    print(f"notebooks: {out}/*.ipynb" + (" and *.html" if args.html else ""))
    print(f"charts:    {out}/*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
