"""The connections under the client: a route per host read from the environment once, pooled.

``_Routes`` sets each (scheme, host) up through requests' ``HTTPAdapter`` (proxies, ``no_proxy``
and the CA bundle from the environment) at the host's first request; these tests pin what that
may and may not change, on the real requests/urllib3 code and the simulator on 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import urllib3

from toolkit.config import Settings
from toolkit.discogs.client import DiscogsClient
from toolkit.discogs.simdata import SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator
from toolkit.discogs.transport import _Routes
from toolkit.errors import DiscogsError, DiscogsUnavailableError
from toolkit.ratelimit import SlidingWindowLimiter
from toolkit.testing import WAIT

#: Every variable requests consults for a route (urllib reads both cases).
ENVIRONMENT = (
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    *(
        spelling
        for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        for spelling in (name, name.upper())
    ),
)
API = "https://api.discogs.test"
OTHER = "https://img.discogs.test"
#: Nothing listens on port 1: a request sent through this proxy fails at once.
DEAD_PROXY = "http://127.0.0.1:1"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy or CA bundle from the shell: each test sets what it reads."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def catalogue() -> SimCatalogue:
    return SimCatalogue(releases=200, seed=5)


@pytest.fixture
def sim(catalogue: SimCatalogue) -> Iterator[DiscogsSimulator]:
    with DiscogsSimulator(catalogue, rate_limit=1000, latency=0, jitter=0) as server:
        yield server


def _bundle(path: Path) -> str:
    path.write_text("")  # requests checks that a CA bundle exists, not (yet) what it holds
    return str(path)


def test_the_environment_is_read_once_per_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = _bundle(tmp_path / "first.pem"), _bundle(tmp_path / "second.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", first)
    monkeypatch.setenv("https_proxy", "http://proxy-one.test:3128")
    routes = _Routes()  # setting a route up opens no connection: nothing here is contacted
    route = routes.route(f"{API}/releases/1")
    assert isinstance(route.pool, urllib3.HTTPSConnectionPool)
    assert route.pool.host == "api.discogs.test" and route.pool.ca_certs == first
    assert route.pool.proxy is not None and route.pool.proxy.host == "proxy-one.test"
    assert not route.absolute  # https through a proxy is tunnelled: the request line is a path

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", second)
    monkeypatch.setenv("https_proxy", "http://proxy-two.test:3128")
    # The same host (another path, a query) keeps what it read first ...
    assert routes.route(f"{API}/users/x/collection?page=2") is route
    # ... while another host, or the same host on another scheme, reads the environment now.
    other = routes.route(f"{OTHER}/image.jpg")
    assert isinstance(other.pool, urllib3.HTTPSConnectionPool)
    assert other.pool.ca_certs == second
    assert other.pool.proxy is not None and other.pool.proxy.host == "proxy-two.test"
    plain = routes.route("http://api.discogs.test/releases/1")
    assert plain.pool.proxy is None and not plain.absolute  # https_proxy is for https only
    monkeypatch.setenv("http_proxy", "http://proxy-three.test:3128")
    proxied = routes.route("http://img.discogs.test/releases/1")
    assert proxied.absolute  # plain HTTP through a proxy: the whole URL in the request line
    assert proxied.pool.host == "proxy-three.test"
    routes.close()


def test_a_missing_ca_bundle_is_one_error_and_not_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    sleeps: list[float] = []
    with DiscogsClient(
        "tok-test",
        base_url=API,
        cache_path=":memory:",
        settings=Settings(data_dir=tmp_path),
        limiter=SlidingWindowLimiter(1000, 60.0),
        sleep=sleeps.append,
    ) as client:
        with pytest.raises(DiscogsError, match="CA certificate bundle") as info:
            client.get_release(1)
        assert client.stats().network_requests == 1 and client.stats().retries == 0
    assert "\n" not in str(info.value) and "tok-test" not in str(info.value)
    assert sleeps == []


def test_environment_read_once_end_to_end_and_no_proxy_honoured(
    monkeypatch: pytest.MonkeyPatch, sim: DiscogsSimulator, catalogue: SimCatalogue, tmp_path: Path
) -> None:
    rid = catalogue.release_ids()[0]

    def client() -> DiscogsClient:
        return DiscogsClient(
            "tok-test",
            base_url=sim.url,
            cache_path=":memory:",
            settings=Settings(data_dir=tmp_path),
            limiter=SlidingWindowLimiter(1000, 60.0),
            max_retries=0,
        )

    with client() as first:
        assert first.get_release(rid)["id"] == rid
        # A proxy that is not there, set after the first request: the host's route is kept.
        monkeypatch.setenv("http_proxy", DEAD_PROXY)
        assert first.get_release(rid, refresh=True)["id"] == rid
    # A new client reads the environment: its request goes (and fails) through that proxy ...
    with client() as second, pytest.raises(DiscogsUnavailableError, match="could not be reached"):
        second.get_release(rid)
    # ... unless no_proxy names the host.
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with client() as third:
        assert third.get_release(rid)["id"] == rid
    assert sim.stats().requests == 3


def test_sixteen_threads_share_at_most_sixteen_connections(
    catalogue: SimCatalogue, tmp_path: Path
) -> None:
    threads, per_thread = 16, 6
    ids = catalogue.release_ids()[: threads * per_thread]
    together = threading.Barrier(threads, timeout=WAIT)
    # Each round sends 16 requests at once (the barrier, and latency so they overlap): more than
    # requests' default pool of 10 keeps, so each round beyond the first opened 6 new connections.
    with (
        DiscogsSimulator(catalogue, rate_limit=1000, latency=0.02, jitter=0) as sim,
        DiscogsClient(
            "tok-test",
            base_url=sim.url,
            cache_path=tmp_path / "http.sqlite",
            settings=Settings(data_dir=tmp_path),
            limiter=SlidingWindowLimiter(1000, 60.0),
        ) as client,
    ):

        def fetch(n: int) -> list[int]:
            mine: list[int] = []
            for rid in ids[n * per_thread : (n + 1) * per_thread]:
                together.wait()
                mine.append(int(client.get_release(rid)["id"]))
            return mine

        with ThreadPoolExecutor(threads) as pool:
            got = [rid for chunk in pool.map(fetch, range(threads)) for rid in chunk]
        stats = sim.stats()
        assert client.stats().network_requests == len(ids)
    assert got == ids
    assert stats.by_status == {200: len(ids)}
    assert 1 <= stats.connections <= threads
