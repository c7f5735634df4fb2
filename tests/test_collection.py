"""Tests of the collection schema and loader on DuckDB and sqlite, with real Discogs API JSON."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from toolkit import errors
from toolkit.collection import (
    SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    CollectionDataError,
    SchemaIncompleteError,
    check_schema,
    clear_failures,
    create_schema,
    known_release_ids,
    load_collection,
    missing_tables,
    permanent_failure_ids,
    record_failure,
    remove_missing_items,
    repair_schema,
    schema_version,
)
from toolkit.collection.loading import insert_rows
from toolkit.collection.schema import _migration, quote_name
from toolkit.db import Database
from toolkit.errors import DatabaseError

ENGINES = ("duckdb", "sqlite")
SUFFIX = {"duckdb": ".duckdb", "sqlite": ".sqlite"}
API = Path(__file__).parent / "fixtures" / "discogs-api"
BROTHERLOGIC = API / "brotherlogic-godiscogs"
JOALLA = API / "joalla-discogs_client"
FETCHED = datetime(2024, 5, 6, 7, 8, 9, 123456)


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def page_items() -> list[dict[str, Any]]:
    folder = BROTHERLOGIC / "users/brotherlogic/collection/folders/0"
    items: list[dict[str, Any]] = []
    for name in ("releases_per_page=100_token=token", "releases_per_page=100_token=token_page=32"):
        items += read(folder / name)["releases"]
    items += read(BROTHERLOGIC / "users/brotherlogic/collection/releases/323005_token=token")[
        "releases"
    ]
    return items


def full_releases() -> list[dict[str, Any]]:
    return [
        read(BROTHERLOGIC / "releases/249504_token=token"),
        read(BROTHERLOGIC / "releases/2370027_token=token"),
        read(JOALLA / "releases/1.json"),
        read(JOALLA / "releases/3329867.json"),
    ]


def joalla_items() -> list[dict[str, Any]]:
    page = read(JOALLA / "users/example/collection/folders/0/releases_page=1&per_page=50.json")
    items: list[dict[str, Any]] = page["releases"]
    return items


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = Database.connect(tmp_path / f"c{SUFFIX[request.param]}")
    create_schema(database)
    yield database
    database.close()


def _norm(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, normalised so both engines compare equal."""
    result = {}
    for table, columns in TABLES.items():
        names = ", ".join(quote_name(name) for name, _ in columns)
        rows = [tuple(_norm(v) for v in row) for row in db.fetchall(f"SELECT {names} FROM {table}")]
        result[table] = sorted(rows, key=repr)
    return result


def view_rows(db: Database) -> list[tuple[Any, ...]]:
    return [
        tuple(_norm(v) for v in row)
        for row in db.fetchall("SELECT * FROM collection ORDER BY instance_id")
    ]


def release(release_id: int, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": release_id,
        "title": f"Release {release_id}",
        "year": 1999,
        "artists": [{"id": 10, "name": "Artist Ten", "anv": "", "join": "", "role": ""}],
        "labels": [{"id": 20, "name": "Label Twenty", "catno": "LT-1"}],
        "genres": ["Rock"],
        "styles": ["Punk"],
        "formats": [{"name": "Vinyl", "qty": "1", "descriptions": ["LP", "Album"]}],
        "tracklist": [{"position": "A1", "title": "One", "duration": "3:25", "type_": "track"}],
    }
    data.update(fields)
    return data


def item(instance_id: int, release_id: int, folder_id: int = 1, **basic: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": release_id,
        "title": f"Basic {release_id}",
        "year": 2001,
        "artists": [{"id": 11, "name": "Basic Artist", "anv": "", "join": "", "role": ""}],
        "labels": [{"id": 21, "name": "Basic Label", "catno": "BL-1"}],
        "formats": [{"name": "CD", "qty": "1", "descriptions": ["Album"]}],
        "genres": ["Jazz"],
        "styles": ["Bop"],
    }
    info.update(basic)
    return {
        "id": release_id,
        "instance_id": instance_id,
        "folder_id": folder_id,
        "rating": 3,
        "date_added": "2020-01-01T00:00:00-08:00",
        "basic_information": info,
    }


# ------------------------------------------------------------------------ schema


