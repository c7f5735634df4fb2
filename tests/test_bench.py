"""The benchmark suite: its statistics helpers, row selection, reports, and a --quick smoke run."""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import os
import shutil
from pathlib import Path

import pytest

from toolkit.bench.harness import (
    Candidate,
    calibrate,
    gc_paused,
    interleaved,
    loop_of,
    paired_differences,
    summarize,
)
from toolkit.bench.model import RowResult
from toolkit.bench.report import (
    README_END,
    README_START,
    BenchRun,
    format_value,
    load_results,
    to_markdown,
    update_readme,
    write_results,
)
from toolkit.bench.rows import ROWS, select_rows
from toolkit.cli import main

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03-benchmarks.ipynb"


def test_summarize_median_and_percentiles() -> None:
    summary = summarize([float(v) for v in range(1, 102)])  # 1..101
    assert summary.median == 51
    assert summary.p5 == pytest.approx(6.0)
    assert summary.p95 == pytest.approx(96.0)
    assert summary.repeats == 101


def test_summarize_single_sample_and_empty() -> None:
    one = summarize([2.5])
    assert (one.median, one.p5, one.p95, one.repeats) == (2.5, 2.5, 2.5, 1)
    with pytest.raises(ValueError):
        summarize([])


def test_summary_scaled_converts_every_value() -> None:
    summary = summarize([1.0, 2.0, 3.0]).scaled(1000)
    assert summary.median == 2000
    assert summary.samples == (1000, 2000, 3000)


def test_paired_differences_pairs_repeat_by_repeat() -> None:
    assert paired_differences([5.0, 7.0], [1.0, 2.0]) == [4.0, 5.0]
    with pytest.raises(ValueError):
        paired_differences([1.0], [1.0, 2.0])


