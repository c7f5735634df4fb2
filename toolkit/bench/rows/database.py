"""Rows 4, 5 and 13: query building, transaction overhead and bulk loading."""

from __future__ import annotations

import random
import shutil
from typing import Any

from toolkit.bench.harness import Candidate, interleaved, loop_of, paired_differences, summarize
from toolkit.bench.model import BenchContext, RowResult

__all__ = ["bulk_load", "query_build", "transaction_overhead"]

_CONDITIONS = ["Mint (M)", "Near Mint (NM or M-)", "Very Good Plus (VG+)", "Good (G)"]


def _releases_table(db: Any, rows: int) -> None:
    """A ``releases`` table shaped like the spec's example query expects."""
    db.execute(
        "CREATE TABLE releases (id INTEGER PRIMARY KEY, title VARCHAR, year INTEGER, "
        "genre VARCHAR, rating INTEGER, condition VARCHAR, modified_at TIMESTAMP)"
    )
    rng = random.Random(3)
    ids = list(range(1, rows + 1))
    data = {
        "id": ids,
        "title": [f"Release {i}" for i in ids],
        "year": [rng.randint(1950, 2024) for _ in ids],
        "genre": [rng.choice(["Rock", "Jazz", "Electronic", "Funk / Soul"]) for _ in ids],
        "rating": [rng.randint(0, 5) for _ in ids],
        "condition": [rng.choice(_CONDITIONS) for _ in ids],
    }
    with db.transaction(), db.temp_table("seed", data):
        db.execute(
            "INSERT INTO releases (id, title, year, genre, rating, condition) "
            "SELECT id, title, year, genre, rating, condition FROM seed"
        )


def _complex_query() -> Any:
    """The spec's "complex query with multiple conditions", built fluently."""
    from toolkit.query import QueryBuilder

    return (
        QueryBuilder()
        .select(["*"])
        .from_("releases")
        .where("year BETWEEN ? AND ?", [2000, 2023])
        .and_where("rating >= ?", [4])
        .and_where("condition LIKE ?", ["%Mint%"])
        .order_by("year", "DESC")
        .order_by("title", "ASC")
        .limit(50)
        .offset(100)
        .build()
    )


def _by_hand(year_from: int, year_to: int, rating: int, condition: str) -> tuple[str, list[Any]]:
    """The same query as a hand-written f-string (the spec's "manual string building")."""
    sql = (
        f"SELECT * FROM releases WHERE year BETWEEN ? AND ? AND rating >= ? "
        f"AND condition LIKE ? ORDER BY year DESC, title ASC LIMIT {50} OFFSET {100}"
    )
    return sql, [year_from, year_to, rating, condition]


def query_build(ctx: BenchContext, row: RowResult) -> None:
    """The fluent chain + ``build()`` of the spec's complex query vs executing it on both engines."""
    from toolkit.db import Database

    size: int = ctx.pick(5_000, 20_000)
    sqlite_db = Database.connect(":memory:", engine="sqlite")
    duck_db = Database.connect(":memory:", engine="duckdb")
    try:
        for db in (sqlite_db, duck_db):
            _releases_table(db, size)
        built = _complex_query()
        samples = interleaved(
            [
                Candidate("QueryBuilder chain + build()", loop_of(_complex_query)),
                Candidate("f-string by hand", loop_of(_by_hand, 2000, 2023, 4, "%Mint%")),
                Candidate("execute on sqlite", loop_of(sqlite_db.fetchall, built)),
                Candidate("execute on DuckDB", loop_of(duck_db.fetchall, built)),
            ],
            repeats=ctx.pick(7, 21),
            warmup=2,
            min_time=ctx.pick(0.005, 0.02),
        )
    finally:
        sqlite_db.close()
        duck_db.close()
    stats = {name: summarize(values).scaled(1e6) for name, values in samples.items()}
    ours = stats["QueryBuilder chain + build()"]
    row.set_ours(ours)
    row.set_baseline("execute on sqlite", stats["execute on sqlite"])
    row.others = {name: s.median for name, s in stats.items()}
    row.passed = ours.median <= 10.0
    row.note = (
        f"building is {ours.median / stats['execute on sqlite'].median:.1%} of a sqlite execution "
        f"and {ours.median / stats['execute on DuckDB'].median:.1%} of a DuckDB one "
        f"({size:,} rows); the same SQL by hand costs {stats['f-string by hand'].median:.2f} µs."
    )
    row.series = {
        "kind": "bars",
        "labels": list(stats),
        "medians": [s.median for s in stats.values()],
        "p5": [s.p5 for s in stats.values()],
        "p95": [s.p95 for s in stats.values()],
        "claim": 100.0,
        "target": 10.0,
        "unit": "µs",
    }


