"""The dump-backed catalogue: real Discogs dump samples and crafted messy files, on both engines."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from toolkit.catalogue import (
    CATALOGUE_TABLES,
    CollectionRefs,
    LoadProgress,
    attach,
    catalogue_dir,
    collection_refs,
    current_generation,
    inspect_dump,
    load_dumps,
)
from toolkit.catalogue.parse import DumpReader, Skips, iter_records
from toolkit.cli import main
from toolkit.collection import TABLES, create_schema
from toolkit.db import Database
from toolkit.errors import DumpError

ENGINES = ("duckdb", "sqlite")
SAMPLES = (
    Path(__file__).parent
    / "fixtures"
    / "discogs-dump"
    / "philipmat-discogs-xml2db"
    / "tests"
    / "samples"
)
RELEASES_2020 = SAMPLES / "discogs_20200806_releases.xml.gz"
FILES_2020 = [
    SAMPLES / f"discogs_20200806_{kind}.xml.gz"
    for kind in ("releases", "masters", "artists", "labels")
]
FILES_2017 = [
    SAMPLES / "20170401" / "head50" / f"discogs_20170401_{kind}.xml.gz"
    for kind in ("releases", "masters", "artists", "labels")
]
NOW = datetime(2026, 1, 2, 3, 4, 5)


def record_count(path: Path) -> int:
    """Records in a dump, counted by parsing it whole (independently of the streaming parser)."""
    root = etree.fromstring(gzip.decompress(path.read_bytes()))
    return len(root)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_catalogue(engine: str, data_dir: Path) -> Database:
    db = Database.connect(":memory:", engine=engine)  # type: ignore[arg-type]
    attach(db, data_dir)
    return db


@pytest.fixture(scope="module")
def loaded_2020(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("data2020")
    load_dumps(FILES_2020, data_dir, now=NOW)
    return data_dir


# ------------------------------------------------------------------------------ real samples


def test_real_2020_samples_counts_match_the_files(loaded_2020: Path, engine: str) -> None:
    with open_catalogue(engine, loaded_2020) as db:
        for path, table, key in zip(
            FILES_2020,
            ("releases", "masters", "artists", "labels"),
            ("release_id", "master_id", "artist_id", "label_id"),
            strict=True,
        ):
            expected = record_count(path)
            assert expected == 1000
            if table in ("artists", "labels"):
                # plus the artists/labels only known from release credits, never a duplicate
                own = db.scalar(
                    f"SELECT count(*) FROM catalogue.{table} WHERE data_quality IS NOT NULL"
                )
                assert own == expected
            else:
                assert db.scalar(f"SELECT count(*) FROM catalogue.{table}") == expected
            assert db.scalar(f"SELECT count(*) - count(DISTINCT {key}) FROM catalogue.{table}") == 0
        dumps = db.fetchall(
            "SELECT kind, CAST(dump_date AS VARCHAR), file_name, records, records_read, skipped "
            "FROM catalogue.dumps ORDER BY kind"
        )
        assert dumps == [
            ("artists", "2020-08-06", "discogs_20200806_artists.xml.gz", 1000, 1000, 0),
            ("labels", "2020-08-06", "discogs_20200806_labels.xml.gz", 1000, 1000, 0),
            ("masters", "2020-08-06", "discogs_20200806_masters.xml.gz", 1000, 1000, 0),
            ("releases", "2020-08-06", "discogs_20200806_releases.xml.gz", 1000, 1000, 0),
        ]


def test_release_1_as_in_the_xml(loaded_2020: Path, engine: str) -> None:
    with open_catalogue(engine, loaded_2020) as db:
        release = db.fetchall(
            "SELECT title, year, country, released, master_id, status, data_quality, "
            "lowest_price, num_for_sale, community_have, community_want, "
            "community_rating_average, community_rating_count, CAST(fetched_at AS VARCHAR) "
            "FROM catalogue.releases WHERE release_id = 1"
        )
        assert release[0][:7] == (
            "Stockholm",
            1999,
            "Sweden",
            "1999-03-00",
            1660109,
            "Accepted",
            "Needs Vote",
        )
        assert release[0][7:13] == (None,) * 6  # not in the dump: stays NULL
        assert str(release[0][13]).startswith("2020-08-06 00:00:00")  # as of the dump date
        credits = db.fetchall(
            "SELECT ra.artist_id, a.name, ra.position, ra.anv, ra.join_phrase, ra.role "
            "FROM catalogue.release_artists ra JOIN catalogue.artists a USING (artist_id) "
            "WHERE release_id = 1 ORDER BY ra.role NULLS FIRST, ra.position"
        )
        assert credits == [
            (1, "The Persuader", 0, None, None, None),
            (239, "Jesper Dahlbäck", 0, None, None, "Music By [All Tracks By]"),
        ]
        tracks = db.fetchall(
            "SELECT position, sequence, title, duration_seconds, type FROM catalogue.tracks "
            "WHERE release_id = 1 ORDER BY sequence"
        )
        assert tracks == [
            ("A", 0, "Östermalm", 285, "track"),
            ("B1", 1, "Vasastaden", 371, "track"),
            ("B2", 2, "Kungsholmen", 169, "track"),
            ("C1", 3, "Södermalm", 338, "track"),
            ("C2", 4, "Norrmalm", 292, "track"),
            ("D", 5, "Gamla Stan", 316, "track"),
        ]
        assert db.fetchall(
            "SELECT name, qty, descriptions, text FROM catalogue.release_formats WHERE release_id = 1"
        ) == [("Vinyl", 2, json.dumps(['12"', "33 ⅓ RPM"], ensure_ascii=False), None)]
        assert db.fetchall(
            "SELECT rl.label_id, l.name, rl.catno FROM catalogue.release_labels rl "
            "JOIN catalogue.labels l USING (label_id) WHERE release_id = 1"
        ) == [(5, "Svek", "SK032")]
        assert db.fetchall("SELECT genre FROM catalogue.release_genres WHERE release_id = 1") == [
            ("Electronic",)
        ]
        assert db.fetchall("SELECT style FROM catalogue.release_styles WHERE release_id = 1") == [
            ("Deep House",)
        ]
        master = db.fetchall("SELECT * FROM catalogue.masters WHERE master_id = 113")
        assert master == [(113, 116925, "Moments In Time", 2002, "Correct")]
        artist = db.fetchall(
            "SELECT name, realname, data_quality, urls FROM catalogue.artists WHERE artist_id = 1"
        )
        assert artist == [
            (
                "The Persuader",
                "Jesper Dahlbäck",
                "Needs Vote",
                json.dumps(["https://en.wikipedia.org/wiki/Jesper_Dahlbäck"], ensure_ascii=False),
            )
        ]
        label = db.fetchall(
            "SELECT name, data_quality, parent_label_id, parent_label_name, "
            "contact_info LIKE 'Planet E Communications%' FROM catalogue.labels WHERE label_id = 1"
        )
        assert label == [("Planet E", "Correct", None, None, True)]
        parents = db.scalar(
            "SELECT count(*) FROM catalogue.labels WHERE parent_label_id IS NOT NULL "
            "AND parent_label_name IS NOT NULL"
        )
        assert parents > 0


def test_sub_tracks_make_an_index_track(loaded_2020: Path) -> None:
    xml = gzip.decompress(RELEASES_2020.read_bytes())
    root = etree.fromstring(xml)
    with_sub = {
        int(r.get("id") or 0) for r in root if r.find("tracklist/track/sub_tracks") is not None
    }
    assert with_sub
    with open_catalogue("duckdb", loaded_2020) as db:
        index_releases = {
            rid
            for (rid,) in db.fetchall(
                "SELECT DISTINCT release_id FROM catalogue.tracks WHERE type = 'index'"
            )
        }
        top_level = db.scalar("SELECT count(*) FROM catalogue.tracks")
    assert index_releases == with_sub
    with open_catalogue("duckdb", loaded_2020) as db:
        credits = db.scalar("SELECT count(*) FROM catalogue.release_artists")
    # release-level credits only (per-track credits are not in the collection's tables either)
    assert credits == sum(
        len(r.findall("artists/artist") + r.findall("extraartists/artist")) for r in root
    )
    assert top_level == sum(len(r.findall("tracklist/track")) for r in root)


def test_2017_head_files_of_all_four_kinds(tmp_path: Path, engine: str) -> None:
    report = load_dumps(FILES_2017, tmp_path, now=NOW)
    assert [(f.kind, f.records) for f in report.files] == [
        ("releases", 10),
        ("masters", 47),
        ("artists", 27),
        ("labels", 5),
    ]
    assert [f.records for f in report.files] == [record_count(p) for p in FILES_2017]
    with open_catalogue(engine, tmp_path) as db:
        assert db.scalar("SELECT title FROM catalogue.releases WHERE release_id = 1") == "Stockholm"
        # 2017 labels carry no id attribute: the catno stays, the label id is NULL
        assert db.fetchall(
            "SELECT label_id, catno FROM catalogue.release_labels WHERE release_id = 1"
        ) == [(None, "SK032")]
        assert (
            db.scalar(
                "SELECT join_phrase FROM catalogue.release_artists WHERE release_id = 1 AND role IS NULL"
            )
            == ","
        )
        assert db.scalar("SELECT count(*) FROM catalogue.masters") == 47


def test_same_columns_and_types_as_the_collection(loaded_2020: Path, engine: str) -> None:
    with Database.connect(":memory:", engine=engine) as db:  # type: ignore[arg-type]
        create_schema(db)
        attach(db, loaded_2020)
        for table in ("releases", "release_artists", "release_labels", "release_genres",
                      "release_styles", "release_formats", "tracks", "artists", "labels"):  # fmt: skip
            if engine == "duckdb":
                sql = (
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_catalog = ? AND table_name = ? ORDER BY ordinal_position"
                )
                ours = db.fetchall(sql, ["catalogue", table])
                theirs = db.fetchall(sql, ["memory", table])
            else:
                ours = [(r[1], r[2]) for r in db.fetchall(f"PRAGMA catalogue.table_info({table})")]
                theirs = [(r[1], r[2]) for r in db.fetchall(f"PRAGMA main.table_info({table})")]
            assert [c for c, _ in theirs] == [name for name, _ in TABLES[table]]
            assert ours[: len(theirs)] == theirs, table
            assert [c for c, _ in ours] == [name for name, _ in CATALOGUE_TABLES[table]]


def test_attach_before_any_load_gives_empty_tables(tmp_path: Path, engine: str) -> None:
    with open_catalogue(engine, tmp_path) as db:
        for table in CATALOGUE_TABLES:
            assert db.scalar(f"SELECT count(*) FROM catalogue.{table}") == 0


def test_attach_on_a_read_only_duckdb_file(tmp_path: Path, loaded_2020: Path) -> None:
    path = tmp_path / "c.duckdb"
    with Database.connect(path) as db:
        create_schema(db)
    with Database.connect(path, read_only=True) as db:
        attach(db, loaded_2020)
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 1000


# ------------------------------------------------------------------------------ messy input


def dump_xml(records: str, root: str = "releases") -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>\n{records}\n</{root}>\n'.encode()


def write_gz(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data))
    return path


MESSY = (
    '<release id="10" status="Accepted"><title>Bell\x07 Song</title>'
    "<artists><artist><id>5</id><name>A</name><anv/><join>&amp;</join><role/></artist></artists>"
    "<artists><artist><id>6</id><name>B</name><anv>Bee</anv><join/><role/></artist></artists>"
    "<genres><genre>Rock</genre></genres><genres><genre>Jazz</genre><genre>Rock</genre></genres>"
    '<master_id is_main_release="true">77</master_id><released>0</released>'
    "<wibble><wobble>unknown</wobble></wibble>"
    "<tracklist><track><position>1</position><title>Suite</title><duration/>"
    "<artists><artist><id>7</id><name>Track artist</name></artist></artists>"
    "<extraartists><artist><id>8</id><name>Track credit</name></artist></extraartists>"
    "<sub_tracks><track><position>1a</position><title>Part</title><duration>1:00</duration></track>"
    "</sub_tracks></track><track><position>2</position><title>Ref&#7;erence</title>"
    "<duration>1:02:03</duration></track></tracklist>"
    '<formats><format name="CD" qty="x" text="Promo"/></formats>'
    '<formats><format name="DVD" qty="1"><descriptions/></format></formats>'
    "</release>"
    '<release status="Accepted"><title>No id</title></release>'
    '<release id="11"><title>{long}</title></release>'
)


def test_messy_records_do_not_abort_the_load(tmp_path: Path, engine: str) -> None:
    long_title = "Ü" * 3000  # 6 KB of UTF-8
    dump = write_gz(
        tmp_path / "discogs_20240101_releases.xml.gz", dump_xml(MESSY.replace("{long}", long_title))
    )
    report = load_dumps([dump], tmp_path / "data")
    (file_report,) = report.files
    assert (file_report.records_read, file_report.records) == (3, 2)
    assert file_report.skipped == {
        "control characters removed": 2,
        "values that are not numbers stored as NULL": 1,
        "records without an id skipped": 1,
    }
    assert report.summary().endswith(
        "; control characters removed: 2, values that are not numbers stored as NULL: 1, "
        "records without an id skipped: 1"
    )
    with open_catalogue(engine, tmp_path / "data") as db:
        assert db.fetchall(
            "SELECT release_id, title, master_id, year FROM catalogue.releases ORDER BY 1"
        ) == [(10, "Bell Song", 77, None), (11, long_title, None, None)]
        assert db.fetchall(
            "SELECT artist_id, position, anv, join_phrase FROM catalogue.release_artists "
            "WHERE release_id = 10 ORDER BY position"
        ) == [(5, 0, None, "&"), (6, 1, "Bee", None)]
        assert db.fetchall(
            "SELECT genre FROM catalogue.release_genres WHERE release_id = 10 ORDER BY genre"
        ) == [("Jazz",), ("Rock",)]
        assert db.fetchall(
            "SELECT position, sequence, title, duration_seconds, type FROM catalogue.tracks "
            "ORDER BY sequence"
        ) == [("1", 0, "Suite", None, "index"), ("2", 1, "Reference", 3723, "track")]
        assert db.fetchall(
            "SELECT position, name, qty, descriptions, text FROM catalogue.release_formats "
            "ORDER BY position"
        ) == [(0, "CD", None, None, "Promo"), (1, "DVD", 1, None, None)]
        assert db.scalar("SELECT skipped FROM catalogue.dumps") == 1


def test_cleaning_does_not_depend_on_where_reads_split_the_stream(tmp_path: Path) -> None:
    """References, raw control characters and dropped elements cut by a read boundary are
    handled the same as whole ones, whatever the chunk size."""
    records = "".join(
        f'<release id="{i}"><images><image uri=""/></images><title>t{i}&#x7;\x01'
        f"&amp;&#228;</title><tracklist><track><title>x</title><extraartists><artist>"
        f"<id>{i}</id></artist></extraartists></track></tracklist><notes>n&#7;</notes>"
        f"</release>"
        for i in range(1, 6)
    )
    xml = dump_xml(records)
    plain = tmp_path / "r.xml"
    plain.write_bytes(xml)

    def cleaned(chunk: int) -> tuple[bytes, dict[str, int]]:
        skips = Skips()
        out = []
        with plain.open("rb") as raw, DumpReader(raw, False, skips, chunk) as reader:
            while data := reader.read(65536):
                out.append(data)
        return b"".join(out), skips.counts

    whole, counts = cleaned(1 << 20)
    assert b"&#x7;" not in whole and b"\x01" not in whole and b"&#228;" in whole
    assert b"<images>" not in whole and b"<notes>" not in whole and b"<extraartists>" not in whole
    assert counts == {"control characters removed": 10}  # those in dropped notes are not seen
    for chunk in range(1, 64):
        assert cleaned(chunk) == (whole, counts), chunk


def test_the_parser_tree_never_keeps_finished_records() -> None:
    """Memory is bounded by design: the tree holds the current record and the records lxml has
    already read ahead (within two reads), never a finished one."""
    chunk = 8192
    xml = gzip.decompress(RELEASES_2020.read_bytes())
    starts = [m.start() for m in re.finditer(rb"<release ", xml)]
    ends = [m.end() for m in re.finditer(rb"</release>", xml)]
    skips = Skips()
    most = 0
    previous: Any = None
    with RELEASES_2020.open("rb") as raw, DumpReader(raw, True, skips, chunk) as reader:
        for index, element in enumerate(iter_records(reader, "release")):
            root = element.getparent()
            assert element.getprevious() is None  # every earlier record was removed
            ahead = sum(1 for s in starts[index + 1 :] if s < ends[index] + 2 * chunk)
            assert len(root) <= 1 + ahead
            most = max(most, len(root))
            if previous is not None:
                assert len(previous) == 0 and previous.getparent() is None  # cleared, detached
            previous = element
    assert index + 1 == 1000
    assert most < 20  # of 1,000 records


def test_sublabels_are_not_records(tmp_path: Path) -> None:
    labels = (
        '<label><id>1</id><name>Parent</name><sublabels><label id="2">Child</label></sublabels>'
        '</label><label><id>2</id><name>Child</name><parentLabel id="1">Parent</parentLabel>'
        "</label>"
    )
    dump = write_gz(tmp_path / "discogs_20240101_labels.xml.gz", dump_xml(labels, "labels"))
    load_dumps([dump], tmp_path / "data")
    with open_catalogue("sqlite", tmp_path / "data") as db:
        assert db.fetchall(
            "SELECT label_id, name, parent_label_id, parent_label_name FROM catalogue.labels "
            "ORDER BY 1"
        ) == [(1, "Parent", None, None), (2, "Child", 1, "Parent")]


def test_plain_xml_and_unknown_dump_date(tmp_path: Path) -> None:
    plain = tmp_path / "my-releases.xml"
    plain.write_bytes(gzip.decompress(FILES_2017[0].read_bytes()))
    info = inspect_dump(plain)
    assert (info.kind, info.dump_date, info.compressed) == ("releases", None, False)
    load_dumps([plain], tmp_path / "data")
    with open_catalogue("duckdb", tmp_path / "data") as db:
        assert db.scalar("SELECT count(*) FROM catalogue.releases WHERE fetched_at IS NULL") == 10
        assert db.fetchall("SELECT dump_date, file_name FROM catalogue.dumps") == [
            (None, "my-releases.xml")
        ]


# ---------------------------------------------------------------------- errors and atomicity


def truncated(tmp_path: Path) -> Path:
    data = RELEASES_2020.read_bytes()
    path = tmp_path / "discogs_20200806_releases.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.txt"
    text.write_text("just some text\n")
    other_xml = write_gz(tmp_path / "feed.xml.gz", b"<rss><channel/></rss>")
    tracks = tmp_path / "discogs_20200806_tracks.xml"
    tracks.write_bytes(dump_xml("<track/>", "tracks"))
    misnamed = tmp_path / "discogs_20200806_masters.xml"
    misnamed.write_bytes(dump_xml('<release id="1"/>'))
    not_gzip = tmp_path / "discogs_20200806_labels.xml.gz"
    not_gzip.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    broken_xml = tmp_path / "discogs_20200806_artists.xml"
    broken_xml.write_bytes(b"<artists><artist><id>1</id></artists>")
    return {
        "truncated": (truncated(tmp_path), "the gzip stream is truncated"),
        "text": (text, "not a Discogs dump (no XML root element)"),
        "other xml": (other_xml, "not a Discogs dump (root element <rss>"),
        "unexpected kind": (tracks, "a tracks dump, a kind the catalogue does not load"),
        "misnamed": (misnamed, "named as a masters dump but holds releases"),
        "not gzip": (not_gzip, "corrupt gzip data"),
        "broken xml": (broken_xml, "not well-formed XML"),
    }


@pytest.mark.parametrize(
    "case",
    ["truncated", "text", "other xml", "unexpected kind", "misnamed", "not gzip", "broken xml"],
)
def test_a_bad_file_is_a_typed_error_and_the_previous_catalogue_stays(
    tmp_path: Path, case: str
) -> None:
    data_dir = tmp_path / "data"
    load_dumps(FILES_2017, data_dir)
    before = current_generation(catalogue_dir(data_dir))
    path, message = bad_files(tmp_path)[case]
    with pytest.raises(DumpError) as caught:
        load_dumps([FILES_2020[1], path], data_dir)
    assert message in str(caught.value)
    assert caught.value.path == str(path)
    assert current_generation(catalogue_dir(data_dir)) == before
    assert not list(catalogue_dir(data_dir).glob(".tmp-*"))
    with open_catalogue("duckdb", data_dir) as db:
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 10
        assert db.scalar("SELECT count(*) FROM catalogue.masters") == 47


def test_an_interrupted_load_leaves_the_previous_catalogue(tmp_path: Path, engine: str) -> None:
    load_dumps([FILES_2017[0]], tmp_path)

    def interrupt(state: LoadProgress) -> None:
        if state.records >= 1000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_dumps([RELEASES_2020], tmp_path, progress=interrupt)
    assert not list(catalogue_dir(tmp_path).glob(".tmp-*"))
    with open_catalogue(engine, tmp_path) as db:
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 10


def test_a_rerun_replaces_per_kind_and_duplicates_nothing(tmp_path: Path, engine: str) -> None:
    load_dumps([RELEASES_2020], tmp_path)
    load_dumps([RELEASES_2020], tmp_path)
    load_dumps([FILES_2017[1]], tmp_path)  # another kind: releases are carried over
    generations = list(catalogue_dir(tmp_path).glob("gen-*"))
    assert len(generations) == 1  # older generations are removed
    with open_catalogue(engine, tmp_path) as db:
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 1000
        assert db.scalar("SELECT count(*) FROM catalogue.tracks") == 9178
        assert db.scalar("SELECT count(*) FROM catalogue.masters") == 47
        assert db.fetchall("SELECT kind, file_name FROM catalogue.dumps ORDER BY kind") == [
            ("masters", "discogs_20170401_masters.xml.gz"),
            ("releases", "discogs_20200806_releases.xml.gz"),
        ]
    load_dumps([FILES_2017[0]], tmp_path)  # an older releases dump replaces the newer one
    with open_catalogue(engine, tmp_path) as db:
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 10
        assert (
            db.scalar(
                "SELECT CAST(dump_date AS VARCHAR) FROM catalogue.dumps WHERE kind = 'releases'"
            )
            == "2017-04-01"
        )


def test_two_files_of_one_kind_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DumpError, match="two releases dumps in one load"):
        load_dumps([FILES_2017[0], RELEASES_2020], tmp_path)
    assert current_generation(catalogue_dir(tmp_path)) is None


def test_reattach_sees_a_newer_load(tmp_path: Path) -> None:
    load_dumps([FILES_2017[0]], tmp_path)
    with Database.connect(":memory:", engine="sqlite") as db:
        attach(db, tmp_path)
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 10
        load_dumps([RELEASES_2020], tmp_path)
        attach(db, tmp_path)
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 1000


# ------------------------------------------------------------------------- only-collection


@pytest.fixture
def collection_db(tmp_path: Path, engine: str) -> Iterator[Path]:
    path = tmp_path / f"collection.{'duckdb' if engine == 'duckdb' else 'sqlite'}"
    with Database.connect(path) as db:
        create_schema(db)
        db.executemany(
            "INSERT INTO collection_items (instance_id, username, folder_id, release_id) "
            "VALUES (?, 'me', 1, ?)",
            [(100, 1), (101, 3)],
        )
        # a release known from the API before: its master and artist are kept too
        db.execute("INSERT INTO releases (release_id, master_id) VALUES (3, 999999999)")
    yield path


def test_only_collection_keeps_the_collections_releases_and_what_they_reference(
    tmp_path: Path,
    collection_db: Path,
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(data_dir))
    args = ["catalogue", "load", *map(str, FILES_2020), "--db", str(collection_db),
            "--only-collection", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("catalogue loaded: 2 of 1,000 releases (2020-08-06)")
    with Database.connect(collection_db) as db:
        refs = collection_refs(db)
    assert refs.release_ids == {1, 3} and refs.master_ids == {999999999}
    with open_catalogue(engine, data_dir) as db:
        assert {r for (r,) in db.fetchall("SELECT release_id FROM catalogue.releases")} == {1, 3}
        masters = {m for (m,) in db.fetchall("SELECT master_id FROM catalogue.releases")}
        kept_masters = {m for (m,) in db.fetchall("SELECT master_id FROM catalogue.masters")}
        dump_masters = {
            int(m.get("id") or 0)
            for m in etree.fromstring(gzip.decompress(FILES_2020[1].read_bytes()))
        }
        assert kept_masters == (masters - {None}) & dump_masters
        credited = {a for (a,) in db.fetchall(
            "SELECT DISTINCT artist_id FROM catalogue.release_artists WHERE artist_id IS NOT NULL"
        )}  # fmt: skip
        dumped = {a for (a,) in db.fetchall(
            "SELECT artist_id FROM catalogue.artists WHERE data_quality IS NOT NULL"
        )}  # fmt: skip
        assert 1 in dumped and dumped <= credited
        assert db.scalar("SELECT count(*) FROM catalogue.artists") == len(credited)
        assert db.fetchall("SELECT DISTINCT only_collection FROM catalogue.dumps") == [(True,)]


def test_only_collection_with_releases_loaded_earlier(tmp_path: Path) -> None:
    """Masters loaded in a later run are kept by what the catalogue's releases reference."""
    load_dumps([RELEASES_2020], tmp_path)
    only = CollectionRefs(release_ids=frozenset({1}))
    load_dumps([FILES_2020[1], FILES_2020[2]], tmp_path, only=only)
    with open_catalogue("duckdb", tmp_path) as db:
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 1000  # carried as it was
        assert db.fetchall(
            "SELECT artist_id FROM catalogue.artists WHERE data_quality IS NOT NULL ORDER BY 1"
        ) == [(1,)]
        assert (
            db.scalar("SELECT count(*) FROM catalogue.masters") == 0
        )  # 1660109 is not in the sample


