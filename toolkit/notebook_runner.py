"""Run the notebooks headless: inject parameters, execute with nbclient, export HTML.

``python -m toolkit.notebook --output reports`` (``make demo``, with ``--simulator`` so they never leave
the simulator) calls :func:`main` here and prints where everything went. Parameters go into a cell
after the ``parameters``-tagged one, as papermill does; papermill itself is not used because it
writes the executed notebook as it goes, before the outputs can be checked for the Discogs token.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit.config import ENV_FILE_VARIABLE, PROJECT_ROOT, Settings, env_file_path
from toolkit.errors import ConfigError

__all__ = [
    "NOTEBOOKS",
    "NOTEBOOK_DIR",
    "declared_parameters",
    "inject_parameters",
    "kernel_environment",
    "main",
    "run_notebook",
    "run_notebooks",
    "write_index",
]

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
#: The notebooks ``make demo`` runs, in order (03-benchmarks belongs to the benchmark suite).
NOTEBOOKS: tuple[str, ...] = (
    "01-pull-collection.ipynb",
    "02-explore-collection.ipynb",
    "04-catalogue.ipynb",
    "05-collection-over-time.ipynb",
)


def _is_parameters_cell(cell: Any) -> bool:
    return "parameters" in cell.get("metadata", {}).get("tags", [])


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
    index = next((i for i, c in enumerate(cells) if _is_parameters_cell(c)), -1)
    cells.insert(index + 1, cell)


def declared_parameters(notebook: Any) -> set[str]:
    """The names the ``parameters``-tagged cell assigns (empty without such a cell)."""
    for cell in notebook.cells:
        if _is_parameters_cell(cell):
            return {
                target.id
                for node in ast.parse(cell.source).body
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
    return set()


def kernel_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the kernels: ``environ`` with the ``.env`` file it resolves to pinned.

    A kernel runs in the notebook's folder, where ``.env`` would be looked up afresh; pinning
    ``TOOLKIT_ENV_FILE`` makes the kernels read the settings this process read.
    """
    env = dict(os.environ if environ is None else environ)
    path = env_file_path(env)
    env[ENV_FILE_VARIABLE] = str(path.resolve()) if path is not None and path.is_file() else ""
    return env


def run_notebook(
    source: str | Path,
    output_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: float = 900.0,
    html: bool = True,
    settings: Settings | None = None,
) -> Path:
    """Execute one notebook headless (cwd = its folder) into ``output_dir``; returns the .ipynb written.

    A failing cell raises nbclient's ``CellExecutionError`` and nothing is written. Neither is a
    notebook whose outputs contain the Discogs token of ``settings`` (default: the environment's).
    """
    import nbformat
    from nbclient import NotebookClient

    settings = settings or Settings.from_env()
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
    client.execute(env=kernel_environment())
    text = nbformat.writes(notebook)  # type: ignore[no-untyped-call]
    token = settings.discogs_token
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
    settings: Settings | None = None,
) -> list[Path]:
    """Run ``notebooks`` (names in ``notebooks/``) in order, each getting the ``parameters`` it declares.

    ``output_dir`` is also passed to every notebook as its ``output_dir`` parameter (absolute).
    """
    import nbformat

    settings = settings or Settings.from_env()
    out = Path(output_dir).resolve()
    given = {"output_dir": str(out), **dict(parameters or {})}
    written: list[Path] = []
    for name in notebooks:
        path = NOTEBOOK_DIR / name
        declared = declared_parameters(nbformat.read(path, as_version=4))  # type: ignore[no-untyped-call]
        chosen = {k: v for k, v in given.items() if k in declared}
        written.append(
            run_notebook(path, out, chosen, timeout=timeout, html=html, settings=settings)
        )
    return written


def _captions() -> dict[str, str]:
    from toolkit.budget.monitor import BUDGET_CAPTION
    from toolkit.catalogue.explore import CAPTIONS as CATALOGUE_CAPTIONS
    from toolkit.explore import CAPTIONS
    from toolkit.explore_history import HISTORY_CAPTIONS
    from toolkit.notebook import TIMELINE_CAPTION

    return {
        "pull-timeline": TIMELINE_CAPTION,
        "budget-windows": BUDGET_CAPTION,
        **CAPTIONS,
        **CATALOGUE_CAPTIONS,
        **HISTORY_CAPTIONS,
    }


