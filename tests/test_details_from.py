"""``pull --details-from``: release details from the local catalogue, the API, or both.

Real parts only: the simulator writes its catalogue as a monthly dump, the real loader loads it,
and real pulls against the simulator count its ``/releases`` requests, on both engines.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from toolkit.catalogue import load_dumps
from toolkit.cli import main
from toolkit.collection import SCHEMA_VERSION, create_schema, schema_version
from toolkit.collection.schema import _migration
from toolkit.config import Settings
from toolkit.db import Database
from toolkit.discogs.client import DiscogsClient
from toolkit.discogs.simdata import SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator
from toolkit.errors import PullError
from toolkit.history import Extras
from toolkit.pull import PullReport, pull_collection
from toolkit.ratelimit import SlidingWindowLimiter

ENGINES = ("duckdb", "sqlite")
SUFFIX = {"duckdb": ".duckdb", "sqlite": ".sqlite"}
DUMP_DATE = date(2021, 3, 1)
FAST = 100_000
USER = "collector"
#: The columns the dump has (as in test_catalogue); the rest of ``releases`` stays NULL.
DUMP_COLUMNS = {
    "releases": "release_id, title, year, country, released, master_id, status, data_quality",
    "release_artists": "release_id, artist_id, position, anv, join_phrase, role",
    "release_labels": "release_id, label_id, catno",
    "release_genres": "release_id, genre",
    "release_styles": "release_id, style",
    "release_formats": "release_id, position, name, qty, descriptions, text",
    "tracks": "release_id, position, sequence, title, duration_seconds, type",
}
NOT_IN_DUMP = (
    "lowest_price",
    "num_for_sale",
    "community_have",
    "community_want",
    "community_rating_average",
    "community_rating_count",
)


@pytest.fixture(scope="module")
def catalogue() -> SimCatalogue:
    catalogue = SimCatalogue(releases=1300, seed=5)
    catalogue.user(USER, items=120)
    return catalogue


@pytest.fixture(scope="module")
def owned(catalogue: SimCatalogue) -> set[int]:
    return {int(item["id"]) for item in catalogue.user(USER).items}


@pytest.fixture(scope="module")
def newer(owned: set[int]) -> set[int]:
    """Owned releases the dump lacks: as if added to Discogs after the dump's date."""
    return set(sorted(owned)[::12])


