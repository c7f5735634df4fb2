"""Tests of DiscogsClient against real HTTP servers on 127.0.0.1: the simulator and a scripted one."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3

from toolkit.backoff import nested_retry_bound
from toolkit.concurrency import ConcurrencyManager, Task
from toolkit.config import Settings
from toolkit.discogs.client import (
    DEFAULT_MEMORY_ENTRIES,
    ClientStats,
    DiscogsClient,
    RequestEvent,
)
from toolkit.discogs.httpcache import HTTPCacheStore, clear_http_cache, http_cache_stats
from toolkit.discogs.simdata import SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator, FaultPlan
from toolkit.discogs.transport import Answer
from toolkit.errors import (
    DatabaseError,
    DiscogsAuthError,
    DiscogsError,
    DiscogsNotFoundError,
    DiscogsRateLimitError,
    DiscogsResponseError,
    DiscogsUnavailableError,
    HTTPCacheError,
)
from toolkit.ratelimit import SlidingWindowLimiter
from toolkit.testing import WAIT, FakeClock, wait_until

TOKEN = "tok-ALPHA-7f3e9c1d2b4a6e8f0a1b2c3d4e5f6a7b"
OTHER_TOKEN = "tok-BRAVO-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"


def no_sleep(seconds: float) -> None:
    """Back-off sleeps in tests: none (the limiter keeps real time)."""


def rel(rid: int) -> dict[str, Any]:
    """The smallest body get_release accepts."""
    return {"id": rid, "title": f"Release {rid}"}


# --------------------------------------------------------------------------- scripted server


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


class ScriptedServer:
    """A tiny real HTTP server: per-path queues of replies (the last one repeats), a request log."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply]] = {}
        self.log: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    outer.log.append((self.path, dict(self.headers.items())))
                    path = self.path.split("?", 1)[0]
                    queue = outer.scripts.get(path) or [Reply(404, {"message": "Not found."})]
                    reply = queue.pop(0) if len(queue) > 1 else queue[0]
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def script(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.scripts[path] = list(replies)

    def hits(self, path: str) -> int:
        with self.lock:
            return sum(1 for logged, _ in self.log if logged.split("?", 1)[0] == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, discogs_rate_limit=1000)


def make_client(
    url: str, cache: Path | str, token: str | None = TOKEN, **kwargs: Any
) -> DiscogsClient:
    kwargs.setdefault("limiter", SlidingWindowLimiter(1000, 60.0))
    kwargs.setdefault("sleep", no_sleep)
    return DiscogsClient(
        token,
        base_url=url,
        cache_path=cache,
        settings=Settings(data_dir=Path(str(cache)).parent),
        **kwargs,
    )


# --------------------------------------------------------------------------- scripted tests


def test_construction_defaults_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, discogs_token=TOKEN, discogs_api_url="http://127.0.0.1:9/api/"
    )
    with DiscogsClient.from_settings(settings) as client:
        assert client.base_url == "http://127.0.0.1:9/api"
        assert client.has_token
        assert client.limiter.limit == 60 and client.limiter.window == 60.0
        assert client.cache_path == settings.http_cache_path
        assert TOKEN not in repr(client)
    with DiscogsClient(settings=Settings(data_dir=tmp_path)) as anonymous:
        assert not anonymous.has_token
        assert anonymous.limiter.limit == 25
    override = Settings(data_dir=tmp_path, discogs_rate_limit=7)
    with DiscogsClient(settings=override, cache_path=":memory:") as limited:
        assert limited.limiter.limit == 7
        assert limited.cache_path is None