def write_index(
    output_dir: str | Path, notebooks: Sequence[Path] = (), *, since: float | None = None
) -> Path:
    """Write ``index.html`` in ``output_dir``: every PNG there with a one-line caption, and links.

    ``notebooks`` are the executed notebooks (linked as HTML when exported, else as .ipynb).
    ``since`` (a ``time.time()``) leaves out PNGs older than that: charts of an earlier run.
    Charts are shown in the order the notebooks draw them; unknown PNGs come last, by name.
    """
    from html import escape

    out = Path(output_dir)
    captions = _captions()
    order = {name: i for i, name in enumerate(captions)}
    fresh = [p for p in out.glob("*.png") if since is None or p.stat().st_mtime >= since]
    pngs = sorted(fresh, key=lambda p: (order.get(p.stem, len(order)), p.name))
    links = []
    for path in notebooks:
        target = path.with_suffix(".html") if path.with_suffix(".html").is_file() else path
        links.append(f'<li><a href="{escape(target.name)}">{escape(path.stem)}</a></li>')
    figures = []
    for png in pngs:
        caption = captions.get(png.stem, png.stem.replace("_", " "))
        figures.append(
            f'<figure id="{escape(png.stem)}"><img src="{escape(png.name)}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)} <code>{escape(png.name)}</code></figcaption></figure>"
        )
    page = "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8"><title>discogs-toolkit demo</title>',
            "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;"
            "padding:0 1em;color:#222}img{max-width:100%;border:1px solid #ddd}"
            "figure{margin:2em 0}figcaption{margin-top:.4em}code{color:#666}</style>",
            "</head><body>",
            "<h1>discogs-toolkit demo</h1>",
            "<p>On the built-in simulator (<code>make demo</code>) the collection's releases are "
            "real Discogs records (the 2020-08-06 data dump sample); the owner's dates, folders, "
            "ratings and notes, and the community and price figures, are simulated.</p>",
            "<h2>Executed notebooks</h2>",
            "<ul>",
            *links,
            "</ul>",
            f"<h2>Charts ({len(figures)})</h2>",
            *figures,
            "</body></html>",
            "",
        ]
    )
    target = out / "index.html"
    target.write_text(page, encoding="utf-8")
    return target


def _parameter(text: str) -> tuple[str, Any]:
    """``NAME=JSON`` (a value that is not JSON is taken as a string) for ``--param``."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


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
        "--param",
        action="append",
        default=[],
        type=_parameter,
        metavar="NAME=JSON",
        help="extra parameter",
    )
    parser.add_argument("--no-html", dest="html", action="store_false")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    parameters: dict[str, Any] = {}
    if args.simulator:
        parameters["use_simulator"] = True
    if args.simulator_rate_limit is not None:
        parameters["simulator_rate_limit"] = args.simulator_rate_limit
    parameters.update(args.param)
    names = tuple(args.notebook) if args.notebook else NOTEBOOKS
    started = time.time() - 1.0  # file times may be coarser than time.time()
    written = run_notebooks(
        args.output, parameters, notebooks=names, html=args.html, settings=settings
    )
    for path in written:
        print(f"executed {path}" + (f" (+ {path.with_suffix('.html').name})" if args.html else ""))
    database = parameters.get("database")
    out = Path(args.output).resolve()
    db_path = Path(database).expanduser() if isinstance(database, str) else settings.database_path
    print(f"database:  {db_path}")
    print(f"data dir:  {settings.data_dir}  (HTTP cache, saved pull reports)")
    print(f"notebooks: {out}/*.ipynb" + (" and *.html" if args.html else ""))
    print(f"charts:    {out}/*.png")
    bin_dir = Path(sys.executable).parent
    print(f"try:       {bin_dir / 'discogs-toolkit'} stats")
    print(f"live:      {bin_dir / 'jupyter'} lab {NOTEBOOK_DIR}")
    index = write_index(out, written, since=started)
    print("every chart with a caption, and the notebooks:")
    print(index)  # the last line: the page to open
    return 0
