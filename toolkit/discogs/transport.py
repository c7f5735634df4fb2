"""The request loop under DiscogsClient: limiter slots, retries with back-off, 429s, the timeline.

Errors from ``requests`` and the server are mapped once, here, to :mod:`toolkit.errors`.
"""

from __future__ import annotations

import json
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters

from toolkit.backoff import backoff_delay
from toolkit.errors import (
    DiscogsAuthError,
    DiscogsError,
    DiscogsNotFoundError,
    DiscogsRateLimitError,
    DiscogsResponseError,
    DiscogsUnavailableError,
)
from toolkit.ratelimit import SlidingWindowLimiter, Slot

__all__ = ["ClientStats", "Counters", "Exhausted", "Fetched", "RequestEvent", "Transport"]

_ACCEPT = "application/vnd.discogs.v2.discogs+json"
_MAX_EVENTS = 200_000


@dataclass(frozen=True)
class ClientStats:
    """Counters since the client was created (or :meth:`DiscogsClient.reset_stats`).

    ``network_requests`` counts every attempt sent to the server (retries and 429s included);
    ``cache_hits`` counts answers from the HTTP (SQLite) cache, stale copies served after the
    server kept failing included; ``memory_hits`` answers from the in-memory cache of parsed
    responses in front of it; ``limiter_wait_seconds`` is the time spent blocked on the rate
    limiter, a server ``Retry-After`` included.
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


class Counters:
    """Mutable, lock-protected counterpart of :class:`ClientStats`, with the request timeline."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: deque[RequestEvent] = deque(maxlen=_MAX_EVENTS)
        self.reset()

    def reset(self) -> None:
        """Zero every counter and forget the timeline."""
        with self.lock:
            self.network_requests = 0
            self.cache_hits = 0
            self.memory_hits = 0
            self.retries = 0
            self.rate_limited = 0
            self.limiter_wait_seconds = 0.0
            self.events.clear()

    def add(self, name: str, amount: float = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def request(self, event: RequestEvent) -> None:
        """Count one network request and append it to the timeline."""
        with self.lock:
            self.network_requests += 1
            self.events.append(event)

    def snapshot(self) -> ClientStats:
        """The counters as a frozen :class:`ClientStats`."""
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
class Fetched:
    """A 200 answer: its parsed JSON and the response (for the HTTP cache)."""

    data: Any
    response: requests.Response


@dataclass(frozen=True)
class Exhausted:
    """5xx answers or connection failures persisted through every retry (``why`` says which)."""

    why: str


class _Session(requests.Session):
    """A Session that reads the environment's proxy and CA-bundle settings once per host.

    requests re-reads them on every request (``merge_environment_settings`` walks ``os.environ``
    for proxies each time: ~0.5 ms, a good part of a cached request's cost). The client never
    passes per-request proxies, verify or cert, so the answer depends on the host alone.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str], dict[str, Any]] = {}

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:  # requests' stubs name a private TypedDict here
        if proxies or stream is not None or verify is not None or cert is not None or not url:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url if isinstance(url, str) else url.decode())
        key = (parts.scheme, parts.netloc)
        settings = self._environment.get(key)
        if settings is None:
            settings = dict(super().merge_environment_settings(url, {}, None, None, None))
            self._environment[key] = settings
        return {**settings, "proxies": dict(settings["proxies"])}


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


class Transport:
    """Sends ``GET`` requests through a limiter and retries them, counting everything in ``counters``.

    5xx answers, connection failures and unparseable 200 bodies are retried ``max_retries`` times
    after :func:`~toolkit.backoff.backoff_delay` (``backoff_jitter`` of it random). A 429 is not a
    failure: its ``Retry-After`` pauses the limiter for every thread sharing it (capped by
    ``limiter.max_pause``), one without tells the limiter its window is full; after
    ``2 * max_retries + 10`` of them the 429 is raised. The server's ``X-Discogs-Ratelimit`` is
    adopted unless ``limit_cap`` (the user's choice) is lower.
    """

    def __init__(
        self,
        *,
        token: str | None,
        user_agent: str,
        limiter: SlidingWindowLimiter,
        limit_cap: int | None,
        timeout: float | tuple[float, float],
        max_retries: int,
        backoff_base: float,
        backoff_cap: float,
        backoff_jitter: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if backoff_base < 0 or backoff_cap < 0 or not 0.0 <= backoff_jitter <= 1.0:
            raise ValueError("backoff_base and backoff_cap must be >= 0, backoff_jitter in [0, 1]")
        self._token = token
        self._limiter = limiter
        self._limit_cap = limit_cap
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_throttles = 2 * max_retries + 10
        self._backoff = (backoff_base, backoff_cap, backoff_jitter)
        self._random = random.Random()
        self._sleep = sleep
        self._clock = clock
        self.counters = Counters()
        self._http = _Session()
        # One pooled connection per thread that may send at once (requests keeps 10 by default,
        # and a connection beyond the pool is dropped after its request: a new handshake each time).
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)
        self._http.headers.update({"User-Agent": user_agent, "Accept": _ACCEPT})
        if token:
            self._http.headers["Authorization"] = f"Discogs token={token}"
        self._headers = dict(self._http.headers)

    @property
    def limiter(self) -> SlidingWindowLimiter:
        """The limiter every request takes a slot from."""
        return self._limiter

    def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        self._http.close()

    def redact(self, text: str) -> str:
        """``text`` with the token replaced by ``***``."""
        return text.replace(self._token, "***") if self._token else text

    def _wait_backoff(self, failures: int) -> None:
        self.counters.add("retries")
        base, cap, jitter = self._backoff
        self._sleep(backoff_delay(failures, base, cap, jitter, self._random))

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

    def _get(self, url: str) -> requests.Response:
        """``GET url`` as ``Session.get`` would send it, without re-merging the session per call.

        The request is prepared from the session's headers (fixed once the transport is built)
        and sent with the host's environment settings; no cookies are sent (the API authenticates
        by header). ``Session.get`` merges cookie jars, hooks and header dicts on every call: about
        a third of a request's CPU time, which ten workers pay one after another.
        """
        prepared = requests.PreparedRequest()
        prepared.prepare(method="GET", url=url, headers=self._headers)
        settings = self._http.merge_environment_settings(url, {}, None, None, None)
        return self._http.send(prepared, timeout=self._timeout, allow_redirects=True, **settings)

    def _record(self, started: float, path: str, status: int | None, stale: bool) -> None:
        self.counters.request(RequestEvent(started, self._clock(), path, status, stale))

    def _slot_wait(self, url: str) -> Slot:
        slot = self._limiter.acquire_slot(timeout=0)
        if slot is None:  # the window is full or paused: block, and count the time spent waiting
            waited_from = self._clock()
            slot = self._limiter.acquire_slot()
            self.counters.add("limiter_wait_seconds", self._clock() - waited_from)
        if slot is None:
            raise DiscogsRateLimitError(
                f"Gave up waiting for the rate limiter. (GET {url})", url=url
            )
        return slot

    def fetch(self, url: str, path: str, *, fallback: bool = False) -> Fetched | Exhausted:
        """Send ``GET url`` through the limiter, retrying failures and waiting out 429s.

        With ``fallback`` (the caller holds a stale copy) persistent 5xx answers or connection
        failures return :class:`Exhausted` instead of raising, and the last attempt's event is
        marked ``from_cache``.
        """
        failures = 0
        throttles = 0
        while True:
            slot = self._slot_wait(url)
            started = self._clock()
            try:
                response = self._get(url)
            except (requests.ConnectionError, requests.Timeout) as exc:
                slot.complete()
                failures += 1
                exhausted = failures > self._max_retries
                self._record(started, path, None, exhausted and fallback)
                if not exhausted:
                    self._wait_backoff(failures)
                    continue
                why = (
                    f"Discogs could not be reached ({type(exc).__name__}) after {failures} attempts"
                )
                if fallback:
                    return Exhausted(why)
                raise DiscogsUnavailableError(self.redact(f"{why}. (GET {url})"), url=url) from exc
            except requests.RequestException as exc:
                slot.complete()
                self._record(started, path, None, False)
                raise DiscogsError(
                    self.redact(
                        f"The request to Discogs failed: {type(exc).__name__}. (GET {url})"
                    ),
                    url=url,
                ) from exc
            slot.complete()
            status = response.status_code
            if status >= 500:
                failures += 1
                exhausted = failures > self._max_retries
                self._record(started, path, status, exhausted and fallback)
                self._learn(response.headers)
                if not exhausted:
                    self._wait_backoff(failures)
                    continue
                if fallback:
                    return Exhausted(
                        f"Discogs is unavailable (HTTP {status}) after {failures} attempts"
                    )
                raise self._status_error(response, url, attempts=failures)
            self._record(started, path, status, False)
            self._learn(response.headers)
            if status == 200:
                try:
                    return Fetched(json.loads(response.content), response)
                except ValueError:
                    failures += 1
                    if failures > self._max_retries:
                        raise DiscogsResponseError(
                            f"Discogs sent a response that is not valid JSON, {failures} times. "
                            f"(GET {url})",
                            url=url,
                            status=status,
                        ) from None
                    self._wait_backoff(failures)
                    continue
            if status == 429:
                self.counters.add("rate_limited")
                throttles += 1
                if throttles > self._max_throttles:
                    raise self._status_error(response, url)
                delay = _retry_after(response.headers.get("Retry-After"))
                if delay is None:
                    # Discogs sends no Retry-After: the window is full as of now; wait it out.
                    self._limiter.observe_remaining(0)
                else:
                    # Every thread sharing the limiter holds back, not only this one.
                    self._limiter.pause(delay)
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
        says = f"Discogs says: {server_message}" if server_message else ""
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
        message = " ".join(part for part in (lead, says, f"(GET {url})") if part)
        return kind(self.redact(message), url=url, status=status)
