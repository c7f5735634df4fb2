"""DiscogsClient: the Discogs REST API (or the simulator) as parsed-JSON methods, thread-safe.

Answers come from an in-memory cache, then the HTTP cache (:mod:`toolkit.discogs.httpcache`), then
the network through the request loop (:mod:`toolkit.discogs.transport`), which maps errors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, urlencode

from toolkit.backoff import DEFAULT_CAP
from toolkit.budget import Reporter, SharedWindowLimiter
from toolkit.cache import CacheService
from toolkit.config import Settings
from toolkit.discogs.httpcache import HTTPCacheStore
from toolkit.discogs.transport import ClientStats, Exhausted, RequestEvent, Transport
from toolkit.errors import DiscogsError, DiscogsResponseError
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

_ANONYMOUS = "anonymous"
_MISSING: Final = object()
# List fields of a release: when present they must be JSON arrays.
_RELEASE_LISTS: Final = ("artists", "labels", "formats", "genres", "styles", "tracklist")

_log = logging.getLogger(__name__)

# Paths (relative to the API root) that expire after COLLECTION_TTL / SEARCH_TTL; the rest use the
# default TTL. Checked in order by both caches.
_SHORT_PATHS = re.compile(
    r"/(oauth/identity|users/[^/?]+(/(collection|wants)[^?]*)?|marketplace/stats/[^/?]+)/?(\?|$)"
)
_SEARCH_PATHS = re.compile(r"/database/search(/|\?|$)")


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


def _wants_problem(data: dict[str, Any]) -> str | None:
    if not isinstance(data.get("wants"), list):
        return f"expected a 'wants' list, got {_type_name(data.get('wants'))}"
    if not isinstance(data.get("pagination"), dict):
        return "no 'pagination' object"
    return None


def _fields_problem(data: dict[str, Any]) -> str | None:
    if not isinstance(data.get("fields"), list):
        return f"expected a 'fields' list, got {_type_name(data.get('fields'))}"
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

    The client alone decides what to do with every answer: 429s are waited out and retried (a
    ``Retry-After`` pauses every thread sharing the limiter), 5xx and connection failures are
    retried with back-off, and only when those persist through every retry is an expired copy
    from the HTTP cache served instead (``stale_if_error``), with one warning logged. A
    ConcurrencyManager retrying a client call multiplies those retries; :mod:`toolkit.backoff`
    states the bound.

    The client never reads the environment: unset arguments come from ``settings``, else from
    ``Settings()`` defaults; :meth:`from_env` is the notebook shortcut that does read it.
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
        backoff_cap: float = DEFAULT_CAP,
        backoff_jitter: float = 0.5,
        page_workers: int = 4,
        memory_max_entries: int | None = DEFAULT_MEMORY_ENTRIES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build a client; unset arguments come from ``settings`` (default ``Settings()``).

        ``cache_path=":memory:"`` keeps the HTTP cache in memory (tests, throwaway sessions).
        A rate limit the user chose (``limiter=``, or ``settings.discogs_rate_limit``) is a cap:
        the server's ``X-Discogs-Ratelimit`` is adopted only when it is lower. Without one the
        client starts at 60/min (25/min without a token) and adopts the server's limit; that
        window is shared by every toolkit process on the same data directory, or on the Redis of
        ``settings.redis_url`` (:mod:`toolkit.budget`), unless ``settings.shared_budget`` is off.
        ``backoff_*`` shape the retry delays (:func:`toolkit.backoff.backoff_delay`). The
        in-memory cache takes its TTL, sweep and sweep interval from ``settings.cache_*``.
        Raises :class:`~toolkit.errors.HTTPCacheError` when the cache file cannot be opened;
        whatever was opened before a failure is closed again.
        """
        if settings is None:
            settings = Settings()
        self._closed = False
        token = token if token is not None else settings.discogs_token
        self._token: str | None = token or None
        self._base_url = (base_url or settings.discogs_api_url).rstrip("/")
        self._page_workers = max(1, page_workers)
        self._release_ttl = float(settings.cache_default_ttl)
        self._inflight: dict[str, threading.Event] = {}
        self._inflight_lock = threading.Lock()

        # The most requests per window the user allows (None: whatever the server says).
        limit_cap: int | None
        shared = limiter is None and settings.shared_budget
        if limiter is None:
            configured = settings.discogs_rate_limit
            limit_cap = configured or None
            initial = configured or (60 if self._token else 25)
            if shared:
                # One window per API host for every toolkit process (and machine, on Redis).
                from toolkit.budget import shared_limiter

                limiter = shared_limiter(settings, self._base_url, initial)
            else:
                limiter = SlidingWindowLimiter(initial, 60.0)
        else:
            limit_cap = limiter.limit
        try:
            self._transport = Transport(
                token=self._token,
                user_agent=user_agent or settings.discogs_user_agent,
                limiter=limiter,
                limit_cap=limit_cap,
                timeout=timeout,
                max_retries=max_retries,
                backoff_base=backoff_base,
                backoff_cap=backoff_cap,
                backoff_jitter=backoff_jitter,
                sleep=sleep,
                clock=clock,
            )
        except BaseException:
            if shared and isinstance(limiter, SharedWindowLimiter):
                limiter.storage.close()
            raise
        self._owns_budget = shared
        self._counters = self._transport.counters
        #: Publishes this process's activity to the shared budget (None when not shared).
        self.budget_reporter: Reporter | None = None
        self._store: HTTPCacheStore | None = None
        self._memory: CacheService | None = None
        try:
            in_memory = cache_path is not None and str(cache_path) == ":memory:"
            if in_memory:
                path: Path | None = None
            else:
                path = Path(cache_path) if cache_path is not None else settings.http_cache_path
            # On Redis with the rate budget when asked, unless the caller chose a cache itself.
            on_redis = settings.redis_http_cache and cache_path is None and settings.redis_url
            self._store = HTTPCacheStore(path, redis_url=settings.redis_url if on_redis else None)
            # Cache keys are partitioned by an HMAC of the token under a salt kept in the cache
            # file: stable across client objects, useless to anyone reading the file without it.
            self._identity = _ANONYMOUS
            if self._token:
                digest = hmac.new(self._store.salt, self._token.encode(), hashlib.sha256)
                self._identity = f"token-{digest.hexdigest()[:32]}"
            self._memory = CacheService.from_settings(
                settings, max_entries=memory_max_entries, clock=clock
            )
            if isinstance(limiter, SharedWindowLimiter):
                self.budget_reporter = Reporter(limiter, self._reported_stats)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> DiscogsClient:
        """A client configured entirely from ``settings`` (keyword arguments override)."""
        return cls(settings=settings, **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> DiscogsClient:
        """A client from ``Settings.from_env()`` (environment over ``.env``): for notebooks."""
        return cls.from_settings(Settings.from_env(), **kwargs)

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
        """Close the HTTP session, the cache file and the memory cache; idempotent and final."""
        if self._closed:
            return
        self._closed = True
        if self.budget_reporter is not None:
            self.budget_reporter.close()
        if self._owns_budget and isinstance(self._transport.limiter, SharedWindowLimiter):
            self._transport.limiter.storage.close()
        self._transport.close()
        if self._store is not None:
            self._store.close()
        if self._memory is not None:
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
        return self._transport.limiter

    @property
    def cache_path(self) -> Path | None:
        """The SQLite HTTP-cache file, or None for an in-memory cache."""
        return self._cache.path

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
        return self._counters.snapshot()

    def _reported_stats(self) -> dict[str, float]:
        stats = self.stats()
        return {
            "network_requests": stats.network_requests,
            "cache_hits": stats.cache_hits,
            "memory_hits": stats.memory_hits,
            "rate_limited": stats.rate_limited,
            "retries": stats.retries,
        }

    def reset_stats(self) -> None:
        """Zero the counters and forget the request timeline."""
        self._counters.reset()

    def timeline(self) -> list[RequestEvent]:
        """Every network request made (since the last reset), in completion order."""
        with self._counters.lock:
            return list(self._counters.events)

    def clear_memory_cache(self) -> None:
        """Drop the in-memory parsed responses (the HTTP cache file is kept)."""
        self._mem.clear()

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

    def get_collection_value(self, username: str, *, refresh: bool = False) -> dict[str, Any]:
        """``GET /users/{username}/collection/value``: minimum/median/maximum value (owner only).

        ``refresh=True`` asks the server (a pull records the value of the day, not a cached one).
        """
        path = f"/users/{quote(username, safe='')}/collection/value"
        return self._get_object(path, refresh=refresh)

    def get_wants(
        self, username: str, page: int = 1, per_page: int = 100, *, refresh: bool = False
    ) -> dict[str, Any]:
        """``GET /users/{username}/wants``: one page of the wantlist."""
        params: dict[str, str | int] = {"page": page, "per_page": per_page}
        path = f"/users/{quote(username, safe='')}/wants"
        return self._get_object(path, params, refresh=refresh, check=_wants_problem)

    def get_collection_fields(self, username: str) -> dict[str, Any]:
        """``GET /users/{username}/collection/fields``: ``{"fields": [...]}`` (non-owners: public)."""
        path = f"/users/{quote(username, safe='')}/collection/fields"
        return self._get_object(path, check=_fields_problem)

    def get_marketplace_stats(
        self, release_id: int, *, currency: str | None = None, refresh: bool = False
    ) -> dict[str, Any]:
        """``GET /marketplace/stats/{id}``: lowest price and number for sale (``currency``:
        ``curr_abbr``, one of Discogs' twelve; tokenless calls get USD)."""
        params: dict[str, str | int] | None = None if currency is None else {"curr_abbr": currency}
        return self._get_object(f"/marketplace/stats/{int(release_id)}", params, refresh=refresh)

    # -- internals ------------------------------------------------------------------------------

    @property
    def _cache(self) -> HTTPCacheStore:
        assert self._store is not None  # set by __init__ or it raised
        return self._store

    @property
    def _mem(self) -> CacheService:
        assert self._memory is not None  # set by __init__ or it raised
        return self._memory

    def _key(self, url: str) -> str:
        """The HTTP-cache key of ``GET url``, partitioned by the token's identity.

        URLs are built by :meth:`_url` (query parameters sorted, path segments quoted), so the
        URL string itself identifies the request.
        """
        return hashlib.sha256(f"{self._identity}\nGET {url}".encode()).hexdigest()[:32]

    def _ttl_for(self, path: str) -> float:
        if _SEARCH_PATHS.search(path):
            return SEARCH_TTL
        if _SHORT_PATHS.search(path):
            return COLLECTION_TTL
        return self._release_ttl

    def _url(self, path: str, params: Mapping[str, str | int] | None) -> str:
        query = f"?{urlencode(sorted(params.items()))}" if params else ""
        return f"{self._base_url}{path}{query}"

    def _response_error(self, problem: str, url: str) -> DiscogsResponseError:
        return DiscogsResponseError(
            self._transport.redact(f"Discogs sent an unexpected answer: {problem}. (GET {url})"),
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
        memory = self._mem
        url = self._url(path, params)
        memory_key = f"{self._identity}|{url}"
        while True:
            value: Any = _MISSING if refresh else memory.get(memory_key, _MISSING)
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
                    self._cache.delete(cache_key)
                    raise self._response_error(problem, url)
                memory.set(memory_key, data, ttl=self._ttl_for(path))
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
            cached = self._cache.read(cache_key)
            if cached is not None and not cached.expired:
                self._counters.add("cache_hits")
                return self._parse(cached.content, url, cache_key)
            stale = None if cached is None else cached.content
        answer = self._transport.fetch(url, path, fallback=stale is not None)
        if isinstance(answer, Exhausted):
            assert stale is not None  # fetch only gives up this way with a fallback
            # The last resort: the expired cached copy, with one warning line (no traceback).
            redact = self._transport.redact
            _log.warning(
                "%s; using the expired cached copy. (GET %s)", redact(answer.why), redact(url)
            )
            self._counters.add("cache_hits")
            return self._parse(stale, url, cache_key)
        self._cache.save(answer.answer, cache_key, self._ttl_for(path))
        return answer.data

    def _parse(self, content: bytes, url: str, cache_key: str) -> Any:
        try:
            return json.loads(content)
        except ValueError:
            # Never keep an unreadable body: the next call must ask the server again.
            self._cache.delete(cache_key)
            raise DiscogsResponseError(
                f"Discogs sent a response that is not valid JSON. (GET {url})", url=url, status=200
            ) from None
