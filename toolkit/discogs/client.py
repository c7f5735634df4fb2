"""A thread-safe, rate-limited, two-level-cached client for the Discogs REST API (or the simulator).

Errors from ``requests`` and the server are mapped once, here, to :mod:`toolkit.errors`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, urlencode

import requests
import requests_cache
from requests_cache.backends.base import BaseCache
from requests_cache.backends.sqlite import SQLiteCache

from toolkit.cache import CacheService
from toolkit.config import Settings
from toolkit.errors import (
    DiscogsAuthError,
    DiscogsError,
    DiscogsNotFoundError,
    DiscogsRateLimitError,
    DiscogsResponseError,
    DiscogsUnavailableError,
)
from toolkit.ratelimit import SlidingWindowLimiter

__all__ = [
    "COLLECTION_TTL",
    "SEARCH_TTL",
    "ClientStats",
    "DiscogsClient",
    "RequestEvent",
]

#: Collection pages, folders, wants, values, identity and marketplace stats change often: 1 hour.
COLLECTION_TTL: Final = 3600.0
#: Database searches: 12 hours. Releases use ``Settings.cache_default_ttl`` (24 h by default).
SEARCH_TTL: Final = 12 * 3600.0

_ACCEPT = "application/vnd.discogs.v2.discogs+json"
_ANONYMOUS = "anonymous"
_MISSING: Final = object()
_MAX_EVENTS = 200_000

# Paths (relative to the API root) that expire after COLLECTION_TTL / SEARCH_TTL; the rest use the
# default TTL. Checked in order by both caches.
_SHORT_PATHS = re.compile(
    r"/(oauth/identity|users/[^/?]+(/(collection|wants)[^?]*)?|marketplace/stats/[^/?]+)/?(\?|$)"
)
_SEARCH_PATHS = re.compile(r"/database/search(/|\?|$)")


@dataclass(frozen=True)
class ClientStats:
    """Counters since the client was created (or :meth:`DiscogsClient.reset_stats`).

    ``network_requests`` counts every attempt sent to the server (retries and 429s included);
    ``cache_hits`` counts answers from the HTTP (SQLite) cache, ``memory_hits`` answers from the
    in-memory cache of parsed responses in front of it; ``limiter_wait_seconds`` is the time spent
    blocked on the rate limiter or a server ``Retry-After``.
    """

    network_requests: int = 0
    cache_hits: int = 0
    memory_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    limiter_wait_seconds: float = 0.0


@dataclass(frozen=True)
class RequestEvent:
    """One network request: monotonic start/finish seconds, API path, status (None = no answer).

    ``from_cache`` is True when the request failed and requests-cache answered with a stale copy.
    """

    started: float
    finished: float
    path: str
    status: int | None
    from_cache: bool = False


class _Counters:
    """Mutable, lock-protected counterpart of :class:`ClientStats`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.network_requests = 0
        self.cache_hits = 0
        self.memory_hits = 0
        self.retries = 0
        self.rate_limited = 0
        self.limiter_wait_seconds = 0.0

    def add(self, name: str, amount: float = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> ClientStats:
        with self.lock:
            return ClientStats(
                network_requests=self.network_requests,
                cache_hits=self.cache_hits,
                memory_hits=self.memory_hits,
                retries=self.retries,
                rate_limited=self.rate_limited,
                limiter_wait_seconds=self.limiter_wait_seconds,
            )


def _cache_salt(path: Path) -> bytes:
    """Return the random salt stored inside the cache file, creating it on first use.

    Living in the cache file, it keeps cache keys stable across client objects and processes, and
    resets together with the cache when the file is deleted.
    """
    con = sqlite3.connect(str(path), timeout=30.0)
    try:
        with con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS toolkit_meta (key TEXT PRIMARY KEY, value BLOB)"
            )
            con.execute(
                "INSERT OR IGNORE INTO toolkit_meta (key, value) VALUES ('token_salt', ?)",
                (secrets.token_bytes(32),),
            )
        row = con.execute("SELECT value FROM toolkit_meta WHERE key = 'token_salt'").fetchone()
    finally:
        con.close()
    return bytes(row[0])


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (HTTP dates are ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds) if seconds == seconds else None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


