"""Tests of QueryBuilder, CommonQueries and TransactionManager, run against DuckDB and sqlite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.db import Database
from toolkit.errors import QueryError, TransactionError
from toolkit.query import BuiltQuery, CommonQueries, QueryBuilder, TransactionManager

ENGINES = ("duckdb", "sqlite")
SUFFIX = {"duckdb": ".duckdb", "sqlite": ".sqlite"}
ROWS = [
    (1, "Ann", "active", 30),
    (2, "Bob", "idle", 10),
    (3, "Cy", "active", 20),
    (4, "100% Pure_Funk", "active", 40),
    (5, "1000 Pure Funk", "banned", 50),
]


def _fill(database: Database) -> Database:
    database.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR, status VARCHAR, "
        "created_at INTEGER)"
    )
    database.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", ROWS)
    return database


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = _fill(Database.connect(tmp_path / f"q{SUFFIX[request.param]}"))
    yield database
    database.close()


def ids(database: Database, query: QueryBuilder | BuiltQuery) -> list[int]:
    return [row[0] for row in database.fetchall(query)]


# ------------------------------------------------------------------------ the spec's forms


def test_spec_where_and_where() -> None:
    sql, params = (
        QueryBuilder()
        .select(["*"])
        .from_("users")
        .where("id = ?", [1])
        .and_where("status = ?", ["active"])
        .build()
    )
    assert sql == "SELECT * FROM users WHERE id = ? AND status = ?"
    assert params == [1, "active"]


def test_spec_order_by() -> None:
    built = QueryBuilder().from_("users").order_by("status").order_by("created_at", "DESC").build()
    assert built == BuiltQuery("SELECT * FROM users ORDER BY status ASC, created_at DESC", [])


def test_spec_limit_offset() -> None:
    built = QueryBuilder().from_("users").limit(10).offset(20).build()
    assert built.sql == "SELECT * FROM users LIMIT 10 OFFSET 20"


def test_spec_select_columns_and_complex_query() -> None:
    sql, params = (
        QueryBuilder()
        .select(["id", "name", "status"])
        .from_("users")
        .where("created_at > ?", [5])
        .and_where("status = ?", ["active"])
        .and_where("name <> ?", ["x"])
        .order_by("created_at", "DESC")
        .limit(2)
        .build()
    )
    assert sql == (
        "SELECT id, name, status FROM users WHERE created_at > ? AND status = ? AND name <> ? "
        "ORDER BY created_at DESC LIMIT 2"
    )
    assert params == [5, "active", "x"]


def test_build_without_from_raises() -> None:
    with pytest.raises(QueryError, match="FROM"):
        QueryBuilder().select(["id"]).build()


def test_builder_methods_chain_and_reset() -> None:
    query = QueryBuilder()
    assert query.select(["id"]) is query
    assert query.from_("users").where("id = ?", [1]).order_by("id").limit(1).offset(0) is query
    assert query.reset() is query
    with pytest.raises(QueryError, match="FROM"):
        query.build()
    assert query.from_("t").build() == ("SELECT * FROM t", [])


def test_build_is_repeatable_and_params_are_a_copy() -> None:
    query = QueryBuilder().from_("users").where("id = ?", [1])
    first = query.build()
    first.params.append("mutated")
    assert query.build() == ("SELECT * FROM users WHERE id = ?", [1])


# ------------------------------------------------------------------------ fixed defects


def test_or_where_ors_against_everything_so_far_with_parentheses(db: Database) -> None:
    query = (
        QueryBuilder()
        .from_("users")
        .where("status = ?", ["active"])
        .and_where("created_at > ?", [25])
        .or_where("id = ?", [2])
        .order_by("id")
    )
    assert query.build().sql == (
        "SELECT * FROM users WHERE (status = ? AND created_at > ?) OR (id = ?) ORDER BY id ASC"
    )
    assert ids(db, query) == [1, 2, 4]


def test_and_after_or_keeps_the_or_grouped(db: Database) -> None:
    query = (
        QueryBuilder()
        .from_("users")
        .where("id = ?", [1])
        .or_where("id = ?", [2])
        .and_where("status = ?", ["idle"])
    )
    assert query.build() == (
        "SELECT * FROM users WHERE ((id = ?) OR (id = ?)) AND status = ?",
        [1, 2, "idle"],
    )
    assert ids(db, query) == [2]


def test_a_condition_with_its_own_or_is_parenthesised(db: Database) -> None:
    query = QueryBuilder().from_("users").where("id = ? OR id = ?", [1, 2]).and_where("id = ?", [2])
    assert query.build().sql == "SELECT * FROM users WHERE (id = ? OR id = ?) AND id = ?"
    assert ids(db, query) == [2]


def test_second_where_ands_instead_of_replacing(db: Database) -> None:
    query = QueryBuilder().from_("users").where("status = ?", ["active"]).where("id > ?", [1])
    assert query.build() == ("SELECT * FROM users WHERE status = ? AND id > ?", ["active", 1])
    assert sorted(ids(db, query)) == [3, 4]


def test_or_where_first_acts_as_where() -> None:
    assert QueryBuilder().from_("t").or_where("a = ?", [1]).build() == (
        "SELECT * FROM t WHERE a = ?",
        [1],
    )


def test_no_select_means_star_and_empty_select_too() -> None:
    assert QueryBuilder().from_("t").build().sql == "SELECT * FROM t"
    assert QueryBuilder().select([]).from_("t").build().sql == "SELECT * FROM t"
    assert QueryBuilder().select("name").from_("t").build().sql == "SELECT name FROM t"


def test_offset_without_limit_runs_on_both_engines(db: Database) -> None:
    query = QueryBuilder().select(["id"]).from_("users").order_by("id").offset(3)
    assert ids(db, query) == [4, 5]


def test_limit_zero_and_offset_zero(db: Database) -> None:
    assert ids(db, QueryBuilder().from_("users").limit(0)) == []
    assert len(ids(db, QueryBuilder().from_("users").order_by("id").offset(0))) == 5


@pytest.mark.parametrize("bad", [-1, -100, 1.5, "10", None, True])
def test_bad_limit_and_offset_raise(bad: Any) -> None:
    with pytest.raises(QueryError):
        QueryBuilder().limit(bad)
    with pytest.raises(QueryError):
        QueryBuilder().offset(bad)


@pytest.mark.parametrize(
    "column",
    ["name", "u.name", "*", "u.*", "name AS n", "name as n", '"odd name"', "COUNT(*) AS c"],
)
def test_valid_column_forms(column: str) -> None:
    assert QueryBuilder().select([column]).from_("users AS u").build().sql.startswith("SELECT")


@pytest.mark.parametrize(
    "column",
    [
        "name; DROP TABLE users",
        "name --",
        "1=1",
        "name, (SELECT password FROM secrets)",
        "name FROM secrets --",
        "",
        "na me",
        'a"b',
        "name AS",
    ],
)
def test_injection_through_columns_is_rejected(column: str) -> None:
    with pytest.raises(QueryError, match="invalid column"):
        QueryBuilder().select([column])


@pytest.mark.parametrize(
    "table",
    ["users; DROP TABLE users", "users WHERE 1=1", "(SELECT 1)", "users--", "", "a.b.c"],
)
def test_injection_through_table_is_rejected(table: str) -> None:
    with pytest.raises(QueryError, match="invalid table"):
        QueryBuilder().from_(table)


def test_valid_table_forms() -> None:
    assert QueryBuilder().from_("main.users AS u").build().sql == "SELECT * FROM main.users AS u"


@pytest.mark.parametrize("column", ["id; DROP TABLE users", "id DESC", "1", "*"])
def test_injection_through_order_by_is_rejected(column: str) -> None:
    with pytest.raises(QueryError):
        QueryBuilder().order_by(column)


@pytest.mark.parametrize("direction", ["UP", "ASC; DROP TABLE users", "", "ascending"])
def test_bad_direction_raises(direction: str) -> None:
    with pytest.raises(QueryError, match="ASC or DESC"):
        QueryBuilder().order_by("id", direction)


def test_direction_is_case_insensitive() -> None:
    assert QueryBuilder().from_("t").order_by("id", "desc").build().sql.endswith("id DESC")


@pytest.mark.parametrize(
    ("condition", "params"),
    [
        ("id = ?", []),
        ("id = ?", [1, 2]),
        ("id = ? AND name = ?", [1]),
        ("id = 1", [1]),
    ],
)
def test_placeholder_count_must_match_params(condition: str, params: list[Any]) -> None:
    with pytest.raises(QueryError, match="placeholder"):
        QueryBuilder().where(condition, params)


@pytest.mark.parametrize(
    ("condition", "params"),
    [
        ("id = :id", [1]),
        ("id = $1", [1]),
        ("id = $id", [1]),
        ("id = ?1", [1]),
        ("id = ?2 AND name = ?1", [1, "Ann"]),
        ("id = @id", [1]),
        ("id = :id", []),
    ],
)
def test_only_bare_question_mark_placeholders_are_accepted(
    condition: str, params: list[Any]
) -> None:
    with pytest.raises(QueryError, match="only '\\?' placeholders"):
        QueryBuilder().where(condition, params)


@pytest.mark.parametrize(
    "condition",
    ["name = ':id $1 ?1 @x'", "CAST(id AS INTEGER) = ?", "id::INTEGER = ?", "a$b = ?"],
)
def test_lookalikes_of_other_placeholders_are_not_rejected(condition: str) -> None:
    marks = 0 if "'" in condition else 1
    QueryBuilder().from_("t").where(condition, [1] * marks)


def test_question_marks_inside_string_literals_are_not_placeholders(db: Database) -> None:
    query = QueryBuilder().from_("users").where("name <> 'who?' AND id = ?", [2])
    assert ids(db, query) == [2]
    with pytest.raises(QueryError, match="placeholder"):
        QueryBuilder().where("name = 'it''s ?'", [1])


@pytest.mark.parametrize(
    "condition", ["id = 1; DROP TABLE users", "id = 1 -- comment", "id = 1 /* x */", "name = 'x"]
)
def test_statement_stacking_and_broken_quotes_are_rejected(condition: str) -> None:
    with pytest.raises(QueryError):
        QueryBuilder().where(condition)


def test_params_must_be_a_sequence() -> None:
    with pytest.raises(QueryError, match="params"):
        QueryBuilder().where("id = ?", "1")


def test_injection_attempts_in_values_are_bound_not_executed(db: Database) -> None:
    evil = "x'; DROP TABLE users; --"
    query = QueryBuilder().from_("users").where("name = ?", [evil])
    assert query.build().sql == "SELECT * FROM users WHERE name = ?"
    assert db.fetchall(query) == []
    assert db.scalar("SELECT count(*) FROM users") == 5


_VALUE_TEXT = st.text(st.characters(exclude_characters="\x00", codec="utf-8"))


@pytest.mark.parametrize("engine", ENGINES)
def test_values_never_change_the_sql_and_round_trip(engine: str) -> None:
    with Database.connect(":memory:", engine=engine) as database:  # type: ignore[arg-type]
        database.execute("CREATE TABLE kv (k INTEGER, v VARCHAR)")
        reference = QueryBuilder().select(["k", "v"]).from_("kv").where("v = ?", ["x"]).build().sql

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(value=_VALUE_TEXT)
        def check(value: str) -> None:
            database.execute("DELETE FROM kv")
            database.execute("INSERT INTO kv VALUES (?, ?)", [1, value])
            query = QueryBuilder().select(["k", "v"]).from_("kv").where("v = ?", [value])
            built = query.build()
            assert built.sql == reference
            assert database.fetchall(built) == [(1, value)]
            found = database.fetchall(CommonQueries.search("kv", "v", value))
            assert (1, value) in found

        check()


# ------------------------------------------------------------------------ CommonQueries


def test_select_all(db: Database) -> None:
    assert CommonQueries.select_all("users").build() == ("SELECT * FROM users", [])
    assert len(db.fetchall(CommonQueries.select_all("users"))) == 5


def test_select_where(db: Database) -> None:
    query = CommonQueries.select_where("users", "status", "idle")
    assert query.build() == ("SELECT * FROM users WHERE status = ?", ["idle"])
    assert ids(db, query) == [2]
    db.execute("UPDATE users SET status = NULL WHERE id = 5")
    assert ids(db, CommonQueries.select_where("users", "status", None)) == [5]


def test_select_limit(db: Database) -> None:
    query = CommonQueries.select_limit("users", 2, "created_at", "DESC")
    assert query.build().sql == "SELECT * FROM users ORDER BY created_at DESC LIMIT 2"
    assert ids(db, query) == [5, 4]


def test_count_and_count_where(db: Database) -> None:
    assert CommonQueries.count("users").build().sql == "SELECT COUNT(*) AS count FROM users"
    assert db.fetchall(CommonQueries.count("users")) == [(5,)]
    query = CommonQueries.count_where("users", "status", "active")
    assert query.build() == ("SELECT COUNT(*) AS count FROM users WHERE status = ?", ["active"])
    assert db.df(query)["count"].tolist() == [3]


def test_paginate(db: Database) -> None:
    query = CommonQueries.paginate("users", 2, 2, "id")
    assert query.build().sql == "SELECT * FROM users ORDER BY id ASC LIMIT 2 OFFSET 2"
    assert ids(db, query) == [3, 4]
    assert ids(db, CommonQueries.paginate("users", 3, 2, "id", "ASC")) == [5]
    assert ids(db, CommonQueries.paginate("users", 1, 10, "id", "DESC")) == [5, 4, 3, 2, 1]
    assert "OFFSET 0" in CommonQueries.paginate("users", 1, 10).build().sql


@pytest.mark.parametrize(("page", "size"), [(0, 10), (-1, 10), (1, 0), (1, -5)])
def test_paginate_rejects_bad_pages(page: int, size: int) -> None:
    with pytest.raises(QueryError):
        CommonQueries.paginate("users", page, size)


def test_search_is_case_insensitive(db: Database) -> None:
    assert ids(db, CommonQueries.search("users", "name", "ann")) == [1]
    assert ids(db, CommonQueries.search("users", "name", "ANN")) == [1]
    assert sorted(ids(db, CommonQueries.search("users", "name", "pure"))) == [4, 5]


def test_search_treats_percent_and_underscore_literally(db: Database) -> None:
    assert ids(db, CommonQueries.search("users", "name", "100%")) == [4]
    assert ids(db, CommonQueries.search("users", "name", "e_f")) == [4]
    assert ids(db, CommonQueries.search("users", "name", "%")) == [4]
    assert ids(db, CommonQueries.search("users", "name", "_")) == [4]
    assert ids(db, CommonQueries.search("users", "name", "\\")) == []


def test_search_with_limit(db: Database) -> None:
    query = CommonQueries.search("users", "name", "u", limit=1)
    assert query.build().sql.endswith("LIMIT 1")
    assert len(db.fetchall(query)) == 1


_MUSIC = [(1, "BJÖRK", 1993), (2, "Sigur Rós", 1999), (3, "ÉDITH Piaf", 1960), (4, "abba", None)]


def _music(database: Database) -> Database:
    database.execute("CREATE TABLE music (id INTEGER, name VARCHAR, year INTEGER)")
    database.executemany("INSERT INTO music VALUES (?, ?, ?)", _MUSIC)
    return database


@pytest.mark.parametrize(
    ("column", "term", "expected"),
    [
        ("name", "björk", [1]),
        ("name", "Björk", [1]),
        ("name", "RÓS", [2]),
        ("name", "édith", [3]),
        ("name", "ABBA", [4]),
        ("year", "99", [1, 2]),
        ("year", "1960", [3]),
        ("id", "4", [4]),
    ],
)
def test_search_folds_non_ascii_case_and_matches_numbers_as_text(
    tmp_path: Path, column: str, term: str, expected: list[int]
) -> None:
    found = {}
    for engine, suffix in SUFFIX.items():
        with _music(Database.connect(tmp_path / f"music{suffix}")) as database:
            query = CommonQueries.search("music", column, term)
            found[engine] = sorted(database.fetchall(query))
    assert found["duckdb"] == found["sqlite"]
    assert [row[0] for row in found["duckdb"]] == expected


def test_lower_is_unicode_aware_on_both_engines(db: Database) -> None:
    assert db.scalar("SELECT LOWER('BJÖRK ÉDITH ÆØÅ')") == "björk édith æøå"
    assert db.scalar("SELECT LOWER(?)", ["ÀÉÎÕÜ"]) == "àéîõü"
    assert db.scalar("SELECT LOWER(NULL)") is None


def test_common_queries_validate_identifiers() -> None:
    with pytest.raises(QueryError):
        CommonQueries.select_where("users", "status = status OR 1", 1)
    with pytest.raises(QueryError):
        CommonQueries.search("users; DROP TABLE x", "name", "a")
    with pytest.raises(QueryError):
        CommonQueries.count("users u, secrets")


# ------------------------------------------------------------------------ TransactionManager


class TestTransactionManager:
    """The same behaviour on both engines (parametrized ``db`` fixture)."""

    @pytest.fixture
    def tm(self, db: Database) -> TransactionManager:
        db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER)")
        return TransactionManager(db)

    @staticmethod
    def ledger(db: Database) -> list[tuple[Any, ...]]:
        return db.fetchall("SELECT id, amount FROM ledger ORDER BY id")

    def test_commits_and_returns_the_value(self, tm: TransactionManager, db: Database) -> None:
        def work() -> str:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            db.execute("INSERT INTO ledger VALUES (2, 20)")
            return "done"

        assert tm.transaction(work) == "done"
        assert self.ledger(db) == [(1, 10), (2, 20)]
        assert not db.in_transaction

    def test_rolls_back_and_reraises(self, tm: TransactionManager, db: Database) -> None:
        def work() -> None:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            tm.transaction(work)
        assert self.ledger(db) == []
        assert not db.in_transaction

    def test_database_error_inside_rolls_back(self, tm: TransactionManager, db: Database) -> None:
        def work() -> None:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            db.execute("INSERT INTO ledger VALUES (1, 11)")  # duplicate key

        with pytest.raises(QueryError):
            tm.transaction(work)
        assert self.ledger(db) == []
        tm.transaction(lambda: db.execute("INSERT INTO ledger VALUES (3, 30)"))
        assert self.ledger(db) == [(3, 30)]

    def test_nested_joins_the_outer(self, tm: TransactionManager, db: Database) -> None:
        def inner() -> int:
            db.execute("INSERT INTO ledger VALUES (2, 20)")
            assert db.in_transaction
            return 2

        def outer() -> int:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            return tm.transaction(inner) + 1

        assert tm.transaction(outer) == 3
        assert self.ledger(db) == [(1, 10), (2, 20)]

    def test_failure_after_nested_success_rolls_back_everything(
        self, tm: TransactionManager, db: Database
    ) -> None:
        def outer() -> None:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            tm.transaction(lambda: db.execute("INSERT INTO ledger VALUES (2, 20)"))
            raise RuntimeError("outer fails after the inner committed nothing yet")

        with pytest.raises(RuntimeError):
            tm.transaction(outer)
        assert self.ledger(db) == []

    def test_escaping_nested_failure_rolls_back_everything(
        self, tm: TransactionManager, db: Database
    ) -> None:
        def inner() -> None:
            db.execute("INSERT INTO ledger VALUES (2, 20)")
            raise KeyError("inner")

        def outer() -> None:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            tm.transaction(inner)

        with pytest.raises(KeyError):
            tm.transaction(outer)
        assert self.ledger(db) == []

    def test_swallowed_nested_failure_still_rolls_back(
        self, tm: TransactionManager, db: Database
    ) -> None:
        def outer() -> None:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            try:
                with tm.atomic():
                    db.execute("INSERT INTO ledger VALUES (2, 20)")
                    raise KeyError("inner")
            except KeyError:
                pass

        with pytest.raises(TransactionError, match="nested"):
            tm.transaction(outer)
        assert self.ledger(db) == []
        assert not db.in_transaction

    def test_a_caught_statement_error_makes_the_transaction_rollback_only(
        self, tm: TransactionManager, db: Database
    ) -> None:
        seen: list[str] = []

        def work() -> str:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            with pytest.raises(QueryError):
                db.execute("INSERT INTO no_such_table VALUES (1)")
            # Every further statement fails at once, with the reason, on both engines.
            with pytest.raises(TransactionError, match="roll back") as info:
                db.execute("INSERT INTO ledger VALUES (2, 20)")
            seen.append(str(info.value))
            with pytest.raises(TransactionError):
                db.fetchall("SELECT * FROM ledger")
            return "swallowed"

        with pytest.raises(TransactionError, match="rolled back") as end:
            tm.transaction(work)
        assert "no_such_table" in seen[0] and "no_such_table" in str(end.value)
        assert not db.in_transaction
        assert self.ledger(db) == []
        # The next transaction starts clean.
        tm.transaction(lambda: db.execute("INSERT INTO ledger VALUES (3, 30)"))
        assert self.ledger(db) == [(3, 30)]

    def test_a_caught_error_in_a_nested_block_rolls_back_the_outer_one(
        self, tm: TransactionManager, db: Database
    ) -> None:
        def outer() -> None:
            db.execute("INSERT INTO ledger VALUES (1, 10)")
            try:
                with tm.atomic():
                    db.execute("INSERT INTO ledger VALUES (1, 11)")  # duplicate key
            except QueryError:
                pass

        with pytest.raises(TransactionError, match="rolled back"):
            tm.transaction(outer)
        assert self.ledger(db) == []

    def test_batch_after_a_swallowed_error_is_refused(
        self, tm: TransactionManager, db: Database
    ) -> None:
        with pytest.raises(TransactionError), db.transaction():
            with pytest.raises(QueryError):
                db.execute("SELEC 1")
            with pytest.raises(TransactionError, match="roll back"):
                tm.batch([("INSERT INTO ledger VALUES (?, ?)", [1, 10])])
        assert self.ledger(db) == []

    def test_atomic_context_manager(self, tm: TransactionManager, db: Database) -> None:
        with tm.atomic():
            db.execute("INSERT INTO ledger VALUES (1, 10)")
        with pytest.raises(ZeroDivisionError), tm.atomic():
            db.execute("INSERT INTO ledger VALUES (2, 20)")
            _ = 1 / 0
        with db.transaction():
            db.execute("INSERT INTO ledger VALUES (3, 30)")
        assert self.ledger(db) == [(1, 10), (3, 30)]

    def test_batch_is_all_or_nothing(self, tm: TransactionManager, db: Database) -> None:
        assert (
            tm.batch(
                [
                    ("INSERT INTO ledger VALUES (?, ?)", [1, 10]),
                    {"sql": "INSERT INTO ledger VALUES (?, ?)", "params": [2, 20]},
                    {"sql": "UPDATE ledger SET amount = amount + 1"},
                    ("UPDATE ledger SET amount = amount * 2 WHERE id = ?", (1,)),
                ]
            )
            == 4
        )
        assert self.ledger(db) == [(1, 22), (2, 21)]
        with pytest.raises(QueryError):
            tm.batch(
                [
                    ("INSERT INTO ledger VALUES (?, ?)", [3, 30]),
                    ("INSERT INTO ledger VALUES (?, ?)", [1, 99]),  # duplicate key
                ]
            )
        assert self.ledger(db) == [(1, 22), (2, 21)]

    def test_batch_rejects_malformed_entries_before_running(
        self, tm: TransactionManager, db: Database
    ) -> None:
        for bad in ([("INSERT INTO ledger VALUES (1, 1)",), 42], [{"params": [1]}]):
            with pytest.raises(QueryError, match="statement"):
                tm.batch(bad)  # type: ignore[arg-type]
        assert self.ledger(db) == []

    def test_autocommit_outside_transactions(self, tm: TransactionManager, db: Database) -> None:
        db.execute("INSERT INTO ledger VALUES (1, 10)")
        assert db.path is not None
        with Database.connect(db.path) as other:
            assert other.fetchall("SELECT id FROM ledger") == [(1,)]
            with db.transaction():
                db.execute("INSERT INTO ledger VALUES (2, 20)")
                assert other.fetchall("SELECT id FROM ledger") == [(1,)]
            assert other.fetchall("SELECT id FROM ledger ORDER BY id") == [(1,), (2,)]


@pytest.mark.parametrize("bad", [["name"], 3, None, b"name"])
def test_non_string_identifiers_and_conditions_are_rejected(bad: Any) -> None:
    with pytest.raises(QueryError):
        QueryBuilder().select([bad])
    with pytest.raises(QueryError):
        QueryBuilder().from_(bad)
    with pytest.raises(QueryError):
        QueryBuilder().order_by(bad)
    with pytest.raises(QueryError):
        QueryBuilder().where(bad)


def test_validation_still_applies_after_a_name_was_seen() -> None:
    QueryBuilder().select(["name"]).from_("users").where("id = ?", [1])
    with pytest.raises(QueryError, match="placeholder"):
        QueryBuilder().where("id = ?", [])
    with pytest.raises(QueryError):
        QueryBuilder().select(["name; --"])


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=30))
def test_accepted_identifiers_contain_nothing_but_name_characters(name: str) -> None:
    import re

    adders: list[Callable[[], QueryBuilder]] = [
        lambda: QueryBuilder().select([name]),
        lambda: QueryBuilder().from_(name),
        lambda: QueryBuilder().order_by(name),
    ]
    for add in adders:
        try:
            add()
        except QueryError:
            continue
        outside_quotes = re.sub(r'"[^"\x00]+"', "", name)
        assert re.fullmatch(r"[A-Za-z0-9_$.*() ]*", outside_quotes), name
