"""The notebooks run headless (nbclient) against a small simulated collection, parameters injected."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
import warnings
from html import escape
from pathlib import Path
from typing import Any

import pytest

from toolkit.config import ENV_FILE_VARIABLE, Settings
from toolkit.discogs.client import RequestEvent
from toolkit.discogs.simdata import SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator
from toolkit.errors import DiscogsAuthError, HTTPCacheError
from toolkit.explore import CAPTIONS, CHARTS
from toolkit.explore_history import HISTORY_CAPTIONS, HISTORY_CHARTS
from toolkit.notebook import (
    NOTEBOOK_DIR,
    NOTEBOOKS,
    TIMELINE_CAPTION,
    chart_pull,
    inject_parameters,
    open_source,
    plot_timeline,
    run_notebooks,
    summarize,
)
from toolkit.notebook_runner import kernel_environment, write_index
from toolkit.notebook_runner import main as runner_main
from toolkit.pull import LAST_NETWORK_PULL_FILE, LAST_PULL_FILE, PullReport, save_pull

TOKEN = "tok-NotebookSecret-93c1"
FAST = 100_000


def test_committed_notebooks_start_with_a_parameters_cell_and_have_no_outputs() -> None:
    for name in NOTEBOOKS:
        # Plain JSON: importing nbformat costs ~2 s (jsonschema's format checkers).
        notebook = json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))
        first = notebook["cells"][0]
        assert first["cell_type"] == "code"
        assert "parameters" in first["metadata"].get("tags", []), name
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, name


@pytest.mark.slow  # importing nbformat alone takes ~2 s
def test_inject_parameters_goes_right_after_the_parameters_cell() -> None:
    import nbformat

    notebook = nbformat.read(NOTEBOOK_DIR / NOTEBOOKS[0], as_version=4)
    count = len(notebook.cells)
    inject_parameters(notebook, {"simulator_items": 12, "database": "/x/y.duckdb"})
    assert len(notebook.cells) == count + 1
    injected = notebook.cells[1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert "simulator_items = 12" in injected.source
    assert "database = '/x/y.duckdb'" in injected.source


@pytest.mark.slow
def test_notebooks_pull_with_a_token_and_write_it_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts only TOKEN: the notebooks really send it, and no file written has it."""
    import nbformat

    data, reports = tmp_path / "data", tmp_path / "reports"
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(data))
    catalogue = SimCatalogue(releases=1500, seed=9)
    catalogue.user("nb-owner", items=60)
    with DiscogsSimulator(
        catalogue,
        tokens={TOKEN: "nb-owner"},
        rate_limit=FAST,
        rate_limit_unauthenticated=FAST,
        latency=0.0,
        jitter=0.0,
    ) as server:
        # The kernels inherit this environment: the real-API path of notebook 01, with a token.
        monkeypatch.setenv("DISCOGS_API_URL", server.url)
        monkeypatch.setenv("DISCOGS_TOKEN", TOKEN)
        monkeypatch.setenv("DISCOGS_RATE_LIMIT", str(FAST))
        written = run_notebooks(reports, timeout=300)
        stats = server.stats()
    assert [p.name for p in written] == list(NOTEBOOKS)
    # username=None on a real server means the token's owner: only an accepted token gives that.
    assert stats.by_kind.get("identity") == 1 and stats.by_status.get(401) is None
    assert stats.by_kind.get("release", 0) > 0

    pulled = nbformat.read(written[0], as_version=4)
    outputs = [o for c in pulled.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps([o for o in outputs if o.output_type != "display_data"])
    assert f"{server.url} (token set), user 'nb-owner'" in text
    assert "items:     60 in nb-owner's collection" in text  # the PullReport's summary
    assert "this pull (nb-owner)" in text  # a cold pull: its own timeline is charted

    explored = nbformat.read(written[1], as_version=4)
    assert not [
        o
        for c in explored.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    over_time = nbformat.read(next(p for p in written if p.name.startswith("05-")), as_version=4)
    over_time_outputs = [o for c in over_time.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in over_time_outputs if o.output_type == "error"]
    assert "pull 1 " in json.dumps(over_time_outputs)  # the history of notebook 01's pull
    for name in [*CHARTS, *HISTORY_CHARTS, "pull-timeline"]:
        png = reports / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for path in written:
        assert path.with_suffix(".html").stat().st_size > 10_000

    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert {"collection.duckdb", "http_cache.sqlite", LAST_PULL_FILE} <= names
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_make_demo_runner_stays_on_the_simulator_and_says_where(tmp_path: Path) -> None:
    """``python -m toolkit.notebook --simulator`` (make demo) ignores a configured server and token."""
    import nbformat

    data = tmp_path / "elsewhere"
    env = dict(
        os.environ,  # settings cleared and .env disabled by tests/conftest.py
        TOOLKIT_DATA_DIR=str(data),
        DISCOGS_TOKEN=TOKEN,
        DISCOGS_API_URL="http://127.0.0.1:9",  # nothing listens there
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit.notebook",
            "--simulator",
            "--simulator-rate-limit",
            "100000",
            "--notebook",
            NOTEBOOKS[0],
            "--no-html",
            "--output",
            str(tmp_path / "reports"),
            "--param",
            "simulator_items=20",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"database:  {data / 'collection.duckdb'}" in done.stdout
    assert f"data dir:  {data}" in done.stdout
    pulled = nbformat.read(tmp_path / "reports" / NOTEBOOKS[0], as_version=4)
    text = json.dumps([o for c in pulled.cells if c.cell_type == "code" for o in c.outputs])
    assert "simulator at http://127.0.0.1:" in text and "127.0.0.1:9 " not in text
    assert (data / "collection.duckdb").is_file() and (data / LAST_NETWORK_PULL_FILE).is_file()
    index = tmp_path / "reports" / "index.html"
    assert done.stdout.splitlines()[-1] == str(index)  # make demo's last line: the page to open
    page = index.read_text(encoding="utf-8")
    assert f'href="{NOTEBOOKS[0]}"' in page and 'src="pull-timeline.png"' in page


def _report(events: tuple[RequestEvent, ...], username: str = "u") -> PullReport:
    return PullReport(
        username=username,
        folder_id=0,
        items=3,
        pages=1,
        pages_failed=0,
        releases_fetched=0,
        releases_skipped=3,
        items_removed=0,
        network_requests=len(events),
        cache_hits=0,
        retries=0,
        rate_limited=0,
        failures=0,
        permanent_failures=0,
        elapsed_seconds=0.5,
        rate_bound_seconds=0.0,
        rate_limit=60,
        rate_window=60.0,
        timeline=events,
    )


def test_timeline_chart_of_a_pull_without_requests_warns_nothing(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_timeline(_report(()), tmp_path / "empty.png")
    plt.close(fig)
    assert (tmp_path / "empty.png").read_bytes()[:4] == b"\x89PNG"


def test_chart_pull_falls_back_on_the_last_pull_with_release_requests(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    page = RequestEvent(1.0, 1.1, "/users/u/collection/folders/0/releases", 200)
    cold = _report((page, RequestEvent(1.1, 1.2, "/releases/7", 200)), "cold")
    warm = _report((RequestEvent(5.0, 5.1, page.path, 200),), "warm")
    save_pull(cold, tmp_path)
    save_pull(warm, tmp_path)  # the latest pull, but it sent no /releases request
    assert PullReport.load(tmp_path / LAST_PULL_FILE).username == "warm"
    charted = chart_pull(warm, tmp_path / "out", data_dir=tmp_path)
    assert charted.username == "cold" and charted.release_requests == 1
    assert chart_pull(cold, tmp_path / "out", data_dir=tmp_path) is cold
    assert chart_pull(warm, None, data_dir=tmp_path / "nothing-saved") is warm
    assert (tmp_path / "out" / "pull-timeline.png").is_file()
    plt.close("all")


def _simulator_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("discogs-sim:")}


def _open_descriptors_of(path: Path) -> list[str]:
    """File descriptors of this process open on ``path`` (its SQLite ``-wal``/``-shm`` too)."""
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile (e.g. the listing's own fd)
            targets.append(os.readlink(fd))
    return [t for t in targets if t.startswith(str(path))]


def test_open_source_stops_the_simulator_when_the_client_cannot_open(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = Settings(data_dir=blocker / "data")  # the HTTP cache cannot be created there
    before = _simulator_threads()
    with pytest.raises(HTTPCacheError):
        open_source(use_simulator=True, simulator_items=3, settings=settings)
    assert _simulator_threads() == before


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
@pytest.mark.parametrize(
    ("token", "error"), [("wrong-token", DiscogsAuthError), (None, ValueError)]
)
def test_open_source_closes_the_client_when_a_later_step_fails(
    tmp_path: Path, token: str | None, error: type[Exception]
) -> None:
    """``username=None`` asks the server who the token is: a refused token (or none) closes all."""
    catalogue = SimCatalogue(releases=50, seed=1)
    catalogue.user("owner", items=3)
    with DiscogsSimulator(catalogue, tokens={TOKEN: "owner"}, latency=0.0, jitter=0.0) as server:
        settings = Settings(
            discogs_token=token,
            discogs_api_url=server.url,
            discogs_api_url_configured=True,
            data_dir=tmp_path,
        )
        with pytest.raises(error):
            open_source(settings=settings)
        assert server.stats().by_status.get(401) == (1 if token else None)
    assert settings.http_cache_path.is_file()  # the client did open it ...
    assert _open_descriptors_of(settings.http_cache_path) == []  # ... and closed it again


def test_notebook_module_re_exports_the_runner() -> None:
    import toolkit.notebook
    import toolkit.notebook_runner

    for name in toolkit.notebook_runner.__all__:
        if name in toolkit.notebook.__all__:
            assert getattr(toolkit.notebook, name) is getattr(toolkit.notebook_runner, name)
    assert {"run_notebook", "run_notebooks", "inject_parameters", "main"} <= set(
        toolkit.notebook.__all__
    )


def test_kernels_read_the_env_file_the_runner_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kernels run in ``notebooks/``: the runner pins its ``.env`` for them (or none)."""
    (tmp_path / ".env").write_text("DISCOGS_RATE_LIMIT=12\n")
    monkeypatch.chdir(tmp_path)
    assert kernel_environment()[ENV_FILE_VARIABLE] == ""  # disabled here: stays disabled
    monkeypatch.delenv(ENV_FILE_VARIABLE)
    env = kernel_environment()
    assert env[ENV_FILE_VARIABLE] == str(tmp_path / ".env")
    assert Settings.from_env(env).discogs_rate_limit == 12


def test_runner_main_reports_bad_settings_and_bad_parameters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        runner_main(["--param", "no-equals-sign"])
    assert usage.value.code == 2
    monkeypatch.setenv("DISCOGS_RATE_LIMIT", "fast")
    capsys.readouterr()
    assert runner_main(["--no-html"]) == 1  # before any kernel is started
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DISCOGS_RATE_LIMIT" in err


def test_pull_summary_says_items_requests_time_against_the_bound_429s_and_failures() -> None:
    events = tuple(RequestEvent(i * 0.1, i * 0.1 + 0.05, f"/releases/{i}", 200) for i in range(3))
    report = dataclasses.replace(
        _report(events, "ada"), rate_bound_seconds=0.4, rate_limited=2, failures=1, retries=3
    )
    lines = summarize(report).lines()
    assert len(lines) == 5
    assert lines[0].startswith("items:     3 in ada's collection")
    assert lines[1].startswith("requests:  3 over the network") and "3 retried" in lines[1]
    assert "0.5 s" in lines[2] and "0.4 s at the least" in lines[2] and "(1.25x)" in lines[2]
    assert lines[3] == "429s:      2"
    assert lines[4].startswith("failures:  1 (1 releases, 0 pages")
    assert str(summarize(report)) == "\n".join(lines)
    assert summarize(_report(())).lines()[4] == "failures:  0 (complete)"


def test_index_page_captions_every_chart_and_links_the_notebooks(tmp_path: Path) -> None:
    for name in ["pull-timeline", *CHARTS, "extra_chart"]:
        (tmp_path / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    executed = [tmp_path / NOTEBOOKS[0], tmp_path / NOTEBOOKS[1]]
    for path in executed:
        path.write_text("{}")
    executed[0].with_suffix(".html").write_text("<html></html>")
    page = write_index(tmp_path, executed).read_text(encoding="utf-8")
    assert f'href="{executed[0].with_suffix(".html").name}"' in page  # HTML when exported
    assert f'href="{executed[1].name}"' in page  # else the notebook itself
    for name, caption in [("pull-timeline", TIMELINE_CAPTION), *CAPTIONS.items()]:
        assert f'src="{name}.png"' in page and escape(caption) in page, name
    for name in HISTORY_CHARTS:  # notebook 05's charts have captions too
        assert HISTORY_CAPTIONS[name]
    assert "extra chart" in page  # an unknown chart still gets a caption
    assert page.index("pull-timeline.png") < page.index("genres_by_decade.png")
    assert "Charts (11)" in page
    stale = tmp_path / "old_chart.png"
    stale.write_bytes(b"\x89PNG\r\n\x1a\n")
    os.utime(stale, (1_000_000.0, 1_000_000.0))
    page = write_index(tmp_path, executed, since=2_000_000.0).read_text(encoding="utf-8")
    assert "old_chart.png" not in page and "Charts (11)" in page  # only this run's charts


def _tick_labels(axis: Any) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def test_additions_chart_labels_whole_years_and_says_what(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    import pandas as pd

    from toolkit import explore

    frame = pd.DataFrame({"year": [2007, 2008, 2010, 2012], "added": [3, 40, 12, 7]})
    frame["total"] = frame["added"].cumsum()
    fig = explore.plot("additions_over_time", frame, tmp_path)
    fig.canvas.draw()
    ax = fig.axes[0]
    years = _tick_labels(ax.xaxis)
    assert years == [str(y) for y in range(2007, 2013)]  # every year, never 2007.5
    assert all("." not in label for axis in (ax.yaxis, fig.axes[1].yaxis)
               for label in _tick_labels(axis))  # fmt: skip
    assert ax.get_title(loc="left") == "Items added to the collection per year"
    assert "items" in ax.get_ylabel() and "items" in fig.axes[1].get_ylabel()
    assert (tmp_path / "additions_over_time.png").read_bytes()[:4] == b"\x89PNG"
    plt.close(fig)


def test_charts_fit_their_labels_and_shorten_long_ones(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.text import Text

    from toolkit import explore

    long_title = "An Extremely Long Release Title That Would Never Fit Beside The Bars " * 2
    prices = pd.DataFrame(
        {"release_id": [1, 2], "title": [long_title, "Short"], "year": [1999, None],
         "lowest_price": [12.5, 3.0], "num_for_sale": [2, 1]}
    )  # fmt: skip
    genres = pd.DataFrame(
        {"decade": [1990, 1990, 2000], "genre": ["Rock", "Folk, World, & Country", "Rock"],
         "items": [5, 2, 7]}
    )  # fmt: skip
    for name, frame in [("lowest_prices", prices), ("genres_by_decade", genres)]:
        fig = explore.plot(name, frame, tmp_path)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        box = fig.bbox
        for text in fig.findobj(Text):
            if not text.get_text():
                continue
            extent = text.get_window_extent(renderer)
            assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, (name, text.get_text())
        labels = _tick_labels(fig.axes[0].yaxis if name == "lowest_prices" else fig.axes[0].xaxis)
        assert all(len(label) <= 46 for label in labels), labels
        plt.close(fig)
    assert "(1999)" in " ".join(_tick_labels(explore.plot("lowest_prices", prices).axes[0].yaxis))
    plt.close("all")
