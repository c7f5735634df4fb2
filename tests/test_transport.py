"""The HTTP session under the client: environment settings read once per host, a pool per thread.

``_Session`` caches requests' ``merge_environment_settings`` per (scheme, host); these tests pin
what that may and may not change, on the real requests code and the simulator on 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from toolkit.config import Settings
from toolkit.discogs.client import DiscogsClient
from toolkit.discogs.simdata import SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator
from toolkit.discogs.transport import _Session
from toolkit.ratelimit import SlidingWindowLimiter
from toolkit.testing import WAIT

#: Every variable requests consults in ``merge_environment_settings`` (urllib reads both cases).
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


def merged(session: requests.Session, url: str, **given: Any) -> dict[str, Any]:
    """What requests merges for ``url``, called the way ``Session.request`` calls it."""
    return dict(
        session.merge_environment_settings(
            url,
            given.get("proxies") or {},
            given.get("stream"),
            given.get("verify"),
            given.get("cert"),
        )
    )


@pytest.fixture(scope="module")
def catalogue() -> SimCatalogue:
    return SimCatalogue(releases=200, seed=5)


@pytest.fixture
def sim(catalogue: SimCatalogue) -> Iterator[DiscogsSimulator]:
    with DiscogsSimulator(catalogue, rate_limit=1000, latency=0, jitter=0) as server:
        yield server


def test_the_environment_is_read_once_per_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = str(tmp_path / "first.pem"), str(tmp_path / "second.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", first)
    monkeypatch.setenv("https_proxy", "http://proxy-one.test:3128")
    session = _Session()
    settings = merged(session, f"{API}/releases/1")
    assert settings["verify"] == first
    assert settings["proxies"]["https"] == "http://proxy-one.test:3128"
    assert settings["stream"] is False and settings["cert"] is None

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", second)
    monkeypatch.setenv("https_proxy", "http://proxy-two.test:3128")
    # The same host (another path, a query) keeps what it read first ...
    again = merged(session, f"{API}/users/x/collection?page=2")
    assert again == settings
    # ... while another host, or the same host on another scheme, reads the environment now.
    other = merged(session, f"{OTHER}/image.jpg")
    assert other["verify"] == second
    assert other["proxies"]["https"] == "http://proxy-two.test:3128"
    plain = merged(session, "http://api.discogs.test/releases/1")
    assert plain["verify"] == second and "https" in plain["proxies"]
    # A plain requests.Session reads it on every call: the difference the cache makes.
    assert merged(requests.Session(), f"{API}/releases/1")["verify"] == second


def test_per_request_arguments_bypass_the_cache_and_are_honoured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bundle = str(tmp_path / "env.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", bundle)
    monkeypatch.setenv("https_proxy", "http://proxy-env.test:3128")
    session = _Session()
    cached = merged(session, f"{API}/releases/1")
    assert cached["verify"] == bundle

    explicit = str(tmp_path / "explicit.pem")
    assert merged(session, f"{API}/releases/1", verify=explicit)["verify"] == explicit
    assert merged(session, f"{API}/releases/1", verify=False)["verify"] is False
    assert merged(session, f"{API}/releases/1", stream=True)["stream"] is True
    assert merged(session, f"{API}/releases/1", cert="client.pem")["cert"] == "client.pem"
    proxied = merged(session, f"{API}/releases/1", proxies={"https": "http://mine.test:8080"})
    assert proxied["proxies"]["https"] == "http://mine.test:8080"
    # Per-request arguments read the environment as it is now (requests' own behaviour) ...
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "later.pem"))
    assert merged(session, f"{API}/releases/1", stream=True)["verify"] == str(
        tmp_path / "later.pem"
    )
    # ... and leave the cached answer for the host as it was.
    assert merged(session, f"{API}/releases/1") == cached


def test_the_returned_settings_are_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy-one.test:3128")
    session = _Session()
    settings = merged(session, f"{API}/releases/1")
    expected = {**settings, "proxies": dict(settings["proxies"])}
    settings["proxies"]["https"] = "http://mutated.test:1"
    settings["proxies"]["ftp"] = "http://added.test:1"
    settings["verify"] = False
    assert merged(session, f"{API}/releases/1") == expected


def test_environment_read_once_end_to_end_and_explicit_proxies_honoured(
    monkeypatch: pytest.MonkeyPatch, sim: DiscogsSimulator, catalogue: SimCatalogue
) -> None:
    rid = catalogue.release_ids()[0]
    url = f"{sim.url}/releases/{rid}"
    headers = {"User-Agent": "toolkit-tests"}
    with _Session() as session:
        assert session.get(url, headers=headers, timeout=WAIT).json()["id"] == rid
        # A proxy that is not there, set after the first request: the host's settings are kept.
        monkeypatch.setenv("http_proxy", DEAD_PROXY)
        assert session.get(url, headers=headers, timeout=WAIT).json()["id"] == rid
        # An explicit proxy is not the cached answer: the request goes (and fails) through it.
        with pytest.raises(requests.exceptions.ProxyError):
            session.get(url, headers=headers, timeout=WAIT, proxies={"http": DEAD_PROXY})
    with requests.Session() as plain, pytest.raises(requests.exceptions.ProxyError):
        plain.get(url, headers=headers, timeout=WAIT)  # requests alone reads it per request
    assert sim.stats().requests == 2


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
