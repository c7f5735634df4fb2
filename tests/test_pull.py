"""pull_collection against the simulator on 127.0.0.1: full pulls, re-pulls, sync, faults, SIGKILL.

Tables are compared without ``fetched_at`` / ``last_attempt``: they are wall-clock stamps of when data
arrived, the only columns an interrupted and an uninterrupted pull may legitimately differ in.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import toolkit.history
import toolkit.pull
from toolkit.collection import TABLES, CollectionDataError, create_schema, load_collection
from toolkit.collection.schema import CHILD_TABLES
from toolkit.concurrency import ConcurrencyManager, Task, TaskResult
from toolkit.config import ENV_FILE_VARIABLE, Settings
from toolkit.db import Database
from toolkit.discogs.client import DiscogsClient
from toolkit.discogs.simdata import SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator, FaultPlan, RequestRecord
from toolkit.errors import DatabaseError, DatabaseLockedError, DiscogsNotFoundError
from toolkit.history import Extras
from toolkit.pull import (
    PullReport,
    load_saved_pull,
    pull_collection,
    rate_bound_seconds,
    save_pull,
)
from toolkit.ratelimit import SlidingWindowLimiter
from toolkit.testing import WAIT, wait_until

ROOT = Path(__file__).resolve().parents[1]
STAMPS = {"fetched_at", "last_attempt"}
#: A record of each pull (tests/test_history.py): two pulls never write the same rows there.
HISTORY = {"pulls", "item_events", "collection_value", "market_stats"}
FAST = 100_000


@pytest.fixture(scope="module")
def catalogue() -> SimCatalogue:
    return SimCatalogue(releases=3000, seed=7)


def simulator(catalogue: SimCatalogue, **kwargs: Any) -> DiscogsSimulator:
    options: dict[str, Any] = {
        "rate_limit": FAST,
        "rate_limit_unauthenticated": FAST,
        "latency": 0.0,
        "jitter": 0.0,
    }
    options.update(kwargs)
    return DiscogsSimulator(catalogue, **options)


@pytest.fixture
def sim(catalogue: SimCatalogue) -> Iterator[DiscogsSimulator]:
    with simulator(catalogue) as server:
        yield server


def client_for(
    server: DiscogsSimulator, cache: Path, *, window: float = 60.0, **kwargs: Any
) -> DiscogsClient:
    """A client with its own HTTP cache file and a limiter that is not the point of the test."""
    limit = min(server.rate_limit, FAST)
    return DiscogsClient(
        "",
        base_url=server.url,
        settings=Settings(data_dir=cache.parent),
        cache_path=cache,
        limiter=SlidingWindowLimiter(limit, window),
        **kwargs,
    )


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (sorted, stamps and the pulls' own history left out), read from the file."""
    db = Database.connect(path, read_only=True)
    try:
        tables: dict[str, list[tuple[Any, ...]]] = {
            "schema_version": db.fetchall("SELECT * FROM schema_version")
        }
        for table, spec in TABLES.items():
            if table in HISTORY:
                continue
            columns = ", ".join(name for name, _ in spec if name not in STAMPS)
            tables[table] = sorted(db.fetchall(f"SELECT {columns} FROM {table}"), key=repr)
        return tables
    finally:
        db.close()


def pull(username: str, db: Path | Database, client: DiscogsClient, **kwargs: Any) -> PullReport:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("per_page", 25)
    kwargs.setdefault("concurrency", 4)
    return pull_collection(username, db, client=client, **kwargs)


def release_ids(records: Iterable[RequestRecord]) -> list[int]:
    """The release ids of the ``/releases/{id}`` requests among ``records``, in log order."""
    return [int(r.path.rsplit("/", 1)[1]) for r in records if r.path.startswith("/releases/")]


def releases_requested(server: DiscogsSimulator) -> list[int]:
    return release_ids(server.request_log)


def answered_releases(server: DiscogsSimulator) -> set[int]:
    """Releases the server answered 200 (recorded just before the answer is sent)."""
    return {
        int(r.path.rsplit("/", 1)[1])
        for r in server.request_log
        if r.path.startswith("/releases/") and r.status == 200
    }


# ---------------------------------------------------------------------------------- basics


def test_rate_bound_formula() -> None:
    assert rate_bound_seconds(0, 60, 60.0) == 0.0
    assert rate_bound_seconds(60, 60, 60.0) == 0.0
    assert rate_bound_seconds(61, 60, 60.0) == 60.0
    assert rate_bound_seconds(1515, 900, 60.0) == 60.0
    assert rate_bound_seconds(181, 60, 10.0) == 30.0


def test_full_pull_lands_every_item_and_release_with_correct_joins(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path
) -> None:
    user = catalogue.user("full", items=110)
    with client_for(sim, tmp_path / "http.sqlite") as client:
        report = pull("full", tmp_path / "c.duckdb", client)
    release_ids = {int(item["id"]) for item in user.items}
    assert report.items == len(user.items) == 110
    assert report.pages == math.ceil(110 / 25)
    assert report.releases_fetched == len(release_ids)
    assert report.failures == 0 and report.complete
    # One more: /collection/fields, the names of the custom fields (every pull, then cached).
    assert report.network_requests == report.pages + len(release_ids) + 1
    assert sorted(releases_requested(sim)) == sorted(release_ids)  # each exactly once
    assert report.elapsed_seconds >= report.rate_bound_seconds == 0.0

    db = Database.connect(tmp_path / "c.duckdb", read_only=True)
    try:
        items = db.fetchall(
            "SELECT instance_id, release_id, rating, folder_id FROM collection_items"
        )
        assert sorted(items) == sorted(
            (i["instance_id"], i["id"], i["rating"], i["folder_id"]) for i in user.items
        )
        detailed = {
            r
            for (r,) in db.fetchall("SELECT release_id FROM releases WHERE fetched_at IS NOT NULL")
        }
        assert detailed == release_ids
        for rid in sorted(release_ids)[:15]:
            expected = catalogue.release(rid)
            assert expected is not None
            title, year = db.fetchone(
                "SELECT title, year FROM releases WHERE release_id = ?", [rid]
            ) or (None, None)
            assert title == expected["title"]
            assert year == (expected.get("year") or None)
            genres = {
                g
                for (g,) in db.fetchall(
                    "SELECT genre FROM release_genres WHERE release_id = ?", [rid]
                )
            }
            assert genres == set(expected.get("genres") or [])
            artists = db.fetchall(
                "SELECT a.name FROM release_artists ra JOIN artists a ON a.artist_id = ra.artist_id "
                "WHERE ra.release_id = ? AND ra.role IS NULL ORDER BY ra.position",
                [rid],
            )
            assert [name for (name,) in artists] == [
                a["name"] for a in expected["artists"] if a.get("id")
            ]
            tracks = db.scalar("SELECT count(*) FROM tracks WHERE release_id = ?", [rid])
            assert tracks == len(expected.get("tracklist") or [])
        # The view joins every item to its release.
        assert db.scalar("SELECT count(*) FROM collection WHERE title IS NULL") == 0
        assert db.scalar("SELECT count(*) FROM collection") == 110
    finally:
        db.close()