def transaction_overhead(ctx: BenchContext, row: RowResult) -> None:
    """The spec's two-UPDATE atomic group via ``TransactionManager`` vs the same two in autocommit.

    Both run on a sqlite *file* (WAL, as ``Database.connect`` opens it); the reported value is the
    repeat-by-repeat difference, so it is the overhead itself (negative: the group is cheaper).
    """
    from toolkit.db import Database
    from toolkit.query import TransactionManager

    folder = ctx.work_dir / "transaction"
    shutil.rmtree(folder, ignore_errors=True)
    results: dict[str, dict[str, list[float]]] = {}
    for engine, suffix in (("sqlite", "sqlite"), ("duckdb", "duckdb")):
        db = Database.connect(folder / f"tx.{suffix}")
        try:
            _releases_table(db, 1_000)
            manager = TransactionManager(db)
            counter = iter(range(10**9))

            def statements(db: Any = db, counter: Any = counter) -> None:
                release = next(counter) % 1000 + 1
                db.execute("UPDATE releases SET rating = ? WHERE id = ?", [5, release])
                db.execute(
                    "UPDATE releases SET modified_at = CURRENT_TIMESTAMP WHERE id = ?", [release]
                )

            results[engine] = interleaved(
                [
                    Candidate("transaction", loop_of(manager.transaction, statements)),
                    Candidate("autocommit", loop_of(statements)),
                ],
                repeats=ctx.pick(9, 31),
                warmup=2,
                min_time=ctx.pick(0.005, 0.02),
            )
        finally:
            db.close()
    shutil.rmtree(folder, ignore_errors=True)
    to_us = 1e6
    sqlite = results["sqlite"]
    overhead = summarize(paired_differences(sqlite["transaction"], sqlite["autocommit"]))
    row.set_ours(overhead.scaled(to_us))
    row.set_baseline("same 2 UPDATEs, autocommit", summarize(sqlite["autocommit"]).scaled(to_us))
    with_tx = summarize(sqlite["transaction"]).scaled(to_us)
    row.ratio = with_tx.median / row.baseline_median if row.baseline_median else None
    row.ratio_note = "with transaction / without"
    duck = results["duckdb"]
    duck_over = summarize(paired_differences(duck["transaction"], duck["autocommit"])).scaled(to_us)
    duck_tx = summarize(duck["transaction"]).scaled(to_us)
    duck_auto = summarize(duck["autocommit"]).scaled(to_us)
    row.others = {
        "sqlite with transaction": with_tx.median,
        "DuckDB overhead": duck_over.median,
        "DuckDB with transaction": duck_tx.median,
        "DuckDB autocommit": duck_auto.median,
    }
    row.passed = overhead.median * to_us <= 100.0
    row.note = (
        f"sqlite file: group {with_tx.median:.1f} µs vs autocommit {row.baseline_median:.1f} µs; "
        f"DuckDB file: {duck_tx.median:.0f} vs {duck_auto.median:.0f} µs "
        f"(overhead {duck_over.median:+.0f} µs)."
    )
    assert row.baseline_median is not None
    row.series = {
        "kind": "grouped",
        "groups": ["sqlite file", "DuckDB file"],
        "bars": {
            "one atomic group (ours)": [with_tx.median, duck_tx.median],
            "same statements, autocommit": [row.baseline_median, duck_auto.median],
        },
        "ylabel": "µs per group of 2 UPDATEs",
        "claim": 1000.0,
        "subtitle": f"overhead: sqlite {row.median:+.1f} µs, DuckDB {duck_over.median:+.0f} µs",
    }


def bulk_load(ctx: BenchContext, row: RowResult) -> None:
    """``load_collection`` rows/s on DuckDB and sqlite vs row-by-row inserts."""
    from toolkit.bench.model import Skip

    raise Skip("toolkit.collection has not landed yet")
