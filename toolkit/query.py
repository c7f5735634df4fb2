"""A small fluent SELECT builder, common query shapes and atomic groups, for DuckDB and sqlite.

Values are always bound as ``?`` parameters; identifiers are checked when they are added.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from toolkit.errors import QueryError

if TYPE_CHECKING:
    from toolkit.db import Database

__all__ = ["BuiltQuery", "CommonQueries", "QueryBuilder", "TransactionManager"]

T = TypeVar("T")

# One identifier part: a plain name or a double-quoted name without quotes/NUL inside.
_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"\x00]+")'
_QUALIFIED = rf"{_PART}(?:\.{_PART})?"
_ALIAS = rf"(?:\s+AS\s+{_PART})?"
_AGGREGATE = rf"(?:COUNT|SUM|AVG|MIN|MAX)\(\s*(?:DISTINCT\s+)?(?:\*|{_QUALIFIED})\s*\)"
#: A select-list entry: ``*``, ``t.*``, ``name``, ``t.name``, ``COUNT(*)``, each with ``AS alias``.
_COLUMN_RE = re.compile(
    rf"\*|{_PART}\.\*|(?:{_QUALIFIED}|{_AGGREGATE}){_ALIAS}", re.IGNORECASE | re.ASCII
)
#: A column reference usable in WHERE / ORDER BY: ``name`` or ``t.name``.
_REF_RE = re.compile(_QUALIFIED, re.ASCII)
#: A table: ``name`` or ``schema.name``, optionally ``AS alias``.
_TABLE_RE = re.compile(rf"{_QUALIFIED}{_ALIAS}", re.IGNORECASE | re.ASCII)
# String literals and quoted identifiers, to count placeholders outside them.
_QUOTED_RE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
#: Placeholder styles other than a bare ``?``: ``?1``, ``:name``, ``@name``, ``$1`` / ``$name``
#: (``::`` casts and ``$`` inside names such as ``a$b`` are not placeholders).
_MAYBE_PLACEHOLDER_RE = re.compile(r"[?:@$][0-9A-Za-z_]", re.ASCII)  # cheap pre-check
_OTHER_PLACEHOLDER_RE = re.compile(
    r"\?\d|(?<!:):(?!:)[A-Za-z_]|@[A-Za-z_]|(?<![A-Za-z0-9_$])\$[A-Za-z0-9_]", re.ASCII
)
_OR_RE = re.compile(r"\bOR\b", re.IGNORECASE)
#: LIMIT used when only OFFSET is set: sqlite needs a LIMIT and DuckDB rejects ``LIMIT -1``.
_NO_LIMIT = 9223372036854775807


class BuiltQuery(NamedTuple):
    """SQL text with ``?`` placeholders and the values to bind, in order."""

    sql: str
    params: list[Any]


def _column(column: str) -> str:
    if type(column) is not str or not _COLUMN_RE.fullmatch(column):
        raise QueryError(f"invalid column {column!r}: expected a name, t.name, *, or name AS alias")
    return column


def _ref(column: str) -> str:
    if type(column) is not str or not _REF_RE.fullmatch(column):
        raise QueryError(f"invalid column {column!r}: expected a name or t.name")
    return column


def _table(table: str) -> str:
    if type(table) is not str or not _TABLE_RE.fullmatch(table):
        raise QueryError(f"invalid table {table!r}: expected a name, schema.name or name AS alias")
    return table


def _count(n: int, what: str) -> int:
    if type(n) is not int or n < 0:
        raise QueryError(f"{what} must be a non-negative integer, got {n!r}")
    return n


def _parse_condition(condition: str) -> tuple[str, int]:
    """Check a WHERE fragment: non-empty, one statement, only ``?`` placeholders.

    Returns the text (parenthesised when it has its own OR) and its number of ``?``.
    """
    if type(condition) is not str or not condition.strip():
        raise QueryError(f"a condition must be non-empty SQL text, got {condition!r}")
    bare = condition
    if "'" in condition or '"' in condition:
        bare = _QUOTED_RE.sub("", condition)
        if "'" in bare or '"' in bare:
            raise QueryError(f"unterminated quote in condition {condition!r}")
    if ";" in bare or "--" in bare or "/*" in bare:
        raise QueryError(f"a condition may not contain ';' or comments: {condition!r}")
    if _MAYBE_PLACEHOLDER_RE.search(bare) and _OTHER_PLACEHOLDER_RE.search(bare):
        raise QueryError(
            f"only '?' placeholders are supported (not ?1, :name, @name or $1): {condition!r}"
        )
    has_or = "or" in bare.lower() and _OR_RE.search(bare) is not None
    text = f"({condition})" if has_or else condition
    return text, bare.count("?")


def _condition(condition: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """A checked condition (parenthesised when it has its own OR) and its params as a list."""
    text, marks = _parse_condition(condition)
    kind = type(params)
    if (
        kind is not list
        and kind is not tuple
        and (isinstance(params, str | bytes | Mapping) or not isinstance(params, Sequence))
    ):
        raise QueryError(f"params must be a list or tuple of values, got {params!r}")
    if marks != len(params):
        raise QueryError(
            f"condition {condition!r} has {marks} '?' placeholder(s) but {len(params)} param(s)"
        )
    return text, list(params)


class QueryBuilder:
    """Fluent SELECT builder; every method returns ``self``, :meth:`build` returns a BuiltQuery.

    ``where``/``and_where`` AND conditions together; ``or_where`` ORs one condition against all
    conditions so far (``(a AND b) OR (c)``). Identifiers are validated when added, so ``build``
    only joins strings.
    """

    __slots__ = (
        "_conds",
        "_limit",
        "_offset",
        "_or_last",
        "_order",
        "_params",
        "_select",
        "_table",
    )

    def __init__(self) -> None:
        """Start an empty query (``SELECT *``, no table yet)."""
        self._select = "*"
        self._table: str | None = None
        self._conds: list[str] = []
        self._params: list[Any] = []
        self._or_last = False
        self._order: list[str] = []
        self._limit: int | None = None
        self._offset: int | None = None

    def reset(self) -> QueryBuilder:
        """Forget every clause so the builder can be reused."""
        self.__init__()  # type: ignore[misc]
        return self

    def select(self, columns: str | Sequence[str]) -> QueryBuilder:
        """Choose the columns (a list, or one name); ``*`` when never called or empty."""
        if isinstance(columns, str):
            columns = [columns]
        self._select = ", ".join([_column(c) for c in columns]) or "*"
        return self

    def from_(self, table: str) -> QueryBuilder:
        """Set the table to select from (required before :meth:`build`)."""
        self._table = _table(table)
        return self

    def where(self, condition: str, params: Sequence[Any] = ()) -> QueryBuilder:
        """Add a condition, ANDed with any earlier ones (a second ``where`` never replaces)."""
        return self.and_where(condition, params)

    def and_where(self, condition: str, params: Sequence[Any] = ()) -> QueryBuilder:
        """AND a condition with everything accumulated so far."""
        text, values = _condition(condition, params)
        if self._or_last:
            self._conds = [f"({self._conds[0]})"]
            self._or_last = False
        self._conds.append(text)
        self._params.extend(values)
        return self

    def or_where(self, condition: str, params: Sequence[Any] = ()) -> QueryBuilder:
        """OR a condition against everything so far: ``(earlier) OR (condition)``."""
        text, values = _condition(condition, params)
        if not self._conds:
            self._conds.append(text)
        else:
            self._conds = [f"({' AND '.join(self._conds)}) OR ({condition.strip()})"]
            self._or_last = True
        self._params.extend(values)
        return self

    def order_by(self, column: str, direction: str = "ASC") -> QueryBuilder:
        """Append an ORDER BY term; direction is ASC or DESC (any case)."""
        normalized = direction.upper() if type(direction) is str else None
        if normalized != "ASC" and normalized != "DESC":
            raise QueryError(f"order direction must be ASC or DESC, got {direction!r}")
        self._order.append(f"{_ref(column)} {normalized}")
        return self

    def limit(self, n: int) -> QueryBuilder:
        """Return at most ``n`` rows (``n >= 0``)."""
        self._limit = _count(n, "limit")
        return self

    def offset(self, n: int) -> QueryBuilder:
        """Skip ``n`` rows (``n >= 0``); works without :meth:`limit` on both engines."""
        self._offset = _count(n, "offset")
        return self

    def build(self) -> BuiltQuery:
        """The SQL (clauses in SELECT FROM WHERE ORDER BY LIMIT OFFSET order) and its params."""
        if self._table is None:
            raise QueryError("cannot build a query without a FROM table: call from_(table) first")
        parts = ["SELECT", self._select, "FROM", self._table]
        if self._conds:
            parts += ("WHERE", " AND ".join(self._conds))
        if self._order:
            parts += ("ORDER BY", ", ".join(self._order))
        if self._limit is not None:
            parts += ("LIMIT", str(self._limit))
        if self._offset is not None:
            if self._limit is None:
                parts += ("LIMIT", str(_NO_LIMIT))
            parts += ("OFFSET", str(self._offset))
        return BuiltQuery(" ".join(parts), self._params.copy())


class CommonQueries:
    """Ready-made query shapes; each returns a :class:`QueryBuilder` that can be refined further."""

    @staticmethod
    def select_all(table: str) -> QueryBuilder:
        """``SELECT * FROM table``."""
        return QueryBuilder().from_(table)

    @staticmethod
    def select_where(table: str, column: str, value: Any) -> QueryBuilder:
        """Rows whose ``column`` equals ``value`` (``IS NULL`` when value is None)."""
        column = _ref(column)
        if value is None:
            return QueryBuilder().from_(table).where(f"{column} IS NULL")
        return QueryBuilder().from_(table).where(f"{column} = ?", [value])

    @staticmethod
    def select_limit(
        table: str, n: int, order_by: str | None = None, direction: str = "ASC"
    ) -> QueryBuilder:
        """The first ``n`` rows, optionally ordered."""
        query = QueryBuilder().from_(table)
        if order_by is not None:
            query.order_by(order_by, direction)
        return query.limit(n)

    @staticmethod
    def count(table: str) -> QueryBuilder:
        """``SELECT COUNT(*) AS count FROM table``."""
        return QueryBuilder().select(["COUNT(*) AS count"]).from_(table)

    @staticmethod
    def count_where(table: str, column: str, value: Any) -> QueryBuilder:
        """Count of rows whose ``column`` equals ``value`` (``IS NULL`` when None)."""
        query = CommonQueries.select_where(table, column, value)
        return query.select(["COUNT(*) AS count"])

    @staticmethod
    def paginate(
        table: str,
        page: int,
        page_size: int,
        order_by: str | None = None,
        direction: str = "ASC",
    ) -> QueryBuilder:
        """Page ``page`` (1-based) of ``page_size`` rows: OFFSET ``(page - 1) * page_size``."""
        if type(page) is not int or page < 1:
            raise QueryError(f"page must be an integer >= 1, got {page!r}")
        if type(page_size) is not int or page_size < 1:
            raise QueryError(f"page_size must be an integer >= 1, got {page_size!r}")
        query = QueryBuilder().from_(table)
        if order_by is not None:
            query.order_by(order_by, direction)
        return query.limit(page_size).offset((page - 1) * page_size)

    @staticmethod
    def search(table: str, column: str, term: str, limit: int | None = None) -> QueryBuilder:
        """Rows whose ``column`` contains ``term``, ignoring case; ``%``/``_`` are literal.

        The column is compared as text (``CAST(column AS VARCHAR)``; sqlite reads VARCHAR as
        TEXT), so numbers match by their digits on both engines (booleans render as
        ``true``/``false`` on DuckDB but ``1``/``0`` on sqlite). Case folding is Unicode-aware on
        both: :class:`~toolkit.db.Database` gives sqlite connections a Unicode ``LOWER``.
        """
        if type(term) is not str:
            raise QueryError(f"search term must be a string, got {term!r}")
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = (
            QueryBuilder()
            .from_(table)
            .where(
                f"LOWER(CAST({_ref(column)} AS VARCHAR)) LIKE LOWER(?) ESCAPE '\\'",
                [f"%{escaped}%"],
            )
        )
        if limit is not None:
            query.limit(limit)
        return query


Statement = str | tuple[Any, ...] | Mapping[str, Any] | BuiltQuery


def _statement(index: int, statement: Statement) -> tuple[str, Sequence[Any]]:
    if isinstance(statement, str):
        return statement, ()
    if isinstance(statement, Mapping):
        sql, params = statement.get("sql"), statement.get("params", ())
    elif isinstance(statement, tuple) and 1 <= len(statement) <= 2:
        sql, params = statement[0], (statement[1] if len(statement) == 2 else ())
    else:
        raise QueryError(f"statement {index}: expected (sql, params) or a dict, got {statement!r}")
    if not isinstance(sql, str) or not sql.strip():
        raise QueryError(f"statement {index}: missing SQL text")
    if params is None:
        params = ()
    if isinstance(params, str | bytes | Mapping) or not isinstance(params, Sequence):
        raise QueryError(f"statement {index}: params must be a list or tuple, got {params!r}")
    return sql, params


class TransactionManager:
    """Atomic groups of work on one :class:`~toolkit.db.Database` (same behaviour on both engines).

    Nested calls join the outermost transaction; see :meth:`toolkit.db.Database.transaction`.
    """

    def __init__(self, db: Database) -> None:
        """Manage transactions of ``db``."""
        self.db = db

    def transaction(self, fn: Callable[[], T]) -> T:
        """Call ``fn()`` atomically and return its value; roll back and re-raise on any error."""
        with self.db.transaction():
            return fn()

    def atomic(self) -> AbstractContextManager[None]:
        """``with tm.atomic(): ...`` — the context-manager form of :meth:`transaction`."""
        return self.db.transaction()

    def batch(self, statements: Sequence[Statement]) -> int:
        """Run ``[(sql, params), ...]`` (or ``{"sql", "params"}`` dicts) all-or-nothing.

        Returns the number of statements run. Malformed entries are rejected before anything runs.
        """
        checked = [_statement(i, s) for i, s in enumerate(statements)]
        with self.db.transaction():
            for sql, params in checked:
                self.db.execute(sql, params)
        return len(checked)