# --------------------------------------------------------------------------------------- CLI


def test_cli_bad_file_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path / "data"))
    assert main(["catalogue", "load", str(FILES_2017[0])]) == 0
    capsys.readouterr()
    for path, message in bad_files(tmp_path).values():
        assert main(["catalogue", "load", str(path)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1
        assert captured.err.startswith("discogs-toolkit: error: ")
        assert message in captured.err
    with open_catalogue("duckdb", tmp_path / "data") as db:
        assert db.scalar("SELECT count(*) FROM catalogue.releases") == 10


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["catalogue", "load"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["catalogue"])
    assert caught.value.code == 2
    capsys.readouterr()


def test_cli_only_collection_without_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path / "data"))
    code = main(["catalogue", "load", str(RELEASES_2020), "--only-collection",
                 "--db", str(tmp_path / "none.duckdb")])  # fmt: skip
    assert code == 1
    assert "no database at" in capsys.readouterr().err


def test_cli_progress_bar_and_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path / "data"))
    assert main(["catalogue", "load", str(RELEASES_2020)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1
    assert captured.out.startswith("catalogue loaded: 1,000 releases (2020-08-06) in ")
    assert "757k/757k" in captured.err and "releases 1,000" in captured.err


def test_fixtures_are_only_in_the_project() -> None:
    assert SAMPLES.is_dir() and "shared" not in SAMPLES.resolve().parts
    assert inspect_dump(RELEASES_2020).dump_date == date(2020, 8, 6)


def test_a_missing_file_and_a_concurrent_load_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DumpError, match="no such file"):
        load_dumps([tmp_path / "discogs_20200806_releases.xml.gz"], tmp_path / "data")
    fcntl = pytest.importorskip("fcntl")
    root = catalogue_dir(tmp_path / "data")
    root.mkdir(parents=True)
    with (root / ".lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DumpError, match="another catalogue load is running"):
            load_dumps([FILES_2017[0]], tmp_path / "data")
        fcntl.flock(held, fcntl.LOCK_UN)
    assert load_dumps([FILES_2017[0]], tmp_path / "data").files[0].records == 10
