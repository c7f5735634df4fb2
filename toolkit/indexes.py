"""Automatic index suggestions: read a query's plan and name the indexes that would serve it.

sqlite: each candidate index is tried on a schema-only in-memory copy, and kept when the planner
then drops a full scan or a temporary sort. DuckDB: only selective equality filters on large tables.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.errors import QueryError

if TYPE_CHECKING:
    from toolkit.db import Database

__all__ = [
    "DUCKDB_NOTE",
    "DUCKDB_POINT_LOOKUP_MIN_ROWS",
    "IndexSuggestion",
    "explain",
    "suggest_indexes",
]

#: Why DuckDB usually gets no suggestion (``discogs-toolkit query --explain`` prints it).
DUCKDB_NOTE = (
    "DuckDB scans columnar data and skips row groups with zone maps (min/max per column), so "
    "filters, joins and sorts need no index; an ART index only helps selective point lookups "
    "(an equality filter matching few rows of a large table)"
)
#: Below two of DuckDB's row groups (122,880 rows each) zone maps leave an index nothing to skip.
DUCKDB_POINT_LOOKUP_MIN_ROWS = 2 * 122_880
#: An equality filter is a point lookup when a value matches at most this share of the rows.
_DUCKDB_SELECTIVITY = 0.001
#: Indexes suggested for one query at most, and columns per index.
_MAX_SUGGESTIONS = 4
_MAX_COLUMNS = 3

_SCAN = re.compile(r"^SCAN (\S+)$")
_TEMP_SORT = re.compile(
    r"USE TEMP B-TREE FOR (?:ORDER BY|GROUP BY|DISTINCT|RIGHT PART OF ORDER BY)"
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TERMS = re.compile(r"\(([^()]*)\)$")
_EQUALITY = re.compile(r"^\(?\"?([A-Za-z_][A-Za-z0-9_]*)\"? = (.+?)\)?$")


@dataclass(frozen=True)
class IndexSuggestion:
    """An index that would serve a query: ``sql`` creates it, ``reason`` says what it changes."""

    table: str
    columns: tuple[str, ...]
    reason: str
    sql: str


def explain(db: Database, sql: str, params: Sequence[Any] = ()) -> list[str]:
    """The query plan as text lines (sqlite: EXPLAIN QUERY PLAN details; DuckDB: its plan tree)."""
    if db.engine == "sqlite":
        rows = db.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return lines
    rows = db.fetchall(f"EXPLAIN {sql}", params)
    return [line for row in rows for line in str(row[-1]).splitlines()]


def suggest_indexes(db: Database, sql: str, params: Sequence[Any] = ()) -> list[IndexSuggestion]:
    """Indexes that would serve ``sql`` on ``db`` (none when its plan needs none)."""
    if db.engine == "sqlite":
        return _sqlite_suggestions(db, sql, params)
    return _duckdb_suggestions(db, sql, params)


# ------------------------------------------------------------------------------------ sqlite


def _score(plan: list[str]) -> tuple[int, int, int, int]:
    """Lower is better: full scans, temporary sorts, index lookups that still read the table,
    and (negated) the constraint terms indexes serve."""
    scans = sum(1 for line in plan if _SCAN.match(line))
    sorts = sum(1 for line in plan if _TEMP_SORT.search(line))
    uncovered = sum(1 for line in plan if " USING INDEX " in line)
    terms = sum(line.count("?") for line in plan if "INDEX" in line or "PRIMARY KEY" in line)
    return scans, sorts, uncovered, -terms


class _WhatIf:
    """A schema-only in-memory copy of a sqlite database, to try indexes on without writing."""

    def __init__(self, db: Database) -> None:
        self.conn = sqlite3.connect(":memory:")
        rows = db.fetchall(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY CASE type WHEN 'table' THEN 0 "
            "WHEN 'index' THEN 1 ELSE 2 END"
        )
        self.tables: dict[str, list[str]] = {}
        self.views: dict[str, str] = {}
        self._names: dict[str, str] = {}  # lower-case name -> the table's own spelling
        try:
            for kind, name, ddl in rows:
                self.conn.execute(ddl)
                if kind == "view":
                    self.views[name.lower()] = ddl
            for kind, name, _ in rows:
                if kind == "table":
                    info = self.conn.execute(f'PRAGMA table_info("{name}")').fetchall()
                    self.tables[name] = [str(column[1]) for column in info]
                    self._names[name.lower()] = name
        except BaseException:
            self.conn.close()
            raise

    def plan(self, sql: str, params: Sequence[Any]) -> list[str]:
        rows = self.conn.execute(f"EXPLAIN QUERY PLAN {sql}", list(params)).fetchall()
        return [str(row[3]) for row in rows]

    def referenced_tables(self, sql: str) -> list[str]:
        """Tables named in ``sql`` or in the views it names (recursively)."""
        found: list[str] = []
        pending, seen = [sql], set()
        while pending:
            for word in _WORD.findall(pending.pop()):
                name = word.lower()
                if name in seen:
                    continue
                seen.add(name)
                if name in self._names:
                    found.append(self._names[name])
                elif name in self.views:
                    pending.append(self.views[name])
        return found

    def try_index(
        self, table: str, columns: tuple[str, ...], sql: str, params: Sequence[Any]
    ) -> list[str]:
        cols = ", ".join(f'"{c}"' for c in columns)
        self.conn.execute(f'CREATE INDEX "_tk_whatif" ON "{table}" ({cols})')
        try:
            return self.plan(sql, params)
        finally:
            self.conn.execute('DROP INDEX "_tk_whatif"')


def _index_name(table: str, columns: tuple[str, ...]) -> str:
    return "ix_" + "_".join((table, *columns))


def _reason(before: list[str], after: list[str], columns: tuple[str, ...]) -> str:
    """What the index changes: the columns it is searched on, those that make it covering, and
    the plan lines it replaces."""
    gone = [line for line in before if line not in after]
    new = [line for line in after if line not in before]
    searched: list[str] = []
    for line in new:
        if line.startswith("SEARCH") and (terms := _TERMS.search(line)):
            for term in terms.group(1).split(" AND "):
                name = _WORD.match(term.strip())
                if name and name.group(0) in columns and name.group(0) not in searched:
                    searched.append(name.group(0))
    parts = []
    if searched:
        parts.append(f"filtered or joined on {', '.join(searched)}")
    if any(_TEMP_SORT.search(line) for line in gone):
        parts.append("sorted or grouped on " + ", ".join(c for c in columns if c not in searched))
    extra = [c for c in columns if c not in searched]
    if searched and extra:
        parts.append(f"{', '.join(extra)} added so the index covers the query")
    changed = "; ".join(gone) + " -> " + ("; ".join(new) or "no temporary sort")
    return f"{'; '.join(parts) or 'read through the index'}: {changed}"


def _sqlite_suggestions(db: Database, sql: str, params: Sequence[Any]) -> list[IndexSuggestion]:
    db.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)  # bad SQL fails here, as a QueryError
    try:
        return _plan_indexes(_WhatIf(db), sql, params)
    except sqlite3.Error as exc:  # e.g. a virtual table whose module the copy lacks
        raise QueryError(f"cannot try indexes on a copy of the schema: {exc}") from exc


def _plan_indexes(whatif: _WhatIf, sql: str, params: Sequence[Any]) -> list[IndexSuggestion]:
    """Greedily add the index that improves the plan most, widened while that helps."""
    try:
        tables = whatif.referenced_tables(sql)
        plan = whatif.plan(sql, params)
        suggestions: list[IndexSuggestion] = []
        while len(suggestions) < _MAX_SUGGESTIONS and _score(plan)[:2] != (0, 0):
            best: tuple[tuple[int, ...], str, tuple[str, ...], list[str]] | None = None
            for table in tables:
                for column in whatif.tables[table]:
                    trial = whatif.try_index(table, (column,), sql, params)
                    if _score(trial)[:2] < _score(plan)[:2] and (
                        best is None or _score(trial) < best[0]
                    ):
                        best = (_score(trial), table, (column,), trial)
            if best is None:
                break
            _, table, columns, trial = best
            # Widen the index while that serves more of the query (more terms, covering).
            while len(columns) < _MAX_COLUMNS:
                wider = None
                for column in whatif.tables[table]:
                    if column in columns:
                        continue
                    candidate = whatif.try_index(table, (*columns, column), sql, params)
                    if _score(candidate) < _score(wider[1] if wider else trial):
                        wider = ((*columns, column), candidate)
                if wider is None:
                    break
                columns, trial = wider
            name = _index_name(table, columns)
            trial = [line.replace("_tk_whatif", name) for line in trial]
            create = f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})"
            whatif.conn.execute(create)
            suggestions.append(
                IndexSuggestion(table, columns, _reason(plan, trial, columns), create)
            )
            plan = trial
        return suggestions
    finally:
        whatif.conn.close()


# ------------------------------------------------------------------------------------ DuckDB


def _scans(node: Any) -> list[dict[str, Any]]:
    """Every table-scan node of a DuckDB JSON plan."""
    found = []
    if isinstance(node, list):
        for child in node:
            found += _scans(child)
    elif isinstance(node, dict):
        info = node.get("extra_info")
        if isinstance(info, dict) and "Table" in info and "Filters" in info:
            found.append(info)
        found += _scans(node.get("children", []))
    return found


def _duckdb_suggestions(db: Database, sql: str, params: Sequence[Any]) -> list[IndexSuggestion]:
    rows = db.fetchall(f"EXPLAIN (FORMAT JSON) {sql}", params)
    plan = json.loads(str(rows[0][-1])) if rows else []
    indexed = {
        (str(table), str(expression).strip("[]").strip('"'))
        for table, expression in db.fetchall("SELECT table_name, expressions FROM duckdb_indexes()")
    }
    keyed = {
        (str(table), str(columns[0]))
        for table, columns in db.fetchall(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE') AND len(constraint_column_names) = 1"
        )
    }
    suggestions: list[IndexSuggestion] = []
    for info in _scans(plan):
        table = str(info["Table"]).split(".")[-1]
        filters = info["Filters"]
        for text in [filters] if isinstance(filters, str) else filters:
            match = _EQUALITY.match(str(text).strip())
            if not match or (table, match.group(1)) in indexed | keyed:
                continue
            column = match.group(1)
            total, distinct = db.fetchone(
                f'SELECT count(*), approx_count_distinct("{column}") FROM "{table}"'
            ) or (0, 0)
            if total < DUCKDB_POINT_LOOKUP_MIN_ROWS or not distinct:
                continue
            per_value = total / distinct
            if per_value > total * _DUCKDB_SELECTIVITY:
                continue
            name = _index_name(table, (column,))
            suggestions.append(
                IndexSuggestion(
                    table,
                    (column,),
                    f"point lookup on {column}: about {per_value:.0f} of {total} rows match a "
                    "value, so an ART index finds them without scanning every row group",
                    f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})",
                )
            )
    return suggestions