def test_fields_are_stored_while_the_details_travel(
    catalogue: SimCatalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The custom-fields answer is written when it arrives, not after the last release: that
    write would otherwise wait after the last answer too. It is asked once, stored once."""
    user = catalogue.user("fields", items=40)
    assert any(item.get("notes") for item in user.items)  # the items use custom fields
    path = tmp_path / "c.duckdb"
    detailed_then: list[int] = []
    real = toolkit.history.store_fields

    def spy(client: DiscogsClient, db: Database, *args: Any) -> None:
        detailed_then.append(
            db.scalar("SELECT count(*) FROM releases WHERE fetched_at IS NOT NULL")
        )
        real(client, db, *args)

    monkeypatch.setattr(toolkit.pull, "store_fields", spy)
    with simulator(catalogue, latency=0.05) as server, client_for(server, tmp_path / "h") as client:
        report = pull("fields", path, client, concurrency=2, batch_size=5)
        assert server.stats().by_kind.get("fields", 0) == 1
    distinct = len({item["id"] for item in user.items})
    assert report.releases_fetched == distinct
    assert len(detailed_then) == 1 and detailed_then[0] < distinct
    with Database.connect(path, read_only=True) as db:
        names = {name for (name,) in db.fetchall("SELECT name FROM collection_fields")}
    assert names == {"Media Condition", "Sleeve Condition", "Notes"}


@pytest.mark.parametrize("error", [RuntimeError, DatabaseError])
def test_a_failing_job_beside_the_details_does_not_cut_them_short(
    error: type[Exception],
    catalogue: SimCatalogue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error storing the fields answer mid-details is raised once every release is written,
    and the pull's record is not completed (not even with the last write)."""
    user = catalogue.user(f"besides-{error.__name__}", items=40)

    def broken(*args: Any) -> None:
        raise error("fields store broke")

    monkeypatch.setattr(toolkit.pull, "store_fields", broken)
    path = tmp_path / "c.duckdb"
    with (
        simulator(catalogue, latency=0.05) as server,
        client_for(server, tmp_path / "h") as client,
        pytest.raises(error, match="fields store broke"),
    ):
        pull(user.name, path, client, concurrency=2, batch_size=5)
    with Database.connect(path, read_only=True) as db:
        detailed = db.scalar("SELECT count(*) FROM releases WHERE fetched_at IS NOT NULL")
        completed = db.fetchall("SELECT complete FROM pulls")
    assert detailed == len({item["id"] for item in user.items})
    assert completed == [(False,)]


def test_a_pull_restores_the_callers_duckdb_threads(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path
) -> None:
    """The pull writes on one DuckDB thread (small transactions), then puts the caller's back."""
    catalogue.user("threads", items=30)
    seen: list[int] = []
    with Database.connect(tmp_path / "c.duckdb") as db:
        db.execute("SET threads = 2")
        real = db.execute

        def spy(query: Any, params: Any = ()) -> None:
            if isinstance(query, str) and query.startswith("DELETE FROM tracks"):
                seen.append(int(db.scalar("SELECT current_setting('threads')")))
            real(query, params)

        db.execute = spy  # type: ignore[method-assign]
        with client_for(sim, tmp_path / "http.sqlite") as client:
            pull("threads", db, client)
        assert seen and set(seen) == {1}
        assert db.scalar("SELECT current_setting('threads')") == 2
        with (  # a pull that fails
            client_for(sim, tmp_path / "http3.sqlite") as client,
            pytest.raises(DiscogsNotFoundError),
        ):
            pull("nobody-at-all", db, client)
        assert db.scalar("SELECT current_setting('threads')") == 2
    # A connection whose configuration is locked keeps its threads and still pulls.
    with Database.connect(tmp_path / "locked.duckdb") as db:
        db.execute("SET threads = 2")
        db.execute("SET lock_configuration = true")
        with client_for(sim, tmp_path / "http2.sqlite") as client:
            report = pull("threads", db, client)
        assert report.complete and db.scalar("SELECT current_setting('threads')") == 2


def test_rated_items_are_fetched_first(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path
) -> None:
    user = catalogue.user("ranked", items=80)
    with client_for(sim, tmp_path / "http.sqlite") as client:
        pull("ranked", tmp_path / "c.duckdb", client, concurrency=1)
    best: dict[int, int] = {}
    for item in user.items:
        best[item["id"]] = max(best.get(item["id"], 0), item["rating"])
    order = [best[rid] for rid in releases_requested(sim)]
    assert order == sorted(order, reverse=True)
    assert order[0] > 0 and order[-1] == 0


def test_second_pull_sends_no_release_requests(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path
) -> None:
    catalogue.user("twice", items=90)
    path = tmp_path / "c.duckdb"
    with client_for(sim, tmp_path / "http.sqlite") as client:
        first = pull("twice", path, client)
    before = snapshot(path)
    sim.reset_counters()
    # A new client with an empty HTTP cache: only the database can know what is stored.
    with client_for(sim, tmp_path / "other.sqlite") as client:
        second = pull("twice", path, client)
    assert sim.stats().by_kind.get("release", 0) == 0
    assert second.releases_fetched == 0
    assert second.releases_skipped == first.releases_fetched
    assert second.network_requests == second.pages
    assert snapshot(path) == before


def test_sqlite_database_gives_the_same_tables(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path
) -> None:
    catalogue.user("lite", items=60)
    with client_for(sim, tmp_path / "http.sqlite") as client:
        pull("lite", tmp_path / "c.duckdb", client)
        pull("lite", tmp_path / "c.sqlite", client)
    duck, lite = snapshot(tmp_path / "c.duckdb"), snapshot(tmp_path / "c.sqlite")
    assert duck.keys() == lite.keys()
    for table in duck:
        assert len(duck[table]) == len(lite[table]), table
    assert len(lite["collection_items"]) == 60


def test_removed_items_disappear_and_new_ones_appear(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path
) -> None:
    user = catalogue.user("sync", items=70)
    path = tmp_path / "c.duckdb"
    with client_for(sim, tmp_path / "a.sqlite") as client:
        pull("sync", path, client)
    gone = [item["instance_id"] for item in user.items[:7]]
    assert user.remove_items(gone) == 7
    added = user.add_items(4)
    sim.reset_counters()
    # The same warm HTTP cache, seconds later: the listing must still come from the server.
    with client_for(sim, tmp_path / "a.sqlite") as client:
        report = pull("sync", path, client)
    assert sim.stats().by_kind.get("collection", 0) == report.pages == math.ceil(67 / 25)
    assert report.items_removed == 7
    assert report.items == 67
    with Database.connect(path, read_only=True) as db:
        ids = {i for (i,) in db.fetchall("SELECT instance_id FROM collection_items")}
    assert ids == {item["instance_id"] for item in user.items}
    assert not ids & set(gone)
    assert {item["instance_id"] for item in added} <= ids


def test_partial_listing_never_removes_items(catalogue: SimCatalogue, tmp_path: Path) -> None:
    user = catalogue.user("partial", items=60)
    path = tmp_path / "c.duckdb"
    with simulator(catalogue) as clean, client_for(clean, tmp_path / "a.sqlite") as client:
        pull("partial", path, client, details=False)
    before = snapshot(path)
    user.remove_items([item["instance_id"] for item in user.items[:5]])
    plan = FaultPlan(error_rate=0.5, statuses=(503,))
    # A seed where request 1 (page 1) succeeds and request 2 (page 2) fails: deterministic.
    seed = next(s for s in range(10_000) if plan.decide(1, s) is None and plan.decide(2, s))
    with (
        simulator(catalogue, faults=plan, seed=seed) as faulty,
        client_for(faulty, tmp_path / "b.sqlite", max_retries=0) as client,
    ):
        report = pull("partial", path, client, details=False, concurrency=1)
    assert report.pages_failed >= 1 and not report.complete
    assert report.items_removed == 0
    assert snapshot(path)["collection_items"] == before["collection_items"]


def test_stale_cached_pages_never_mix_with_fresh_ones(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    """Pages cached by an earlier, interrupted pull must not be combined with today's listing."""
    user = catalogue.user("mixed", items=100)
    path, cache = tmp_path / "c.duckdb", tmp_path / "http.sqlite"
    with simulator(catalogue) as server:
        with client_for(server, cache) as client:
            for page in (1, 2):  # an earlier pull listed two pages, then stopped
                client.get_collection_page("mixed", 0, page, 25)
        # The collection changes: 10 items go, so every later item moves up the listing.
        gone = [item["instance_id"] for item in user.items[:10]]
        user.remove_items(gone)
        with client_for(server, cache) as client:
            report = pull("mixed", path, client)
    assert report.complete and report.items == 90
    with Database.connect(path, read_only=True) as db:
        ids = {i for (i,) in db.fetchall("SELECT instance_id FROM collection_items")}
    assert ids == {item["instance_id"] for item in user.items}


def test_page_failures_are_counted_per_page_and_the_batch_keeps_the_rest(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    user = catalogue.user("pages", items=125)  # 5 pages of 25
    plan = FaultPlan(error_rate=0.5, statuses=(503,), kinds=frozenset({"collection"}))
    # Requests arrive in page order with one worker: pages 2 and 3 fail, 1, 4 and 5 answer.
    seed = next(
        s
        for s in range(100_000)
        if [plan.decide(n, s, "collection") is None for n in range(1, 6)]
        == [True, False, False, True, True]
    )
    with (
        simulator(catalogue, faults=plan, seed=seed) as server,
        client_for(server, tmp_path / "a.sqlite", max_retries=0) as client,
    ):
        report = pull("pages", tmp_path / "c.duckdb", client, details=False, concurrency=1)
    assert report.pages == 5 and report.pages_failed == 2 and not report.complete
    with Database.connect(tmp_path / "c.duckdb", read_only=True) as db:
        ids = {i for (i,) in db.fetchall("SELECT instance_id FROM collection_items")}
    with simulator(catalogue) as clean, client_for(clean, tmp_path / "b.sqlite") as client:
        expected = {
            item["instance_id"]
            for page in (1, 4, 5)
            for item in client.get_collection_page("pages", 0, page, 25)["releases"]
        }
    assert len(user.items) == 125 and ids == expected


def test_retries_come_from_the_settings_or_the_argument_never_the_environment(
    catalogue: SimCatalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = catalogue.user("retry", items=6)
    distinct = len({item["id"] for item in user.items})
    plan = FaultPlan(error_rate=1.0, statuses=(500,), kinds=frozenset({"release"}))
    # The library never reads the environment: only the settings passed in count.
    monkeypatch.setenv("CONCURRENCY_RETRIES", "5")
    settings = Settings(concurrency_retries=0, data_dir=tmp_path)
    with simulator(catalogue, faults=plan) as server:
        with client_for(server, tmp_path / "a.sqlite", max_retries=0) as client:
            report = pull("retry", tmp_path / "a.duckdb", client, concurrency=2, settings=settings)
        assert report.failures == distinct
        assert len(releases_requested(server)) == distinct  # concurrency_retries=0: one attempt
        server.reset_counters()
        with client_for(server, tmp_path / "b.sqlite", max_retries=0) as client:
            report = pull("retry", tmp_path / "b.duckdb", client, concurrency=2, retries=1)
        assert len(releases_requested(server)) == 2 * distinct
        server.reset_counters()
        with client_for(server, tmp_path / "c.sqlite", max_retries=0) as client:
            report = pull("retry", tmp_path / "c.duckdb", client, concurrency=2)
        # No settings: Settings()'s two retries, not the environment's five.
        assert len(releases_requested(server)) == 3 * distinct == 3 * report.failures


def test_concurrency_timeout_bounds_each_attempt(catalogue: SimCatalogue, tmp_path: Path) -> None:
    """An answer slower than the attempt timeout fails the attempt; the last one is recorded."""
    user = catalogue.user("slow", items=4)
    distinct = {item["id"] for item in user.items}
    # Attempts get concurrency_timeout plus the client's rate window (its most wait for a slot):
    # 0.1 + 0.05 s, far below the server's 1 s, so no attempt can ever finish in time.
    settings = Settings(concurrency_timeout=0.1, concurrency_retries=0, data_dir=tmp_path)
    path = tmp_path / "c.duckdb"
    with (
        simulator(catalogue, latency=1.0) as server,
        client_for(server, tmp_path / "a.sqlite", window=0.05) as client,
    ):
        report = pull("slow", path, client, concurrency=len(distinct), settings=settings)
    assert report.items == 4 and report.releases_fetched == 0
    assert report.failures == len(distinct) and report.permanent_failures == 0
    with Database.connect(path, read_only=True) as db:
        rows = db.fetchall("SELECT release_id, error, permanent FROM pull_failures")
    assert {r[0] for r in rows} == distinct
    assert all(r[1].startswith("TaskTimeoutError") and "0.15 s" in r[1] and not r[2] for r in rows)


def test_404_is_recorded_as_permanent_and_not_retried(tmp_path: Path) -> None:
    catalogue = SimCatalogue(releases=1500, seed=3)
    user = catalogue.user("gone", items=40)
    deleted = user.items[5]["id"]
    catalogue.delete_release(deleted)
    path = tmp_path / "c.duckdb"
    with simulator(catalogue) as server:
        with client_for(server, tmp_path / "a.sqlite") as client:
            report = pull("gone", path, client)
        assert report.failures == 1 and report.permanent_failures == 1
        with Database.connect(path, read_only=True) as db:
            rows = db.fetchall("SELECT release_id, permanent, attempts, error FROM pull_failures")
        assert [(r[0], r[1], r[2]) for r in rows] == [(deleted, True, 1)]
        assert "404" in rows[0][3] or "not found" in rows[0][3].lower()
        server.reset_counters()
        with client_for(server, tmp_path / "b.sqlite") as client:
            again = pull("gone", path, client)
        assert server.stats().by_kind.get("release", 0) == 0
        assert again.failures == 0 and again.items == 40


def test_malformed_releases_are_recorded_and_the_rest_is_written(tmp_path: Path) -> None:
    catalogue = SimCatalogue(releases=1500, seed=5)
    user = catalogue.user("odd", items=30)
    ids = sorted({item["id"] for item in user.items})
    rejected, unloadable = ids[3], ids[11]
    # The client refuses the first answer outright; the second passes the client's checks (a
    # list) but not the loader's (its entries are not objects), in the middle of a batch.
    catalogue.override_release(rejected, {"id": rejected, "title": "x", "artists": "x"})
    catalogue.override_release(unloadable, {"id": unloadable, "title": "y", "artists": ["y"]})
    path = tmp_path / "c.duckdb"
    cache = tmp_path / "http.sqlite"  # one HTTP cache file: the unloadable answer is cached
    with simulator(catalogue) as server:
        with client_for(server, cache) as client:
            report = pull("odd", path, client, batch_size=50)
        assert report.failures == 2 and report.permanent_failures == 0
        assert report.releases_fetched == len(ids) - 2
        with Database.connect(path, read_only=True) as db:
            failures = db.fetchall("SELECT release_id, attempts, permanent FROM pull_failures")
            stored = {
                r
                for (r,) in db.fetchall(
                    "SELECT release_id FROM releases WHERE fetched_at IS NOT NULL"
                )
            }
        assert sorted(failures) == [(rejected, 1, False), (unloadable, 1, False)]
        assert stored == set(ids) - {rejected, unloadable}

        # Not permanent: the next pull asks the server (not the cache, which holds the copy the
        # loader rejected) for exactly those two again, and now they are fine.
        catalogue.override_release(rejected, None)
        catalogue.override_release(unloadable, None)
        server.reset_counters()
        with client_for(server, cache) as client:
            again = pull("odd", path, client)
        assert sorted(releases_requested(server)) == sorted([rejected, unloadable])
    assert again.failures == 0 and again.releases_fetched == 2 and again.complete
    with Database.connect(path, read_only=True) as db:
        assert db.scalar("SELECT count(*) FROM pull_failures") == 0
        assert db.scalar("SELECT count(*) FROM releases WHERE fetched_at IS NOT NULL") == len(ids)


def test_a_merged_release_is_stored_under_the_id_asked_for(tmp_path: Path) -> None:
    """Discogs answers a release merged into another with the survivor's body (another id)."""
    catalogue = SimCatalogue(releases=1500, seed=6)
    user = catalogue.user("merged", items=20)
    asked = user.items[0]["id"]
    survivor = next(r for r in catalogue.release_ids() if r not in {i["id"] for i in user.items})
    body = catalogue.release(survivor)
    assert body is not None
    catalogue.override_release(asked, body)
    path = tmp_path / "c.duckdb"
    with simulator(catalogue) as server:
        with client_for(server, tmp_path / "a.sqlite") as client:
            first = pull("merged", path, client)
        assert first.failures == 0
        with Database.connect(path, read_only=True) as db:
            row = db.fetchone(
                "SELECT title, fetched_at IS NOT NULL FROM releases WHERE release_id = ?", [asked]
            )
        assert row == (body["title"], True)
        server.reset_counters()
        with client_for(server, tmp_path / "b.sqlite") as client:
            second = pull("merged", path, client)
        assert releases_requested(server) == [] and second.releases_fetched == 0


def test_transient_failures_are_recorded_then_retried_next_pull(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    catalogue.user("flaky", items=40)
    path = tmp_path / "c.duckdb"
    plan = FaultPlan(error_rate=0.6, statuses=(500,))
    # Request 1 is the only page; some releases then fail all 3 attempts (client retries off).
    seed = next(s for s in range(10_000) if plan.decide(1, s) is None)
    with (
        simulator(catalogue, faults=plan, seed=seed) as faulty,
        client_for(faulty, tmp_path / "a.sqlite", max_retries=0) as client,
    ):
        report = pull("flaky", path, client, per_page=100, concurrency=1)
    assert report.failures > 0 and report.permanent_failures == 0
    with Database.connect(path, read_only=True) as db:
        failed = {
            r: (attempts, permanent)
            for r, attempts, permanent in db.fetchall(
                "SELECT release_id, attempts, permanent FROM pull_failures"
            )
        }
        stored = len(db.fetchall("SELECT 1 FROM releases WHERE fetched_at IS NOT NULL"))
    assert len(failed) == report.failures
    assert all(v == (1, False) for v in failed.values())
    assert stored == report.releases_fetched
    with simulator(catalogue) as clean, client_for(clean, tmp_path / "b.sqlite") as client:
        retry = pull("flaky", path, client)
        assert sorted(releases_requested(clean)) == sorted(failed)
    assert retry.releases_fetched == len(failed) and retry.failures == 0
    with Database.connect(path, read_only=True) as db:
        assert db.scalar("SELECT count(*) FROM pull_failures") == 0


def test_malformed_items_are_reported_and_nothing_stored_is_lost(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path
) -> None:
    user = catalogue.user("bent", items=60)
    path = tmp_path / "c.duckdb"
    with client_for(sim, tmp_path / "a.sqlite") as client:
        assert pull("bent", path, client).complete
    before = snapshot(path)
    # Two items go bad on the server (pages 1 and 3 of 25), and two others leave the collection.
    first, third = user.items[3], user.items[55]
    first["rating"] = "--5"
    third["basic_information"] = {**third["basic_information"], "artists": "x"}
    user.remove_items([user.items[10]["instance_id"], user.items[30]["instance_id"]])
    with client_for(sim, tmp_path / "b.sqlite") as client:
        report = pull("bent", path, client)
    with client_for(sim, tmp_path / "c.sqlite") as client:
        where = {
            item["instance_id"]: f"page {page} items[{index}]"
            for page in (1, 2, 3)
            for index, item in enumerate(
                client.get_collection_page("bent", 0, page, 25)["releases"]
            )
        }
    lines = sorted(report.malformed_items)
    assert len(lines) == 2 and not report.complete
    bad_rating, bad_artists = sorted(lines, key=lambda line: "rating" not in line)
    assert bad_rating.startswith(f"{where[first['instance_id']]}.rating ")
    assert f"instance {first['instance_id']}" in bad_rating and "'--5'" in bad_rating
    assert bad_artists.startswith(f"{where[third['instance_id']]}.basic_information.artists")
    assert report.pages_failed == 0 and report.items == 56
    assert report.as_dict()["items_malformed"] == 2
    # An incomplete load removes nothing, and the bad items keep what was stored for them.
    assert report.items_removed == 0
    after = snapshot(path)
    for table, rows in before.items():
        assert set(rows) <= set(after[table]), table
    save_pull(report, tmp_path / "saved")
    loaded = load_saved_pull(tmp_path / "saved")
    assert (
        loaded == report and loaded is not None and loaded.malformed_items == report.malformed_items
    )


def test_cli_pull_names_each_malformed_item_on_stderr(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    user = catalogue.user("clibent", items=30)
    bad = user.items[2]
    bad["rating"] = "--5"
    with simulator(catalogue) as server:
        done = subprocess.run(
            [*_pull_cmd(tmp_path / "c.duckdb", "clibent"), "--no-details"],
            env=_cli_env(server, tmp_path / "data"),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "malformed" in line]
    assert len(lines) == 1 and ".rating (instance " in lines[0] and "'--5'" in lines[0]
    assert f"instance {bad['instance_id']}," in lines[0]
    assert "items_malformed" in done.stdout


class HookedClient(DiscogsClient):
    """A real client that runs ``hook(kind, number)`` after its n-th answer of a kind arrives.

    Lets a test change the database at an exact point of a pull (after page 2 arrived, after the
    5th release arrived) without racing the pull's threads.
    """

    def __init__(self, *args: Any, hook: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hook = hook
        self.counts = {"page": 0, "release": 0}
        self.counts_lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self.counts_lock:
            self.counts[kind] += 1
            number = self.counts[kind]
        self.hook(kind, number)

    def get_collection_page(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        data = super().get_collection_page(*args, **kwargs)
        self._count("page")
        return data

    def get_release(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        data = super().get_release(*args, **kwargs)
        self._count("release")
        return data


def hooked_client(server: DiscogsSimulator, cache: Path, hook: Any) -> HookedClient:
    return HookedClient(
        "",
        base_url=server.url,
        settings=Settings(data_dir=cache.parent),
        cache_path=cache,
        limiter=SlidingWindowLimiter(FAST, 60.0),
        hook=hook,
    )


@pytest.mark.parametrize("when", [("page", 2), ("release", 5)])
def test_a_table_gone_mid_pull_stops_it_with_a_database_error(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path, when: tuple[str, int]
) -> None:
    """Schema damage mid-pull (a table renamed away) is a DatabaseError, not a failed page."""
    user = catalogue.user(f"damaged-{when[0]}", items=75)
    path = tmp_path / "c.duckdb"
    with client_for(sim, tmp_path / "a.sqlite") as client:
        pull(user.name, path, client, details=False)
    before = snapshot(path)
    user.add_items(40)
    db = Database.connect(path)

    def damage(kind: str, number: int) -> None:
        if (kind, number) == when:
            db.execute("ALTER TABLE release_genres RENAME TO release_genres_away")

    try:
        with (
            hooked_client(sim, tmp_path / "b.sqlite", damage) as client,
            pytest.raises(DatabaseError, match="release_genres") as raised,
        ):
            pull(user.name, db, client, concurrency=2, per_page=25)
        assert not isinstance(raised.value, CollectionDataError)
        db.execute("ALTER TABLE release_genres_away RENAME TO release_genres")
    finally:
        db.close()
    after = snapshot(path)
    for table, rows in before.items():
        assert set(rows) <= set(after[table]), table


def _lock_holder(path: Path) -> subprocess.Popen[str]:
    """Another process holding sqlite's write lock on ``path`` until its stdin closes."""
    code = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_file_locked_by_another_process_mid_pull_stops_it(
    catalogue: SimCatalogue, sim: DiscogsSimulator, tmp_path: Path
) -> None:
    user = catalogue.user("lockedout", items=60)
    path = tmp_path / "c.sqlite"
    with client_for(sim, tmp_path / "a.sqlite") as client:
        pull("lockedout", path, client, details=False)
    before = snapshot(path)
    user.add_items(20)
    holders: list[subprocess.Popen[str]] = []

    def lock(kind: str, number: int) -> None:
        if (kind, number) == ("release", 3):
            holders.append(_lock_holder(path))

    db = Database.connect(path, timeout=0.2)  # sqlite waits this long for the lock, then fails
    try:
        with (
            hooked_client(sim, tmp_path / "b.sqlite", lock) as client,
            pytest.raises(DatabaseLockedError),
        ):
            pull("lockedout", db, client, concurrency=2)
    finally:
        db.close()
        for holder in holders:
            holder.communicate("", timeout=30)
    assert len(holders) == 1
    after = snapshot(path)
    # Nothing stored is lost. Answers that arrived before the holder took the lock may have been
    # written: their details replace the listing's rows of those releases (and their names).
    replaced = {*CHILD_TABLES, "releases", "artists", "labels"}
    for table, rows in before.items():
        if table in replaced:
            assert {row[0] for row in rows} <= {row[0] for row in after[table]}, table
        else:
            assert set(rows) <= set(after[table]), table


@pytest.mark.slow
def test_cli_pull_stops_with_one_line_and_exit_1_when_the_database_is_locked(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    """Another process takes the sqlite file's write lock mid-pull (after the first answers)."""
    user = catalogue.user("clilock", items=60)
    path = tmp_path / "c.sqlite"
    with simulator(catalogue, latency=0.1) as server:
        env = _cli_env(server, tmp_path / "data")
        done = subprocess.run(
            [*_pull_cmd(path, "clilock"), "--no-details"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        before = snapshot(path)
        user.add_items(60)  # 60 more releases to fetch: ~20 rounds of 100 ms with 3 in flight
        server.reset_counters()
        proc = subprocess.Popen(
            _pull_cmd(path, "clilock"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: len(answered_releases(server)) >= 3, "the first answers")
        holder = _lock_holder(path)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            holder.communicate("", timeout=30)
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("discogs-toolkit: error: "), err
    assert "locked" in lines[0]
    after = snapshot(path)
    for table, rows in before.items():
        assert set(rows) <= set(after[table]), table


@pytest.mark.slow
def test_pull_under_faults_lands_everything_exactly_once(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    catalogue.user("storm", items=100)
    with simulator(catalogue) as clean, client_for(clean, tmp_path / "ref.sqlite") as client:
        pull("storm", tmp_path / "ref.duckdb", client)
    plan = FaultPlan(
        error_rate=0.10, statuses=(500, 502, 503), reset_rate=0.05, throttle_storms=((30, 12),)
    )
    # A 1-second client window so a 429 costs a second, not a minute (the limit isn't the point).
    with (
        simulator(catalogue, faults=plan, seed=1, rate_limit=5000) as faulty,
        client_for(faulty, tmp_path / "f.sqlite", window=1.0, backoff_base=0.01) as client,
    ):
        report = pull("storm", tmp_path / "f.duckdb", client)
        stats = faulty.stats()
    assert stats.faults.get("error", 0) > 0 and stats.faults.get("reset", 0) > 0
    assert stats.throttled >= 12
    assert report.retries > 0 and report.rate_limited >= 12
    assert report.failures == 0 and report.complete
    assert snapshot(tmp_path / "f.duckdb") == snapshot(tmp_path / "ref.duckdb")


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt during the test, also in the pulls it starts as processes.

    A test run started with SIGINT ignored (e.g. in the background by a non-interactive shell)
    would otherwise ignore it in this process and in every child. A handler installed here is reset
    to the default in a child when it starts, so the child's Python raises KeyboardInterrupt too.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("default_sigint")
def test_interrupt_writes_every_answer_that_arrived(
    catalogue: SimCatalogue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a batch write waits for the database: answers received meanwhile are kept.

    The test thread holds a transaction on the pull's Database from the first /releases request,
    so the pull's first batch write waits (on the Database's lock, which a signal interrupts)
    while the workers receive every remaining answer; then SIGINT comes. Those answers were never
    collected by the pull's loop, yet all of them must be stored.

    "Received" is judged on the pull's side (every task's future is resolved), not by the server
    having sent the last answer: a worker still reading it when SIGINT lands may lose it.
    """
    user = catalogue.user("interrupted", items=40)
    distinct = {item["id"] for item in user.items}
    path = tmp_path / "c.duckdb"
    db = Database.connect(path)
    main = threading.get_ident()
    problems: list[BaseException] = []
    futures: list[Future[TaskResult[Any]]] = []

    class RecordingManager(ConcurrencyManager):
        """The pull's manager, keeping the futures of its tasks for the watcher."""

        def enqueue(self, task: Task[Any]) -> Future[TaskResult[Any]]:
            future = super().enqueue(task)
            futures.append(future)
            return future

    monkeypatch.setattr(toolkit.pull, "ConcurrencyManager", RecordingManager)

    def every_answer_received() -> bool:
        return len(futures) == len(distinct) and all(f.done() for f in list(futures))

    with simulator(catalogue, latency=0.02) as server:

        def interrupt_while_blocked() -> None:
            try:
                wait_until(lambda: server.stats().by_kind.get("release", 0) > 0, "a /releases call")
                with db.transaction():
                    wait_until(lambda: answered_releases(server) == distinct, "every answer")
                    wait_until(every_answer_received, "the pull to receive every answer")
                    signal.pthread_kill(main, signal.SIGINT)
            except BaseException as exc:  # reported by the test thread
                problems.append(exc)

        watcher = threading.Thread(target=interrupt_while_blocked, daemon=True)
        with client_for(server, tmp_path / "http.sqlite") as client:
            watcher.start()
            with pytest.raises(KeyboardInterrupt):
                pull("interrupted", db, client, concurrency=3, batch_size=5)
        watcher.join(timeout=60)
    db.close()
    assert not problems and not watcher.is_alive()
    with Database.connect(path, read_only=True) as check:
        stored = {
            r
            for (r,) in check.fetchall(
                "SELECT release_id FROM releases WHERE fetched_at IS NOT NULL"
            )
        }
        # The history knows the pull: its listing's items as added, the row finished incomplete.
        history = check.fetchall("SELECT items, added, complete, requests > 0 FROM pulls")
        added = check.scalar("SELECT count(*) FROM item_events WHERE event = 'added'")
    assert stored == distinct
    assert history == [(40, 40, False, True)] and added == 40


# --------------------------------------------------------------------------------- SIGKILL


def _cli_env(server: DiscogsSimulator, data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISCOGS_", "TOOLKIT_", "CONCURRENCY_", "CACHE_"))
    }
    env[ENV_FILE_VARIABLE] = ""  # no .env in the subprocess either
    env.update(
        DISCOGS_API_URL=server.url,
        DISCOGS_RATE_LIMIT=str(FAST),
        TOOLKIT_DATA_DIR=str(data_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


#: --concurrency of the subprocess pulls: the most requests in flight when a signal lands.
IN_FLIGHT = 3


def _pull_cmd(db: Path, user: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "toolkit",
        "pull",
        "--username",
        user,
        "--db",
        str(db),
        "--no-progress",
        "--concurrency",
        str(IN_FLIGHT),
        "--per-page",
        "20",
    ]


@pytest.mark.slow
def test_pull_killed_with_sigkill_resumes_to_identical_tables(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    user = catalogue.user("killme", items=90)
    distinct = len({item["id"] for item in user.items})
    pages = math.ceil(90 / 20)
    # 50 ms answers: after the signal's trigger point ~15 more rounds remain (0.7 s or more), so a
    # loaded machine that is slow to deliver the signal still interrupts the pull before its end.
    with simulator(catalogue, latency=0.05) as server:
        reference = tmp_path / "ref.duckdb"
        done = subprocess.run(
            _pull_cmd(reference, "killme"),
            env=_cli_env(server, tmp_path / "ref-data"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        expected = snapshot(reference)
        assert len(expected["collection_items"]) == 90

        # Kill points: mid-listing (after 2 pages), early and late in the release details.
        for kind, threshold in (("collection", 2), ("release", 10), ("release", 45)):
            server.reset_counters()
            db = tmp_path / f"kill-{kind}-{threshold}.duckdb"
            data = tmp_path / f"data-{kind}-{threshold}"
            proc = subprocess.Popen(
                _pull_cmd(db, "killme"),
                env=_cli_env(server, data),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 60
            while server.stats().by_kind.get(kind, 0) < threshold:
                assert proc.poll() is None, f"pull ended before {threshold} {kind} requests"
                assert time.monotonic() < deadline
                time.sleep(0.001)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
            assert proc.stderr is not None
            proc.stderr.close()
            # The server logs a request when it answers, so a request of the killed pull may be
            # logged after this; the arrival times tell the two pulls apart.
            mark = time.monotonic()
            resumed = subprocess.run(
                _pull_cmd(db, "killme"),
                env=_cli_env(server, data),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert resumed.returncode == 0, resumed.stderr
            log = server.request_log
            killed = [r for r in log if r.time < mark]
            before_kill = set(release_ids(killed))
            answered = set(release_ids(r for r in killed if r.status == 200))
            assert len(before_kill) < distinct  # really interrupted before the end
            again = release_ids(r for r in log if r.time >= mark)
            assert len(again) == len(set(again))
            # The resumed pull lists every page again (the listing always comes from the server)
            # but asks for no release it stored or cached: only an answer still on its way at the
            # kill (at most one per worker) may be requested again.
            listed = [r for r in log if r.time >= mark and r.kind == "collection"]
            assert len(listed) == pages, (kind, threshold)
            assert len(answered & set(again)) <= IN_FLIGHT, (kind, threshold)
            assert len(before_kill & set(again)) <= IN_FLIGHT, (kind, threshold)
            assert before_kill | set(again) == {item["id"] for item in user.items}
            assert snapshot(db) == expected, (kind, threshold)


@pytest.mark.slow
@pytest.mark.usefixtures("default_sigint")
def test_ctrl_c_keeps_what_arrived_and_resumes(catalogue: SimCatalogue, tmp_path: Path) -> None:
    user = catalogue.user("ctrlc", items=80)
    # 50 ms answers: after the signal's trigger point ~15 more rounds remain (0.7 s or more), so a
    # loaded machine that is slow to deliver the signal still interrupts the pull before its end.
    with simulator(catalogue, latency=0.05) as server:
        reference = tmp_path / "ref.duckdb"
        with client_for(server, tmp_path / "ref.sqlite") as client:
            pull("ctrlc", reference, client)
        server.reset_counters()
        db, data = tmp_path / "c.duckdb", tmp_path / "data"
        proc = subprocess.Popen(
            _pull_cmd(db, "ctrlc"),
            env=_cli_env(server, data),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while server.stats().by_kind.get("release", 0) < 25:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "interrupted" in err and "Traceback" not in err
        answered = answered_releases(server)
        with Database.connect(db, read_only=True) as handle:
            stored = {
                r
                for (r,) in handle.fetchall(
                    "SELECT release_id FROM releases WHERE fetched_at IS NOT NULL"
                )
            }
        # Every answer that had arrived was written on the way out, collected or not; only those
        # the server had sent but the client was still receiving (one per worker) may be missing.
        assert len(answered - stored) <= IN_FLIGHT, sorted(answered - stored)
        assert len(stored) < len({item["id"] for item in user.items})

        server.reset_counters()
        resumed = subprocess.run(
            _pull_cmd(db, "ctrlc"),
            env=_cli_env(server, data),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert not set(releases_requested(server)) & stored
        assert snapshot(db) == snapshot(reference)


# --------------------------------------------------------------------------- the page writer


def _listed(catalogue: SimCatalogue, name: str, pages: int, per_page: int = 20) -> list[list[Any]]:
    """``pages`` pages of a new simulated user's items (copies: a test may spoil one)."""
    items = [dict(item) for item in catalogue.user(name, items=pages * per_page).items]
    assert len(items) == pages * per_page, f"user {name!r} exists already: pick a new name"
    return [items[i : i + per_page] for i in range(0, len(items), per_page)]


def _stored_ids(db: Database) -> set[int]:
    return {int(row[0]) for row in db.fetchall("SELECT instance_id FROM collection_items")}


def _ids(pages: Iterable[Iterable[Any]]) -> set[int]:
    return {int(item["instance_id"]) for page in pages for item in page}


@pytest.fixture
def writer_db(tmp_path: Path) -> Iterator[Database]:
    with Database.connect(tmp_path / "w.duckdb") as db:
        create_schema(db)
        yield db


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many items each ``load_collection`` call of the writer was given (the real one runs)."""
    sizes: list[int] = []
    real = load_collection  # what toolkit.pull imported

    def counted(db: Database, items: Any, releases: Any, **kwargs: Any) -> dict[str, int]:
        sizes.append(len(items))
        return real(db, items, releases, **kwargs)

    monkeypatch.setattr(toolkit.pull, "load_collection", counted)
    return sizes


def test_a_refused_write_stops_every_later_write(
    catalogue: SimCatalogue, writer_db: Database, loads: list[int]
) -> None:
    """After the database refuses a write, the writer raises that error again and writes nothing."""
    pages = _listed(catalogue, "write-refused", 3)
    writer = toolkit.pull._Writer(writer_db, "write-refused", set())
    writer_db.execute("DROP TABLE item_fields")  # every item write now fails
    with pytest.raises(DatabaseError) as first:
        writer.items(1, pages[0])
    assert writer.failed is first.value and loads == [20]
    writer_db.execute("CREATE TABLE item_fields (instance_id BIGINT, field_id BIGINT, value TEXT)")
    later = (
        lambda: writer.items(2, pages[1]),
        writer.flush,
        writer.check,
        lambda: writer.releases([(1, {"id": 1, "title": "x"})]),
        lambda: writer.copy_catalogue([1], datetime(2020, 1, 1)),
    )
    for call in later:
        with pytest.raises(DatabaseError) as again:
            call()
        assert again.value is first.value
    assert loads == [20]  # no write was tried after the refusal, though the table is back
    assert _stored_ids(writer_db) == set()


def test_a_flush_that_cannot_get_the_writer_says_what_it_left(
    catalogue: SimCatalogue, writer_db: Database
) -> None:
    pages = _listed(catalogue, "write-busy", 2)
    writer = toolkit.pull._Writer(writer_db, "write-busy", set())
    writer.items(1, pages[0], defer=True)
    writer.items(2, pages[1], defer=True)
    with writer.lock, pytest.raises(TimeoutError, match="2 listed pages not written"):
        writer.flush(timeout=0.01)  # a write holds the lock (here: this test)
    writer.flush()
    assert _stored_ids(writer_db) == writer.seen == _ids(pages)


def test_an_interrupted_write_puts_its_pages_back(
    catalogue: SimCatalogue, writer_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a group write: its pages return to the queue, and the next flush writes them."""
    pages = _listed(catalogue, "write-interrupted", 3)
    writer = toolkit.pull._Writer(writer_db, "write-interrupted", set())
    real = load_collection
    calls: list[int] = []

    def interrupted_once(db: Database, items: Any, releases: Any, **kwargs: Any) -> Any:
        calls.append(len(items))
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(db, items, releases, **kwargs)

    monkeypatch.setattr(toolkit.pull, "load_collection", interrupted_once)
    writer.items(1, pages[0], defer=True)
    writer.items(2, pages[1], defer=True)
    with pytest.raises(KeyboardInterrupt):
        writer.items(3, pages[2])
    assert [page for page, _ in writer.queue] == [1, 2, 3] and writer.failed is None
    writer.flush()
    assert calls == [60, 60] and not writer.queue
    assert _stored_ids(writer_db) == writer.seen == _ids(pages)


def test_deferred_pages_wait_for_the_next_writer_or_the_flush(
    catalogue: SimCatalogue, writer_db: Database, loads: list[int]
) -> None:
    pages = _listed(catalogue, "deferred", 5)
    writer = toolkit.pull._Writer(writer_db, "deferred", set())
    for number, page in enumerate(pages[:3], start=1):
        writer.items(number, page, defer=True)
    assert writer_db.scalar("SELECT count(*) FROM collection_items") == 0
    assert not writer.seen and not loads
    # The next page that is not deferred writes the queue with it, in one load.
    writer.items(4, pages[3])
    assert _stored_ids(writer_db) == writer.seen == _ids(pages[:4])
    assert loads == [80]
    writer.items(5, pages[4], defer=True)
    assert _stored_ids(writer_db) == _ids(pages[:4])
    writer.flush()
    assert _stored_ids(writer_db) == writer.seen == _ids(pages)
    assert loads == [80, 20] and writer.malformed == [] and writer.queue == []
    writer.flush()  # nothing queued: no write
    assert loads == [80, 20]


def test_pages_queued_during_a_write_are_written_together(
    catalogue: SimCatalogue, writer_db: Database, loads: list[int]
) -> None:
    threads, per_thread = 5, 2  # as many pages as the queue holds before workers must wait
    assert threads * per_thread == toolkit.pull.MAX_QUEUED_PAGES
    pages = _listed(catalogue, "grouped", threads * per_thread)
    writer = toolkit.pull._Writer(writer_db, "grouped", set())

    def lister(n: int) -> None:
        for number in range(n * per_thread, (n + 1) * per_thread):
            writer.items(number + 1, pages[number])

    workers = [threading.Thread(target=lister, args=(n,)) for n in range(threads)]
    try:
        # The test holds the write lock, as a long write would: page workers queue and go on.
        with writer.lock:
            for worker in workers:
                worker.start()
            wait_until(
                lambda: not any(worker.is_alive() for worker in workers),
                "the page workers to queue their pages and go on (none waits for a write)",
            )
            assert len(writer.queue) == len(pages)
            assert not loads and not writer.seen
            assert writer_db.scalar("SELECT count(*) FROM collection_items") == 0
    finally:
        for worker in workers:  # (only a broken writer leaves one running: let it end first)
            worker.join(timeout=WAIT)
    writer.flush()
    assert loads == [len(pages) * 20]  # one transaction wrote every queued page
    assert _stored_ids(writer_db) == writer.seen == _ids(pages)


def test_a_full_queue_makes_the_page_worker_wait_and_write(
    catalogue: SimCatalogue, writer_db: Database, loads: list[int]
) -> None:
    """Back-pressure: past MAX_QUEUED_PAGES a page worker waits for the writer, then writes all."""
    limit = toolkit.pull.MAX_QUEUED_PAGES
    pages = _listed(catalogue, "backlog", limit + 1)
    writer = toolkit.pull._Writer(writer_db, "backlog", set())
    late = threading.Thread(target=writer.items, args=(limit + 1, pages[limit]))
    try:
        with writer.lock:  # a long write in progress
            for number in range(limit):
                writer.items(number + 1, pages[number])  # queued; returns at once
            late.start()
            wait_until(lambda: len(writer.queue) == limit + 1, "the page past the limit queued")
            assert late.is_alive()  # it cannot return while the write it waits for runs
            assert not loads
    finally:
        late.join(timeout=WAIT)
    assert not late.is_alive() and not writer.queue
    assert loads == [(limit + 1) * 20]  # the waiting worker wrote every queued page at once
    assert _stored_ids(writer_db) == writer.seen == _ids(pages)


def test_concurrent_pages_all_land_in_no_more_loads_than_pages(
    catalogue: SimCatalogue, writer_db: Database, loads: list[int]
) -> None:
    threads, per_thread = 8, 5
    pages = _listed(catalogue, "racing", threads * per_thread)
    writer = toolkit.pull._Writer(writer_db, "racing", set())
    together = threading.Barrier(threads, timeout=WAIT)

    def lister(n: int) -> None:
        together.wait()
        for number in range(n * per_thread, (n + 1) * per_thread):
            writer.items(number + 1, pages[number])

    workers = [threading.Thread(target=lister, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    writer.flush()
    assert writer.queue == [] and writer.malformed == []
    assert _stored_ids(writer_db) == writer.seen == _ids(pages)
    assert len(loads) <= len(pages) and sum(loads) == len(pages) * 20


def test_a_malformed_item_costs_only_itself_in_a_group_write(
    catalogue: SimCatalogue, writer_db: Database
) -> None:
    pages = _listed(catalogue, "spoilt", 3)
    bad = pages[1][7]
    bad["rating"] = "--5"
    writer = toolkit.pull._Writer(writer_db, "spoilt", set())
    for number, page in enumerate(pages, start=1):
        writer.items(number, page, defer=True)
    writer.flush()
    good = _ids(pages) - {int(bad["instance_id"])}
    assert _stored_ids(writer_db) == writer.seen == good
    assert len(good) == 59
    [line] = writer.malformed
    assert line.startswith("page 2 items[7].rating ")
    assert f"instance {bad['instance_id']}" in line and "'--5'" in line


# ------------------------------------------------------------------ the last round, deleted ahead


def _spy_ahead(monkeypatch: pytest.MonkeyPatch, hold: int) -> dict[str, list[Any]]:
    """Record the pull's delete-ahead transactions (opened: their ids; written: their batches),
    and keep the answer for release ``hold`` back until one is open, so it is in that round."""
    seen: dict[str, list[Any]] = {"deleted": [], "written": []}
    opened = threading.Event()
    writer = toolkit.pull._Writer
    delete_ahead, write_ahead = writer.delete_ahead, writer.write_ahead
    get_release = DiscogsClient.get_release

    def deleting(self: Any, ids: Any) -> Any:
        seen["deleted"].append(sorted(ids))
        stack = delete_ahead(self, ids)
        opened.set()
        return stack

    def writing(self: Any, batch: Any) -> None:
        seen["written"].append(sorted(rid for rid, _ in batch))
        write_ahead(self, batch)

    def held(self: DiscogsClient, release_id: int, **kwargs: Any) -> Any:
        if release_id == hold:
            assert opened.wait(WAIT), "no delete-ahead transaction was opened"
        return get_release(self, release_id, **kwargs)

    monkeypatch.setattr(writer, "delete_ahead", deleting)
    monkeypatch.setattr(writer, "write_ahead", writing)
    monkeypatch.setattr(DiscogsClient, "get_release", held)
    return seen


#: No request after the details (not even the custom fields' names): the pull's record can be
#: completed in the last write.
QUIET = Extras(fields=False)


def _asked_last(items: list[dict[str, Any]]) -> int:
    """The release a pull asks for last: best rated first, then by id."""
    return int(max(items, key=lambda item: (-toolkit.pull._rating(item), item["id"]))["id"])


def test_the_last_round_is_deleted_ahead_and_lands_like_any_other(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    catalogue = SimCatalogue(releases=1500, seed=11)
    user = catalogue.user("ahead", items=25)
    last = _asked_last(user.items)
    seen = _spy_ahead(monkeypatch, hold=last)
    finishing: list[bool] = []
    finish = toolkit.history.finish_pull

    def finish_pull(db: Database, *args: Any, **kwargs: Any) -> None:
        finishing.append(db.in_transaction)
        finish(db, *args, **kwargs)

    monkeypatch.setattr(toolkit.pull, "finish_pull", finish_pull)
    with (
        simulator(catalogue, latency=0.01) as server,
        client_for(server, tmp_path / "a.sqlite") as client,
    ):
        report = pull("ahead", tmp_path / "ten.duckdb", client, concurrency=10, extras=QUIET)
    # The answers still to come once all are on their way were deleted ahead, then written in
    # that transaction in one go.
    assert len(seen["deleted"]) == 1 and last in seen["deleted"][0]
    assert seen["written"] == seen["deleted"]
    assert report.failures == 0 and report.releases_fetched == 25
    # The pull's record was completed in that transaction, once (nothing came after the details).
    assert finishing == [True]
    with Database.connect(tmp_path / "ten.duckdb", read_only=True) as db:
        row = db.fetchone("SELECT requests, complete, finished_at IS NOT NULL FROM pulls")
    assert row == (report.network_requests, True, True)
    monkeypatch.undo()
    with simulator(catalogue) as server, client_for(server, tmp_path / "b.sqlite") as client:
        pull("ahead", tmp_path / "one.duckdb", client, concurrency=1, extras=QUIET)
    assert snapshot(tmp_path / "ten.duckdb") == snapshot(tmp_path / "one.duckdb")


@pytest.mark.parametrize("fault", ["missing", "unloadable"])
def test_a_failed_answer_in_the_last_round_puts_the_deleted_rows_back(
    fault: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    catalogue = SimCatalogue(releases=1500, seed=12)
    user = catalogue.user("ahead", items=11)
    bad = _asked_last(user.items)
    if fault == "missing":
        catalogue.delete_release(bad)
    else:  # passes the client's checks, not the loader's
        catalogue.override_release(bad, {"id": bad, "title": "y", "artists": ["y"]})
    with (
        simulator(catalogue, latency=0.01) as server,
        client_for(server, tmp_path / "a.sqlite") as client,
    ):
        listed = pull("ahead", tmp_path / "listed.duckdb", client, details=False)
        seen = _spy_ahead(monkeypatch, hold=bad)
        report = pull("ahead", tmp_path / "c.duckdb", client, concurrency=10)
    assert listed.releases_fetched == 0
    assert bad in seen["deleted"][0]  # deleted ahead (its answer written there and rolled back,
    assert seen["written"] == ([] if fault == "missing" else [[bad]])  # or not at all) ...
    assert report.failures == 1 and report.releases_fetched == 10
    listing, pulled = snapshot(tmp_path / "listed.duckdb"), snapshot(tmp_path / "c.duckdb")
    for table in (*CHILD_TABLES, "releases"):  # ... and back: as the listing wrote them
        mine = [row for row in listing[table] if row[0] == bad]
        assert mine or table == "tracks", table
        assert [row for row in pulled[table] if row[0] == bad] == mine, table
    with Database.connect(tmp_path / "c.duckdb", read_only=True) as db:
        assert db.scalar("SELECT count(*) FROM releases WHERE fetched_at IS NOT NULL") == 10
        assert db.fetchall("SELECT release_id FROM pull_failures") == [(bad,)]
