"""Write benchmark results as ``results.json`` / ``results.csv`` and render the Markdown table."""

from __future__ import annotations

import csv
import json
import os
import platform
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.bench.model import RowResult

__all__ = [
    "CSV_COLUMNS",
    "BenchRun",
    "format_value",
    "load_results",
    "machine_info",
    "to_markdown",
    "write_results",
]

CSV_COLUMNS = [
    "number",
    "name",
    "unit",
    "median",
    "p5",
    "p95",
    "repeats",
    "baseline_name",
    "baseline_median",
    "baseline_unit",
    "ratio",
    "claim",
    "target",
    "verdict",
    "note",
    "machine",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """The machine and software versions the numbers were measured on (no host name)."""
    import duckdb

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "duckdb": str(duckdb.__version__),
        "sqlite": sqlite3.sqlite_version,
    }


@dataclass
class BenchRun:
    """A whole run: mode, date, machine and every row."""

    quick: bool
    rows: list[RowResult]
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    seconds: float = 0.0
    machine: dict[str, Any] = field(default_factory=machine_info)

    def row(self, key: str) -> RowResult:
        """The row with ``key`` (or its number as a string)."""
        for result in self.rows:
            if key in (result.key, str(result.number)):
                return result
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "quick": self.quick,
            "started": self.started,
            "seconds": self.seconds,
            "machine": self.machine,
            "rows": [row.to_dict() for row in self.rows],
        }


def machine_line(machine: dict[str, Any]) -> str:
    """A one-line description of the machine."""
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('os', '?')}, "
        f"{machine.get('implementation', 'CPython')} {machine.get('python', '?')}, "
        f"DuckDB {machine.get('duckdb', '?')}, SQLite {machine.get('sqlite', '?')}"
    )


def write_results(run: BenchRun, out_dir: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.csv`` under ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(run.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    csv_path = out_dir / "results.csv"
    machine = machine_line(run.machine)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in run.rows:
            data = row.to_dict()
            record = {col: data.get(col, "") for col in CSV_COLUMNS}
            record["machine"] = machine
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return json_path, csv_path


def load_results(path: Path) -> BenchRun:
    """Read a ``results.json`` (or the directory holding one) back into a :class:`BenchRun`."""
    if path.is_dir():
        path = path / "results.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = [RowResult.from_dict(row) for row in data["rows"]]
    return BenchRun(
        quick=bool(data["quick"]),
        rows=rows,
        started=str(data["started"]),
        seconds=float(data.get("seconds", 0.0)),
        machine=dict(data.get("machine", {})),
    )


def format_value(value: float | None, unit: str = "") -> str:
    """A short human rendering of a number (3 significant figures, thousands separated)."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    elif magnitude == 0:
        text = "0"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


_VERDICT_MARK = {"pass": "✅ pass", "miss": "❌ miss", "info": "info", "skipped": "skipped"}


def to_markdown(run: BenchRun) -> str:
    """The README's results table: one line per row, with the date, mode and machine."""
    mode = "quick (`--quick`)" if run.quick else "full"
    lines = [
        f"Measured {run.started[:10]} ({mode} run, {run.seconds:.0f} s) on "
        f"{machine_line(run.machine)}.",
        "",
        "| # | benchmark | ours (median) | p5–p95 | baseline | baseline median | ratio "
        "| spec's claim | target | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in run.rows:
        spread = (
            f"{format_value(row.p5)}–{format_value(row.p95)}"
            if row.p5 is not None and row.p95 is not None and row.repeats > 1
            else "—"
        )
        ratio = "—" if row.ratio is None else f"{row.ratio:.3g}"
        verdict = _VERDICT_MARK.get(row.verdict, row.verdict)
        if row.status != "ok" and row.note:
            verdict = f"{verdict}: {row.note}"
        lines.append(
            f"| {row.number} | {row.name} | {format_value(row.median, row.unit)} | {spread} "
            f"| {row.baseline_name or '—'} | {format_value(row.baseline_median, row.baseline_unit or row.unit)} "
            f"| {ratio} | {row.claim} | {row.target} | {verdict} |"
        )
    notes = [f"{row.number}. {row.note}" for row in run.rows if row.status == "ok" and row.note]
    if notes:
        lines += ["", "Notes:", "", *notes]
    return "\n".join(lines) + "\n"