def test_create_schema_is_idempotent(db: Database) -> None:
    assert schema_version(db) == SCHEMA_VERSION
    create_schema(db)
    assert create_schema(db) == SCHEMA_VERSION
    for table in (*TABLES, "collection", "schema_version"):
        assert db.table_exists(table), table
    assert db.fetchall("SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


def test_same_columns_on_both_engines(tmp_path: Path) -> None:
    columns = {}
    for engine in ENGINES:
        with Database.connect(tmp_path / f"s{SUFFIX[engine]}") as database:
            create_schema(database)
            columns[engine] = {
                table: list(database.df(f"SELECT * FROM {table} LIMIT 0").columns)
                for table in (*TABLES, "collection")
            }
    assert columns["duckdb"] == columns["sqlite"]
    assert columns["duckdb"]["releases"] == [name for name, _ in TABLES["releases"]]


@pytest.mark.parametrize("engine", ENGINES)
def test_migrates_a_version_1_database(tmp_path: Path, engine: str) -> None:
    with Database.connect(tmp_path / f"old{SUFFIX[engine]}") as database:
        database.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        database.execute("INSERT INTO schema_version VALUES (1)")
        for statement in _migration(database.engine, 1):
            database.execute(statement)
        database.execute("INSERT INTO releases (release_id, title) VALUES (7, 'kept')")
        assert schema_version(database) == 1
        assert not database.table_exists("pull_failures")
        assert create_schema(database) == SCHEMA_VERSION
        assert database.table_exists("pull_failures")
        assert database.table_exists("collection")
        assert database.fetchall("SELECT title FROM releases") == [("kept",)]
        assert record_failure(database, 7, "boom", False) == 1


def test_newer_schema_is_refused(db: Database) -> None:
    db.execute("UPDATE schema_version SET version = ?", [SCHEMA_VERSION + 1])
    with pytest.raises(DatabaseError, match="newer"):
        create_schema(db)


# ------------------------------------------------------------------------ loading real fixtures


def test_loading_real_fixtures_twice_gives_identical_tables(db: Database) -> None:
    items, releases = page_items(), full_releases()
    written = load_collection(db, items, releases, username="brotherlogic", fetched_at=FETCHED)
    first = snapshot(db)
    assert written["collection_items"] == len(first["collection_items"]) == 104
    load_collection(db, items, releases, username="brotherlogic", fetched_at=FETCHED)
    assert snapshot(db) == first
    # pull_failures and the history tables are written by the pull, not by the loader.
    by_pull = {"pull_failures", "pulls", "item_events", "collection_value", "market_stats"}
    assert all(first[t] for t in TABLES if t not in {*by_pull, "wants", "collection_fields"})


def test_both_engines_store_the_same_rows(tmp_path: Path) -> None:
    snapshots, views = [], []
    for engine in ENGINES:
        with Database.connect(tmp_path / f"same{SUFFIX[engine]}") as database:
            create_schema(database)
            load_collection(database, page_items(), full_releases(), fetched_at=FETCHED)
            load_collection(database, joalla_items(), [], username="example", fetched_at=FETCHED)
            snapshots.append(snapshot(database))
            views.append(view_rows(database))
    assert snapshots[0] == snapshots[1]
    assert views[0] == views[1]
    assert len(views[0]) == 104 + 3


def test_collection_view_has_one_row_per_item(db: Database) -> None:
    load_collection(db, page_items(), full_releases(), username="brotherlogic", fetched_at=FETCHED)
    items = db.scalar("SELECT count(*) FROM collection_items")
    assert db.scalar("SELECT count(*) FROM collection") == items == 104
    assert db.scalar("SELECT count(DISTINCT instance_id) FROM collection") == items
    # 2331612 is in the collection twice (two instances of one release).
    assert db.scalar("SELECT count(*) FROM collection WHERE release_id = 2331612") == 2
    first = db.df("SELECT * FROM collection WHERE instance_id = 130899776")
    assert first["artists"].tolist() == ["Bridget Hayden"]
    assert first["title"].tolist() == ["A Siren Blares In An Indifferent Ocean"]
    assert first["labels"].tolist() == ["(K-RAA-K)³"]
    assert first["year"].tolist() == [2011]
    assert first["rating"].tolist() == [4]


def test_view_aggregates_in_order(db: Database) -> None:
    load_collection(db, joalla_items(), [], username="example", fetched_at=FETCHED)
    rows = db.fetchall(
        "SELECT release_id, artists, genres, styles, formats FROM collection ORDER BY release_id"
    )
    assert rows == [
        (457553, "Suburbass, MRMNK", "Electronic", "Techno", "Vinyl"),
        (
            656052,
            "Orion (2), Royal (4), Theory (3), Dr. Know (4)",
            "Electronic",
            "Drum n Bass",
            "Vinyl",
        ),
        (6794957, "Kruder & Dorfmeister", "Electronic", "Downtempo, Dub, Trip Hop", "Vinyl"),
    ]


def test_detailed_release_fields(db: Database) -> None:
    load_collection(db, [], full_releases(), fetched_at=FETCHED)
    row = db.fetchone(
        "SELECT title, year, country, released, master_id, status, data_quality, lowest_price, "
        "num_for_sale, community_have, community_want, community_rating_average, "
        "community_rating_count FROM releases WHERE release_id = 249504"
    )
    assert row == (
        "Never Gonna Give You Up",
        1987,
        "UK",
        "1987-07-00",
        96559,
        "Accepted",
        "Correct",
        1.08,
        48,
        814,
        148,
        3.55,
        80,
    )
    credits = db.fetchall(
        "SELECT artist_id, anv, role FROM release_artists WHERE release_id = 249504 "
        "ORDER BY role NULLS FIRST, position"
    )
    assert credits[0] == (72872, None, None)  # the main artist: role NULL
    assert (34067, "Mixmaster Pete Hammond", "Mixed By") in credits
    assert db.fetchall(
        "SELECT name, qty, descriptions FROM release_formats WHERE release_id = 249504"
    ) == [("Vinyl", 1, '["7\\"", "45 RPM", "Single"]')]
    assert db.fetchall(
        "SELECT position, sequence, title, duration_seconds, type FROM tracks "
        "WHERE release_id = 249504 ORDER BY sequence"
    ) == [
        ("A", 0, "Never Gonna Give You Up", 212, "track"),
        ("B", 1, "Never Gonna Give You Up (Instrumental)", 210, "track"),
    ]


def test_lowest_price_null_and_old_format_release(db: Database) -> None:
    load_collection(db, [], full_releases(), fetched_at=FETCHED)
    assert db.fetchone(
        "SELECT lowest_price, num_for_sale FROM releases WHERE release_id = 2370027"
    ) == (None, 0)
    old = db.fetchone(
        "SELECT title, master_id, lowest_price, num_for_sale, community_have, "
        "community_rating_average, data_quality FROM releases WHERE release_id = 3329867"
    )
    assert old == ("Darwinia Soundtrack", None, None, None, None, None, "Needs Vote")
    assert db.fetchall("SELECT text FROM release_formats WHERE release_id = 3329867") == [
        ("320 kbps",)
    ]


def test_heading_tracks_with_empty_positions_are_kept(db: Database) -> None:
    data = read(BROTHERLOGIC / "releases/2370027_token=token")
    load_collection(db, [], [data], fetched_at=FETCHED)
    stored = db.fetchall(
        "SELECT sequence, position, title, type FROM tracks WHERE release_id = 2370027 "
        "ORDER BY sequence"
    )
    assert len(stored) == len(data["tracklist"])
    assert [s[0] for s in stored] == list(range(len(data["tracklist"])))
    headings = [s for s in stored if s[3] == "heading"]
    assert len(headings) >= 2
    assert headings[0] == (0, None, "Here Come The Warm Jets", "heading")
    assert all(h[1] is None for h in headings)


def test_multi_value_fields_are_rows_and_commas_stay(db: Database) -> None:
    data = release(1, genres=["Folk, World, & Country", "Rock"], styles=["Folk", "Folk"])
    load_collection(db, [], [data], fetched_at=FETCHED)
    assert sorted(db.fetchall("SELECT genre FROM release_genres")) == [
        ("Folk, World, & Country",),
        ("Rock",),
    ]
    assert db.fetchall("SELECT style FROM release_styles") == [("Folk",)]


def test_year_zero_is_null(db: Database) -> None:
    load_collection(db, [item(1, 5, year=0)], [release(6, year=0)], fetched_at=FETCHED)
    assert db.fetchall("SELECT release_id, year FROM releases ORDER BY release_id") == [
        (5, None),
        (6, None),
    ]


def test_notes_are_item_fields_rows_named_by_the_view(db: Database) -> None:
    load_collection(db, page_items(), [], username="brotherlogic", fetched_at=FETCHED)
    rows = db.fetchall(
        "SELECT field_id, value FROM item_fields WHERE instance_id = 19867048 ORDER BY field_id"
    )
    assert rows[0] == (1, "Very Good Plus (VG+)")
    db.execute(
        "INSERT INTO collection_fields VALUES ('brotherlogic', 1, 'Media Condition', 'dropdown', "
        "NULL, 1, TRUE)"
    )
    named = db.fetchall(
        "SELECT name, value FROM item_fields_named WHERE instance_id = 19867048 ORDER BY field_id"
    )
    assert named[0] == ("Media Condition", "Very Good Plus (VG+)")
    genres = db.fetchall("SELECT genre FROM release_genres WHERE release_id = 323005")
    assert genres == [("Hip Hop",)]


def test_item_fields_follow_the_item(db: Database) -> None:
    notes = [{"field_id": 1, "value": "Mint (M)"}, {"field_id": 3, "value": "signed"}]
    load_collection(db, [{**item(1, 5), "notes": notes}], [], username="me")
    assert db.fetchall("SELECT field_id, value FROM item_fields ORDER BY 1") == [
        (1, "Mint (M)"),
        (3, "signed"),
    ]
    # A field cleared on Discogs disappears; a removed item takes its fields along.
    load_collection(
        db, [{**item(1, 5), "notes": [{"field_id": 3, "value": ""}]}], [], username="me"
    )
    assert db.fetchall("SELECT field_id, value FROM item_fields") == []
    load_collection(db, [{**item(1, 5), "notes": notes}], [], username="me")
    remove_missing_items(db, "me", 0, [])
    assert db.scalar("SELECT count(*) FROM item_fields") == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_migrates_a_version_2_database_and_its_notes(tmp_path: Path, engine: str) -> None:
    """A database written by the version-2 code (its DDL stored in fixtures/schema-v2)."""
    snapshot = (Path(__file__).parent / "fixtures" / "schema-v2" / f"{engine}.sql").read_text()
    with Database.connect(tmp_path / f"v2{SUFFIX[engine]}") as database:
        for statement in snapshot.split(";\n"):
            lines = [ln for ln in statement.splitlines() if not ln.startswith("--")]
            if "".join(lines).strip():
                database.execute("\n".join(lines).rstrip(";"))
        assert schema_version(database) == 2
        notes = json.dumps([{"field_id": 1, "value": "Mint (M)"}, {"field_id": 2, "value": "VG"}])
        database.execute(
            "INSERT INTO collection_items VALUES (11, 'me', 1, 5, 3, '2020-01-01', ?)", [notes]
        )
        database.execute(
            "INSERT INTO collection_items VALUES (12, 'me', 1, 6, 0, '2020-01-02', 'old text')"
        )
        database.execute("INSERT INTO collection_items VALUES (13, 'me', 1, 7, 0, NULL, NULL)")
        assert create_schema(database) == SCHEMA_VERSION == 4
        assert [name for name, *_ in _catalogue(database, "collection_items")] == [
            name for name, _ in TABLES["collection_items"]
        ]
        assert database.fetchall("SELECT * FROM item_fields ORDER BY 1, 2") == [
            (11, 1, "Mint (M)"),
            (11, 2, "VG"),
            (12, 0, "old text"),
        ]
        for table in ("pulls", "item_events", "collection_value", "market_stats", "wants"):
            assert database.table_exists(table)
        assert database.scalar("SELECT count(*) FROM collection") == 3
        assert create_schema(database) == SCHEMA_VERSION  # idempotent after the migration


# ------------------------------------------------------------------------ basic vs detailed


def test_items_without_details_get_basic_rows(db: Database) -> None:
    load_collection(db, [item(1, 5)], [], username="me", fetched_at=FETCHED)
    assert db.fetchone("SELECT title, year, fetched_at FROM releases WHERE release_id = 5") == (
        "Basic 5",
        2001,
        None,
    )
    assert known_release_ids(db) == set()
    row = db.fetchone("SELECT artists, labels, genres, formats, username FROM collection")
    assert row == ("Basic Artist", "Basic Label", "Jazz", "CD", "me")


def test_detailed_release_is_never_overwritten_by_basic_information(db: Database) -> None:
    load_collection(db, [], [release(5)], fetched_at=FETCHED)
    detailed = snapshot(db)
    load_collection(db, [item(1, 5)], [], username="me", fetched_at=FETCHED + timedelta(days=1))
    after = snapshot(db)
    for table in TABLES:
        if table != "collection_items":
            assert after[table] == detailed[table], table
    assert db.fetchone("SELECT title, genres, artists FROM collection") == (
        "Release 5",
        "Rock",
        "Artist Ten",
    )


def test_details_replace_basic_rows(db: Database) -> None:
    load_collection(db, [item(1, 5)], [], fetched_at=FETCHED)
    load_collection(db, [], [release(5)], fetched_at=FETCHED)
    assert db.fetchall("SELECT genre FROM release_genres") == [("Rock",)]
    assert db.fetchall("SELECT artist_id FROM release_artists") == [(10,)]
    assert db.fetchone("SELECT title, year, fetched_at IS NOT NULL FROM releases") == (
        "Release 5",
        1999,
        True,
    )


def test_item_and_its_release_in_one_call_uses_the_release(db: Database) -> None:
    load_collection(db, [item(1, 5)], [release(5)], fetched_at=FETCHED)
    assert db.fetchone("SELECT title, genres FROM collection") == ("Release 5", "Rock")
    assert db.scalar("SELECT count(*) FROM release_genres") == 1


def test_full_release_replaces_all_its_child_rows(db: Database) -> None:
    load_collection(db, [], [release(5), release(6)], fetched_at=FETCHED)
    changed = release(
        5,
        genres=["Jazz"],
        styles=[],
        formats=[],
        artists=[{"id": 12, "name": "New"}],
        labels=[],
        tracklist=[{"title": "Only"}],
    )
    load_collection(db, [], [changed], fetched_at=FETCHED)
    assert db.fetchall("SELECT release_id, genre FROM release_genres ORDER BY 1") == [
        (5, "Jazz"),
        (6, "Rock"),
    ]
    for table in ("release_styles", "release_formats", "release_labels"):
        assert db.fetchall(f"SELECT release_id FROM {table}") == [(6,)], table
    assert db.fetchall("SELECT artist_id FROM release_artists ORDER BY 1") == [(10,), (12,)]
    assert db.fetchall(
        "SELECT position, sequence, title, duration_seconds, type FROM tracks WHERE release_id = 5"
    ) == [(None, 0, "Only", None, "track")]


@pytest.mark.parametrize("count", [3, 600])  # ids written into the SQL, and an id table
def test_details_replace_basic_rows_in_batches_small_and_large(db: Database, count: int) -> None:
    """A batch of details replaces the items' basic rows and earlier details, and only theirs."""
    ids = list(range(1, count + 1))
    bystander = count + 1
    load_collection(db, [item(i, i) for i in [*ids, bystander]], [], fetched_at=FETCHED)
    load_collection(db, [], [release(i, genres=["Old"]) for i in ids[::2]], fetched_at=FETCHED)
    load_collection(db, [], [release(i) for i in ids], fetched_at=FETCHED)
    genres = db.fetchall("SELECT release_id, genre FROM release_genres ORDER BY 1")
    assert genres == [*[(i, "Rock") for i in ids], (bystander, "Jazz")]
    assert db.scalar("SELECT count(*) FROM tracks") == count
    assert db.scalar("SELECT count(*) FROM release_formats WHERE release_id = ?", [bystander]) == 1
    # Basic information never overwrites the details (the check runs over the same id paths).
    load_collection(db, [item(i, i) for i in ids], [], fetched_at=FETCHED)
    assert db.scalar("SELECT count(*) FROM release_genres WHERE genre = 'Jazz'") == 1


def test_empty_arguments_are_fine(db: Database) -> None:
    assert load_collection(db) == {table: 0 for table in load_collection(db)}
    assert all(not rows for rows in snapshot(db).values())


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("items", "releases", "fragment"),
    [
        ([{"id": 5, "basic_information": {}}], [], "instance_id"),
        ([{"instance_id": 9, "basic_information": {}}], [], "items[1].id"),
        ([{"instance_id": 9, "id": 5, "basic_information": {"id": 6}}], [], "differs"),
        (["not an object"], [], "items[1]"),
        ([], [{"title": "no id"}], "releases[1].id"),
        ([], [{"id": "abc"}], "releases[1].id"),
        ([], [{"id": 5, "artists": "Someone"}], "releases[1].artists"),
        ([], [{"id": 5, "tracklist": [1, 2]}], "releases[1].tracklist[0]"),
        ([], [{"id": 5, "genres": "Rock"}], "releases[1].genres"),
    ],
)
def test_structurally_bad_input_raises_and_leaves_db_unchanged(
    db: Database, items: list[Any], releases: list[Any], fragment: str
) -> None:
    load_collection(db, [item(1, 5)], [release(6)], fetched_at=FETCHED)
    before = snapshot(db)
    good_then_bad_items = [item(2, 7), *items]
    with pytest.raises(CollectionDataError) as info:
        load_collection(db, good_then_bad_items, [release(8), *releases], fetched_at=FETCHED)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, DatabaseError)
    assert snapshot(db) == before
    assert not db.in_transaction


