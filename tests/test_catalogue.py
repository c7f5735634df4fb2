"""The simulator's catalogue: real dump releases, deterministic seeded extension, users."""

from __future__ import annotations

import datetime as dt
import gzip
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import toolkit.discogs
from toolkit.discogs.catalogue import (
    API_ROOT,
    DEMO_ITEMS,
    MAX_RELEASES,
    Catalogue,
    real_releases,
)

RELEASE_KEYS = {
    "id",
    "status",
    "year",
    "resource_url",
    "uri",
    "artists",
    "artists_sort",
    "labels",
    "series",
    "companies",
    "formats",
    "data_quality",
    "community",
    "format_quantity",
    "date_added",
    "date_changed",
    "num_for_sale",
    "lowest_price",
    "blocked_from_sale",
    "title",
    "country",
    "released",
    "released_formatted",
    "notes",
    "identifiers",
    "videos",
    "genres",
    "styles",
    "tracklist",
    "extraartists",
    "images",
    "thumb",
    "estimated_weight",
}


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return Catalogue(releases=5000, seed=0)


def test_real_dump_is_bundled_and_parsed() -> None:
    reals = real_releases()
    assert len(reals) == 1000
    assert [r["id"] for r in reals] == sorted(r["id"] for r in reals)
    assert reals[0]["id"] == 1


def test_release_1_is_the_real_one(cat: Catalogue) -> None:
    release = cat.release(1)
    assert release is not None
    assert release["title"] == "Stockholm"
    assert release["artists"][0]["name"] == "The Persuader"
    assert release["artists"][0]["resource_url"] == f"{API_ROOT}/artists/1"
    assert release["year"] == 1999
    assert release["released"] == "1999-03-00"
    assert release["released_formatted"] == "Mar 1999"
    assert release["labels"][0]["name"] == "Svek"
    assert release["labels"][0]["catno"] == "SK032"
    assert release["genres"] == ["Electronic"]
    assert release["styles"] == ["Deep House"]
    assert release["master_id"] == 1660109
    assert release["tracklist"][0] == {
        "position": "A",
        "type_": "track",
        "title": "Östermalm",
        "duration": "4:45",
    }
    assert release["formats"][0]["qty"] == "2"
    assert set(release) >= RELEASE_KEYS


def test_every_release_has_the_api_shape(cat: Catalogue) -> None:
    ids = cat.release_ids()
    for rid in [*ids[:50], *ids[-50:]]:
        release = cat.release(rid)
        assert release is not None
        assert set(release) >= RELEASE_KEYS, rid
        community = release["community"]
        assert {"have", "want", "rating", "submitter", "contributors", "status"} <= set(community)
        assert set(community["rating"]) == {"average", "count"}
        assert isinstance(release["year"], int)
        if release["num_for_sale"] == 0:
            assert release["lowest_price"] is None
        else:
            assert isinstance(release["lowest_price"], float)
        assert ("master_id" in release) == ("master_url" in release)


def test_release_ids_real_first_then_generated(cat: Catalogue) -> None:
    ids = cat.release_ids()
    assert len(ids) == 5000 == len(set(ids))
    assert ids == sorted(ids)
    real_ids = [r["id"] for r in real_releases()]
    assert ids[:1000] == real_ids
    assert ids[1000] == cat.first_generated_id > max(real_ids)
    assert cat.release(ids[-1]) is not None
    assert cat.release(ids[-1] + 1) is None
    assert cat.release(999_999_999) is None


def test_small_catalogue_takes_the_first_real_releases() -> None:
    small = Catalogue(releases=10)
    assert small.release_ids() == [r["id"] for r in real_releases()[:10]]


def test_size_bounds() -> None:
    with pytest.raises(ValueError):
        Catalogue(releases=0)
    with pytest.raises(ValueError):
        Catalogue(releases=MAX_RELEASES + 1)