def test_gc_paused_restores_previous_state() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_interleaved_alternates_candidates_and_runs_setup_each_repeat() -> None:
    order: list[str] = []
    setups: list[str] = []

    def body(name: str) -> Candidate:
        return Candidate(
            name, lambda n: order.append(name), setup=lambda: setups.append(name), loops=1
        )

    samples = interleaved([body("a"), body("b"), body("c")], repeats=3, warmup=1)
    timed = order[3:]  # after one warm-up call each
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert setups.count("a") == 4  # warm-up + 3 repeats
    assert {name: len(v) for name, v in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(value >= 0 for values in samples.values() for value in values)


def test_loop_of_and_calibrate() -> None:
    calls: list[int] = []
    loop_of(calls.append, 1)(5)
    assert calls == [1] * 5
    assert calibrate(loop_of(len, "abc"), 0.001) >= 1


def test_select_rows_by_number_range_and_key() -> None:
    assert [r.number for r in select_rows(None)] == list(range(1, len(ROWS) + 1))
    assert [r.number for r in select_rows("1,3-5,cache_miss")] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        select_rows("99")
    with pytest.raises(ValueError):
        select_rows("nope")


def test_format_value() -> None:
    assert format_value(None) == "—"
    assert format_value(123456.7, "rows/s") == "123,457 rows/s"
    assert format_value(0.000123, "µs") == "0.000123 µs"
    assert format_value(12.345) == "12.3"


def _run() -> BenchRun:
    ok = RowResult(1, "cache_hit", "Cache hit", "µs", "~1–2 ms", "≤ 0.5 µs", median=0.3)
    ok.p5, ok.p95, ok.repeats, ok.passed = 0.29, 0.31, 5, True
    skipped = RowResult(2, "cache_miss", "Miss", "ms", "500–2000 ms", "—", status="skipped")
    skipped.note = "no simulator"
    return BenchRun(quick=True, rows=[ok, skipped], machine={"cpu": "test", "cores": 2})


def test_results_round_trip_and_markdown(tmp_path: Path) -> None:
    run = _run()
    json_path, csv_path = write_results(run, tmp_path)
    again = load_results(tmp_path)
    assert [row.to_dict() for row in again.rows] == [row.to_dict() for row in run.rows]
    with csv_path.open() as handle:
        records = list(csv.DictReader(handle))
    assert [r["verdict"] for r in records] == ["pass", "skipped"]
    assert json.loads(json_path.read_text())["rows"][1]["note"] == "no simulator"
    table = to_markdown(again)
    assert "| 1 | Cache hit | 0.3 µs |" in table
    assert "skipped: no simulator" in table


def test_update_readme_replaces_only_the_marked_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n{README_START}\nold\n{README_END}\n\n## After\n")
    update_readme(readme, _run())
    text = readme.read_text()
    assert "old" not in text and "| 1 | Cache hit |" in text
    assert text.startswith("# T\n") and text.endswith(f"{README_END}\n\n## After\n")
    with pytest.raises(ValueError):
        update_readme(_without_markers(tmp_path), _run())


def _without_markers(tmp_path: Path) -> Path:
    path = tmp_path / "plain.md"
    path.write_text("# nothing here\n")
    return path


def test_sim_process_serves_reports_and_stops() -> None:
    import requests

    from toolkit.bench.simproc import SimProcess

    sim = SimProcess(user="someone", releases=50, items=3, rate_limit=1000, latency=0.0, jitter=0)
    with sim:
        owned = sim.user_release_ids()
        assert 1 <= len(owned) <= 3 and len(sim.release_ids()) == 50
        answer = requests.get(
            f"{sim.url}/releases/{owned[0]}", headers={"User-Agent": "test"}, timeout=10
        )
        assert answer.status_code == 200 and answer.json()["id"] == owned[0]
        stats = sim.stats()
        assert (stats.requests, stats.throttled, stats.by_kind) == (1, 0, {"release": 1})
        sim.set(latency=0.001, jitter=0.0)
        sim.reset_counters()
        assert sim.stats().requests == 0
        with pytest.raises(RuntimeError, match="cannot set"):
            sim.set(window=1.0)
        proc = sim._proc
    assert proc is not None and proc.returncode == 0 and sim._proc is None


def _child_processes() -> set[int]:
    """Process ids whose parent is this process, zombies included (read from /proc)."""
    me = str(os.getpid())
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            state_and_more = stat.read_text().rsplit(")", 1)[1].split()
            if state_and_more[1] == me:
                children.add(int(stat.parent.name))
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc")
def test_sim_process_that_fails_to_start_leaves_no_process() -> None:
    from toolkit.bench.simproc import SimProcess

    before = _child_processes()
    crashing = SimProcess(user="someone", releases=10, items=1)
    crashing.config["releases"] = "ten"  # the child raises before it says where it listens
    with pytest.raises(RuntimeError, match=r"(?s)exited: .*ValueError"):
        crashing.start()
    silent = SimProcess(user="someone", releases=10, items=1)
    with pytest.raises(RuntimeError, match="did not start within"):
        silent.start(timeout=0.001)  # still starting: killed
    assert crashing._proc is None and silent._proc is None
    assert _child_processes() <= before  # killed and reaped: not even a zombie is left


@pytest.mark.slow  # a fresh interpreter importing the toolkit: ~1 s
def test_child_idle_reports_its_own_peak_rss() -> None:
    from toolkit.bench.child import run_child

    result = run_child({"mode": "idle"}, timeout=120)
    assert set(result) == {"maxrss_kib"} and 10_000 < result["maxrss_kib"] < 2_000_000


def test_window_budget_parts_add_up_to_the_elapsed_time() -> None:
    from types import SimpleNamespace

    from toolkit.bench.rows.network import _Pulled, _window_budget
    from toolkit.discogs.client import RequestEvent

    # 2 per 1-s window, 5 requests: a page, then releases; finishes at 0.1, 0.2, 1.15, 1.3, 2.2.
    finishes = [0.1, 0.2, 1.15, 1.3, 2.2]
    events = [
        RequestEvent(f - 0.05, f, "/users/u/collection/folders/0/releases" if i == 0 else
                     f"/releases/{i}", 200)
        for i, f in enumerate(finishes)
    ]  # fmt: skip
    pulled = _Pulled(2.3, SimpleNamespace(timeline=tuple(events)), 0.0, 2.3)
    budget = _window_budget(pulled, limit=2, window=1.0)
    assert budget["windows"] == 2 and budget["last_window_requests"] == 0
    assert budget["start"] == pytest.approx(0.1)
    assert budget["per_window_extra"] == pytest.approx(0.05)
    parts = budget["start"] + budget["windows"] * 1.0 + budget["window_extra_total"]
    assert parts + budget["last_window"] + budget["end"] == pytest.approx(pulled.elapsed)
    assert budget["page_listing"] == pytest.approx(0.1)
    assert budget["startup_gap"] == pytest.approx(0.05)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``discogs-toolkit bench --quick`` run shared by the smoke and notebook tests."""
    out = tmp_path_factory.mktemp("bench") / "out"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_bench_quick_smoke_writes_every_row_and_chart(
    quick_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = quick_run
    data = json.loads((out / "results.json").read_text())
    rows = {row["number"]: row for row in data["rows"]}
    assert sorted(rows) == list(range(1, len(ROWS) + 1))
    assert all(row["status"] in {"ok", "skipped"} for row in rows.values()), [
        (row["number"], row["note"]) for row in rows.values() if row["status"] == "error"
    ]
    for row in rows.values():
        assert row["verdict"] in {"pass", "miss", "info", "skipped"}
        assert (out / row["chart"]).is_file()
        if row["status"] == "ok":
            assert row["median"] is not None
    with (out / "results.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(ROWS)
    capsys.readouterr()
    assert main(["bench", "--markdown", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert table.count("\n| ") >= len(ROWS)


def test_committed_notebook_has_parameters_cell_and_no_outputs() -> None:
    # Plain JSON: importing nbformat costs ~2 s (jsonschema's format checkers).
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert "parameters" in notebook["cells"][0]["metadata"].get("tags", [])
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.slow
def test_notebook_charts_the_quick_results(quick_run: Path, tmp_path: Path) -> None:
    import nbformat

    from toolkit.notebook import run_notebook

    out = tmp_path / "bench"
    shutil.copytree(quick_run, out)
    executed = run_notebook(
        NOTEBOOK, tmp_path / "nb", {"run": False, "quick": True, "out_dir": str(out)}, html=False
    )
    notebook = nbformat.read(executed, as_version=4)
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == len(ROWS)


def test_bench_command_reads_settings_once_at_the_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main`` resolves the settings: the data dir gives the default --out; a bad one is one line."""
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path / "data"))
    assert main(["bench", "--markdown"]) == 1
    assert f"no results in {tmp_path / 'data' / 'bench'}" in capsys.readouterr().err
    monkeypatch.setenv("CONCURRENCY_MAX_TASKS", "many")
    assert main(["bench", "--markdown", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CONCURRENCY_MAX_TASKS" in err
