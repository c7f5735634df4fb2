"""Rows 4, 5, 13 and 15: query building, transaction overhead, bulk loading, index suggestions."""

from __future__ import annotations

import random
import shutil
from typing import Any

from toolkit.bench.harness import Candidate, interleaved, loop_of, paired_differences, summarize
from toolkit.bench.model import BenchContext, RowResult, bars

__all__ = ["GENRE_QUERY", "bulk_load", "index_suggestion", "query_build", "transaction_overhead"]

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

    size: int = ctx.pick(2_000, 20_000)
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
        **bars(stats),
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
                repeats=ctx.pick(5, 31),
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


def _load_inputs(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` collection items of a simulated user and the full release JSON of each."""
    from toolkit.discogs.simdata import SimCatalogue

    catalogue = SimCatalogue(releases=max(n, 1_000), seed=1)
    user = catalogue.user("bench-load", items=n)
    items = [dict(item) for item in user.items]
    releases = []
    for release_id in dict.fromkeys(int(item["id"]) for item in items):
        body = catalogue.release(release_id)
        if body is not None:
            releases.append(body)
    return items, releases


class _Target:
    """A fresh database file with the collection schema, re-made before every timed repeat."""

    def __init__(self, path: Any) -> None:
        self.path = path
        self.db: Any = None

    def reset(self) -> None:
        from toolkit.collection import create_schema
        from toolkit.db import Database

        self.close()
        for suffix in ("", ".wal", "-wal", "-shm"):
            candidate = self.path.with_name(self.path.name + suffix)
            if candidate.exists():
                candidate.unlink()
        self.db = Database.connect(self.path)
        create_schema(self.db)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


def bulk_load(ctx: BenchContext, row: RowResult) -> None:
    """``load_collection`` (JSON in, every table out) vs inserting the same rows one by one.

    The baselines get the rows already flattened (ours parses the JSON too), into the same
    schema on the same kind of file, in one transaction. DuckDB's ``executemany`` is so slow
    that it runs on a sample of the rows; rows/s is what is compared.
    """
    import pandas  # noqa: F401  (loaded, as in a notebook: the loader converts with pa.array)

    import toolkit.arrowcols as arrowcols
    from toolkit.collection import TABLES, load_collection

    n: int = ctx.pick(500, 5_000)
    items, releases = _load_inputs(n)
    folder = ctx.work_dir / "bulk"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    duck = _Target(folder / "load.duckdb")
    lite = _Target(folder / "load.sqlite")
    # One reference load gives the flattened rows the baselines insert.
    duck.reset()
    counts = load_collection(duck.db, items, releases, username="bench-load")
    total = sum(counts.values())
    flat = {table: duck.db.fetchall(f"SELECT * FROM {table}") for table in counts}
    duck.close()

    def sample(cap: int) -> dict[str, list[tuple[Any, ...]]]:
        share = min(1.0, cap / max(total, 1))
        return {t: r[: max(1, int(len(r) * share))] for t, r in flat.items() if r}

    def inserts(target: _Target, rows: dict[str, list[tuple[Any, ...]]], single: bool) -> None:
        db = target.db
        with db.transaction():
            for table, table_rows in rows.items():
                marks = ", ".join("?" * len(TABLES[table]))
                sql = f"INSERT INTO {table} VALUES ({marks})"
                if single:
                    for values in table_rows:
                        db.execute(sql, values)
                else:
                    db.executemany(sql, table_rows)

    def without_pandas(body: Any) -> None:
        """The loader as in a process without pandas (``discogs-toolkit pull``): from buffers."""
        column = arrowcols.column
        arrowcols.column = arrowcols.from_buffers
        try:
            body()
        finally:
            arrowcols.column = column

    duck_rows = sample(ctx.pick(500, 10_000))
    single_rows = sample(ctx.pick(10_000, 30_000))
    sizes = {
        "load_collection → DuckDB": total,
        "load_collection → DuckDB, no pandas": total,
        "executemany → DuckDB": sum(map(len, duck_rows.values())),
        "load_collection → sqlite": total,
        "executemany → sqlite": total,
        "single INSERTs → sqlite": sum(map(len, single_rows.values())),
    }
    bodies = {
        "load_collection → DuckDB": (
            duck,
            lambda _n: load_collection(duck.db, items, releases, username="bench-load"),
        ),
        "load_collection → DuckDB, no pandas": (
            duck,
            lambda _n: without_pandas(
                lambda: load_collection(duck.db, items, releases, username="bench-load")
            ),
        ),
        "executemany → DuckDB": (duck, lambda _n: inserts(duck, duck_rows, False)),
        "load_collection → sqlite": (
            lite,
            lambda _n: load_collection(lite.db, items, releases, username="bench-load"),
        ),
        "executemany → sqlite": (lite, lambda _n: inserts(lite, flat, False)),
        "single INSERTs → sqlite": (lite, lambda _n: inserts(lite, single_rows, True)),
    }
    try:
        samples = interleaved(
            [Candidate(name, body, target.reset, 1) for name, (target, body) in bodies.items()],
            repeats=ctx.pick(3, 7),
            warmup=1,
        )
    finally:
        duck.close()
        lite.close()
        shutil.rmtree(folder, ignore_errors=True)
    rates = {name: summarize([sizes[name] / s for s in values]) for name, values in samples.items()}
    ours = rates["load_collection → DuckDB"]
    row.set_ours(ours)
    row.set_baseline("executemany → DuckDB", rates["executemany → DuckDB"])
    row.ratio_note = "ours / baseline (higher is better)"
    row.others = {name: s.median for name, s in rates.items()}
    row.passed = ours.median >= 300_000
    row.note = (
        f"{total:,} rows ({len(items):,} items, {len(releases):,} releases with artists, labels, "
        f"tracks ...), with pandas loaded as in a notebook (Arrow columns by pa.array); in a "
        f"process without pandas, as `discogs-toolkit pull` (columns from numpy buffers, "
        f"toolkit/arrowcols.py): {rates['load_collection → DuckDB, no pandas'].median:,.0f} rows/s; "
        f"sqlite: load_collection {rates['load_collection → sqlite'].median:,.0f} rows/s "
        f"vs executemany {rates['executemany → sqlite'].median:,.0f} rows/s."
    )
    row.series = {
        **bars(rates),
        "ours": [0, 1, 3],
        "target": 300_000.0,
        "unit": "rows/s (higher is better)",
        "log": True,
    }


#: "Titles of my Jazz records": the genre filter sqlite can only answer with a full scan.
GENRE_QUERY = (
    "SELECT r.title, r.year FROM release_genres g "
    "JOIN collection_items ci ON ci.release_id = g.release_id "
    "JOIN releases r ON r.release_id = g.release_id WHERE g.genre = ?"
)
#: "How many Jazz records": the same filter without fetching rows into Python.
_GENRE_COUNT = (
    "SELECT count(*) FROM release_genres g "
    "JOIN collection_items ci ON ci.release_id = g.release_id WHERE g.genre = ?"
)


def index_suggestion(ctx: BenchContext, row: RowResult) -> None:
    """A genre query on a sqlite collection before and after the index ``suggest_indexes`` names.

    Both files hold the same collection (loaded with ``load_collection`` from simulated JSON);
    the second one also has the suggested index. The ratio is after / before (lower is better).
    """
    from toolkit.collection import create_schema, load_collection
    from toolkit.db import Database

    n: int = ctx.pick(2_000, 20_000)
    items, releases = _load_inputs(n)
    folder = ctx.work_dir / "index"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with Database.connect(folder / "before.sqlite") as db:
        create_schema(db)
        load_collection(db, items, releases, username="bench-index")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(folder / "before.sqlite", folder / "after.sqlite")
    before = Database.connect(folder / "before.sqlite", read_only=True)
    after = Database.connect(folder / "after.sqlite")
    try:
        genre = "Jazz"
        suggestions = after.suggest_indexes(GENRE_QUERY, [genre])
        for suggestion in suggestions:
            after.execute(suggestion.sql)
        plan_after = "; ".join(after.explain(GENRE_QUERY, [genre]))
        matches = len(after.fetchall(GENRE_QUERY, [genre]))
        samples = interleaved(
            [
                Candidate(
                    "with the suggested index", loop_of(after.fetchall, GENRE_QUERY, [genre])
                ),
                Candidate("without (full scan)", loop_of(before.fetchall, GENRE_QUERY, [genre])),
                Candidate("count, with", loop_of(after.fetchall, _GENRE_COUNT, [genre])),
                Candidate("count, without", loop_of(before.fetchall, _GENRE_COUNT, [genre])),
            ],
            repeats=ctx.pick(7, 21),
            warmup=2,
            min_time=ctx.pick(0.005, 0.02),
        )
        genre_rows = int(after.scalar("SELECT count(*) FROM release_genres") or 0)
    finally:
        before.close()
        after.close()
        shutil.rmtree(folder, ignore_errors=True)
    stats = {name: summarize(values).scaled(1e3) for name, values in samples.items()}
    ours, baseline = stats["with the suggested index"], stats["without (full scan)"]
    row.set_ours(ours)
    row.set_baseline("without (full scan)", baseline)
    row.ratio_note = "after / before (lower is better)"
    row.others = {name: s.median for name, s in stats.items()}
    scans_left = any(step.startswith("SCAN") for step in plan_after.split("; "))
    row.passed = bool(suggestions) and not scans_left and ours.median < baseline.median
    created = "; ".join(s.sql for s in suggestions) or "none"
    count_ratio = stats["count, with"].median / stats["count, without"].median
    row.note = (
        f"{len(items):,} items, {genre_rows:,} genre rows, {matches:,} {genre} items fetched; "
        f"counting them instead: after / before = {count_ratio:.2f}. Suggested: {created}; "
        f"plan after: {plan_after}."
    )
    row.series = {
        **bars(stats),
        "ours": [0, 2],
        "unit": "ms per query",
    }