def test_headers_sent_and_token_never_in_url(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script("/releases/1", Reply(body=rel(1)))
    with make_client(scripted.url, tmp_path / "c.sqlite", user_agent="ua-test/1.0") as client:
        assert client.get_release(1) == rel(1)
    path, headers = scripted.log[0]
    assert TOKEN not in path
    assert headers["Authorization"] == f"Discogs token={TOKEN}"
    assert headers["User-Agent"] == "ua-test/1.0"
    with make_client(scripted.url, tmp_path / "d.sqlite", token=None) as anonymous:
        anonymous.get_release(1)
    _, anon_headers = scripted.log[1]
    assert "Authorization" not in anon_headers
    assert anon_headers["User-Agent"].startswith("discogs-toolkit/")


def test_redirects_followed_and_the_token_never_leaves_its_host(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    port = scripted.url.rsplit(":", 1)[1]
    scripted.script("/releases/1", Reply(301, {}, {"Location": "/releases/2"}))
    # localhost is another host name than 127.0.0.1 (the same server): requests' rule applies.
    scripted.script("/releases/2", Reply(302, {}, {"Location": f"http://localhost:{port}/r/3"}))
    scripted.script("/r/3", Reply(body=rel(1)))
    scripted.script("/releases/7", Reply(307, {}, {"Location": "/releases/7"}))
    with make_client(scripted.url, tmp_path / "c.sqlite") as client:
        assert client.get_release(1) == rel(1)
        assert [path for path, _ in scripted.log] == ["/releases/1", "/releases/2", "/r/3"]
        sent = [headers.get("Authorization") for _, headers in scripted.log]
        assert sent == [f"Discogs token={TOKEN}"] * 2 + [None]
        assert client.stats().network_requests == 1  # one request, however many hops
        with pytest.raises(DiscogsError, match="failed: _TooManyRedirects") as loop:
            client.get_release(7)
        assert "\n" not in str(loop.value) and TOKEN not in str(loop.value)
        assert scripted.hits("/releases/7") == 11  # the request and ten redirects, never retried


def test_memory_and_http_cache_layers(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script("/releases/5", Reply(body={"id": 5, "title": "Five"}))
    cache = tmp_path / "c.sqlite"
    with make_client(scripted.url, cache) as client:
        first = client.get_release(5)
        second = client.get_release(5)
        assert first == second == {"id": 5, "title": "Five"}
        assert client.stats() == ClientStats(network_requests=1, memory_hits=1)
        client.clear_memory_cache()
        assert client.get_release(5)["title"] == "Five"
        stats = client.stats()
        assert (stats.network_requests, stats.cache_hits, stats.memory_hits) == (1, 1, 1)
        [event] = client.timeline()
        assert isinstance(event, RequestEvent)
        assert event.path == "/releases/5" and event.status == 200 and not event.from_cache
        assert event.started <= event.finished
        client.reset_stats()
        assert client.stats() == ClientStats() and client.timeline() == []
    assert scripted.hits("/releases/5") == 1


def test_a_cache_path_without_suffix_is_the_file_requests_cache_writes(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    """requests-cache adds ".sqlite" to a path without a suffix; reads use that same file."""
    scripted.script("/releases/5", Reply(body={"id": 5, "title": "Five"}))
    with make_client(scripted.url, tmp_path / "httpcache") as client:
        assert client.cache_path == tmp_path / "httpcache.sqlite"
        client.get_release(5)
        client.clear_memory_cache()
        assert client.get_release(5)["title"] == "Five"
        assert client.stats().cache_hits == 1
    assert scripted.hits("/releases/5") == 1


def test_error_responses_are_not_cached(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script(
        "/releases/7",
        Reply(503, {"message": "Down for maintenance."}),
        Reply(body=rel(7)),
    )
    with make_client(scripted.url, tmp_path / "c.sqlite", max_retries=0) as client:
        with pytest.raises(DiscogsUnavailableError) as info:
            client.get_release(7)
        assert info.value.status == 503
        assert "Discogs says: Down for maintenance." in str(info.value)
        assert client.get_release(7) == rel(7)
    assert scripted.hits("/releases/7") == 2


def test_5xx_retried_with_backoff(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script("/releases/8", Reply(500), Reply(502), Reply(body=rel(8)))
    sleeps: list[float] = []
    with make_client(
        scripted.url, tmp_path / "c.sqlite", sleep=sleeps.append, backoff_base=0.5
    ) as client:
        assert client.get_release(8) == rel(8)
        assert client.stats().retries == 2
        assert client.stats().network_requests == 3
        assert [e.status for e in client.timeline()] == [500, 502, 200]
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_retries_exhausted_raise_unavailable(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script("/releases/9", Reply(500, {"message": "Internal error"}))
    with (
        make_client(scripted.url, tmp_path / "c.sqlite", max_retries=3) as client,
        pytest.raises(DiscogsUnavailableError) as info,
    ):
        client.get_release(9)
    message = str(info.value)
    assert "4 attempts" in message and f"(GET {scripted.url}/releases/9)" in message
    assert scripted.hits("/releases/9") == 4


def test_404_maps_to_not_found_with_server_message(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    scripted.script("/releases/99", Reply(404, {"message": "Release not found."}))
    with (
        make_client(scripted.url, tmp_path / "c.sqlite") as client,
        pytest.raises(DiscogsNotFoundError) as info,
    ):
        client.get_release(99)
    assert str(info.value) == f"Discogs says: Release not found. (GET {scripted.url}/releases/99)"
    assert info.value.status == 404 and info.value.url == f"{scripted.url}/releases/99"
    assert scripted.hits("/releases/99") == 1  # 4xx are not retried


def test_401_and_403_map_to_auth_error(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script(
        "/oauth/identity", Reply(401, {"message": "You must authenticate to access this resource."})
    )
    scripted.script("/users/x/collection/value", Reply(403, {"message": "Forbidden"}))
    with make_client(scripted.url, tmp_path / "c.sqlite") as client:
        with pytest.raises(DiscogsAuthError) as info:
            client.identity()
        assert "refused the token (HTTP 401)" in str(info.value)
        assert "You must authenticate" in str(info.value)
        assert TOKEN not in str(info.value)
        with pytest.raises(DiscogsAuthError, match="HTTP 403"):
            client.get_collection_value("x")
    with (
        make_client(scripted.url, tmp_path / "d.sqlite", token=None) as anonymous,
        pytest.raises(DiscogsAuthError, match="DISCOGS_TOKEN"),
    ):
        anonymous.identity()


def test_malformed_json_maps_to_response_error(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script("/releases/3", Reply(raw=b'{"id": 3, "tit'))
    with make_client(scripted.url, tmp_path / "c.sqlite", max_retries=2) as client:
        with pytest.raises(DiscogsResponseError, match="not valid JSON") as info:
            client.get_release(3)
        assert str(scripted.url) in str(info.value)
        # A truncated body is retried like a transient fault, and never cached.
        assert scripted.hits("/releases/3") == 3
        scripted.script("/releases/3", Reply(body=rel(3)))
        assert client.get_release(3) == rel(3)


def test_missing_pagination_maps_to_response_error(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    scripted.script("/users/u/collection/folders/0/releases", Reply(body={"releases": []}))
    with (
        make_client(scripted.url, tmp_path / "c.sqlite") as client,
        pytest.raises(DiscogsResponseError, match="pagination"),
    ):
        list(client.iter_collection("u"))


def test_connection_refused_maps_to_unavailable(tmp_path: Path) -> None:
    server = ScriptedServer()
    url = server.url
    server.close()  # nothing listens there now
    with make_client(url, tmp_path / "c.sqlite", max_retries=2) as client:
        with pytest.raises(DiscogsUnavailableError, match="could not be reached") as info:
            client.get_release(1)
        assert client.stats().retries == 2
        assert [e.status for e in client.timeline()] == [None, None, None]
    assert TOKEN not in str(info.value)


def test_429_honours_retry_after_and_learns_headers(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    scripted.script(
        "/releases/4",
        Reply(429, {"message": "slow down"}, {"Retry-After": "0.25", "X-Discogs-Ratelimit": "40"}),
        Reply(
            body=rel(4),
            headers={"X-Discogs-Ratelimit": "40", "X-Discogs-Ratelimit-Remaining": "5"},
        ),
    )
    sleeps: list[float] = []
    clock = FakeClock()
    limiter = SlidingWindowLimiter(100, 60.0, clock=clock, sleep=clock.sleep)
    with make_client(
        scripted.url, tmp_path / "c.sqlite", limiter=limiter, sleep=sleeps.append, clock=clock
    ) as client:
        assert client.get_release(4) == rel(4)
        stats = client.stats()
    # The wait is the limiter's pause (shared by every thread), not a back-off of this thread.
    assert clock.sleeps == [0.25] and sleeps == []
    assert stats.rate_limited == 1 and stats.retries == 0
    assert stats.limiter_wait_seconds == 0.25
    assert limiter.limit == 40  # adopted the server's limit
    assert limiter.get_tokens() == 5  # and its view of what remains


def test_429_without_retry_after_waits_for_window_then_gives_up(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    scripted.script("/releases/6", Reply(429, {"message": "You are making requests too quickly."}))
    clock = FakeClock()
    limiter = SlidingWindowLimiter(50, 0.05, clock=clock, sleep=clock.sleep)
    with make_client(
        scripted.url, tmp_path / "c.sqlite", limiter=limiter, max_retries=0, clock=clock
    ) as client:
        with pytest.raises(DiscogsRateLimitError) as info:
            client.get_release(6)
        stats = client.stats()
    # 2 * max_retries + 10 waits, then the error; each wait let the whole window pass.
    assert scripted.hits("/releases/6") == 11
    assert stats.rate_limited == 11
    assert stats.limiter_wait_seconds == pytest.approx(10 * 0.05, abs=1e-3)
    assert "429" in str(info.value) and "too quickly" in str(info.value)


def expire(client: DiscogsClient, path: str) -> None:
    """White-box: move the HTTP-cache entry of ``path`` past its expiry (no waiting on clocks)."""
    key = client._key(client.base_url + path)
    cache = client._cache.backend
    cached = cache.get_response(key)
    assert cached is not None
    cached.expires = datetime.now(UTC) - timedelta(seconds=1)
    cache.responses[key] = cached
    client.clear_memory_cache()


def test_stale_cache_served_only_after_every_retry_failed(
    scripted: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.script("/releases/2", Reply(body=rel(2)), Reply(500, {"message": "Boom"}))
    with make_client(scripted.url, tmp_path / "c.sqlite", max_retries=2) as client:
        assert client.get_release(2) == rel(2)
        expire(client, "/releases/2")
        caplog.clear()
        assert client.get_release(2) == rel(2)
        events = client.timeline()
        stats = client.stats()
    assert [(e.status, e.from_cache) for e in events] == [
        (200, False),
        (500, False),
        (500, False),
        (500, True),
    ]
    assert (stats.retries, stats.cache_hits, stats.network_requests) == (2, 1, 4)
    assert scripted.hits("/releases/2") == 4
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.exc_info is None  # one line, no traceback
    assert "HTTP 500" in warning.getMessage() and "expired cached copy" in warning.getMessage()
    assert f"(GET {scripted.url}/releases/2)" in warning.getMessage()


def test_stale_cache_served_when_the_server_is_gone(tmp_path: Path) -> None:
    server = ScriptedServer()
    server.script("/releases/2", Reply(body=rel(2)))
    with make_client(server.url, tmp_path / "c.sqlite", max_retries=1) as client:
        assert client.get_release(2) == rel(2)
        server.close()  # nothing answers any more
        expire(client, "/releases/2")
        assert client.get_release(2) == rel(2)
        assert [(e.status, e.from_cache) for e in client.timeline()] == [
            (200, False),
            (None, False),
            (None, True),
        ]


def test_expired_entry_is_not_served_for_a_4xx(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script(
        "/releases/2", Reply(body=rel(2)), Reply(404, {"message": "Release not found."})
    )
    with make_client(scripted.url, tmp_path / "c.sqlite") as client:
        client.get_release(2)
        expire(client, "/releases/2")
        with pytest.raises(DiscogsNotFoundError):
            client.get_release(2)
        assert client.stats().cache_hits == 0


def test_429_on_an_expired_entry_is_waited_out_not_hidden(
    scripted: ScriptedServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    limits = {"X-Discogs-Ratelimit": "50"}
    scripted.script(
        "/releases/1",
        Reply(body=rel(1), headers={**limits, "X-Discogs-Ratelimit-Remaining": "49"}),
        Reply(429, {"message": "You are making requests too quickly."}, limits),
        Reply(body={**rel(1), "title": "Fresh"}, headers=limits),
    )
    clock = FakeClock()  # the 1-second wait after the 429 takes no real time
    limiter = SlidingWindowLimiter(50, 1.0, clock=clock, sleep=clock.sleep)
    with make_client(scripted.url, tmp_path / "c.sqlite", limiter=limiter, clock=clock) as client:
        client.get_release(1)
        expire(client, "/releases/1")
        capfd.readouterr()
        assert client.get_release(1)["title"] == "Fresh"  # the server's answer, not the stale one
        stats = client.stats()
        statuses = [e.status for e in client.timeline()]
    assert statuses == [200, 429, 200]
    assert stats.rate_limited == 1 and stats.cache_hits == 0
    assert stats.limiter_wait_seconds > 0  # the 429 told the limiter the window was full
    assert capfd.readouterr().err == ""  # no warning or traceback printed


def test_threads_share_one_client(scripted: ScriptedServer, tmp_path: Path) -> None:
    for n in range(40):
        scripted.script(f"/releases/{n}", Reply(body=rel(n)))
    with make_client(scripted.url, tmp_path / "c.sqlite") as client:

        def fetch(n: int) -> int:
            return int(client.get_release(n)["id"])

        with ThreadPoolExecutor(8) as pool:
            assert sorted(pool.map(fetch, list(range(40)) * 3)) == sorted(list(range(40)) * 3)
        stats = client.stats()
    assert all(scripted.hits(f"/releases/{n}") >= 1 for n in range(40))
    assert stats.network_requests == sum(scripted.hits(f"/releases/{n}") for n in range(40))
    assert stats.network_requests + stats.cache_hits + stats.memory_hits == 120


def test_bad_retry_arguments_are_refused_up_front(tmp_path: Path) -> None:
    for bad in ({"max_retries": -1}, {"backoff_jitter": 1.5}, {"backoff_base": -0.1}):
        with pytest.raises(ValueError):
            DiscogsClient(cache_path=":memory:", settings=Settings(data_dir=tmp_path), **bad)


def test_closed_client_refuses(tmp_path: Path) -> None:
    client = DiscogsClient(cache_path=":memory:", settings=Settings(data_dir=tmp_path))
    client.close()
    client.close()  # idempotent
    with pytest.raises(DiscogsError, match="closed"):
        client.get_release(1)


# --------------------------------------------------------------------------- simulator tests


@pytest.fixture(scope="module")
def catalogue() -> SimCatalogue:
    cat = SimCatalogue(releases=2000, seed=3)
    cat.user("walker", items=120)
    cat.user("alice", items=30)
    cat.user("bob", items=30)
    return cat


def sim_client(
    sim: DiscogsSimulator, cache: Path, token: str | None = TOKEN, **kwargs: Any
) -> DiscogsClient:
    return make_client(sim.url, cache, token, **kwargs)


def walk(
    client: DiscogsClient, username: str, per_page: int = 50
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The collection items, then every release's details fetched by a small thread pool."""
    items = list(client.iter_collection(username, per_page=per_page))
    ids = sorted({int(item["id"]) for item in items})
    with ThreadPoolExecutor(6) as pool:
        details = dict(zip(ids, pool.map(client.get_release, ids), strict=True))
    return items, details


def test_walk_then_warm_walks_send_nothing(catalogue: SimCatalogue, tmp_path: Path) -> None:
    user = catalogue.user("walker")
    expected = [item["instance_id"] for item in user.items]
    unique = len({item["id"] for item in user.items})
    cache = tmp_path / "http.sqlite"
    with DiscogsSimulator(catalogue, rate_limit=1000, latency=0, jitter=0) as sim:
        with sim_client(sim, cache) as client:
            items, details = walk(client, "walker")
            assert [item["instance_id"] for item in items] == expected
            assert all(details[rid]["id"] == rid and details[rid]["title"] for rid in details)
            cold = sim.stats()
            assert cold.by_kind == {"collection": 3, "release": unique}
            assert client.stats().network_requests == cold.requests == 3 + unique
            assert len(client.timeline()) == cold.requests
            # warm, same client: answered from memory
            client.reset_stats()
            sim.reset_counters()
            assert walk(client, "walker") == (items, details)
            assert sim.stats().requests == 0
            assert client.stats() == ClientStats(memory_hits=3 + unique)
        # warm, a fresh client on the same cache file: answered from the HTTP cache
        with sim_client(sim, cache) as fresh:
            assert walk(fresh, "walker") == (items, details)
            assert sim.stats().requests == 0
            assert fresh.stats() == ClientStats(cache_hits=3 + unique)
            assert fresh.timeline() == []


def test_learns_a_strict_window_and_gets_no_429(catalogue: SimCatalogue, tmp_path: Path) -> None:
    limiter = SlidingWindowLimiter(30, 1.0)  # a guess higher than the server's 10/s
    with (
        DiscogsSimulator(catalogue, rate_limit=10, window=1.0, latency=0, jitter=0) as sim,
        sim_client(sim, tmp_path / "c.sqlite", limiter=limiter) as client,
    ):
        client.get_user("walker")
        assert client.limiter.limit == 10
        ids = catalogue.release_ids()[:24]
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(client.get_release, ids))
        assert [release["id"] for release in got] == ids
        assert sim.stats().throttled == 0
        assert client.stats().rate_limited == 0
        assert client.stats().limiter_wait_seconds > 0  # it really had to hold back
        # the server saw at most 10 requests in any 1-second window
        times = sorted(record.time for record in sim.request_log)
        assert all(later - earlier > 1.0 for earlier, later in zip(times, times[10:], strict=False))


def test_slows_down_when_another_program_shares_the_token(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    ids = catalogue.release_ids()[:14]
    # One fake time for the server, both limiters and the client: the other program's requests
    # are still in the server's window when this client starts, however slow the machine is.
    clock = FakeClock()
    with DiscogsSimulator(
        catalogue, rate_limit=10, window=1.5, latency=0, jitter=0, clock=clock
    ) as sim:
        other_limiter = SlidingWindowLimiter(10, 1.5, clock=clock, sleep=clock.sleep)
        with sim_client(
            sim, tmp_path / "other.sqlite", limiter=other_limiter, clock=clock
        ) as other:
            for rid in ids[:7]:  # another program spends 7 of the 10
                other.get_release(rid)
        limiter = SlidingWindowLimiter(10, 1.5, clock=clock, sleep=clock.sleep)
        with sim_client(sim, tmp_path / "mine.sqlite", limiter=limiter, clock=clock) as client:
            client.get_release(ids[7])
            # the server said 2 remain: the limiter now believes so too
            assert limiter.get_tokens() == 2
            for rid in ids[8:]:
                assert client.get_release(rid)["id"] == rid
            assert client.stats().limiter_wait_seconds > 0
            assert client.stats().rate_limited == 0
        assert sim.stats().throttled == 0


def test_faults_and_429_storm_lose_no_item(catalogue: SimCatalogue, tmp_path: Path) -> None:
    plan = FaultPlan(
        error_rate=0.10, reset_rate=0.05, malformed_rate=0.02, throttle_storms=((15, 6), (60, 4))
    )
    user = catalogue.user("walker")
    with (
        DiscogsSimulator(
            catalogue, rate_limit=1000, latency=0, jitter=0, faults=plan, seed=5
        ) as sim,
        sim_client(
            sim,
            tmp_path / "c.sqlite",
            limiter=SlidingWindowLimiter(1000, 0.1),
            max_retries=8,
            backoff_base=0.005,
            sleep=time.sleep,
        ) as client,
    ):
        items, details = walk(client, "walker", per_page=25)
        faults = sim.stats().faults
        stats = client.stats()
    counts = Counter(item["instance_id"] for item in items)
    assert counts == Counter(item["instance_id"] for item in user.items)
    assert set(counts.values()) == {1}
    assert all(details[rid]["id"] == rid for rid in details)
    assert len(details) == len({item["id"] for item in user.items})
    assert faults.get("error", 0) > 0 and faults.get("reset", 0) > 0 and faults["storm"] == 10
    assert stats.rate_limited >= 10
    assert stats.retries >= faults.get("error", 0) + faults.get("reset", 0)


def test_tokens_never_see_each_others_cache(catalogue: SimCatalogue, tmp_path: Path) -> None:
    cache = tmp_path / "shared.sqlite"
    tokens = {TOKEN: "alice", OTHER_TOKEN: "bob"}
    with DiscogsSimulator(catalogue, rate_limit=1000, latency=0, jitter=0, tokens=tokens) as sim:
        rid = catalogue.release_ids()[0]
        with sim_client(sim, cache, TOKEN) as alice:
            assert alice.identity()["username"] == "alice"
            assert "minimum" in alice.get_collection_value("alice")
            alice.get_release(rid)
        with sim_client(sim, cache, OTHER_TOKEN) as bob:
            assert bob.identity()["username"] == "bob"
            with pytest.raises(DiscogsAuthError, match="HTTP 403"):
                bob.get_collection_value("alice")
            bob.get_release(rid)
            assert bob.stats().cache_hits == 0
        with sim_client(sim, cache, None) as anonymous:
            with pytest.raises(DiscogsAuthError, match="HTTP 401"):
                anonymous.identity()
            anonymous.get_release(rid)
            assert anonymous.stats().cache_hits == 0
        assert sim.stats().by_kind["identity"] == 3
        assert sim.stats().by_kind["release"] == 3
        sim.reset_counters()
        with sim_client(sim, cache, TOKEN) as alice_again:
            assert alice_again.identity()["username"] == "alice"
            assert alice_again.get_collection_value("alice") is not None
            assert alice_again.stats().cache_hits == 2
        assert sim.stats().requests == 0


def test_token_never_reaches_cache_file_logs_or_messages(
    catalogue: SimCatalogue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "http.sqlite"
    plan = FaultPlan(error_rate=0.2, throttle_storms=((3, 2),))
    with DiscogsSimulator(
        catalogue, rate_limit=1000, latency=0, jitter=0, faults=plan, tokens={TOKEN: "alice"}
    ) as sim:
        limiter = SlidingWindowLimiter(1000, 0.05)
        with sim_client(sim, cache, TOKEN, limiter=limiter, max_retries=8) as client:
            walk(client, "alice", per_page=10)
            client.identity()
            with pytest.raises(DiscogsNotFoundError) as missing:
                client.get_release(999_999_999)
            shown = [repr(client), str(missing.value), repr(missing.value)]
        with (
            sim_client(sim, cache, "not-" + TOKEN) as wrong,
            pytest.raises(DiscogsAuthError) as denied,
        ):
            wrong.identity()
    shown += [str(denied.value), caplog.text]
    assert all(TOKEN not in text for text in shown)
    stored = b"".join(
        path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith("http")
    )
    assert b"/releases/" in stored  # the bytes searched are really the cached requests
    assert b"REDACTED" in stored  # the stored Authorization header is redacted
    assert TOKEN.encode() not in stored
    assert TOKEN[4:20].encode() not in stored


def test_error_types_against_the_simulator(catalogue: SimCatalogue, tmp_path: Path) -> None:
    quick: dict[str, Any] = {"limiter": SlidingWindowLimiter(1000, 0.02), "max_retries": 1}
    with DiscogsSimulator(catalogue, latency=0, jitter=0, tokens={TOKEN: "alice"}) as sim:
        with sim_client(sim, tmp_path / "a.sqlite", **quick) as client:
            with pytest.raises(DiscogsNotFoundError) as info:
                client.get_release(999_999_999)
            assert str(info.value) == (
                f"Discogs says: Release not found. (GET {sim.url}/releases/999999999)"
            )
            with pytest.raises(DiscogsNotFoundError, match="User does not exist"):
                client.get_user("nobody-here")
        with (
            sim_client(sim, tmp_path / "b.sqlite", "wrong-token", **quick) as wrong,
            pytest.raises(DiscogsAuthError, match="refused the token"),
        ):
            wrong.get_release(catalogue.release_ids()[0])
    cases: list[tuple[FaultPlan, type[Exception], str]] = [
        (FaultPlan(throttle_storms=((1, 10**6),)), DiscogsRateLimitError, "429"),
        (FaultPlan(error_rate=1.0, statuses=(502,)), DiscogsUnavailableError, "HTTP 502"),
        (FaultPlan(reset_rate=1.0), DiscogsUnavailableError, "could not be reached"),
        (FaultPlan(malformed_rate=1.0), DiscogsResponseError, "not valid JSON"),
    ]
    for n, (plan, kind, words) in enumerate(cases):
        with (
            DiscogsSimulator(catalogue, latency=0, jitter=0, faults=plan) as sim,
            sim_client(sim, tmp_path / f"f{n}.sqlite", **quick) as client,
            pytest.raises(kind, match=words) as failure,
        ):
            client.get_release(catalogue.release_ids()[0])
        assert f"(GET {sim.url}/releases/" in str(failure.value)


def test_concurrent_calls_for_one_url_share_one_request(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    rid = catalogue.release_ids()[1]
    with (
        DiscogsSimulator(catalogue, rate_limit=1000, latency=0.2, jitter=0) as sim,
        sim_client(sim, tmp_path / "c.sqlite") as client,
        ThreadPoolExecutor(8) as pool,
    ):
        got = list(pool.map(client.get_release, [rid] * 8))
        assert all(release["id"] == rid for release in got)
        assert sim.stats().by_kind == {"release": 1}
        assert client.stats().network_requests == 1
        assert client.stats().memory_hits == 7


def _page(*ids: int) -> dict[str, Any]:
    return {
        "pagination": {"page": 1, "pages": 1, "per_page": 100, "items": len(ids), "urls": {}},
        "releases": [{"id": rid, "instance_id": rid * 10} for rid in ids],
    }


def test_refresh_skips_both_caches_and_stores_the_fresh_page(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    path = "/users/u/collection/folders/0/releases"
    scripted.script(path, Reply(body=_page(1, 2)), Reply(body=_page(1, 2, 3)))
    cache = tmp_path / "c.sqlite"
    with make_client(scripted.url, cache) as client:
        assert len(client.get_collection_page("u")["releases"]) == 2
        assert len(client.get_collection_page("u")["releases"]) == 2  # memory
        assert scripted.hits(path) == 1
        fresh = client.get_collection_page("u", refresh=True)
        assert [r["id"] for r in fresh["releases"]] == [1, 2, 3]
        assert scripted.hits(path) == 2
        # the fresh answer replaced the cached one in memory ...
        assert client.get_collection_page("u") is fresh
        assert [item["id"] for item in client.iter_collection("u", refresh=True)] == [1, 2, 3]
        assert scripted.hits(path) == 3
    # ... and in the HTTP cache file
    with make_client(scripted.url, cache) as again:
        assert len(again.get_collection_page("u")["releases"]) == 3
        assert again.stats().cache_hits == 1 and again.stats().network_requests == 0
    assert scripted.hits(path) == 3


# --------------------------------------------------------------------------- HTTP cache file


def test_corrupt_cache_file_raises_http_cache_error(tmp_path: Path) -> None:
    cache = tmp_path / "http_cache.sqlite"
    cache.write_bytes(b"this is not a database, just garbage bytes " * 200)
    with pytest.raises(HTTPCacheError) as info:
        DiscogsClient(TOKEN, cache_path=cache, settings=Settings(data_dir=tmp_path))
    message = str(info.value)
    assert f"the HTTP cache file {cache} is not readable" in message
    assert "file is not a database" in message
    assert "discogs-toolkit cache clear" in message
    assert TOKEN not in message
    # Settings' default location too, with the same advice.
    with pytest.raises(HTTPCacheError, match="cache clear"):
        DiscogsClient(settings=Settings(data_dir=tmp_path))


def test_uncreatable_cache_dir_raises_http_cache_error(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    with pytest.raises(HTTPCacheError) as info:
        DiscogsClient(settings=Settings(data_dir=blocker))
    assert f"the HTTP cache directory {blocker} cannot be created" in str(info.value)
    assert not isinstance(info.value, OSError)


# --------------------------------------------------------------------------- rate-limit learning


def _limit_after(server: ScriptedServer, tmp_path: Path, said: int, **kwargs: Any) -> int:
    server.script("/releases/1", Reply(body=rel(1), headers={"X-Discogs-Ratelimit": str(said)}))
    kwargs.setdefault("settings", Settings(data_dir=tmp_path))
    with DiscogsClient(TOKEN, base_url=server.url, cache_path=":memory:", **kwargs) as client:
        client.get_release(1)
        return client.limiter.limit


def test_a_configured_rate_limit_is_a_cap(scripted: ScriptedServer, tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, discogs_rate_limit=10)
    assert _limit_after(scripted, tmp_path, 60, settings=configured) == 10
    assert _limit_after(scripted, tmp_path, 5, settings=configured) == 5
    # an explicit limiter is a user's choice too
    assert _limit_after(scripted, tmp_path, 60, limiter=SlidingWindowLimiter(30, 60.0)) == 30
    assert _limit_after(scripted, tmp_path, 20, limiter=SlidingWindowLimiter(30, 60.0)) == 20
    # nothing configured: the default (60 with a token) follows the server either way
    assert _limit_after(scripted, tmp_path, 40) == 40
    assert _limit_after(scripted, tmp_path, 240) == 240


# --------------------------------------------------------------------------- answers checked


def test_malformed_releases_raise_response_error_and_are_not_cached(tmp_path: Path) -> None:
    catalogue = SimCatalogue(releases=1100, seed=4)
    good, no_title, bad_artists, bad_id, not_object = catalogue.release_ids()[:5]
    catalogue.override_release(no_title, {"id": no_title, "artists": []})
    catalogue.override_release(bad_artists, {"id": bad_artists, "title": "x", "artists": "A"})
    catalogue.override_release(bad_id, {"id": str(bad_id), "title": "x"})
    catalogue.override_release(not_object, [1, 2])
    expected = {
        no_title: "no 'title' string (got null)",
        bad_artists: "'artists' is not a list (got str)",
        bad_id: "no integer 'id' (got str)",
        not_object: "expected a JSON object, got list",
    }
    with (
        DiscogsSimulator(catalogue, rate_limit=1000, latency=0, jitter=0) as sim,
        sim_client(sim, tmp_path / "c.sqlite") as client,
    ):
        assert client.get_release(good)["id"] == good
        for rid, words in expected.items():
            with pytest.raises(DiscogsResponseError) as info:
                client.get_release(rid)
            assert words in str(info.value)
            assert str(info.value).endswith(f"(GET {sim.url}/releases/{rid})")
            assert info.value.url == f"{sim.url}/releases/{rid}" and info.value.status == 200
        # nothing malformed was kept: once the server is fixed, the next call asks it again
        catalogue.override_release(bad_artists, None)
        sim.reset_counters()
        assert client.get_release(bad_artists)["id"] == bad_artists
        assert sim.stats().by_kind == {"release": 1}
        with pytest.raises(DiscogsResponseError, match="title"):
            client.get_release(no_title)
        assert sim.stats().by_kind == {"release": 2}


def test_a_merged_release_is_returned_under_its_new_id(tmp_path: Path) -> None:
    catalogue = SimCatalogue(releases=1100, seed=4)
    old, new = catalogue.release_ids()[:2]
    catalogue.override_release(old, catalogue.release(new))
    with (
        DiscogsSimulator(catalogue, rate_limit=1000, latency=0, jitter=0) as sim,
        sim_client(sim, tmp_path / "c.sqlite") as client,
    ):
        merged = client.get_release(old)
        assert merged["id"] == new != old  # callers notice by comparing data["id"]
        assert merged["title"] == client.get_release(new)["title"]


# --------------------------------------------------------------------------- other endpoints


def test_folders_wants_and_marketplace_stats(catalogue: SimCatalogue, tmp_path: Path) -> None:
    user = catalogue.user("walker")
    with (
        DiscogsSimulator(
            catalogue, rate_limit=1000, latency=0, jitter=0, tokens={TOKEN: "walker"}
        ) as sim,
        sim_client(sim, tmp_path / "c.sqlite") as client,
    ):
        folders = client.get_folders("walker")["folders"]
        assert folders[0]["id"] == 0 and folders[0]["count"] == len(user.items)
        assert {f["id"] for f in folders} == {f["id"] for f in user.folder_list()}
        with sim_client(sim, tmp_path / "anon.sqlite", None) as anonymous:
            # not the owner: only the "All" folder
            assert [f["id"] for f in anonymous.get_folders("walker")["folders"]] == [0]
        wants = client.get_wants("walker", per_page=5)
        assert wants["pagination"]["items"] == len(user.wants)
        assert [w["id"] for w in wants["wants"]] == [w["id"] for w in user.wants[:5]]
        assert wants["pagination"]["pages"] == -(-len(user.wants) // 5) > 1
        second = client.get_wants("walker", page=2, per_page=5)["wants"]
        assert [w["id"] for w in second] == [w["id"] for w in user.wants[5:10]]
        rid = catalogue.release_ids()[0]
        market = client.get_marketplace_stats(rid)
        assert market == catalogue.marketplace_stats(rid)
        assert set(market) == {"lowest_price", "num_for_sale", "blocked_from_sale"}
        with pytest.raises(DiscogsNotFoundError, match="Release not found"):
            client.get_marketplace_stats(999_999_999)
        with pytest.raises(DiscogsNotFoundError, match="User does not exist"):
            client.get_wants("nobody-here")
        # all three are cached like the rest (1 h): asking again costs no request
        sim.reset_counters()
        client.get_folders("walker")
        client.get_wants("walker", per_page=5)
        client.get_marketplace_stats(rid)
        assert sim.stats().requests == 0


# --------------------------------------------------------------------------- memory bound


def test_memory_cache_is_bounded_and_falls_back_to_the_http_cache(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    for n in range(3):
        scripted.script(f"/releases/{n}", Reply(body=rel(n)))
    with make_client(scripted.url, tmp_path / "a.sqlite") as default:
        assert default._mem.max_entries == DEFAULT_MEMORY_ENTRIES == 2_000
    with make_client(scripted.url, tmp_path / "b.sqlite", memory_max_entries=2) as client:
        for n in (0, 1, 2, 2, 0):
            assert client.get_release(n) == rel(n)
        stats = client.stats()
    # 0 was pushed out by 2 and came back from the SQLite file, not the network
    assert (stats.network_requests, stats.memory_hits, stats.cache_hits) == (3, 1, 1)


def test_fast_cache_reads_agree_with_requests_cache(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    """White-box: warm reads take the stored record apart themselves; they must see what
    requests-cache sees (a requests-cache upgrade that changes the record shape fails here)."""
    scripted.script("/releases/9", Reply(body=rel(9)))
    with make_client(scripted.url, tmp_path / "c.sqlite") as client:
        client.get_release(9)
        key = client._key(f"{scripted.url}/releases/9")
        store = client._cache
        assert store._record_loads is not None  # the SELECT path is in use for the file
        for expired in (False, True):
            if expired:
                expire(client, "/releases/9")
            fast = store.read(key)
            slow = store.backend.get_response(key)
            assert fast is not None and slow is not None
            assert (fast.content, fast.expired) == (slow.content, slow.is_expired)
            assert fast.expired is expired
        assert store.read(client._key(f"{scripted.url}/releases/10")) is None


def test_fast_cache_writes_agree_with_requests_cache(
    scripted: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """White-box: saves build requests-cache's record as a dict; it must be the record
    requests-cache builds itself, and requests-cache must read it back."""
    for n in (1, 2):
        scripted.script(f"/releases/{n}", Reply(body=rel(n), headers={"X-Extra": f"x{n}"}))
    with make_client(scripted.url, tmp_path / "c.sqlite") as client:
        store = client._cache
        assert store._fast_save is None  # decided by the first save
        client.get_release(1)
        assert store._fast_save is True
        client.get_release(2)
        now = datetime.now(UTC)
        twice = urllib3.HTTPHeaderDict({"B": "2", "a": "1"})
        twice.add("Vary", "Accept")
        twice.add("Vary", "Authorization")  # one header sent twice: requests joins them
        for url in (f"{scripted.url}/releases/2", "http://h.test/x?access_token=secret&b=2&a=1"):
            answer = Answer(url, 200, "OK", twice, b"{}", {"Authorization": "t"})
            expires = now + timedelta(seconds=60)
            fast = store._fast_record(answer, now, expires)
            assert fast == store._record_of(store._cached(answer, now, expires))
            assert "secret" not in repr(fast) and fast["request"]["headers"]["Authorization"] != "t"
            assert fast["headers"]["Vary"] == "Accept, Authorization"
        slow = store.backend.get_response(client._key(f"{scripted.url}/releases/2"))
        assert slow is not None and json.loads(slow.content) == rel(2)
        assert slow.status_code == 200 and slow.headers["X-Extra"] == "x2"
        assert slow.request.headers["Authorization"] == "REDACTED" and not slow.is_expired
    # A record that does not agree on the first save: every save goes the slow way.
    monkeypatch.setattr(HTTPCacheStore, "_fast_record", lambda *args: {"not": "the record"})
    with make_client(scripted.url, tmp_path / "d.sqlite") as client:
        client.get_release(1)
        assert client._cache._fast_save is False
        client.get_release(2)
        cached = client._cache.backend.get_response(client._key(f"{scripted.url}/releases/2"))
        assert cached is not None and json.loads(cached.content) == rel(2)


# --------------------------------------------------------------------------- HTTP cache file upkeep


def test_http_cache_stats_and_clear(scripted: ScriptedServer, tmp_path: Path) -> None:
    path = tmp_path / "http_cache.sqlite"
    assert http_cache_stats(path) == {
        "path": str(path),
        "exists": False,
        "bytes": 0,
        "responses": 0,
    }
    assert clear_http_cache(path) == 0
    for n in range(3):
        scripted.script(f"/releases/{n}", Reply(body=rel(n)))
    with make_client(scripted.url, path) as client:
        for n in range(3):
            client.get_release(n)
        assert http_cache_stats(path)["responses"] == 3  # a read-only look while in use
    stats = http_cache_stats(path)
    assert stats["exists"] and stats["responses"] == 3
    assert stats["bytes"] >= path.stat().st_size > 0
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith(path.name))
    assert clear_http_cache(path) == on_disk
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("http_cache.sqlite")]
    path.write_bytes(b"not a cache at all\n" * 300)
    with pytest.raises(DatabaseError, match="not a readable HTTP cache"):
        http_cache_stats(path)


# --------------------------------------------------------------------------- configuration


def test_library_clients_never_read_the_environment_or_dotenv(
    scripted: ScriptedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted.script("/releases/1", Reply(body=rel(1)))
    scripted.script("/oauth/identity", Reply(401, {"message": "Token rejected."}))
    monkeypatch.setenv("DISCOGS_TOKEN", TOKEN)
    monkeypatch.setenv("DISCOGS_API_URL", scripted.url)
    monkeypatch.setenv("DISCOGS_RATE_LIMIT", "7")
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOOLKIT_ENV_FILE")  # conftest disables .env; this test needs the lookup
    (tmp_path / ".env").write_text("DISCOGS_USER_AGENT=from-dotenv/1.0\nCACHE_DEFAULT_TTL=5000\n")
    defaults = Settings()
    with DiscogsClient(cache_path=":memory:") as plain:
        assert not plain.has_token
        assert plain.base_url == defaults.discogs_api_url
        assert plain.limiter.limit == 25  # anonymous default, not DISCOGS_RATE_LIMIT
        assert plain._mem.default_ttl == defaults.cache_default_ttl
    with DiscogsClient(base_url=scripted.url, cache_path=":memory:") as plain:
        plain.get_release(1)
    _, sent = scripted.log[-1]
    assert "Authorization" not in sent and sent["User-Agent"] == defaults.discogs_user_agent

    with DiscogsClient.from_env() as configured:
        assert configured.has_token and configured.base_url == scripted.url
        assert configured.limiter.limit == 7
        assert configured.cache_path == tmp_path / "env-data" / "http_cache.sqlite"
        assert configured._mem.default_ttl == 5.0
        configured.get_release(1)
        _, sent = scripted.log[-1]
        with pytest.raises(DiscogsAuthError) as info:
            configured.identity()
        shown = [repr(configured), str(info.value), repr(info.value)]
    assert sent["Authorization"] == f"Discogs token={TOKEN}"
    assert sent["User-Agent"] == "from-dotenv/1.0"
    assert all(TOKEN not in text for text in shown)


def test_memory_cache_follows_the_cache_settings(scripted: ScriptedServer, tmp_path: Path) -> None:
    scripted.script("/releases/1", Reply(body=rel(1)))
    clock = FakeClock()
    kept = Settings(
        data_dir=tmp_path,
        cache_default_ttl=10.0,
        cache_auto_cleanup=False,
        cache_cleanup_interval=123.0,
    )
    quick: dict[str, Any] = {"limiter": SlidingWindowLimiter(1000, 60.0), "clock": clock}
    with DiscogsClient(TOKEN, base_url=scripted.url, settings=kept, **quick) as client:
        memory = client._mem
        assert (memory.default_ttl, memory.cleanup_interval) == (10.0, 123.0)
        assert memory.cleanup_thread is None
        client.get_release(1)
        clock.advance(9.5)
        client.get_release(1)  # still in memory
        clock.advance(1.0)
        client.get_release(1)  # gone from memory after 10 s; the HTTP cache answers
        stats = client.stats()
    assert (stats.network_requests, stats.memory_hits, stats.cache_hits) == (1, 1, 1)

    swept = Settings(data_dir=tmp_path, cache_default_ttl=10.0, cache_cleanup_interval=0.01)
    with DiscogsClient(
        TOKEN, base_url=scripted.url, settings=swept, cache_path=":memory:", **quick
    ) as client:
        thread = client._mem.cleanup_thread
        assert thread is not None and thread.is_alive()
        client.get_release(1)
        clock.advance(11.0)
        wait_until(lambda: client._mem.get_stats().evictions == 1, "the sweep to drop the entry")
    assert not thread.is_alive()


# --------------------------------------------------------------------------- resources


def _open_files(path: Path) -> list[str]:
    """Paths starting with ``path`` that this process holds open (Linux /proc)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(str(path)):
                found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_a_half_built_client_closes_what_it_opened(tmp_path: Path) -> None:
    cache = tmp_path / "http_cache.sqlite"
    # Fails after the cache file and the HTTP session were opened: the memory cache refuses.
    refused = Settings(data_dir=tmp_path, cache_cleanup_interval=0.0)
    with pytest.raises(ValueError, match="cleanup_interval"):
        DiscogsClient(TOKEN, cache_path=cache, settings=refused)
    assert cache.exists()  # it got as far as opening the file
    assert _open_files(cache) == []
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database, just garbage bytes " * 200)
    with pytest.raises(HTTPCacheError):
        DiscogsClient(TOKEN, cache_path=corrupt, settings=Settings(data_dir=tmp_path))
    assert _open_files(corrupt) == []
    with DiscogsClient(TOKEN, cache_path=cache, settings=Settings(data_dir=tmp_path)):
        assert _open_files(cache)  # the check sees an open client's files
    assert _open_files(cache) == []


# --------------------------------------------------------------------------- retries and 429s


def test_backoff_schedule_is_exponential_and_capped(
    scripted: ScriptedServer, tmp_path: Path
) -> None:
    scripted.script("/releases/8", Reply(503))
    sleeps: list[float] = []
    with (
        make_client(
            scripted.url,
            tmp_path / "c.sqlite",
            max_retries=5,
            backoff_base=0.5,
            backoff_cap=1.5,
            backoff_jitter=0.0,
            sleep=sleeps.append,
        ) as client,
        pytest.raises(DiscogsUnavailableError, match="6 attempts"),
    ):
        client.get_release(8)
    assert sleeps == [0.5, 1.0, 1.5, 1.5, 1.5]


def test_client_and_manager_retries_multiply_within_the_documented_bound(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    rid = catalogue.release_ids()[0]
    client_sleeps: list[float] = []
    clock = FakeClock()  # the manager's back-offs, recorded and not waited out
    with (
        DiscogsSimulator(
            catalogue, rate_limit=1000, latency=0, jitter=0, faults=FaultPlan(error_rate=1.0)
        ) as sim,
        sim_client(
            sim,
            tmp_path / "c.sqlite",
            max_retries=2,
            backoff_base=0.5,
            backoff_cap=0.75,
            sleep=client_sleeps.append,
        ) as client,
        ConcurrencyManager(
            max_concurrent=1, retries=3, backoff_base=1.0, backoff_cap=1.5, sleep=clock.sleep
        ) as manager,
    ):
        result = manager.enqueue(Task("release", partial(client.get_release, rid))).result(WAIT)
        sent = sim.stats().requests
    bound = nested_retry_bound(2, 0.5, 0.75, 3, 1.0, 1.5)
    assert not result.success and isinstance(result.error, DiscogsUnavailableError)
    assert result.attempt == 4
    assert sent == bound.attempts == (2 + 1) * (3 + 1)
    assert len(client_sleeps) == 4 * 2 and clock.sleeps == [1.0, 1.5, 1.5]
    assert sum(client_sleeps) + sum(clock.sleeps) <= bound.backoff_seconds == 4 * 1.25 + 4.0


class GatedSleep:
    """A limiter's ``sleep`` that records who waits, blocks until ``gate`` opens, then moves time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.waiting: list[float] = []

    def __call__(self, seconds: float) -> None:
        with self.lock:
            self.waiting.append(seconds)
        assert self.gate.wait(WAIT), "the gate never opened"
        self.clock.sleep(seconds)


def test_retry_after_pauses_every_thread_sharing_the_limiter(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    first, second = catalogue.release_ids()[:2]
    clock = FakeClock()
    gated = GatedSleep(clock)
    limiter = SlidingWindowLimiter(1000, 60.0, clock=clock, sleep=gated)
    storm = FaultPlan(throttle_storms=((1, 1),))  # request 1: 429 with "Retry-After: 1"
    with (
        DiscogsSimulator(
            catalogue, latency=0, jitter=0, retry_after=True, faults=storm, clock=clock
        ) as sim,
        sim_client(sim, tmp_path / "c.sqlite", limiter=limiter, clock=clock) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        throttled = pool.submit(client.get_release, first)
        wait_until(lambda: len(gated.waiting) == 1, "the 429's receiver to wait on the limiter")
        assert limiter.paused_for() == pytest.approx(1.0)
        other = pool.submit(client.get_release, second)
        wait_until(lambda: len(gated.waiting) == 2, "another thread to wait on the pause")
        assert sim.stats().requests == 1  # nobody sent anything during the pause
        gated.gate.set()
        assert throttled.result(WAIT)["id"] == first and other.result(WAIT)["id"] == second
        log = sim.request_log
        stats = client.stats()
    assert [record.status for record in log] == [429, 200, 200]
    assert all(record.time >= log[0].time + 1.0 for record in log[1:])
    assert stats.rate_limited == 1 and stats.limiter_wait_seconds >= 1.0