def test_largest_catalogue_is_lazy_and_reaches_every_id() -> None:
    big = Catalogue(releases=MAX_RELEASES, seed=3)
    ids = big.release_ids()
    assert len(ids) == MAX_RELEASES
    last = big.release(ids[-1])
    assert last is not None and last["id"] == ids[-1]
    assert len(big._cache) < 10_000  # only what the demo user and this test touched


def test_same_seed_same_catalogue_other_seed_differs() -> None:
    a, b, c = Catalogue(1200, seed=7), Catalogue(1200, seed=7), Catalogue(1200, seed=8)
    generated = a.release_ids()[1000:1020]
    assert [a.release(i) for i in generated] == [b.release(i) for i in generated]
    assert [a.release(i) for i in generated] != [c.release(i) for i in generated]
    assert a.user("demo").items == b.user("demo").items
    assert a.user("demo").items != c.user("demo").items
    # the real releases keep their real content under any seed
    ra, rc = a.release(1), c.release(1)
    assert ra is not None and rc is not None
    assert ra["title"] == rc["title"] == "Stockholm"


def test_distributions_are_plausible(cat: Catalogue) -> None:
    releases = [cat.release(i) for i in cat.release_ids()[::5]]
    assert all(r is not None for r in releases)
    genres = cat.genre_counts(cat.release_ids()[::5])
    assert len(genres) >= 10
    assert max(genres.values()) < 0.8 * len(releases)  # no single genre dominates
    years = [r["year"] for r in releases if r and r["year"]]
    assert len(set(years)) >= 30
    assert statistics.pstdev(years) > 5
    assert 0 < sum(1 for r in releases if r and r["year"] == 0) < len(releases) / 4
    formats = {f["name"] for r in releases if r for f in r["formats"]}
    assert {"Vinyl", "CD", "Cassette"} <= formats
    labels = {lab["id"] for r in releases if r for lab in r["labels"]}
    artists = {a["id"] for r in releases if r for a in r["artists"]}
    assert len(labels) > 200 and len(artists) > 200
    styles = {s for r in releases if r for s in r["styles"]}
    assert len(styles) >= 50
    haves = [r["community"]["have"] for r in releases if r]
    assert max(haves) > 10 * statistics.median(haves)  # long tail


def test_release_returns_a_copy_and_base_url_rewrites(cat: Catalogue) -> None:
    first = cat.release(2)
    assert first is not None
    first["title"] = "changed"
    again = cat.release(2)
    assert again is not None and again["title"] != "changed"
    local = cat.release(2, base_url="http://127.0.0.1:9/")
    assert local is not None
    assert local["resource_url"] == "http://127.0.0.1:9/releases/2"
    assert API_ROOT not in str(local)


def test_delete_release(cat: Catalogue) -> None:
    small = Catalogue(releases=1100, seed=1)
    rid = small.release_ids()[1050]
    assert small.release(rid) is not None
    small.delete_release(rid)
    assert small.is_deleted(rid)
    assert small.release(rid) is None
    assert small.marketplace_stats(rid) is None
    assert small.basic_information(rid)["id"] == rid  # collection snapshots survive


def test_demo_user_collection(cat: Catalogue) -> None:
    demo = cat.users["demo"]
    items = demo.items
    assert len(items) == DEMO_ITEMS
    assert len({it["instance_id"] for it in items}) == len(items)
    assert {it["id"] for it in items} <= set(cat.release_ids())
    folders = {it["folder_id"] for it in items}
    assert len(folders) >= 2 and 0 not in folders
    ratings = [it["rating"] for it in items]
    assert set(ratings) == {0, 1, 2, 3, 4, 5}
    assert 0.3 < ratings.count(0) / len(ratings) < 0.9
    dates = sorted(dt.datetime.fromisoformat(it["date_added"]) for it in items)
    assert (dates[-1] - dates[0]).days > 365 * 5
    with_notes = [it for it in items if "notes" in it]
    assert 0 < len(with_notes) < len(items)
    assert {"field_id", "value"} == set(with_notes[0]["notes"][0])
    info = items[0]["basic_information"]
    assert {"id", "title", "year", "formats", "labels", "artists", "genres", "styles"} <= set(info)
    assert info["id"] == items[0]["id"]


