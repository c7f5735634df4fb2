"""The notebooks run headless (nbclient) against a small simulated collection, parameters injected."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from toolkit.explore import CHARTS
from toolkit.notebook import NOTEBOOK_DIR, NOTEBOOKS, inject_parameters, run_notebooks

TOKEN = "tok-NotebookSecret-93c1"


def test_committed_notebooks_start_with_a_parameters_cell_and_have_no_outputs() -> None:
    for name in NOTEBOOKS:
        notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        first = notebook.cells[0]
        assert first.cell_type == "code"
        assert "parameters" in first.metadata.get("tags", []), name
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_inject_parameters_goes_right_after_the_parameters_cell() -> None:
    notebook = nbformat.read(NOTEBOOK_DIR / NOTEBOOKS[0], as_version=4)
    count = len(notebook.cells)
    inject_parameters(notebook, {"simulator_items": 12, "database": "/x/y.duckdb"})
    assert len(notebook.cells) == count + 1
    injected = notebook.cells[1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert "simulator_items = 12" in injected.source
    assert "database = '/x/y.duckdb'" in injected.source


@pytest.mark.slow
def test_notebooks_run_against_a_small_simulated_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("DISCOGS_", "TOOLKIT_")):
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    reports = tmp_path / "reports"
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(data))
    # A token in the environment must not reach any output (the simulator is forced below).
    monkeypatch.setenv("DISCOGS_TOKEN", TOKEN)
    written = run_notebooks(
        reports,
        {
            "use_simulator": True,
            "simulator_items": 60,
            "simulator_rate_limit": 100_000,
            "simulator_latency": 0.0,
            "database": str(tmp_path / "nb.duckdb"),
        },
        timeout=300,
    )
    assert [p.name for p in written] == list(NOTEBOOKS)

    pulled = nbformat.read(written[0], as_version=4)
    outputs = [o for c in pulled.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps([o for o in outputs if o.output_type != "display_data"])
    assert "simulator at http://127.0.0.1:" in text
    assert "items" in text and ">60<" in text  # the PullReport table: 60 items pulled

    explored = nbformat.read(written[1], as_version=4)
    assert not [
        o
        for c in explored.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    for name in [*CHARTS, "pull-timeline"]:
        png = reports / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for path in written:
        assert path.with_suffix(".html").stat().st_size > 10_000

    for path in [*reports.rglob("*"), *data.rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