def _with(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with ``value`` at a dotted path (``formats.0.qty``)."""
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    target: Any = data
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("kind", "path", "value", "fragment"),
    [
        ("item", "rating", "--5", "items[1].rating (instance 2, release 7)"),
        ("item", "rating", "²", "items[1].rating (instance 2, release 7)"),
        ("item", "rating", 3_000_000_000, "items[1].rating (instance 2, release 7)"),
        ("item", "rating", 2.5, "items[1].rating"),
        ("item", "rating", True, "items[1].rating"),
        ("item", "folder_id", 2**63, "items[1].folder_id (instance 2, release 7)"),
        ("item", "instance_id", 2**64, "items[1].instance_id"),
        ("item", "basic_information.year", "19x9", "items[1].basic_information.year (release 7)"),
        ("release", "year", "²", "releases[1].year (release 8)"),
        ("release", "year", "--1999", "releases[1].year (release 8)"),
        ("release", "id", 2**63, "releases[1].id"),
        ("release", "num_for_sale", 2**70, "releases[1].num_for_sale (release 8)"),
        ("release", "master_id", 2**64, "releases[1].master_id (release 8)"),
        ("release", "lowest_price", "cheap", "releases[1].lowest_price (release 8)"),
        ("release", "community", {"have": "lots"}, "releases[1].community.have (release 8)"),
        ("release", "formats.0.qty", "x", "releases[1].formats[0].qty (release 8)"),
        ("release", "artists.0.id", 2**64, "releases[1].artists[0].id (release 8)"),
        ("release", "labels.0.id", "L-20", "releases[1].labels[0].id (release 8)"),
        ("release", "title", "bad \ud800 text", "releases.title (release_id 8)"),
    ],
)
def test_bad_values_raise_collection_data_error_naming_field_and_id(
    db: Database, kind: str, path: str, value: Any, fragment: str
) -> None:
    load_collection(db, [item(1, 5)], [release(6)], fetched_at=FETCHED)
    before = snapshot(db)
    items = [item(9, 9), item(2, 7)]
    releases = [release(10), release(8)]
    if kind == "item":
        items[1] = _with(items[1], path, value)
    else:
        releases[1] = _with(releases[1], path, value)
    with pytest.raises(CollectionDataError) as info:
        load_collection(db, items, releases, fetched_at=FETCHED)
    assert fragment in str(info.value)
    assert snapshot(db) == before
    assert not db.in_transaction
    load_collection(db, [item(3, 5)], [], fetched_at=FETCHED)  # still usable
    assert db.scalar("SELECT count(*) FROM collection_items") == 2


def test_numbers_are_normalised_the_same_on_both_engines(tmp_path: Path) -> None:
    items = [
        {**item(1, 5), "rating": "4", "folder_id": " 7 "},
        {**item(2, 6), "rating": 3.0, "folder_id": None},
        {**item(3, 8), "rating": "", "folder_id": 2**40},
    ]
    releases = [
        release(5, year="1999", lowest_price="12.50", num_for_sale=-1, master_id=0),
        release(6, year=0.0, lowest_price=float("nan"), community={"have": 2**31 - 1}),
        release(8, year=" ", lowest_price=7, formats=[{"name": "LP", "qty": 2.0}]),
    ]
    snapshots = []
    for suffix in SUFFIX.values():
        with Database.connect(tmp_path / f"n{suffix}") as database:
            create_schema(database)
            load_collection(database, items, releases, fetched_at=FETCHED)
            snapshots.append(snapshot(database))
            assert database.fetchall(
                "SELECT instance_id, folder_id, rating FROM collection_items ORDER BY 1"
            ) == [(1, 7, 4), (2, None, 3), (3, 2**40, None)]
            assert database.fetchall(
                "SELECT release_id, year, lowest_price, num_for_sale, master_id, community_have "
                "FROM releases ORDER BY 1"
            ) == [
                (5, 1999, 12.5, -1, None, None),
                (6, None, None, None, None, 2**31 - 1),
                (8, None, 7.0, None, None, None),
            ]
            assert database.scalar("SELECT qty FROM release_formats WHERE release_id = 8") == 2
    assert snapshots[0] == snapshots[1]


def test_missing_optional_fields_become_null(db: Database) -> None:
    load_collection(db, [{"id": 5, "instance_id": 1}], [{"id": 6}], fetched_at=FETCHED)
    assert db.fetchall("SELECT release_id, title, year FROM releases ORDER BY 1") == [
        (5, None, None),
        (6, None, None),
    ]
    assert db.scalar("SELECT count(*) FROM collection") == 1


def test_load_inside_a_failing_outer_transaction_is_rolled_back(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        load_collection(db, page_items(), full_releases(), fetched_at=FETCHED)
        assert db.scalar("SELECT count(*) FROM collection_items") == 104
        raise RuntimeError("abort the pull")
    assert all(not rows for rows in snapshot(db).values())


def test_two_loads_in_one_transaction(db: Database) -> None:
    with db.transaction():
        load_collection(db, [item(1, 5)], [release(5)], fetched_at=FETCHED)
        load_collection(db, [item(1, 5)], [release(5, title="Renamed")], fetched_at=FETCHED)
    assert db.fetchall("SELECT title FROM releases") == [("Renamed",)]
    assert db.scalar("SELECT count(*) FROM release_genres") == 1


def test_input_is_not_mutated(db: Database) -> None:
    items, releases = page_items(), full_releases()
    originals = copy.deepcopy((items, releases))
    load_collection(db, items, releases, fetched_at=FETCHED)
    assert (items, releases) == originals


# ------------------------------------------------------------------------ pipeline helpers


def test_known_release_ids_and_freshness(db: Database) -> None:
    load_collection(db, [item(1, 4)], [release(5)], fetched_at=FETCHED)
    load_collection(db, [], [release(6)], fetched_at=FETCHED + timedelta(days=2))
    assert known_release_ids(db) == {5, 6}
    assert known_release_ids(db, FETCHED + timedelta(days=1)) == {6}
    assert known_release_ids(db, FETCHED) == {5, 6}
    aware = (
        (FETCHED + timedelta(days=1)).replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    )
    assert known_release_ids(db, aware) == {6}


def test_default_fetched_at_is_now(db: Database) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    load_collection(db, [], [release(5)])
    assert known_release_ids(db, before) == {5}
    assert known_release_ids(db, before + timedelta(hours=1)) == set()


def test_remove_missing_items(db: Database) -> None:
    items = [item(1, 5, folder_id=1), item(2, 6, folder_id=1), item(3, 7, folder_id=2)]
    load_collection(db, items, [], username="me", fetched_at=FETCHED)
    load_collection(db, [item(4, 5, folder_id=1)], [], username="you", fetched_at=FETCHED)
    assert remove_missing_items(db, "me", 1, [1, 3]) == 1  # only folder 1 is considered
    assert remove_missing_items(db, "me", 0, [1]) == 1  # folder 0 = every folder
    assert db.fetchall("SELECT instance_id FROM collection_items ORDER BY 1") == [(1,), (4,)]
    assert remove_missing_items(db, "me", 0, [1]) == 0
    assert remove_missing_items(db, "you", 0, []) == 1
    assert db.scalar("SELECT count(*) FROM releases") == 3  # releases stay as a cache


def test_record_and_clear_failures(db: Database) -> None:
    t1, t2 = FETCHED, FETCHED + timedelta(minutes=5)
    assert record_failure(db, 5, "HTTP 503", False, now=t1) == 1
    assert record_failure(db, 5, "HTTP 404", True, now=t2) == 2
    assert record_failure(db, 6, "timeout", False) == 1
    row = db.fetchone(
        "SELECT error, attempts, last_attempt, permanent FROM pull_failures WHERE release_id = 5"
    )
    assert row is not None
    assert (row[0], row[1], _norm(row[2]), bool(row[3])) == ("HTTP 404", 2, _norm(t2), True)
    assert permanent_failure_ids(db) == {5}
    assert clear_failures(db, [5, 99]) == 1
    assert clear_failures(db, []) == 0
    assert db.fetchall("SELECT release_id FROM pull_failures") == [(6,)]


def test_load_restores_the_garbage_collector_state(db: Database) -> None:
    import gc

    assert gc.isenabled()
    load_collection(db, [item(1, 5)], [release(6)], fetched_at=FETCHED)
    assert gc.isenabled()
    with pytest.raises(CollectionDataError):
        load_collection(db, [{"id": 5}], [], fetched_at=FETCHED)
    assert gc.isenabled()
    gc.disable()
    try:
        load_collection(db, [item(1, 5)], [], fetched_at=FETCHED)
        assert not gc.isenabled()
    finally:
        gc.enable()


# ------------------------------------------------------------------------ the declared schema

#: What each Arrow type of TABLES must be in each engine's catalogue (written out here, not taken
#: from the DDL generator, so a generator bug cannot agree with itself).
EXPECTED_TYPES = {
    "duckdb": {"int32": "INTEGER", "int64": "BIGINT", "string": "VARCHAR", "double": "DOUBLE",
               "bool": "BOOLEAN", "timestamp[us]": "TIMESTAMP"},
    "sqlite": {"int32": "INTEGER", "int64": "INTEGER", "string": "TEXT", "double": "REAL",
               "bool": "BOOLEAN", "timestamp[us]": "TEXT"},
}  # fmt: skip


def _catalogue(database: Database, table: str) -> list[tuple[str, str, bool, bool]]:
    """(name, declared type, not null, primary key) per column, in order, from the engine."""
    if database.engine == "sqlite":
        rows = database.fetchall(f"PRAGMA table_info({table})")
        return [(name, kind, bool(notnull), bool(pk)) for _, name, kind, notnull, _, pk in rows]
    keys = {
        str(column)
        for (columns,) in database.fetchall(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        )
        for column in columns
    }
    rows = database.fetchall(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
        [table],
    )
    return [
        (name, kind, nullable == "NO" and name not in keys, name in keys)
        for name, kind, nullable in rows
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_table_in_a_real_file_matches_the_declaration(tmp_path: Path, engine: str) -> None:
    path = tmp_path / f"ddl{SUFFIX[engine]}"
    with Database.connect(path) as database:
        create_schema(database)
    with Database.connect(path, read_only=True) as database:
        for table in SCHEMA:
            found = _catalogue(database, table.name)
            assert [c[0] for c in found] == [name for name, _ in TABLES[table.name]], table.name
            assert [c[1] for c in found] == [
                EXPECTED_TYPES[engine][str(kind)] for _, kind in TABLES[table.name]
            ], table.name
            assert [c[2] for c in found] == [c.not_null for c in table.columns], table.name
            assert [name for name, *_, pk in found if pk] == ([table.key] if table.key else []), (
                table.name
            )
        if engine == "sqlite":
            indexes = {
                name: [str(row[2]) for row in database.fetchall(f"PRAGMA index_info({name})")]
                for (name,) in database.fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                )
            }
            assert indexes == {
                index.name: list(index.columns) for table in SCHEMA for index in table.indexes
            }


def test_tables_is_the_declaration() -> None:
    assert list(TABLES) == [table.name for table in SCHEMA]
    assert TABLES["release_genres"] == (("release_id", pa.int64()), ("genre", pa.string()))


@pytest.mark.parametrize("dropped", ["tracks", "schema_version", "releases"])
def test_a_dropped_table_is_reported_and_repaired(db: Database, dropped: str) -> None:
    load_collection(db, joalla_items(), full_releases(), fetched_at=FETCHED)
    detailed = len(known_release_ids(db))
    assert detailed > 0
    db.execute(f"DROP TABLE {dropped}")
    assert missing_tables(db) == (dropped,)
    with pytest.raises(SchemaIncompleteError, match=dropped) as caught:
        create_schema(db)
    assert caught.value.missing == (dropped,)
    assert "discogs-toolkit repair --db" in str(caught.value)
    with pytest.raises(SchemaIncompleteError):
        check_schema(db)
    repair = repair_schema(db)
    assert repair.recreated == (dropped,)
    assert missing_tables(db) == ()
    assert schema_version(db) == SCHEMA_VERSION
    # Details that lived in tracks must come back: every release is fetched again.
    assert repair.releases_to_refetch == (detailed if dropped == "tracks" else 0)
    if dropped == "tracks":
        assert known_release_ids(db) == set()
    assert repair_schema(db).recreated == ()


def test_a_dropped_view_is_reported_by_check_and_recreated_by_create(db: Database) -> None:
    db.execute("DROP VIEW collection")
    assert missing_tables(db) == ("collection",)
    with pytest.raises(SchemaIncompleteError, match="collection"):
        check_schema(db)
    create_schema(db)
    check_schema(db)


def test_an_unrelated_or_new_database_is_not_incomplete(tmp_path: Path) -> None:
    with Database.connect(tmp_path / "other.sqlite") as database:
        assert missing_tables(database) == ()
        for table in ("t", "releases", "artists", "schema_version"):
            database.execute(f"CREATE TABLE {table} (x INTEGER)")
            assert missing_tables(database) == ()
        check_schema(database)


def test_collection_data_error_lives_in_the_error_tree() -> None:
    assert CollectionDataError is errors.CollectionDataError
    assert issubclass(CollectionDataError, errors.DatabaseError)
    assert issubclass(CollectionDataError, ValueError)
    assert "CollectionDataError" in errors.__doc__


def test_the_package_re_exports_every_name_it_had_as_a_module() -> None:
    import toolkit.collection as collection

    before_the_split = {
        "SCHEMA_VERSION", "TABLES", "CollectionDataError", "clear_failures", "create_schema",
        "failure_ids", "known_release_ids", "load_collection", "permanent_failure_ids",
        "record_failure", "remove_missing_items", "schema_version",
    }  # fmt: skip
    assert before_the_split <= set(collection.__all__)
    assert all(hasattr(collection, name) for name in collection.__all__)
    assert {name for name in dir(collection) if not name.startswith("_")} - set(
        collection.__all__
    ) <= {"annotations", "loading", "parsing", "schema"}


# ------------------------------------------------------------------------ history rows


def _stored_time(db: Database, moment: datetime) -> Any:
    """A timestamp as each engine stores it: a datetime on DuckDB, fixed-width text on sqlite."""
    return moment if db.engine == "duckdb" else moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _all_rows(db: Database, table: str) -> list[tuple[Any, ...]]:
    names = [name for name, _ in TABLES[table]]
    columns = ", ".join(quote_name(name) for name in names)
    return db.fetchall(f"SELECT {columns} FROM {table} ORDER BY {columns}")


def test_insert_rows_writes_whole_history_rows_that_read_back_equal(db: Database) -> None:
    at = _stored_time(db, datetime(2024, 5, 6, 7, 8, 9, 123456))
    later = _stored_time(db, datetime(2024, 5, 7, 0, 0, 0, 1))
    events = [(1, 100, 5, "added", at), (1, 101, 6, "removed", at), (2, 100, 5, "removed", later)]
    market = [
        (5, at, "EUR", 12.5, 3, False),
        (5, later, None, None, None, True),  # NULLs where Discogs said nothing
        (6, at, "USD", 0.0, 0, None),
    ]
    with db.transaction():
        insert_rows(db, "item_events", events)
        insert_rows(db, "market_stats", market)
    assert _all_rows(db, "item_events") == sorted(events)
    assert _all_rows(db, "market_stats") == sorted(market, key=lambda row: (row[0], row[1]))
    # History is appended: the same rows again are new rows, not an update of the old ones.
    insert_rows(db, "item_events", events[:1])
    assert db.scalar("SELECT count(*) FROM item_events") == 4


def test_insert_rows_does_not_upsert_a_keyed_table(db: Database) -> None:
    at = _stored_time(db, datetime(2024, 5, 6, 7, 8, 9))
    first = (7, at, "EUR", 1.0, 2.0, 3.0)
    insert_rows(db, "collection_value", [first])
    with pytest.raises(DatabaseError):
        insert_rows(db, "collection_value", [(7, at, "USD", 9.0, 9.0, 9.0)])
    # A duplicate inside one call is refused whole, in the caller's transaction or its own.
    twice = [(8, at, "EUR", 1.0, 1.0, 1.0), (8, at, "EUR", 2.0, 2.0, 2.0)]
    with pytest.raises(DatabaseError), db.transaction():
        insert_rows(db, "collection_value", twice)
    with pytest.raises(DatabaseError):
        insert_rows(db, "collection_value", twice)
    assert _all_rows(db, "collection_value") == [first]


def test_insert_rows_with_no_rows_is_a_no_op(db: Database) -> None:
    for table in ("item_events", "market_stats", "collection_value", "wants"):
        insert_rows(db, table, [])
        insert_rows(db, table, ())
    assert all(not rows for rows in snapshot(db).values())


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_id_conditions_select_exactly_the_ids_at_every_size(engine: str, tmp_path: Path) -> None:
    from toolkit.collection.loading import _ids_in

    suffix = ".duckdb" if engine == "duckdb" else ".sqlite"
    with Database.connect(tmp_path / f"ids{suffix}") as db:
        db.execute("CREATE TABLE t (release_id BIGINT)")
        db.execute("INSERT INTO t SELECT * FROM (VALUES (1), (2), (3)) v(x)" if engine == "duckdb"
                   else "INSERT INTO t VALUES (1), (2), (3)")  # fmt: skip
        for start in range(4, 700, 7):
            db.execute(f"INSERT INTO t VALUES ({start}), ({start + 3})")
        stored = {row[0] for row in db.fetchall("SELECT release_id FROM t")}
        # Every form: the split OR of short lists, one list, the id table beyond 500.
        for size in (0, 1, 4, 5, 9, 10, 48, 49, 120, 501, 650):
            wanted = list(range(1, size + 1))
            with _ids_in(db, wanted) as among:
                got = {row[0] for row in db.fetchall(f"SELECT release_id FROM t WHERE {among}")}
                gone = {
                    row[0] for row in db.fetchall(f"SELECT release_id FROM t WHERE NOT ({among})")
                }
            assert got == stored & set(wanted), size
            assert gone == (stored - set(wanted) if wanted else set()), size  # IN (NULL)


def test_a_name_memo_skips_stored_names_and_learns_only_committed_ones(db: Database) -> None:
    from toolkit.collection import NameMemo

    memo = NameMemo()
    releases = full_releases()
    first = load_collection(db, [], releases[:2], fetched_at=FETCHED, names=memo)
    assert first["artists"] > 0 and first["labels"] > 0
    memo.commit()
    # The same names again: none is written.
    again = load_collection(db, [], releases[:2], fetched_at=FETCHED, names=memo)
    assert again["artists"] == 0 and again["labels"] == 0
    memo.commit()
    # A renamed artist is written (and stored) all the same.
    renamed = copy.deepcopy(releases[0])
    artist = renamed["artists"][0]
    artist["name"] = "Renamed For The Test"
    assert load_collection(db, [], [renamed], fetched_at=FETCHED, names=memo)["artists"] == 1
    memo.commit()
    stored = db.scalar("SELECT name FROM artists WHERE artist_id = ?", [artist["id"]])
    assert stored == "Renamed For The Test"
    # Names of a write that rolled back are not learnt: the next write stores them.
    with pytest.raises(RuntimeError), db.transaction():
        load_collection(db, [], releases[2:], fetched_at=FETCHED, names=memo)
        raise RuntimeError("rolled back")
    memo.discard()
    assert db.scalar("SELECT count(*) FROM labels WHERE label_id = ?", [
        releases[3]["labels"][0]["id"]
    ]) == 0  # fmt: skip
    later = load_collection(db, [], releases[2:], fetched_at=FETCHED, names=memo)
    assert later["labels"] > 0
    assert db.scalar("SELECT count(*) FROM labels WHERE label_id = ?", [
        releases[3]["labels"][0]["id"]
    ]) == 1  # fmt: skip
