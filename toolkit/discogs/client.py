"""A thread-safe, rate-limited, two-level-cached client for the Discogs REST API (or the simulator).

Errors from ``requests``, the server and the HTTP cache file are mapped once, here, to
:mod:`toolkit.errors`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, urlencode

import requests
import requests_cache
from requests_cache.backends.base import BaseCache
from requests_cache.backends.sqlite import SQLiteCache, SQLiteDict
from requests_cache.serializers import CattrStage

from toolkit.cache import CacheService
from toolkit.config import Settings
from toolkit.errors import (
    DiscogsAuthError,
    DiscogsError,
    DiscogsNotFoundError,
    DiscogsRateLimitError,
    DiscogsResponseError,
    DiscogsUnavailableError,
    HTTPCacheError,
)
from toolkit.ratelimit import SlidingWindowLimiter

__all__ = [
    "COLLECTION_TTL",
    "DEFAULT_MEMORY_ENTRIES",
    "SEARCH_TTL",
    "ClientStats",
    "DiscogsClient",
    "RequestEvent",
]

#: Collection pages, folders, wants, values, identity and marketplace stats change often: 1 hour.
COLLECTION_TTL: Final = 3600.0
#: Database searches: 12 hours. Releases use ``Settings.cache_default_ttl`` (24 h by default).
SEARCH_TTL: Final = 12 * 3600.0
#: Default bound of the in-memory cache of parsed responses (least recently used dropped first).
#: A parsed release is ~20 KiB of Python objects; 2,000 of them is ~40 MiB, and anything pushed
#: out is still one SQLite read away.
DEFAULT_MEMORY_ENTRIES: Final = 2_000

_ACCEPT = "application/vnd.discogs.v2.discogs+json"
_ANONYMOUS = "anonymous"
_MISSING: Final = object()
_MAX_EVENTS = 200_000
_CACHE_CLEAR_HINT = "delete it or run `discogs-toolkit cache clear`"
# List fields of a release: when present they must be JSON arrays.
_RELEASE_LISTS: Final = ("artists", "labels", "formats", "genres", "styles", "tracklist")

_log = logging.getLogger(__name__)

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
    ``cache_hits`` counts answers from the HTTP (SQLite) cache, stale copies served after the
    server kept failing included; ``memory_hits`` answers from the in-memory cache of parsed
    responses in front of it; ``limiter_wait_seconds`` is the time spent blocked on the rate
    limiter or a server ``Retry-After``.
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

    ``from_cache`` is True on the last attempt of a request that kept failing (5xx or no answer)
    through every retry and was answered with the stale copy from the HTTP cache instead.
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


@dataclass(frozen=True)
class _Cached:
    """A 200 body read from the HTTP cache and whether it is past its expiry."""

    content: bytes
    expired: bool


def _cache_salt(con: sqlite3.Connection) -> bytes:
    """Return the random salt stored inside the cache file, creating it on first use.

    Living in the cache file, it keeps cache keys stable across client objects and processes, and
    resets together with the cache when the file is deleted.
    """
    with con:
        con.execute("CREATE TABLE IF NOT EXISTS toolkit_meta (key TEXT PRIMARY KEY, value BLOB)")
        con.execute(
            "INSERT OR IGNORE INTO toolkit_meta (key, value) VALUES ('token_salt', ?)",
            (secrets.token_bytes(32),),
        )
    row = con.execute("SELECT value FROM toolkit_meta WHERE key = 'token_salt'").fetchone()
    return bytes(row[0])


def _is_expired(expires: Any) -> bool:
    """requests-cache's rule (expired from the ``expires`` instant on; None never expires)."""
    if expires is None:
        return False
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires)
    if not isinstance(expires, datetime):
        raise TypeError(f"unexpected expiry {expires!r}")
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return bool(datetime.now(UTC) >= expires)


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


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _release_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a ``/releases/{id}`` object, or None when it has the expected fields."""
    rid = data.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        return f"the release has no integer 'id' (got {_type_name(rid)})"
    if not isinstance(data.get("title"), str):
        return f"the release has no 'title' string (got {_type_name(data.get('title'))})"
    for name in _RELEASE_LISTS:
        if name in data and not isinstance(data[name], list):
            return f"the release's '{name}' is not a list (got {_type_name(data[name])})"
    return None


def _folders_problem(data: dict[str, Any]) -> str | None:
    if not isinstance(data.get("folders"), list):
        return "the folder list has no 'folders' array"
    return None


def _page_problem(data: dict[str, Any]) -> str | None:
    pagination = data.get("pagination")
    if not isinstance(pagination, dict) or not isinstance(pagination.get("pages"), int):
        return "the collection page has no 'pagination'"
    if not isinstance(data.get("releases"), list):
        return "the collection page has no 'releases' list"
    return None


class DiscogsClient:
    """Discogs API client: parsed-JSON methods over an HTTP cache, a rate limiter and retries.

    Many threads may share one client. Answers come from, in order: an in-memory cache of parsed
    responses, the requests-cache SQLite file (both partitioned per token, the token itself is
    never stored), then the network, which alone takes a rate-limiter slot. Treat returned dicts as
    read-only: the in-memory cache hands out the same object to every caller.

    The client alone decides what to do with every answer: 429s are waited out and retried, 5xx
    and connection failures are retried with back-off, and only when those persist through every
    retry is an expired copy from the HTTP cache served instead (``stale_if_error``), with one
    warning logged.
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
        memory_max_entries: int | None = DEFAULT_MEMORY_ENTRIES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build a client; unset arguments come from ``settings`` (default ``Settings.from_env()``).

        ``cache_path=":memory:"`` keeps the HTTP cache in memory (tests, throwaway sessions).
        A rate limit the user chose (``limiter=``, or ``DISCOGS_RATE_LIMIT``) is a cap: the
        server's ``X-Discogs-Ratelimit`` is adopted only when it is lower. Without one the
        client starts at 60/min (25/min without a token) and adopts the server's limit.
        Raises :class:`~toolkit.errors.HTTPCacheError` when the cache file cannot be opened.
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

        # The most requests per window the user allows (None: whatever the server says).
        self._limit_cap: int | None
        if limiter is None:
            configured = settings.discogs_rate_limit
            self._limit_cap = configured or None
            limiter = SlidingWindowLimiter(configured or (60 if self._token else 25), 60.0)
        else:
            self._limit_cap = limiter.limit
        self._limiter = limiter

        # Network requests go through a plain session; the CachedSession below holds the cache
        # (requests-cache storage, serialisation and header redaction) but never sends anything,
        # so requests-cache takes no decision about staleness or errors.
        self._http = requests.Session()
        self._http.headers.update({"User-Agent": self._user_agent, "Accept": _ACCEPT})
        if self._token:
            self._http.headers["Authorization"] = f"Discogs token={self._token}"

        # One connection of our own for cache reads: a SELECT of the stored record, without
        # rebuilding a requests Response around it (see _read_cache).
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._record_loads: list[Callable[[Any], Any]] | None = None
        self._table = "responses"
        in_memory = cache_path is not None and str(cache_path) == ":memory:"
        salt = secrets.token_bytes(32)
        backend: Any
        if in_memory:
            backend = BaseCache()
            self._cache_path: Path | None = None
        else:
            path = Path(cache_path) if cache_path is not None else settings.http_cache_path
            self._cache_path = path
            backend, salt = self._open_cache_file(path)
        try:
            self._session = requests_cache.CachedSession(
                backend=backend,
                expire_after=self._release_ttl,
                urls_expire_after={
                    _SEARCH_PATHS: SEARCH_TTL,
                    _SHORT_PATHS: COLLECTION_TTL,
                },
                allowable_codes=(200,),
                allowable_methods=("GET",),
                stale_if_error=False,
                key_fn=self._create_key,
            )
        except BaseException:
            self._close_files()
            raise
        # Cache keys are partitioned by an HMAC of the token under a salt kept in the cache file:
        # stable across client objects, useless to anyone reading the file without the token.
        self._identity = _ANONYMOUS
        if self._token:
            digest = hmac.new(salt, self._token.encode(), hashlib.sha256).hexdigest()
            self._identity = f"token-{digest[:32]}"

        self._memory = CacheService(
            default_ttl=self._release_ttl,
            auto_cleanup=False,
            max_entries=memory_max_entries,
            clock=clock,
        )

    def _open_cache_file(self, path: Path) -> tuple[SQLiteCache, bytes]:
        """Open (or create) the SQLite cache file; returns the backend and the token salt."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HTTPCacheError(
                f"the HTTP cache directory {path.parent} cannot be created "
                f"({exc.strerror or exc}); set TOOLKIT_DATA_DIR to a writable directory"
            ) from None
        backend: SQLiteCache | None = None
        try:
            backend = SQLiteCache(str(path), wal=True, busy_timeout=30_000)
            self._reader = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
            salt = _cache_salt(self._reader)
        except (sqlite3.Error, OSError) as exc:
            if backend is not None:
                backend.close()  # type: ignore[no-untyped-call]
            self._close_files()
            raise HTTPCacheError(
                f"the HTTP cache file {path} is not readable ({exc}); {_CACHE_CLEAR_HINT}"
            ) from None
        storage = backend.responses
        serializer = getattr(storage, "serializer", None)
        stages = list(getattr(serializer, "stages", ()))
        if isinstance(storage, SQLiteDict) and stages and isinstance(stages[0], CattrStage):
            # Every stage but the first (record <-> CachedResponse): bytes -> the stored record.
            self._record_loads = [stage.loads for stage in reversed(stages[1:])]
            self._table = storage.table_name
        return backend, salt

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
        """Close the HTTP sessions and the cache file; the client is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        self._session.close()  # type: ignore[no-untyped-call]
        self._close_files()
        self._memory.destroy()

    def _close_files(self) -> None:
        self._http.close()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

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
        path = f"/users/{quote(username, safe='')}/collection/folders"
        return self._get_object(path, check=_folders_problem)

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
        return self._get_object(path, params, refresh=refresh, check=_page_problem)

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

    def get_release(self, release_id: int, *, refresh: bool = False) -> dict[str, Any]:
        """``GET /releases/{id}``: full release details (``refresh=True`` skips both caches).

        The answer is checked: an integer ``id``, a string ``title``, and ``artists``,
        ``labels``, ``formats``, ``genres``, ``styles``, ``tracklist`` lists when present;
        otherwise :class:`~toolkit.errors.DiscogsResponseError` names the URL and the field.

        Discogs answers a release that was merged into another under the surviving release's
        id, so ``data["id"]`` may differ from ``release_id``: the answer is returned as sent, and
        a caller that keys by id should compare the two.
        """
        return self._get_object(
            f"/releases/{int(release_id)}", refresh=refresh, check=_release_problem
        )

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

    def _key(self, url: str) -> str:
        """The HTTP-cache key of ``GET url``, partitioned by the token's identity.

        URLs are built by :meth:`_url` (query parameters sorted, path segments quoted), so the
        URL string itself identifies the request.
        """
        return hashlib.sha256(f"{self._identity}\nGET {url}".encode()).hexdigest()[:32]

    def _create_key(self, request: Any, **kwargs: Any) -> str:
        """requests-cache key function (for anyone using the session): same keys as :meth:`_key`."""
        return self._key(str(request.url))

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

    def _response_error(self, problem: str, url: str) -> DiscogsResponseError:
        return DiscogsResponseError(
            self._redact(f"Discogs sent an unexpected answer: {problem}. (GET {url})"),
            url=url,
            status=200,
        )

    def _get_object(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        refresh: bool = False,
        check: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> dict[str, Any]:
        """The parsed JSON object at ``path``: memory cache, then HTTP cache, then the network.

        Concurrent calls for the same URL are collapsed: one thread loads it, the others wait and
        take its answer from the memory cache (if it failed, the next waiter tries itself).
        ``refresh`` skips both cache look-ups (a refreshing caller never takes another's answer)
        and stores the network's answer in both caches. An answer that is not a JSON object, or
        that ``check`` finds a problem with, raises DiscogsResponseError and is kept in neither
        cache.
        """
        if self._closed:
            raise DiscogsError("the DiscogsClient is closed")
        url = self._url(path, params)
        memory_key = f"{self._identity}|{url}"
        while True:
            value: Any = _MISSING if refresh else self._memory.get(memory_key, _MISSING)
            if value is not _MISSING:
                self._counters.add("memory_hits")
                result: dict[str, Any] = value
                return result
            with self._inflight_lock:
                done = self._inflight.get(memory_key)
                leader = done is None
                if done is None:
                    done = self._inflight[memory_key] = threading.Event()
            if not leader:
                done.wait()
                continue
            try:
                cache_key = self._key(url)
                data = self._load(path, url, cache_key, refresh)
                if not isinstance(data, dict):
                    problem: str | None = f"expected a JSON object, got {_type_name(data)}"
                else:
                    problem = check(data) if check is not None else None
                if problem is not None:
                    self._forget(cache_key)
                    raise self._response_error(problem, url)
                self._memory.set(memory_key, data, ttl=self._ttl_for(path))
                result = data
                return result
            finally:
                with self._inflight_lock:
                    del self._inflight[memory_key]
                done.set()

    def _load(self, path: str, url: str, cache_key: str, refresh: bool) -> Any:
        """Parsed JSON from the HTTP cache when fresh there (unless ``refresh``), else the network.

        An expired copy is kept aside: it is the answer of last resort when the server keeps
        failing (never for ``refresh``, which asks for the server's answer).
        """
        stale: bytes | None = None
        if not refresh:
            cached = self._read_cache(cache_key)
            if cached is not None and not cached.expired:
                self._counters.add("cache_hits")
                return self._parse(cached.content, url, cache_key)
            stale = None if cached is None else cached.content
        return self._fetch(path, url, cache_key, stale)

    def _read_cache(self, cache_key: str) -> _Cached | None:
        """The 200 answer stored under ``cache_key``, or None.

        For the SQLite file this is one SELECT and the serializer's byte stages (pickle by
        default): the stored record's body and expiry are read without rebuilding a requests
        ``CachedResponse`` around them, which costs more than the SELECT and JSON parse together.
        Records in a shape not understood here go through requests-cache's own ``get_response``.
        """
        if self._record_loads is not None:
            try:
                with self._reader_lock:
                    if self._reader is None:
                        raise DiscogsError("the DiscogsClient is closed")
                    row = self._reader.execute(
                        f"SELECT value FROM {self._table} WHERE key = ?",
                        (cache_key,),
                    ).fetchone()
            except sqlite3.Error as exc:
                raise self._cache_error(exc) from None
            if row is None:
                return None
            try:
                record = row[0]
                for loads in self._record_loads:
                    record = loads(record)
                content = record["_content"]
                if record["status_code"] == 200 and isinstance(content, bytes):
                    return _Cached(content, _is_expired(record["expires"]))
            except Exception:  # any surprise: let requests-cache read it
                _log.debug("HTTP cache record in an unexpected shape; using requests-cache")
        try:
            response = self._session.cache.get_response(cache_key)
        except sqlite3.Error as exc:
            raise self._cache_error(exc) from None
        if response is None or response.status_code != 200:
            return None
        return _Cached(response.content, bool(response.is_expired))

    def _save(self, response: requests.Response, cache_key: str, path: str) -> None:
        """Store a 200 answer (Authorization redacted by requests-cache); failures only logged."""
        expires = datetime.now(UTC) + timedelta(seconds=self._ttl_for(path))
        try:
            self._session.cache.save_response(response, cache_key, expires)
        except sqlite3.Error as exc:
            _log.warning("could not store %s in the HTTP cache: %s", path, exc)

    def _forget(self, cache_key: str) -> None:
        """Remove an entry from the HTTP cache (an answer that must be asked for again)."""
        try:
            self._session.cache.delete(cache_key)
        except sqlite3.Error as exc:
            _log.warning("could not delete an HTTP cache entry: %s", exc)

    def _cache_error(self, exc: sqlite3.Error) -> HTTPCacheError:
        where = f"the HTTP cache file {self._cache_path}" if self._cache_path else "the HTTP cache"
        return HTTPCacheError(f"{where} is not readable ({exc}); {_CACHE_CLEAR_HINT}")

    def _parse(self, content: bytes, url: str, cache_key: str) -> Any:
        try:
            return json.loads(content)
        except ValueError:
            # Never keep an unreadable body: the next call must ask the server again.
            self._forget(cache_key)
            raise DiscogsResponseError(
                f"Discogs sent a response that is not valid JSON. (GET {url})", url=url, status=200
            ) from None

    def _backoff(self, attempt: int) -> float:
        """Exponential back-off with jitter: half fixed, half random, capped."""
        delay = min(self._backoff_cap, self._backoff_base * 2.0 ** (attempt - 1))
        return delay / 2 + self._random.uniform(0, delay / 2)

    def _learn(self, headers: Mapping[str, str]) -> None:
        """Adopt the server's per-minute limit (capped by the user's) and how many remain."""
        limit = _int_header(headers, "X-Discogs-Ratelimit")
        if limit is not None and limit > 0:
            if self._limit_cap is not None:
                limit = min(limit, self._limit_cap)
            if limit != self._limiter.limit:
                self._limiter.set_limit(limit)
        remaining = _int_header(headers, "X-Discogs-Ratelimit-Remaining")
        if remaining is not None and remaining >= 0:
            self._limiter.observe_remaining(remaining)

    def _record(self, started: float, path: str, status: int | None, stale: bool) -> None:
        finished = self._clock()
        with self._counters.lock:
            self._counters.network_requests += 1
            self._events.append(RequestEvent(started, finished, path, status, stale))

    def _serve_stale(self, stale: bytes, url: str, cache_key: str, why: str) -> Any:
        """The last resort: the expired cached copy, with one warning line (no traceback)."""
        _log.warning(
            "%s; using the expired cached copy. (GET %s)", self._redact(why), self._redact(url)
        )
        self._counters.add("cache_hits")
        return self._parse(stale, url, cache_key)

    def _fetch(self, path: str, url: str, cache_key: str, stale: bytes | None = None) -> Any:
        """Send ``GET url`` through the limiter, retrying failures and waiting out 429s.

        ``stale`` is an expired cached body, served only when 5xx answers or connection failures
        persist through every retry.
        """
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
            try:
                response = self._http.get(url, timeout=self._timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                slot.complete()
                failures += 1
                exhausted = failures > self._max_retries
                self._record(started, path, None, exhausted and stale is not None)
                if exhausted:
                    reason = type(exc).__name__
                    if stale is not None:
                        why = f"Discogs could not be reached ({reason}) after {failures} attempts"
                        return self._serve_stale(stale, url, cache_key, why)
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
            status = response.status_code
            if status >= 500:
                failures += 1
                exhausted = failures > self._max_retries
                self._record(started, path, status, exhausted and stale is not None)
                self._learn(response.headers)
                if not exhausted:
                    self._counters.add("retries")
                    self._sleep(self._backoff(failures))
                    continue
                if stale is not None:
                    why = f"Discogs is unavailable (HTTP {status}) after {failures} attempts"
                    return self._serve_stale(stale, url, cache_key, why)
                raise self._status_error(response, url, attempts=failures)
            self._record(started, path, status, False)
            self._learn(response.headers)
            if status == 200:
                try:
                    data = json.loads(response.content)
                except ValueError:
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
                self._save(response, cache_key, path)
                return data
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
