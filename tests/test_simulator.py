"""The Discogs API simulator over real HTTP on 127.0.0.1: shapes, pagination, auth, rate limit, faults."""

from __future__ import annotations

import http.client
import json
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import discogs_client
import pytest
import requests

from toolkit.discogs import DiscogsSimulator, FaultPlan, SimCatalogue
from toolkit.discogs.simdata import DEMO_ITEMS, real_releases
from toolkit.discogs.simulator import (
    MSG_AUTH,
    MSG_FORBIDDEN,
    MSG_RATE_LIMIT,
    MSG_RELEASE_NOT_FOUND,
    MSG_USER_AGENT,
    Fault,
)
from toolkit.testing import FakeClock

FIXTURES = Path(__file__).parent / "fixtures" / "discogs-api"
BROTHER = FIXTURES / "brotherlogic-godiscogs"
JOALLA = FIXTURES / "joalla-discogs_client"
UA = {"User-Agent": "discogs-toolkit-tests/1.0"}
AUTH = {**UA, "Authorization": "Discogs token=tok"}


class SleepRecorder:
    """Records the simulator's sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self.lock:
            self.calls.append(seconds)


@pytest.fixture(scope="module")
def catalogue() -> SimCatalogue:
    return SimCatalogue(releases=5000, seed=0)


@pytest.fixture(scope="module")
def sim(catalogue: SimCatalogue) -> Iterator[DiscogsSimulator]:
    with DiscogsSimulator(
        catalogue, rate_limit=100_000, rate_limit_unauthenticated=100_000, latency=0, jitter=0
    ) as server:
        yield server


@pytest.fixture()
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers.update(UA)
        yield s


def _fresh(**kwargs: Any) -> DiscogsSimulator:
    kwargs.setdefault("latency", 0)
    kwargs.setdefault("jitter", 0)
    return DiscogsSimulator(SimCatalogue(releases=1100, seed=0), **kwargs)


# ---- shape helper ---------------------------------------------------------------------------


def assert_same_shape(
    real: Any, simulated: Any, path: str = "$", nullable: frozenset[str] = frozenset()
) -> None:
    """Simulated ⊇ real, key by key, with the same JSON types (numbers alike; null in real: any).

    Lists: every simulated element against the first real element. ``nullable`` names keys the
    real API also answers null for (e.g. ``lowest_price`` when nothing is for sale).
    """
    if real is None:
        return
    if isinstance(real, bool):
        assert isinstance(simulated, bool), f"{path}: {simulated!r} is not a bool"
    elif isinstance(real, int | float):
        assert isinstance(simulated, int | float) and not isinstance(simulated, bool), (
            f"{path}: {simulated!r} is not a number"
        )
    elif isinstance(real, str):
        assert isinstance(simulated, str), f"{path}: {simulated!r} is not a string"
    elif isinstance(real, list):
        assert isinstance(simulated, list), f"{path}: {type(simulated).__name__} is not a list"
        if real:
            for i, element in enumerate(simulated):
                assert_same_shape(real[0], element, f"{path}[{i}]", nullable)
    elif isinstance(real, dict):
        assert isinstance(simulated, dict), f"{path}: {type(simulated).__name__} is not an object"
        missing = set(real) - set(simulated)
        assert not missing, f"{path}: missing keys {sorted(missing)}"
        for key, value in real.items():
            if simulated[key] is None and key in nullable:
                continue
            assert_same_shape(value, simulated[key], f"{path}.{key}", nullable)
    else:  # pragma: no cover - JSON has no other types
        raise AssertionError(f"{path}: unexpected real type {type(real).__name__}")


def test_shape_helper_catches_differences() -> None:
    assert_same_shape({"a": 1, "b": [{"c": "x"}]}, {"a": 2.5, "b": [{"c": "y", "d": 1}], "e": 0})
    assert_same_shape({"a": None}, {"a": [1]})
    with pytest.raises(AssertionError, match="missing keys"):
        assert_same_shape({"a": 1, "b": 2}, {"a": 1})
    with pytest.raises(AssertionError, match="not a number"):
        assert_same_shape({"a": 1}, {"a": "1"})
    with pytest.raises(AssertionError, match=r"\$\.b\[1\]\.c"):
        assert_same_shape({"b": [{"c": "x"}]}, {"b": [{"c": "y"}, {"c": 3}]})
    with pytest.raises(AssertionError, match="not a bool"):
        assert_same_shape({"a": True}, {"a": 1})


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _pick_release(catalogue: SimCatalogue, *, for_sale: bool) -> int:
    for rid in catalogue.release_ids():
        r = catalogue.release(rid)
        if r is None or "master_id" not in r:
            continue
        if for_sale and r["num_for_sale"] and r["images"] and r["videos"] and r["identifiers"]:
            return rid
        if not for_sale and r["num_for_sale"] == 0:
            return rid
    raise AssertionError("no suitable release")


# ---- fidelity against real captured responses ----------------------------------------------


def test_release_matches_real_shape(
    sim: DiscogsSimulator, catalogue: SimCatalogue, session: requests.Session
) -> None:
    rid = _pick_release(catalogue, for_sale=True)
    r = session.get(f"{sim.url}/releases/{rid}")
    assert r.status_code == 200
    body = r.json()
    assert_same_shape(_load(BROTHER / "releases/249504_token=token"), body)
    assert body["resource_url"] == f"{sim.url}/releases/{rid}"
    assert body["labels"][0]["resource_url"].startswith(f"{sim.url}/labels/")
    # the real headers: every rate-limit header and the JSON content type
    real_headers = (BROTHER / "releases/249504_token=token.headers").read_text().splitlines()
    names = {line.split(":", 1)[0].lower() for line in real_headers[1:] if ":" in line}
    for name in ("content-type", "content-length", "x-discogs-ratelimit"):
        assert name in names
        assert name in {k.lower() for k in r.headers}
    assert r.headers["Content-Type"] == "application/json"
    assert int(r.headers["Content-Length"]) == len(r.content)


def test_release_without_offers_matches_real_shape(
    sim: DiscogsSimulator, catalogue: SimCatalogue, session: requests.Session
) -> None:
    rid = _pick_release(catalogue, for_sale=False)
    body = session.get(f"{sim.url}/releases/{rid}").json()
    real = _load(BROTHER / "releases/2370027_token=token")
    assert real["lowest_price"] is None and body["lowest_price"] is None
    assert_same_shape(real, body)


def test_error_bodies_match_real_shape(sim: DiscogsSimulator, session: requests.Session) -> None:
    r = session.get(f"{sim.url}/releases/999999999")
    assert r.status_code == 404
    assert r.json() == {"message": MSG_RELEASE_NOT_FOUND}
    assert_same_shape(_load(BROTHER / "releases/2331612_token=token"), r.json())
    r = session.get(f"{sim.url}/users/demo/collection/folders/10/releases", headers=AUTH)
    assert r.status_code == 404
    assert r.json() == _load(
        BROTHER / "users/brotherlogic/collection/folders/10/releases10_token=token"
    )
    r = session.get(f"{sim.url}/users/demo/wants", params={"per_page": 100, "page": 4})
    real = _load(BROTHER / "users/brotherlogic/wants_per_page=100_token=token_page=4")
    assert r.status_code == 404
    assert r.json()["message"].startswith("Page 4 is outside of valid range [1, ")
    assert_same_shape(real, r.json())


def test_folders_match_real_shape(sim: DiscogsSimulator, session: requests.Session) -> None:
    body = session.get(f"{sim.url}/users/demo/collection/folders", headers=AUTH).json()
    assert_same_shape(_load(BROTHER / "users/brotherlogic/collection/folders_token=token"), body)
    assert_same_shape(_load(JOALLA / "users/example/collection/folders.json"), body)
    assert [f["id"] for f in body["folders"][:2]] == [0, 1]
    folder = session.get(f"{sim.url}/users/demo/collection/folders/1", headers=AUTH).json()
    assert_same_shape(body["folders"][1], folder)
    assert folder["resource_url"] == f"{sim.url}/users/demo/collection/folders/1"


def test_collection_pages_match_real_shape(
    sim: DiscogsSimulator, session: requests.Session
) -> None:
    url = f"{sim.url}/users/demo/collection/folders/0/releases"
    first = session.get(url, params={"per_page": 100}, headers=AUTH).json()
    real_first = _load(
        BROTHER / "users/brotherlogic/collection/folders/0/releases_per_page=100_token=token"
    )
    assert_same_shape(real_first, first, nullable=frozenset({"master_url"}))
    assert set(first["pagination"]["urls"]) == set(real_first["pagination"]["urls"])
    pages = first["pagination"]["pages"]
    assert pages == math.ceil(DEMO_ITEMS / 100)
    last = session.get(url, params={"per_page": 100, "page": pages}, headers=AUTH).json()
    real_last = _load(
        BROTHER
        / "users/brotherlogic/collection/folders/0/releases_per_page=100_token=token_page=32"
    )
    assert_same_shape(real_last, last, nullable=frozenset({"master_url"}))
    assert set(last["pagination"]["urls"]) == set(real_last["pagination"]["urls"])


def test_demo_collection_serves_the_real_releases(
    sim: DiscogsSimulator, session: requests.Session
) -> None:
    """Over HTTP, the demo's items and their /releases bodies are the dump sample's records."""
    real = {r["id"]: r for r in real_releases()}
    url = f"{sim.url}/users/demo/collection/folders/0/releases"
    page = session.get(url, params={"per_page": "100", "sort": "year"}, headers=AUTH).json()
    assert page["pagination"]["items"] == DEMO_ITEMS
    for item in page["releases"][:25]:
        info = item["basic_information"]
        record = real[info["id"]]
        assert (info["title"], info["year"], info["genres"]) == (
            record["title"],
            record["year"],
            record["genres"],
        )
        body = session.get(f"{sim.url}/releases/{info['id']}", headers=AUTH).json()
        # the same JSON but for the URLs, which point at the simulator
        served = json.dumps(record["tracklist"]).replace("https://api.discogs.com", sim.url)
        assert body["tracklist"] == json.loads(served) and body["styles"] == record["styles"]
        assert [a["name"] for a in body["artists"]] == [a["name"] for a in record["artists"]]


def test_collection_release_matches_real_shape(
    sim: DiscogsSimulator, catalogue: SimCatalogue, session: requests.Session
) -> None:
    item = next(
        it
        for it in catalogue.user("demo").items
        if "notes" in it and it["basic_information"]["master_id"]
    )
    body = session.get(
        f"{sim.url}/users/demo/collection/releases/{item['id']}", headers=AUTH
    ).json()
    real = _load(BROTHER / "users/brotherlogic/collection/releases/323005_token=token")
    assert_same_shape(real, body)
    assert item["instance_id"] in [r["instance_id"] for r in body["releases"]]


def test_wants_match_real_shape(sim: DiscogsSimulator, session: requests.Session) -> None:
    body = session.get(f"{sim.url}/users/demo/wants", params={"per_page": 10}).json()
    real = _load(BROTHER / "users/brotherlogic/wants_per_page=100_token=token")
    assert_same_shape(real, body, nullable=frozenset({"master_url"}))
    assert body["pagination"]["items"] == len(body["wants"]) or body["pagination"]["pages"] > 1


def test_profile_identity_value_stats_match_real_shape(
    sim: DiscogsSimulator, catalogue: SimCatalogue, session: requests.Session
) -> None:
    profile = session.get(f"{sim.url}/users/demo").json()
    assert_same_shape(_load(JOALLA / "users/example.json"), profile)
    assert profile["num_collection"] == len(catalogue.user("demo").items)
    assert profile["collection_folders_url"] == f"{sim.url}/users/demo/collection/folders"
    identity = session.get(f"{sim.url}/oauth/identity", headers=AUTH).json()
    assert_same_shape(_load(JOALLA / "oauth/identity.json"), identity)
    assert identity["username"] == "demo"
    value = session.get(f"{sim.url}/users/demo/collection/value", headers=AUTH).json()
    assert_same_shape(_load(JOALLA / "users/example/collection/value.json"), value)
    assert value["median"].startswith("$")
    rid = _pick_release(catalogue, for_sale=True)
    stats = session.get(f"{sim.url}/marketplace/stats/{rid}").json()
    assert_same_shape(_load(JOALLA / "marketplace/stats/1.json"), stats)
    assert stats["num_for_sale"] == catalogue.release(rid)["num_for_sale"]  # type: ignore[index]


# ---- pagination and sorting -----------------------------------------------------------------


def test_pagination_walks_every_item_once(
    sim: DiscogsSimulator, catalogue: SimCatalogue, session: requests.Session
) -> None:
    user = catalogue.user("pager", items=237)
    url = f"{sim.url}/users/pager/collection/folders/0/releases"
    seen: list[int] = []
    page, pages = 1, None
    while True:
        body = session.get(url, params={"per_page": 100, "page": page}).json()
        pag = body["pagination"]
        pages = pag["pages"]
        assert pag == {**pag, "page": page, "per_page": 100, "items": 237}
        seen += [r["instance_id"] for r in body["releases"]]
        if "next" not in pag["urls"]:
            break
        assert pag["urls"]["next"].startswith(url)
        page += 1
    assert pages == 3 and page == 3
    assert len(body["releases"]) == 37
    assert sorted(seen) == sorted(it["instance_id"] for it in user.items)
    assert set(body["pagination"]["urls"]) == {"first", "prev"}
    r = session.get(url, params={"per_page": 100, "page": 4})
    assert r.status_code == 404
    assert r.json() == {"message": "Page 4 is outside of valid range [1, 3]."}
    assert session.get(url, params={"page": 0}).status_code == 404


def test_per_page_default_and_cap(sim: DiscogsSimulator, session: requests.Session) -> None:
    url = f"{sim.url}/users/demo/collection/folders/0/releases"
    default = session.get(url).json()
    assert default["pagination"]["per_page"] == 50 and len(default["releases"]) == 50
    capped = session.get(url, params={"per_page": 500}).json()
    assert capped["pagination"]["per_page"] == 100 and len(capped["releases"]) == 100
    assert capped["pagination"]["pages"] == math.ceil(DEMO_ITEMS / 100)


def test_sorting(sim: DiscogsSimulator, session: requests.Session) -> None:
    url = f"{sim.url}/users/demo/collection/folders/0/releases"
    by_year: dict[str, str | int] = {"sort": "year", "per_page": 100}
    years = [
        r["basic_information"]["year"] for r in session.get(url, params=by_year).json()["releases"]
    ]
    assert years == sorted(years)
    desc = session.get(url, params={**by_year, "sort_order": "desc"}).json()
    top = [r["basic_information"]["year"] for r in desc["releases"]]
    assert top == sorted(top, reverse=True) and top[0] >= years[-1]
    artists = [
        r["basic_information"]["artists"][0]["name"].lower()
        for r in session.get(url, params={"sort": "artist"}).json()["releases"]
    ]
    assert artists == sorted(artists)
    added = [
        r["date_added"]
        for r in session.get(url, params={"sort": "added", "sort_order": "desc"}).json()["releases"]
    ]
    assert added == sorted(added, reverse=True)
    ratings = [
        r["rating"]
        for r in session.get(url, params={"sort": "rating", "sort_order": "desc"}).json()[
            "releases"
        ]
    ]
    assert ratings[0] == 5 and ratings == sorted(ratings, reverse=True)


def test_sync_changes_show_up(
    sim: DiscogsSimulator, catalogue: SimCatalogue, session: requests.Session
) -> None:
    user = catalogue.user("syncer", items=30)
    url = f"{sim.url}/users/syncer/collection/folders/0/releases"
    assert session.get(url).json()["pagination"]["items"] == 30
    user.remove_items([user.items[0]["instance_id"]])
    new = user.add_items(3)
    body = session.get(url).json()
    assert body["pagination"]["items"] == 32
    assert {n["instance_id"] for n in new} <= {r["instance_id"] for r in body["releases"]}


def test_deleted_release_404s(sim: DiscogsSimulator, session: requests.Session) -> None:
    rid = sim.catalogue.release_ids()[-3]
    assert session.get(f"{sim.url}/releases/{rid}").status_code == 200
    sim.catalogue.delete_release(rid)
    r = session.get(f"{sim.url}/releases/{rid}")
    assert r.status_code == 404 and r.json() == {"message": MSG_RELEASE_NOT_FOUND}


def test_unknown_things_404(sim: DiscogsSimulator, session: requests.Session) -> None:
    r = session.get(f"{sim.url}/users/nobody-here/collection/folders/0/releases")
    assert r.status_code == 404 and "message" in r.json()
    assert session.get(f"{sim.url}/users/nobody-here").status_code == 404
    assert session.get(f"{sim.url}/nothing/here").status_code == 404
    assert session.get(f"{sim.url}/releases/abc").status_code == 404
    assert session.post(f"{sim.url}/releases/1").status_code == 405


# ---- auth and headers -----------------------------------------------------------------------


def test_private_endpoints_need_a_token(sim: DiscogsSimulator, session: requests.Session) -> None:
    for path in (
        "/users/demo/collection/folders/1/releases",
        "/users/demo/collection/folders/1",
        "/users/demo/collection/value",
        "/oauth/identity",
    ):
        r = session.get(sim.url + path)
        assert r.status_code == 401, path
        assert r.json() == {"message": MSG_AUTH}
        assert session.get(sim.url + path, headers=AUTH).status_code == 200, path
    public = session.get(f"{sim.url}/users/demo/collection/folders").json()
    assert [f["id"] for f in public["folders"]] == [0]
    assert session.get(f"{sim.url}/users/demo/collection/folders/0/releases").status_code == 200


def test_token_as_query_parameter(sim: DiscogsSimulator, session: requests.Session) -> None:
    r = session.get(f"{sim.url}/users/demo/collection/value", params={"token": "tok"})
    assert r.status_code == 200
    r = session.get(f"{sim.url}/users/demo/collection/folders/0/releases", params={"token": "tok"})
    assert "token=tok" in r.json()["pagination"]["urls"]["next"]  # as the real API echoes it


def test_token_mapping_bad_token_and_other_users() -> None:
    with _fresh(tokens={"good": "demo", "alices": "alice"}) as sim, requests.Session() as s:
        s.headers.update(UA)
        sim.catalogue.user("alice", items=5)
        bad = s.get(f"{sim.url}/releases/1", headers={"Authorization": "Discogs token=nope"})
        assert bad.status_code == 401 and bad.json() == {"message": MSG_AUTH}
        good = {"Authorization": "Discogs token=good"}
        assert s.get(f"{sim.url}/oauth/identity", headers=good).json()["username"] == "demo"
        alices = {"Authorization": "Discogs token=alices"}
        assert s.get(f"{sim.url}/oauth/identity", headers=alices).json()["username"] == "alice"
        r = s.get(f"{sim.url}/users/demo/collection/folders/1/releases", headers=alices)
        assert r.status_code == 403 and r.json() == {"message": MSG_FORBIDDEN}
        assert s.get(f"{sim.url}/users/demo/collection/value", headers=alices).status_code == 403
        folders = s.get(f"{sim.url}/users/demo/collection/folders", headers=alices).json()
        assert len(folders["folders"]) == 1
        own = s.get(f"{sim.url}/users/alice/collection/folders/1/releases", headers=alices)
        assert own.status_code == 200
        assert s.get(f"{sim.url}/releases/1", params={"token": "nope"}).status_code == 401


def test_missing_user_agent_is_refused(sim: DiscogsSimulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        conn.request("GET", "/releases/1")  # http.client sends no User-Agent of its own
        raw = conn.getresponse()
        assert raw.status == 403
        assert json.loads(raw.read()) == {"message": MSG_USER_AGENT}
    finally:
        conn.close()
    r = requests.get(f"{sim.url}/releases/1", headers={"User-Agent": ""}, timeout=10)
    assert r.status_code == 403
    assert r.json() == {"message": MSG_USER_AGENT}
    assert requests.get(f"{sim.url}/releases/1", headers=UA, timeout=10).status_code == 200


def test_rate_limit_headers_on_every_response() -> None:
    with _fresh(rate_limit=10, rate_limit_unauthenticated=4) as sim, requests.Session() as s:
        s.headers.update(UA)
        remaining = []
        for path in ("/releases/1", "/releases/999999999", "/users/demo/collection/value"):
            r = s.get(sim.url + path, headers=AUTH)
            assert r.headers["X-Discogs-Ratelimit"] == "10"
            assert (
                int(r.headers["X-Discogs-Ratelimit-Used"])
                + int(r.headers["X-Discogs-Ratelimit-Remaining"])
                == 10
            )
            remaining.append(int(r.headers["X-Discogs-Ratelimit-Remaining"]))
        assert remaining == [9, 8, 7]
        anon = s.get(f"{sim.url}/releases/1")
        assert anon.headers["X-Discogs-Ratelimit"] == "4"
        assert anon.headers["X-Discogs-Ratelimit-Remaining"] == "3"  # its own window (by IP)


def test_pre_used_window_like_a_shared_ip() -> None:
    with _fresh(rate_limit=5, pre_used=3) as sim, requests.Session() as s:
        s.headers.update(AUTH)
        first = s.get(f"{sim.url}/releases/1")
        assert first.headers["X-Discogs-Ratelimit-Used"] == "4"
        assert first.headers["X-Discogs-Ratelimit-Remaining"] == "1"
        assert s.get(f"{sim.url}/releases/1").status_code == 200
        assert s.get(f"{sim.url}/releases/1").status_code == 429


def test_unauthenticated_limit_defaults_to_min_25() -> None:
    assert _fresh(rate_limit=60).rate_limit_unauthenticated == 25
    assert _fresh(rate_limit=5).rate_limit_unauthenticated == 5


# ---- the moving window ----------------------------------------------------------------------


def test_strict_moving_window_dated_at_arrival() -> None:
    clock = FakeClock()
    with _fresh(rate_limit=5, window=1.0, clock=clock) as sim, requests.Session() as s:
        s.headers.update(AUTH)
        for i in range(5):
            clock.now = 1000.0 + i * 0.1
            assert s.get(f"{sim.url}/releases/1").status_code == 200
        clock.now = 1000.5
        r = s.get(f"{sim.url}/releases/1")
        assert r.status_code == 429
        assert r.json() == {"message": MSG_RATE_LIMIT}
        assert "Retry-After" not in r.headers
        assert r.headers["X-Discogs-Ratelimit-Remaining"] == "0"
        clock.now = 1000.99  # the first request still counts: strictly 60 s (here 1 s) back
        assert s.get(f"{sim.url}/releases/1").status_code == 429
        clock.now = 1001.0  # exactly one window after the first: it has left the window
        assert s.get(f"{sim.url}/releases/1").status_code == 200
        clock.now = 1001.05  # the 429s did not consume the window; the 2nd request still counts
        assert s.get(f"{sim.url}/releases/1").status_code == 429
        clock.now = 1001.1
        assert s.get(f"{sim.url}/releases/1").status_code == 200
        stats = sim.stats()
        assert stats.throttled == 3 and stats.by_status[200] == 7


def test_strict_window_with_the_real_clock() -> None:
    with _fresh(rate_limit=5, window=1.0) as sim, requests.Session() as s:
        s.headers.update(AUTH)
        codes = [s.get(f"{sim.url}/releases/1").status_code for _ in range(6)]
        log = sim.request_log
        # decided from the recorded arrival times, not from luck about the machine's speed
        inside = log[5].time - log[0].time < 1.0
        assert codes == [200] * 5 + [429 if inside else 200]


def test_retry_after_when_asked() -> None:
    clock = FakeClock()
    with _fresh(rate_limit=2, window=60.0, retry_after=True, clock=clock) as sim:
        for _ in range(2):
            requests.get(f"{sim.url}/releases/1", headers=AUTH, timeout=10)
        clock.now += 15.2
        r = requests.get(f"{sim.url}/releases/1", headers=AUTH, timeout=10)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "45"


def test_windows_are_per_token_and_per_ip() -> None:
    with _fresh(rate_limit=2, window=60.0) as sim, requests.Session() as s:
        s.headers.update(UA)
        for token in ("a", "b"):
            for _ in range(2):
                assert s.get(f"{sim.url}/releases/1", params={"token": token}).status_code == 200
            assert s.get(f"{sim.url}/releases/1", params={"token": token}).status_code == 429
        assert s.get(f"{sim.url}/releases/1").status_code == 200  # by IP, untouched so far
        sim.reset_limits()
        assert s.get(f"{sim.url}/releases/1", params={"token": "a"}).status_code == 200


def test_window_is_strict_under_concurrency() -> None:
    with _fresh(rate_limit=20, window=60.0) as sim:
        statuses: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            with requests.Session() as s:
                s.headers.update(AUTH)
                for _ in range(10):
                    code = s.get(f"{sim.url}/releases/1").status_code
                    with lock:
                        statuses.append(code)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses.count(200) == 20 and statuses.count(429) == 20
        assert sim.stats().throttled == 20


# ---- faults ---------------------------------------------------------------------------------


def test_fault_plan_is_deterministic() -> None:
    plan = FaultPlan(error_rate=0.2, reset_rate=0.1, malformed_rate=0.1, slow_rate=0.1)
    first = [plan.decide(n, seed=4) for n in range(1, 500)]
    assert first == [plan.decide(n, seed=4) for n in range(1, 500)]
    assert first != [plan.decide(n, seed=5) for n in range(1, 500)]
    kinds = [f.kind for f in first if f is not None]
    for kind, rate in (("error", 0.2), ("reset", 0.1), ("malformed", 0.1), ("slow", 0.1)):
        assert abs(kinds.count(kind) / 499 - rate) < 0.07, kind
    assert {f.status for f in first if f is not None and f.kind == "error"} == {500, 502, 503}
    assert FaultPlan().decide(7) is None
    with pytest.raises(ValueError):
        FaultPlan(error_rate=0.8, reset_rate=0.5)


def test_faults_limited_to_kinds() -> None:
    plan = FaultPlan(error_rate=1.0, statuses=(502,), kinds=frozenset({"release"}))
    assert plan.decide(1, kind="release") == Fault("error", 502)
    assert plan.decide(1, kind="collection") is None
    with _fresh(faults=plan) as sim, requests.Session() as s:
        s.headers.update(AUTH)
        assert s.get(f"{sim.url}/releases/1").status_code == 502
        assert s.get(f"{sim.url}/users/demo/collection/folders/0/releases").status_code == 200
        assert sim.stats().faults == {"error": 1}


def test_throttle_storm() -> None:
    plan = FaultPlan(throttle_storms=((3, 4),))
    assert [plan.decide(n) for n in range(1, 9)] == [
        None,
        None,
        *[Fault("throttle", 429)] * 4,
        None,
        None,
    ]
    with _fresh(faults=plan) as sim, requests.Session() as s:
        s.headers.update(AUTH)
        codes = [s.get(f"{sim.url}/releases/1").status_code for _ in range(8)]
        assert codes == [200, 200, 429, 429, 429, 429, 200, 200]
        bodies = [entry for entry in sim.request_log if entry.status == 429]
        assert [e.number for e in bodies] == [3, 4, 5, 6]
        assert sim.stats().faults == {"storm": 4}
        r = s.get(f"{sim.url}/releases/1")
        assert r.headers["X-Discogs-Ratelimit-Used"] == "5"  # the storm consumed nothing


def test_error_faults_replay_identically() -> None:
    plan = FaultPlan(error_rate=0.4)

    def run() -> list[int]:
        with _fresh(faults=plan, seed=11) as sim, requests.Session() as s:
            s.headers.update(AUTH)
            return [s.get(f"{sim.url}/releases/1").status_code for _ in range(25)]

    first = run()
    assert first == run()
    assert set(first) - {200} <= {500, 502, 503} and set(first) - {200}
    expected = [(plan.decide(n, 11) or Fault("none", 200)).status for n in range(1, 26)]
    assert first == expected


def test_reset_fault_raises_connection_error() -> None:
    with _fresh(faults=FaultPlan(reset_rate=1.0)) as sim:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{sim.url}/releases/1", headers=UA, timeout=10)
        log = sim.request_log
        assert log[-1].status == 0 and sim.stats().faults == {"reset": 1}


def test_malformed_fault_gives_invalid_json() -> None:
    with _fresh(faults=FaultPlan(malformed_rate=1.0)) as sim:
        r = requests.get(f"{sim.url}/releases/1", headers=UA, timeout=10)
        assert r.status_code == 200
        assert int(r.headers["Content-Length"]) == len(r.content) > 0
        with pytest.raises(ValueError):
            r.json()


def test_latency_and_slow_faults_use_the_injected_sleep() -> None:
    sleeps = SleepRecorder()
    with _fresh(latency=0.05, jitter=0.02, sleep=sleeps) as sim, requests.Session() as s:
        s.headers.update(UA)
        for _ in range(10):
            s.get(f"{sim.url}/releases/1")
    assert len(sleeps.calls) == 10
    assert all(0.03 <= d <= 0.07 for d in sleeps.calls) and len(set(sleeps.calls)) > 1
    slow = SleepRecorder()
    plan = FaultPlan(slow_rate=1.0, slow_seconds=2.5)
    with _fresh(latency=0, jitter=0, sleep=slow, faults=plan) as sim:
        r = requests.get(f"{sim.url}/releases/1", headers=UA, timeout=10)
        assert r.status_code == 200 and r.json()["id"] == 1
    # Latency counts from arrival: the sleep is the delay less the time spent building the answer.
    assert len(slow.calls) == 1 and 2.4 < slow.calls[0] <= 2.5


# ---- counters, lifecycle, third-party client, CLI -------------------------------------------


def test_counters_and_request_log() -> None:
    with _fresh(rate_limit=3, window=60.0) as sim, requests.Session() as s:
        s.headers.update(AUTH)
        s.get(f"{sim.url}/releases/1")
        s.get(f"{sim.url}/users/demo/collection/folders/0/releases")
        s.get(f"{sim.url}/users/demo/collection/folders")
        s.get(f"{sim.url}/releases/2")
        stats = sim.stats()
        assert stats.requests == 4
        assert stats.by_kind == {"release": 2, "collection": 1, "folders": 1}
        assert stats.by_status == {200: 3, 429: 1}
        assert stats.throttled == 1
        log = sim.request_log
        assert [e.path for e in log] == [
            "/releases/1",
            "/users/demo/collection/folders/0/releases",
            "/users/demo/collection/folders",
            "/releases/2",
        ]
        assert [e.status for e in log] == [200, 200, 200, 429]
        assert all(e.time == pytest.approx(log[0].time, abs=60) for e in log)
        assert sim.stats() == stats
        assert stats.connections == 1  # one keep-alive connection for the whole session
        sim.reset_counters()
        assert sim.stats().requests == 0 and sim.request_log == []


def test_stop_closes_keep_alive_connections() -> None:
    sim = _fresh().start()
    with requests.Session() as s:
        s.headers.update(UA)
        assert s.get(f"{sim.url}/releases/1").status_code == 200
        sim.stop()
        with pytest.raises(requests.ConnectionError):
            s.get(f"{sim.url}/releases/1", timeout=5)
    sim.stop()  # idempotent


def test_python3_discogs_client_works_unmodified(
    sim: DiscogsSimulator, catalogue: SimCatalogue
) -> None:
    user = catalogue.user("dclient", items=120)
    client = discogs_client.Client("toolkit-tests/1.0", user_token="t")
    client._base_url = sim.url
    release = client.release(1)
    assert release.title == "Stockholm"
    assert release.artists[0].name == "The Persuader"
    assert release.community.have >= 0
    folders = client.user("dclient").collection_folders
    assert [f.id for f in folders][:2] == [0, 1]
    items = list(folders[0].releases)
    assert len(items) == 120
    assert sorted(i.instance_id for i in items) == sorted(it["instance_id"] for it in user.items)
    assert items[0].release.title == user.items[0]["basic_information"]["title"]
    assert client.identity().username == "demo"


@pytest.mark.slow
def test_serve_cli_prints_url_and_answers() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolkit",
            "serve",
            "--latency",
            "0",
            "--jitter",
            "0",
            "--releases",
            "1100",
            "--user",
            "zed=12",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        r = requests.get(f"{url}/releases/1", headers=UA, timeout=10)
        assert r.status_code == 200 and r.json()["title"] == "Stockholm"
        body = requests.get(
            f"{url}/users/zed/collection/folders/0/releases", headers=UA, timeout=10
        )
        assert body.json()["pagination"]["items"] == 12
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # reads and closes both pipes (no ResourceWarning)