def test_user_is_deterministic_created_once_and_case_insensitive(cat: Catalogue) -> None:
    alice = cat.user("alice", items=37)
    assert len(alice.items) == 37
    assert cat.user("alice", items=999) is alice
    assert cat.find_user("ALICE") is alice
    assert cat.users["alice"] is alice
    other = Catalogue(releases=5000, seed=0).user("alice", items=37)
    assert [it["instance_id"] for it in other.items] == [it["instance_id"] for it in alice.items]
    bob = cat.user("bob", items=37)
    assert [it["id"] for it in bob.items] != [it["id"] for it in alice.items]
    assert cat.find_user("nobody") is None


def test_user_bigger_than_catalogue_repeats_releases() -> None:
    tiny = Catalogue(releases=20)
    user = tiny.user("hoarder", items=50)
    assert len(user.items) == 50
    assert len({it["instance_id"] for it in user.items}) == 50


def test_add_and_remove_items(cat: Catalogue) -> None:
    carol = cat.user("carol", items=20)
    before = list(carol.items)
    newest = max(it["date_added"] for it in before)
    added = carol.add_items(5)
    assert len(added) == 5 and len(carol.items) == 25
    assert all(it["date_added"] > newest for it in added)
    assert {it["instance_id"] for it in added}.isdisjoint({it["instance_id"] for it in before})
    gone = [before[0]["instance_id"], before[3]["instance_id"]]
    assert carol.remove_items(gone) == 2
    assert len(carol.items) == 23
    assert not {it["instance_id"] for it in carol.items} & set(gone)
    assert carol.remove_items([123]) == 0


def test_folders_and_value(cat: Catalogue) -> None:
    demo = cat.user("demo")
    folders = demo.folder_list()
    assert folders[0]["id"] == 0 and folders[0]["name"] == "All"
    assert folders[0]["count"] == len(demo.items) == sum(f["count"] for f in folders[1:])
    assert folders[1]["id"] == 1 and folders[1]["name"] == "Uncategorized"
    assert demo.folder_items(123456789) is None
    value = cat.collection_value(demo)
    assert set(value) == {"minimum", "median", "maximum"}
    numbers = [
        float(value[k].lstrip("$").replace(",", "")) for k in ("minimum", "median", "maximum")
    ]
    assert numbers == sorted(numbers) and numbers[0] > 0


# ---- the demo collection: the dump's records, unchanged ----------------------------------------


def _dump_records() -> dict[int, dict[str, Any]]:
    """The bundled sample parsed here with xml.etree, independently of the catalogue's parser."""
    path = Path(toolkit.discogs.__file__).parent / "data" / "discogs_20200806_releases.xml.gz"
    records: dict[int, dict[str, Any]] = {}
    with gzip.open(path) as xml:
        for release in ET.parse(xml).getroot().iter("release"):
            released = release.findtext("released") or ""
            records[int(release.attrib["id"])] = {
                "title": release.findtext("title"),
                "year": int(released[:4]) if released[:4].isdigit() else 0,
                "artists": [
                    (int(a.findtext("id") or 0), a.findtext("name"))
                    for a in release.findall("artists/artist")
                ],
                "labels": [
                    (int(lab.attrib["id"]), lab.attrib["name"], lab.attrib["catno"])
                    for lab in release.findall("labels/label")
                ],
                "genres": [g.text for g in release.findall("genres/genre")],
                "styles": [s.text for s in release.findall("styles/style")],
                "tracklist": [
                    (
                        t.findtext("position") or "",
                        t.findtext("title") or "",
                        t.findtext("duration") or "",
                    )
                    for t in release.findall("tracklist/track")
                ],
            }
    return records