class DiscogsClient:
    """Discogs API client: parsed-JSON methods over an HTTP cache, a rate limiter and retries.

    Many threads may share one client. Answers come from, in order: an in-memory cache of parsed
    responses, the requests-cache SQLite file (both partitioned per token, the token itself is
    never stored), then the network, which alone takes a rate-limiter slot. Treat returned dicts as
    read-only: the in-memory cache hands out the same object to every caller.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        user_agent: str | None = None,
        cache_path: str | Path | None = None,
        limiter: SlidingWindowLimiter | None = None,
        timeout: float | tuple[float, float] = (5, 30),
        max_retries: int = 5,
        settings: Settings | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        page_workers: int = 4,
        memory_max_entries: int | None = 20_000,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build a client; unset arguments come from ``settings`` (default ``Settings.from_env()``).

        ``cache_path=":memory:"`` keeps the HTTP cache in memory (tests, throwaway sessions).
        """
        if settings is None:
            settings = Settings.from_env()
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        token = token if token is not None else settings.discogs_token
        self._token: str | None = token or None
        self._base_url = (base_url or settings.discogs_api_url).rstrip("/")
        self._user_agent = user_agent or settings.discogs_user_agent
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_throttles = 2 * max_retries + 10
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._page_workers = max(1, page_workers)
        self._sleep = sleep
        self._clock = clock
        self._release_ttl = float(settings.cache_default_ttl)
        self._random = random.Random()
        self._counters = _Counters()
        self._events: deque[RequestEvent] = deque(maxlen=_MAX_EVENTS)
        self._closed = False
        self._inflight: dict[str, threading.Event] = {}
        self._inflight_lock = threading.Lock()

        if limiter is None:
            rate = settings.discogs_rate_limit or (60 if self._token else 25)
            limiter = SlidingWindowLimiter(rate, 60.0)
        self._limiter = limiter

        in_memory = cache_path is not None and str(cache_path) == ":memory:"
        backend: Any
        if in_memory:
            backend = BaseCache()
            self._cache_path: Path | None = None
        else:
            path = Path(cache_path) if cache_path is not None else settings.http_cache_path
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = SQLiteCache(str(path), wal=True, busy_timeout=30_000)
            self._cache_path = path
        self._session = requests_cache.CachedSession(
            backend=backend,
            expire_after=self._release_ttl,
            urls_expire_after={
                _SEARCH_PATHS: SEARCH_TTL,
                _SHORT_PATHS: COLLECTION_TTL,
            },
            allowable_codes=(200,),
            allowable_methods=("GET",),
            stale_if_error=True,
            key_fn=self._create_key,
        )
        # Cache keys are partitioned by an HMAC of the token under a salt kept in the cache file:
        # stable across client objects, useless to anyone reading the file without the token.
        self._identity = _ANONYMOUS
        if self._token:
            salt = (
                secrets.token_bytes(32)
                if self._cache_path is None
                else _cache_salt(self._cache_path)
            )
            digest = hmac.new(salt, self._token.encode(), hashlib.sha256).hexdigest()
            self._identity = f"token-{digest[:32]}"
        # The status the server really sent, even when requests-cache answers with a stale copy.
        self._last_status = threading.local()
        self._session.hooks["response"].append(self._note_status)
        self._session.headers.update({"User-Agent": self._user_agent, "Accept": _ACCEPT})
        if self._token:
            self._session.headers["Authorization"] = f"Discogs token={self._token}"

        self._memory = CacheService(
            default_ttl=self._release_ttl,
            auto_cleanup=False,
            max_entries=memory_max_entries,
            clock=clock,
        )

    # -- construction helpers -------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> DiscogsClient:
        """A client configured entirely from ``settings`` (keyword arguments override)."""
        return cls(settings=settings, **kwargs)

    def __repr__(self) -> str:
        token = "set" if self._token else "unset"
        return f"DiscogsClient(base_url={self._base_url!r}, token={token})"

    def __enter__(self) -> DiscogsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session and its cache file; the client is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        self._session.close()  # type: ignore[no-untyped-call]
        self._memory.destroy()

    # -- public properties ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root requests go to (no trailing slash)."""
        return self._base_url

    @property
    def has_token(self) -> bool:
        """True when requests are authenticated (the token itself is never shown)."""
        return self._token is not None

    @property
    def limiter(self) -> SlidingWindowLimiter:
        """The rate limiter every network request goes through; ``limit``/``window`` bound the rate."""
        return self._limiter

    @property
    def cache_path(self) -> Path | None:
        """The SQLite HTTP-cache file, or None for an in-memory cache."""
        return self._cache_path

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        return self._counters.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters and forget the request timeline."""
        with self._counters.lock:
            self._counters.network_requests = 0
            self._counters.cache_hits = 0
            self._counters.memory_hits = 0
            self._counters.retries = 0
            self._counters.rate_limited = 0
            self._counters.limiter_wait_seconds = 0.0
            self._events.clear()

    def timeline(self) -> list[RequestEvent]:
        """Every network request made (since the last reset), in completion order."""
        with self._counters.lock:
            return list(self._events)

    def clear_memory_cache(self) -> None:
        """Drop the in-memory parsed responses (the HTTP cache file is kept)."""
        self._memory.clear()

    # -- API methods ----------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """``GET /oauth/identity``: who the token belongs to (401 without a token)."""
        return self._get_object("/oauth/identity")

    def get_user(self, username: str) -> dict[str, Any]:
        """``GET /users/{username}``: the public profile."""
        return self._get_object(f"/users/{quote(username, safe='')}")

    def get_folders(self, username: str) -> dict[str, Any]:
        """``GET /users/{username}/collection/folders``: ``{"folders": [...]}``."""
        data = self._get_object(f"/users/{quote(username, safe='')}/collection/folders")
        if not isinstance(data.get("folders"), list):
            raise self._response_error("the folder list has no 'folders' array", data)
        return data

    def get_collection_page(
        self,
        username: str,
        folder_id: int = 0,
        page: int = 1,
        per_page: int = 100,
        sort: str | None = None,
        sort_order: str | None = None,
        *,
        refresh: bool = False,
    ) -> dict[str, Any]:
        """One page of a collection folder: ``{"pagination": {...}, "releases": [...]}``.

        ``refresh=True`` skips both caches and asks the server, then stores the fresh page in
        both (a pull lists the collection this way, so it never works from a stale listing).
        """
        params: dict[str, str | int] = {"page": page, "per_page": per_page}
        if sort is not None:
            params["sort"] = sort
        if sort_order is not None:
            params["sort_order"] = sort_order
        path = f"/users/{quote(username, safe='')}/collection/folders/{int(folder_id)}/releases"
        data = self._get_object(path, params, refresh=refresh)
        pagination = data.get("pagination")
        if not isinstance(pagination, dict) or not isinstance(pagination.get("pages"), int):
            raise self._response_error("the collection page has no 'pagination'", data, path)
        if not isinstance(data.get("releases"), list):
            raise self._response_error("the collection page has no 'releases' list", data, path)
        return data

    def iter_collection(
        self,
        username: str,
        folder_id: int = 0,
        *,
        per_page: int = 100,
        sort: str | None = None,
        sort_order: str | None = None,
        refresh: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of a collection folder in page order.

        The first page tells how many pages there are; the rest are fetched concurrently by a
        small thread pool (each still passing the rate limiter), started before the first item is
        yielded, and yielded in order. ``refresh=True`` fetches every page from the server (see
        :meth:`get_collection_page`).
        """
        first = self.get_collection_page(
            username, folder_id, 1, per_page, sort, sort_order, refresh=refresh
        )
        pages = int(first["pagination"]["pages"])
        if pages <= 1:
            yield from first["releases"]
            return
        workers = min(self._page_workers, pages - 1)
        with ThreadPoolExecutor(workers, thread_name_prefix="discogs-page") as pool:
            futures = [
                pool.submit(
                    self.get_collection_page,
                    username,
                    folder_id,
                    number,
                    per_page,
                    sort,
                    sort_order,
                    refresh=refresh,
                )
                for number in range(2, pages + 1)
            ]
            try:
                yield from first["releases"]
                for future in futures:
                    yield from future.result()["releases"]
            finally:
                for future in futures:
                    future.cancel()

    def get_release(self, release_id: int) -> dict[str, Any]:
        """``GET /releases/{id}``: full release details."""
        return self._get_object(f"/releases/{int(release_id)}")

    def get_collection_value(self, username: str) -> dict[str, Any]:
        """``GET /users/{username}/collection/value``: minimum/median/maximum value (owner only)."""
        return self._get_object(f"/users/{quote(username, safe='')}/collection/value")

    def get_wants(self, username: str, page: int = 1, per_page: int = 100) -> dict[str, Any]:
        """``GET /users/{username}/wants``: one page of the wantlist."""
        params: dict[str, str | int] = {"page": page, "per_page": per_page}
        return self._get_object(f"/users/{quote(username, safe='')}/wants", params)

    def get_marketplace_stats(self, release_id: int) -> dict[str, Any]:
        """``GET /marketplace/stats/{id}``: lowest price and number for sale."""
        return self._get_object(f"/marketplace/stats/{int(release_id)}")

    # -- internals ------------------------------------------------------------------------------

    def _create_key(self, request: Any, **kwargs: Any) -> str:
        """requests-cache key function: its normal key, partitioned by the token's identity."""
        base = requests_cache.create_key(request, **kwargs)
        return hashlib.sha256(f"{self._identity}\n{base}".encode()).hexdigest()[:32]

    def _note_status(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Session response hook: remember the status of the last real (non-cached) response."""
        if not getattr(response, "from_cache", False):
            self._last_status.value = response.status_code

    def _ttl_for(self, path: str) -> float:
        if _SEARCH_PATHS.search(path):
            return SEARCH_TTL
        if _SHORT_PATHS.search(path):
            return COLLECTION_TTL
        return self._release_ttl

    def _url(self, path: str, params: Mapping[str, str | int] | None) -> str:
        query = f"?{urlencode(sorted(params.items()))}" if params else ""
        return f"{self._base_url}{path}{query}"

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _response_error(
        self, problem: str, data: Any = None, path: str | None = None
    ) -> DiscogsResponseError:
        url = self._url(path, None) if path else None
        where = f" (GET {url})" if url else ""
        return DiscogsResponseError(
            self._redact(f"Discogs sent an unexpected answer: {problem}.{where}"), url=url
        )

    def _get_object(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        refresh: bool = False,
    ) -> dict[str, Any]:
        data = self._get_json(path, params, refresh=refresh)
        if not isinstance(data, dict):
            url = self._url(path, params)
            raise DiscogsResponseError(
                f"Discogs sent an unexpected answer: expected a JSON object, got "
                f"{type(data).__name__}. (GET {url})",
                url=url,
                status=200,
            )
        return data

    def _get_json(
        self, path: str, params: Mapping[str, str | int] | None, *, refresh: bool = False
    ) -> Any:
        """Parsed JSON for ``path``: memory cache, then HTTP cache, then the network.

        Concurrent calls for the same URL are collapsed: one thread loads it, the others wait and
        take its answer from the memory cache (if it failed, the next waiter tries itself).
        ``refresh`` skips both cache look-ups (a refreshing caller never takes another's answer)
        and stores the network's answer in both caches.
        """
        if self._closed:
            raise DiscogsError("the DiscogsClient is closed")
        url = self._url(path, params)
        memory_key = f"{self._identity}|{url}"
        while True:
            value = _MISSING if refresh else self._memory.get(memory_key, _MISSING)
            if value is not _MISSING:
                self._counters.add("memory_hits")
                return value
            with self._inflight_lock:
                done = self._inflight.get(memory_key)
                leader = done is None
                if done is None:
                    done = self._inflight[memory_key] = threading.Event()
            if not leader:
                done.wait()
                continue
            try:
                data = self._load(path, url, refresh)
                self._memory.set(memory_key, data, ttl=self._ttl_for(path))
                return data
            finally:
                with self._inflight_lock:
                    del self._inflight[memory_key]
                done.set()

    def _load(self, path: str, url: str, refresh: bool = False) -> Any:
        """Parsed JSON from the HTTP cache when fresh there (unless ``refresh``), else the network."""
        prepared = self._session.prepare_request(requests.Request("GET", url))
        cache_key = self._session.cache.create_key(prepared, verify=True)
        if not refresh:
            cached = self._session.cache.get_response(cache_key)
            if cached is not None and not cached.is_expired:
                self._counters.add("cache_hits")
                return self._parse(cached.content, url, cache_key)
        return self._fetch(path, url, cache_key, refresh)

    def _parse(self, content: bytes, url: str, cache_key: str) -> Any:
        try:
            return json.loads(content)
        except ValueError:
            # Never keep an unreadable body: the next call must ask the server again.
            self._session.cache.delete(cache_key)
            raise DiscogsResponseError(
                f"Discogs sent a response that is not valid JSON. (GET {url})", url=url, status=200
            ) from None

    def _backoff(self, attempt: int) -> float:
        """Exponential back-off with jitter: half fixed, half random, capped."""
        delay = min(self._backoff_cap, self._backoff_base * 2.0 ** (attempt - 1))
        return delay / 2 + self._random.uniform(0, delay / 2)

    def _learn(self, headers: Mapping[str, str]) -> None:
        """Adopt the server's per-minute limit and its view of how many requests remain."""
        limit = _int_header(headers, "X-Discogs-Ratelimit")
        if limit is not None and limit > 0 and limit != self._limiter.limit:
            self._limiter.set_limit(limit)
        remaining = _int_header(headers, "X-Discogs-Ratelimit-Remaining")
        if remaining is not None and remaining >= 0:
            self._limiter.observe_remaining(remaining)

    def _record(self, started: float, path: str, status: int | None, stale: bool) -> None:
        finished = self._clock()
        with self._counters.lock:
            self._counters.network_requests += 1
            self._events.append(RequestEvent(started, finished, path, status, stale))

    def _fetch(self, path: str, url: str, cache_key: str, refresh: bool = False) -> Any:
        """Send ``GET url`` through the limiter, retrying failures and waiting out 429s."""
        failures = 0
        throttles = 0
        while True:
            slot = self._limiter.acquire_slot(timeout=0)
            if slot is None:  # the window is full: block, and count the time spent waiting
                waited_from = self._clock()
                slot = self._limiter.acquire_slot()
                self._counters.add("limiter_wait_seconds", self._clock() - waited_from)
            if slot is None:
                raise DiscogsRateLimitError(
                    f"Gave up waiting for the rate limiter. (GET {url})", url=url
                )
            started = self._clock()
            self._last_status.value = None
            try:
                response = self._session.get(url, timeout=self._timeout, force_refresh=refresh)
            except (requests.ConnectionError, requests.Timeout) as exc:
                slot.complete()
                self._record(started, path, None, False)
                failures += 1
                if failures > self._max_retries:
                    reason = type(exc).__name__
                    raise DiscogsUnavailableError(
                        self._redact(
                            f"Discogs could not be reached ({reason}) after "
                            f"{failures} attempts. (GET {url})"
                        ),
                        url=url,
                    ) from exc
                self._counters.add("retries")
                self._sleep(self._backoff(failures))
                continue
            except requests.RequestException as exc:
                slot.complete()
                self._record(started, path, None, False)
                raise DiscogsError(
                    self._redact(
                        f"The request to Discogs failed: {type(exc).__name__}. (GET {url})"
                    ),
                    url=url,
                ) from exc
            slot.complete()
            from_cache = bool(getattr(response, "from_cache", False))
            if from_cache and not getattr(response, "is_expired", False):
                # Another thread cached it between our look-up and our request: no network used.
                self._counters.add("cache_hits")
                return self._parse(response.content, url, cache_key)
            status = response.status_code
            if from_cache:
                status = self._last_status.value
            self._record(started, path, status, from_cache)
            if from_cache:
                # The request failed and requests-cache answered with its stale copy.
                self._counters.add("cache_hits")
                return self._parse(response.content, url, cache_key)
            self._learn(response.headers)
            if status == 200:
                try:
                    return json.loads(response.content)
                except ValueError:
                    self._session.cache.delete(cache_key)
                    failures += 1
                    if failures > self._max_retries:
                        raise DiscogsResponseError(
                            f"Discogs sent a response that is not valid JSON, {failures} times. "
                            f"(GET {url})",
                            url=url,
                            status=status,
                        ) from None
                    self._counters.add("retries")
                    self._sleep(self._backoff(failures))
                    continue
            if status == 429:
                self._counters.add("rate_limited")
                throttles += 1
                if throttles > self._max_throttles:
                    raise self._status_error(response, url)
                delay = _retry_after(response.headers.get("Retry-After"))
                if delay is None:
                    # Discogs sends no Retry-After: the window is full as of now; wait it out.
                    self._limiter.observe_remaining(0)
                else:
                    self._counters.add("limiter_wait_seconds", delay)
                    self._sleep(delay)
                continue
            if status >= 500:
                failures += 1
                if failures > self._max_retries:
                    raise self._status_error(response, url, attempts=failures)
                self._counters.add("retries")
                self._sleep(self._backoff(failures))
                continue
            raise self._status_error(response, url)

    def _status_error(
        self, response: requests.Response, url: str, *, attempts: int | None = None
    ) -> DiscogsError:
        """Map an error response to the toolkit's exception, in words a person understands."""
        status = response.status_code
        server_message: str | None = None
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            server_message = body["message"].strip()
        says = f"Discogs says: {server_message} " if server_message else ""
        where = f"(GET {url})"
        kind: type[DiscogsError]
        if status in (401, 403):
            kind = DiscogsAuthError
            if self._token:
                lead = f"Discogs refused the token (HTTP {status})."
            else:
                lead = f"Discogs requires a token for this (HTTP {status}); set DISCOGS_TOKEN."
        elif status == 404:
            kind = DiscogsNotFoundError
            lead = "" if server_message else "Discogs has no such resource (HTTP 404)."
        elif status == 429:
            kind = DiscogsRateLimitError
            lead = (
                f"Discogs kept answering 429 Too Many Requests; gave up after "
                f"{self._max_throttles} waits."
            )
        elif status >= 500:
            kind = DiscogsUnavailableError
            lead = f"Discogs is unavailable (HTTP {status}) after {attempts or 1} attempts."
        else:
            kind = DiscogsError
            lead = f"Discogs rejected the request (HTTP {status})."
        message = " ".join(part for part in (lead, says.strip(), where) if part)
        return kind(self._redact(message), url=url, status=status)