@pytest.fixture(scope="module")
def data_dir(
    catalogue: SimCatalogue, newer: set[int], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A data dir whose catalogue is the simulator's dump without the ``newer`` releases."""
    dumps = tmp_path_factory.mktemp("dump")
    ids = [rid for rid in catalogue.release_ids() if rid not in newer]
    files = catalogue.write_dump(dumps, DUMP_DATE, release_ids=ids)
    folder = tmp_path_factory.mktemp("data")
    load_dumps(files, folder)
    return folder


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim(catalogue: SimCatalogue) -> Iterator[DiscogsSimulator]:
    options: dict[str, Any] = {"rate_limit": FAST, "rate_limit_unauthenticated": FAST}
    with DiscogsSimulator(catalogue, latency=0.0, jitter=0.0, **options) as server:
        yield server


def run(
    server: DiscogsSimulator, db: Path, data_dir: Path, details_from: str, cache: str = "a"
) -> PullReport:
    """A pull of USER into ``db`` (settings name ``data_dir``; its own HTTP cache file)."""
    settings = Settings(data_dir=data_dir)
    client = DiscogsClient(
        "",
        base_url=server.url,
        settings=settings,
        cache_path=db.parent / f"http-{cache}.sqlite",
        limiter=SlidingWindowLimiter(FAST, 60.0),
    )
    with client:
        return pull_collection(
            USER,
            db,
            client=client,
            progress=False,
            per_page=50,
            concurrency=4,
            settings=settings,
            details_from=details_from,
        )


def requested(server: DiscogsSimulator) -> list[int]:
    log = server.request_log
    return [int(r.path.rsplit("/", 1)[1]) for r in log if r.path.startswith("/releases/")]


def as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_auto_takes_what_the_catalogue_holds_and_asks_the_api_for_the_rest(
    sim: DiscogsSimulator, data_dir: Path, owned: set[int], newer: set[int], tmp_path: Path,
    engine: str,
) -> None:  # fmt: skip
    db_path = tmp_path / f"auto{SUFFIX[engine]}"
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    report = run(sim, db_path, data_dir, "auto")
    assert sorted(requested(sim)) == sorted(newer)  # nothing the catalogue holds
    assert report.details_from == "auto"
    assert report.from_catalogue == len(owned - newer)
    assert report.from_api == report.releases_fetched == len(newer)
    assert report.not_in_catalogue == 0 and report.complete
    shown = dict(line.split(maxsplit=1) for line in report.as_table().splitlines())
    assert shown["from_catalogue"] == str(len(owned - newer))
    assert shown["from_api"] == str(len(newer))
    with Database.connect(db_path, read_only=True) as db:
        rows = db.fetchall("SELECT release_id, source, fetched_at FROM releases")
        assert {rid for rid, _, _ in rows} == owned
        for rid, source, fetched_at in rows:
            if rid in newer:
                assert source == "api"
                assert as_datetime(fetched_at) >= before  # when the API answered (naive UTC)
            else:
                assert source == "catalogue"
                assert as_datetime(fetched_at) == datetime(2021, 3, 1)
        nulls = " AND ".join(f"{c} IS NULL" for c in NOT_IN_DUMP)
        from_catalogue = db.scalar(f"SELECT count(*) FROM releases WHERE {nulls}")
        assert from_catalogue == len(owned - newer)  # nothing invented for catalogue rows
        assert db.scalar("SELECT count(*) FROM collection WHERE source = 'catalogue'") > 0

    # The same collection pulled from the API only: identical for every column the dump has.
    api_path = tmp_path / f"api{SUFFIX[engine]}"
    run(sim, api_path, data_dir, "api", cache="b")
    with (
        Database.connect(db_path, read_only=True) as ours,
        Database.connect(api_path, read_only=True) as theirs,
    ):
        for table, columns in DUMP_COLUMNS.items():
            sql = f"SELECT {columns} FROM {table} ORDER BY {columns}"
            assert ours.fetchall(sql) == theirs.fetchall(sql), table
        for table, key in (("artists", "artist_id"), ("labels", "label_id")):
            sql = f"SELECT {key}, name FROM {table} ORDER BY {key}"
            assert ours.fetchall(sql) == theirs.fetchall(sql), table
        assert theirs.scalar("SELECT count(*) FROM releases WHERE source <> 'api'") == 0


@pytest.mark.parametrize("details_from", ["auto", "catalogue", "api"])
def test_wanted_releases_come_the_way_the_collections_do(
    sim: DiscogsSimulator, catalogue: SimCatalogue, data_dir: Path, owned: set[int],
    tmp_path: Path, details_from: str,
) -> None:  # fmt: skip
    """``pull --wants``: releases only wanted are copied from the catalogue unless ``api``."""
    wanted = {int(want["id"]) for want in catalogue.user(USER).wants} - owned
    assert wanted  # the simulated wantlist holds releases not owned
    db_path = tmp_path / "w.duckdb"
    settings = Settings(data_dir=data_dir)
    client = DiscogsClient(
        "", base_url=sim.url, settings=settings, cache_path=tmp_path / "http.sqlite",
        limiter=SlidingWindowLimiter(FAST, 60.0),
    )  # fmt: skip
    with client:
        report = pull_collection(
            USER, db_path, client=client, progress=False, per_page=50, concurrency=4,
            settings=settings, details_from=details_from, extras=Extras(wants=True),
        )  # fmt: skip
    assert report.wants == len(catalogue.user(USER).wants)
    asked = set(requested(sim)) & wanted
    with Database.connect(db_path, read_only=True) as db:
        rows = db.fetchall("SELECT release_id, source FROM releases WHERE fetched_at IS NOT NULL")
    sources = {rid: source for rid, source in rows if rid in wanted}
    if details_from == "api":
        assert asked == wanted and set(sources.values()) == {"api"}
    else:  # every wanted release is in the dump (only some owned ones are newer than it)
        assert asked == set() and sources == dict.fromkeys(wanted, "catalogue")
    # The report counts them the way they came (the table `pull` prints shows both).
    expected = (len(wanted), 0) if details_from == "api" else (0, len(wanted))
    assert (report.want_releases_fetched, report.want_releases_from_catalogue) == expected
    shown = dict(line.split(None, 1) for line in report.as_table().splitlines())
    assert shown["want_releases_from_catalogue"] == str(expected[1])


def test_api_replaces_the_catalogue_rows_of_wanted_releases_too(
    sim: DiscogsSimulator, catalogue: SimCatalogue, data_dir: Path, owned: set[int],
    tmp_path: Path,
) -> None:  # fmt: skip
    wanted = {int(want["id"]) for want in catalogue.user(USER).wants} - owned
    db_path = tmp_path / "w.duckdb"
    settings = Settings(data_dir=data_dir)
    for details_from, cache in (("auto", "a"), ("api", "b")):
        sim.reset_counters()
        client = DiscogsClient(
            "", base_url=sim.url, settings=settings, cache_path=tmp_path / f"{cache}.sqlite",
            limiter=SlidingWindowLimiter(FAST, 60.0),
        )  # fmt: skip
        with client:
            pull_collection(
                USER, db_path, client=client, progress=False, per_page=50, concurrency=4,
                settings=settings, details_from=details_from, extras=Extras(wants=True),
            )  # fmt: skip
    assert set(requested(sim)) >= wanted  # the api pull asked for every wanted release again
    with Database.connect(db_path, read_only=True) as db:
        rows = db.fetchall("SELECT release_id, source FROM releases")
    assert {source for rid, source in rows if rid in wanted} == {"api"}


def test_api_replaces_catalogue_rows_and_auto_then_asks_nothing(
    sim: DiscogsSimulator, data_dir: Path, owned: set[int], newer: set[int], tmp_path: Path,
    engine: str,
) -> None:  # fmt: skip
    db_path = tmp_path / f"c{SUFFIX[engine]}"
    run(sim, db_path, data_dir, "auto")
    sim.reset_counters()
    again = run(sim, db_path, data_dir, "auto")  # everything stored: nothing to copy or fetch
    assert requested(sim) == []
    assert (again.from_catalogue, again.from_api) == (0, 0)
    assert again.releases_skipped == len(owned)

    sim.reset_counters()
    report = run(sim, db_path, data_dir, "api", cache="fresh")
    assert sorted(requested(sim)) == sorted(owned - newer)  # exactly the catalogue's rows
    assert report.from_api == len(owned - newer)
    assert report.from_catalogue == 0
    with Database.connect(db_path, read_only=True) as db:
        assert db.fetchall("SELECT DISTINCT source FROM releases") == [("api",)]
        assert db.scalar("SELECT count(*) FROM releases WHERE community_have IS NULL") == 0


def test_catalogue_mode_asks_the_api_for_no_release(
    sim: DiscogsSimulator, data_dir: Path, owned: set[int], newer: set[int], tmp_path: Path,
    engine: str,
) -> None:  # fmt: skip
    db_path = tmp_path / f"c{SUFFIX[engine]}"
    report = run(sim, db_path, data_dir, "catalogue")
    assert requested(sim) == []
    assert report.from_catalogue == len(owned - newer)
    assert report.not_in_catalogue == len(newer)
    assert report.from_api == 0 and report.failures == 0
    with Database.connect(db_path, read_only=True) as db:
        # the releases it lacks keep what the collection page gave, and no failure is invented
        lacking = db.fetchall("SELECT release_id FROM releases WHERE source IS NULL")
        assert {rid for (rid,) in lacking} == newer
        assert db.scalar("SELECT count(*) FROM releases WHERE fetched_at IS NULL") == len(newer)
        assert db.scalar("SELECT count(*) FROM pull_failures") == 0
    sim.reset_counters()
    run(sim, db_path, data_dir, "auto")  # the next auto pull asks for exactly those
    assert sorted(requested(sim)) == sorted(newer)


def test_without_a_catalogue_auto_is_the_api_and_catalogue_is_refused(
    sim: DiscogsSimulator, owned: set[int], tmp_path: Path, engine: str
) -> None:
    empty = tmp_path / "data"
    db_path = tmp_path / f"x{SUFFIX[engine]}"
    with pytest.raises(PullError, match="no catalogue is loaded"):
        run(sim, db_path, empty, "catalogue")
    assert sim.request_log == []  # refused before any request
    report = run(sim, db_path, empty, "auto")
    assert sorted(requested(sim)) == sorted(owned)
    assert report.from_catalogue == 0 and report.from_api == len(owned)
    with pytest.raises(PullError, match="details_from must be one of"):
        run(sim, db_path, empty, "both")


def test_a_version_2_database_gets_the_source_column(tmp_path: Path, engine: str) -> None:
    with Database.connect(tmp_path / f"old{SUFFIX[engine]}") as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (2)")
        for version in (1, 2):
            for statement in _migration(db.engine, version):
                db.execute(statement)
        db.execute("INSERT INTO releases (release_id, title, fetched_at) VALUES "
                   "(1, 'detailed', '2024-01-01 00:00:00'), (2, 'basic', NULL)")  # fmt: skip
        assert create_schema(db) == SCHEMA_VERSION == schema_version(db)
        rows = db.fetchall("SELECT release_id, source FROM releases ORDER BY 1")
        assert rows == [(1, "api"), (2, None)]


def test_cli_details_from_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as bad:
        main(["pull", "--details-from", "dump"])
    assert bad.value.code == 2
    assert "invalid choice: 'dump'" in capsys.readouterr().err
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path / "data"))
    code = main(["pull", "--simulator", "--details-from", "catalogue", "--db",
                 str(tmp_path / "c.duckdb")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no catalogue is loaded" in err


def test_a_catalogue_loaded_before_the_source_column_still_serves(
    sim: DiscogsSimulator, data_dir: Path, owned: set[int], newer: set[int], tmp_path: Path,
    engine: str,
) -> None:  # fmt: skip
    """A generation written before ``releases.source`` existed: copied all the same, on both
    engines (sqlite builds its file from Parquet files lacking the column)."""
    import shutil

    import pyarrow.parquet as pq

    from toolkit.catalogue import catalogue_dir, current_generation
    from toolkit.catalogue.store import table_path

    old = tmp_path / "old-data"
    shutil.copytree(catalogue_dir(data_dir), catalogue_dir(old))
    generation = current_generation(catalogue_dir(old))
    assert generation is not None
    (generation / "catalogue.sqlite").unlink(missing_ok=True)
    releases = table_path(generation, "releases")
    pq.write_table(pq.read_table(releases).drop_columns(["source"]), releases)
    report = run(sim, tmp_path / f"o{SUFFIX[engine]}", old, "auto")
    assert report.from_catalogue == len(owned - newer)
    assert sorted(requested(sim)) == sorted(newer)
    with Database.connect(tmp_path / f"o{SUFFIX[engine]}", read_only=True) as db:
        rows = db.fetchall("SELECT source, count(*) FROM releases GROUP BY 1 ORDER BY 1")
        assert rows == [("api", len(newer)), ("catalogue", len(owned - newer))]