def _as_record(release: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": release["title"],
        "year": release["year"],
        "artists": [(a["id"], a["name"]) for a in release["artists"]],
        "labels": [(lab["id"], lab["name"], lab["catno"]) for lab in release["labels"]],
        "genres": release["genres"],
        "styles": release["styles"],
        "tracklist": [(t["position"], t["title"], t["duration"]) for t in release["tracklist"]],
    }


def test_demo_collection_is_the_dump_records_unchanged() -> None:
    dump = _dump_records()
    catalogue = Catalogue()  # what `make demo` and the notebooks serve
    demo = catalogue.user("demo")
    assert len(demo.items) == DEMO_ITEMS
    owned = {it["id"] for it in demo.items}
    wanted = {w["id"] for w in demo.wants}
    # every real release is owned or wanted, never both, and nothing else is
    assert owned | wanted == set(dump) and not owned & wanted
    assert 0 < len(wanted) < 0.05 * len(dump)
    for rid in sorted(owned):
        release = catalogue.release(rid)
        assert release is not None and release["id"] == rid
        assert _as_record(release) == dump[rid], rid
    for item in demo.items:
        info = item["basic_information"]
        expected = dump[item["id"]]
        assert info["id"] == item["id"]
        assert info["title"] == expected["title"] and info["year"] == expected["year"]
        assert [(a["id"], a["name"]) for a in info["artists"]] == expected["artists"]
        assert [(x["id"], x["name"], x["catno"]) for x in info["labels"]] == expected["labels"]
        assert (info["genres"], info["styles"]) == (expected["genres"], expected["styles"])


def test_demo_owner_data_is_plausible(cat: Catalogue) -> None:
    demo = cat.user("demo")
    items = demo.items
    ratings = [it["rating"] for it in items]
    rated = [r for r in ratings if r]
    assert ratings.count(0) > 0.6 * len(items)  # most items unrated ...
    assert statistics.mean(rated) > 3.7 and rated.count(5) > rated.count(1) * 5  # ... rated high
    dates = [dt.datetime.fromisoformat(it["date_added"]) for it in items]
    assert dates == sorted(dates)  # oldest first, like the API's default order
    per_year: dict[int, int] = {}
    for moment in dates:
        per_year[moment.year] = per_year.get(moment.year, 0) + 1
    assert len(per_year) >= 12
    counts = list(per_year.values())
    assert max(counts) > 4 * min(counts)  # uneven growth, not a steady ~N a year
    assert statistics.pstdev(counts) > 0.3 * statistics.mean(counts)
    for item, moment in zip(items, dates, strict=True):
        assert moment.year >= item["basic_information"]["year"]  # never added before it came out
    copies: dict[int, int] = {}
    for item in items:
        copies[item["id"]] = copies.get(item["id"], 0) + 1
    assert 5 <= sum(1 for n in copies.values() if n > 1) < 0.05 * len(copies)
    folder_names = {f["id"]: f["name"] for f in demo.folders}
    for item in items:
        if folder_names[item["folder_id"]] == "CDs":
            assert item["basic_information"]["formats"][0]["name"] in ("CD", "CDr")
    assert len({it["folder_id"] for it in items}) == len(demo.folders)
    assert 0.1 < sum(1 for it in items if "notes" in it) / len(items) < 0.4
    assert [it["instance_id"] for it in items] == sorted({it["instance_id"] for it in items})


def test_smaller_catalogue_demo_owns_only_its_real_releases() -> None:
    small = Catalogue(releases=40)
    demo = small.user("demo")
    assert {it["id"] for it in demo.items} | {w["id"] for w in demo.wants} == set(
        small.release_ids()
    )
    bigger = Catalogue(releases=3000)
    assert all(it["id"] < bigger.first_generated_id for it in bigger.user("demo").items)
