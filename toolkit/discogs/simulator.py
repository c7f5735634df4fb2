"""A local HTTP simulator of the Discogs API (real shapes, strict moving-window rate limit, faults) on loopback.

Used by tests and benchmarks instead of api.discogs.com; see :class:`DiscogsSimulator`.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from toolkit.discogs.simdata import API_ROOT, SimCatalogue, SimUser

__all__ = [
    "MSG_AUTH",
    "MSG_FORBIDDEN",
    "MSG_RATE_LIMIT",
    "MSG_RELEASE_NOT_FOUND",
    "MSG_USER_AGENT",
    "DiscogsSimulator",
    "Fault",
    "FaultPlan",
    "RequestRecord",
    "SimStats",
]

MSG_AUTH = "You must authenticate to access this resource."
MSG_FORBIDDEN = "You don't have permission to access this resource."
MSG_RATE_LIMIT = "You are making requests too quickly."
MSG_RELEASE_NOT_FOUND = "Release not found."
MSG_USER_AGENT = "A User-Agent header is required to use the Discogs API."
MSG_NOT_FOUND = "The requested resource was not found."
MSG_USER_NOT_FOUND = "User does not exist or may have been deleted."
MSG_FOLDER_NOT_FOUND = "The requested folder does not exist."

_SORTS = ("label", "artist", "title", "catno", "format", "rating", "added", "year")
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("identity", re.compile(r"^/oauth/identity$")),
    ("release", re.compile(r"^/releases/(?P<id>\d+)$")),
    ("marketplace", re.compile(r"^/marketplace/stats/(?P<id>\d+)$")),
    ("user", re.compile(r"^/users/(?P<user>[^/]+)$")),
    ("folders", re.compile(r"^/users/(?P<user>[^/]+)/collection/folders$")),
    ("folder", re.compile(r"^/users/(?P<user>[^/]+)/collection/folders/(?P<folder>-?\d+)$")),
    (
        "collection",
        re.compile(r"^/users/(?P<user>[^/]+)/collection/folders/(?P<folder>-?\d+)/releases$"),
    ),
    ("collection_release", re.compile(r"^/users/(?P<user>[^/]+)/collection/releases/(?P<id>\d+)$")),
    ("value", re.compile(r"^/users/(?P<user>[^/]+)/collection/value$")),
    ("wants", re.compile(r"^/users/(?P<user>[^/]+)/wants$")),
    ("fields", re.compile(r"^/users/(?P<user>[^/]+)/collection/fields$")),
]


class Fault(NamedTuple):
    """What the fault plan does to one request: ``kind`` is throttle, error, reset, malformed or slow."""

    kind: str
    status: int = 0


@dataclass(frozen=True)
class FaultPlan:
    """Deterministic misbehaviour, decided per request number (1-based, in arrival order) and seed.

    ``throttle_storms`` are ``(first_request_number, length)`` ranges answered 429 whatever the
    window says (a "429 storm"; like every 429 they do not consume the window). The rates are
    probabilities per admitted request: error (a status drawn from ``statuses``), reset (the
    connection is shut down without a response), malformed (200 with the JSON body cut in half),
    slow (``slow_seconds`` more before a normal answer). Admitted requests count in the window
    whatever their fault. ``kinds`` limits the rate faults to those path kinds (e.g.
    ``frozenset({"release"})``); storms hit every kind.
    """

    error_rate: float = 0.0
    statuses: tuple[int, ...] = (500, 502, 503)
    reset_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    malformed_rate: float = 0.0
    throttle_storms: tuple[tuple[int, int], ...] = ()
    kinds: frozenset[str] | None = None

    def __post_init__(self) -> None:
        total = self.error_rate + self.reset_rate + self.slow_rate + self.malformed_rate
        if min(self.error_rate, self.reset_rate, self.slow_rate, self.malformed_rate) < 0:
            raise ValueError("fault rates must be >= 0")
        if total > 1.0:
            raise ValueError(f"fault rates add up to {total:g} > 1")
        if self.error_rate and not self.statuses:
            raise ValueError("error_rate needs at least one status")

    def in_storm(self, number: int) -> bool:
        """True when request ``number`` falls inside a throttle storm."""
        return any(start <= number < start + length for start, length in self.throttle_storms)

    def decide(self, number: int, seed: int = 0, kind: str | None = None) -> Fault | None:
        """The fault for request ``number`` (of path ``kind``) under ``seed``; None = behave.

        Pure and deterministic: the same plan, seed and numbers give the same faults.
        """
        if self.in_storm(number):
            return Fault("throttle", 429)
        if not (self.error_rate or self.reset_rate or self.slow_rate or self.malformed_rate):
            return None
        if self.kinds is not None and kind not in self.kinds:
            return None
        rng = random.Random(f"discogs-sim-fault/{seed}/{number}")
        draw = rng.random()
        for kind, rate in (
            ("error", self.error_rate),
            ("reset", self.reset_rate),
            ("malformed", self.malformed_rate),
            ("slow", self.slow_rate),
        ):
            if draw < rate:
                status = rng.choice(self.statuses) if kind == "error" else 0
                return Fault(kind, status)
            draw -= rate
        return None


class RequestRecord(NamedTuple):
    """One served request: arrival ``time`` (the simulator's clock), path without query, status (0 = reset)."""

    time: float
    method: str
    path: str
    kind: str
    status: int
    client: str
    number: int


@dataclass(frozen=True)
class SimStats:
    """A snapshot of the simulator's counters since start or :meth:`DiscogsSimulator.reset_counters`.

    ``by_kind`` keys: release, collection, collection_release, folders, folder, user, identity,
    value, wants, fields, marketplace, other. ``faults`` keys: error, reset, malformed, slow, storm.
    ``connections`` counts accepted TCP connections (keep-alive reuse keeps it low).
    """

    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    throttled: int = 0
    connections: int = 0
    faults: dict[str, int] = field(default_factory=dict)


class _Response(NamedTuple):
    status: int
    body: Any
    # a pre-serialised body (API_ROOT URLs) wins over ``body``
    raw: str | None = None


def _message(status: int, text: str) -> _Response:
    return _Response(status, {"message": text})


class DiscogsSimulator:
    """The Discogs API on ``http://127.0.0.1:<port>`` in a background thread (context manager).

    * ``rate_limit`` requests per ``window`` seconds (moving window, dated at arrival) per client,
      keyed by token if one is sent, else by client IP; ``rate_limit_unauthenticated`` (default
      ``min(25, rate_limit)``) applies to requests without a token. Rejected requests (429, body
      ``{"message": "You are making requests too quickly."}``) do not consume the window; with
      ``retry_after=True`` they carry ``Retry-After`` (whole seconds). Every response carries
      ``X-Discogs-Ratelimit``, ``-Used`` and ``-Remaining``.
    * ``tokens``: None accepts any non-empty token as the owner of every user (and
      /oauth/identity answers ``demo``); a mapping token → username makes any other token a 401
      (on every endpoint) and other users' private folders a 403.
    * ``latency + uniform(-jitter, jitter)`` seconds from a request's arrival to its answer (the
      time spent building the answer is part of it, as on a real server), no lock held.
    * ``faults``: a :class:`FaultPlan`, decided from ``seed`` and the request number.
    * ``pre_used``: requests already in each new client's window when it first shows up (a
      shared egress IP: Remaining lower than expected from the first response).
    * ``clock`` dates arrivals (``request_log`` times, the window); ``sleep`` serves latency.
    """

    def __init__(
        self,
        catalogue: SimCatalogue | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit: int = 60,
        rate_limit_unauthenticated: int | None = None,
        window: float = 60.0,
        retry_after: bool = False,
        latency: float = 0.05,
        jitter: float = 0.02,
        faults: FaultPlan | None = None,
        tokens: Mapping[str, str] | None = None,
        require_user_agent: bool = True,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        pre_used: int = 0,
    ) -> None:
        if rate_limit < 1 or window <= 0:
            raise ValueError("rate_limit must be >= 1 and window > 0")
        self.catalogue = catalogue if catalogue is not None else SimCatalogue(seed=seed)
        self.host = host
        self._requested_port = port
        self.port = port
        self.rate_limit = rate_limit
        self.rate_limit_unauthenticated = (
            min(25, rate_limit)
            if rate_limit_unauthenticated is None
            else rate_limit_unauthenticated
        )
        self.window = window
        self.retry_after = retry_after
        self.latency = latency
        self.jitter = jitter
        self.faults = faults or FaultPlan()
        self.tokens = dict(tokens) if tokens is not None else None
        self.require_user_agent = require_user_agent
        self.seed = seed
        self._clock = clock
        self.pre_used = pre_used
        self._sleep = sleep
        self._latency_rng = random.Random(f"discogs-sim-latency/{seed}")
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._number = 0
        self._log: list[RequestRecord] = []
        self._by_kind: dict[str, int] = {}
        self._by_status: dict[int, int] = {}
        self._fault_counts: dict[str, int] = {}
        self._throttled = 0
        self._connections = 0
        self._release_cache: dict[int, tuple[str, bytes]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> DiscogsSimulator:
        """Bind and serve in a daemon thread; sets ``url`` (e.g. ``http://127.0.0.1:54321``)."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), _Handler, self)
        self._server = server
        self.port = int(server.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self._release_cache.clear()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"discogs-sim:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> DiscogsSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"DiscogsSimulator(url={self.url!r}, rate_limit={self.rate_limit}/{self.window:g}s)"

    # ---- counters ---------------------------------------------------------------------------

    def stats(self) -> SimStats:
        """Counters since start or the last :meth:`reset_counters`."""
        with self._lock:
            return SimStats(
                requests=len(self._log),
                by_kind=dict(self._by_kind),
                by_status=dict(self._by_status),
                throttled=self._throttled,
                connections=self._connections,
                faults=dict(self._fault_counts),
            )

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request since the last reset, in completion order (a copy)."""
        with self._lock:
            return list(self._log)

    def reset_counters(self) -> None:
        """Clear counters and the request log (the rate-limit windows and request numbers stay)."""
        with self._lock:
            self._log.clear()
            self._by_kind.clear()
            self._by_status.clear()
            self._fault_counts.clear()
            self._throttled = 0
            self._connections = 0

    def reset_limits(self) -> None:
        """Forget every client's rate-limit window (a fresh minute for everyone)."""
        with self._lock:
            self._windows.clear()

    # ---- request processing (called from handler threads) -----------------------------------

    def _admit(
        self, key: str, limit: int, now: float, kind: str
    ) -> tuple[int, Fault | None, int, float]:
        """Number the request, apply storms and the moving window: (number, fault, used, retry)."""
        with self._lock:
            self._number += 1
            number = self._number
            stamps = self._windows.get(key)
            if stamps is None:
                # someone else on this IP / token already used part of the window
                stamps = self._windows[key] = deque([now] * self.pre_used)
            horizon = now - self.window
            while stamps and stamps[0] <= horizon:
                stamps.popleft()
            fault = self.faults.decide(number, self.seed, kind)
            if fault is not None and fault.kind == "throttle":
                return number, fault, len(stamps), 1.0
            if len(stamps) >= limit:
                retry = stamps[0] + self.window - now
                return number, Fault("throttle", 429), len(stamps), retry
            stamps.append(now)
            return number, fault, len(stamps), 0.0

    def _record(self, record: RequestRecord, fault: Fault | None) -> None:
        with self._lock:
            self._log.append(record)
            self._by_kind[record.kind] = self._by_kind.get(record.kind, 0) + 1
            self._by_status[record.status] = self._by_status.get(record.status, 0) + 1
            if record.status == 429:
                self._throttled += 1
            if fault is not None and fault.kind != "throttle":
                self._fault_counts[fault.kind] = self._fault_counts.get(fault.kind, 0) + 1
            elif fault is not None and self.faults.in_storm(record.number):
                self._fault_counts["storm"] = self._fault_counts.get("storm", 0) + 1

    def _delay(self) -> float:
        if self.latency <= 0 and self.jitter <= 0:
            return 0.0
        return max(0.0, self.latency + self._latency_rng.uniform(-self.jitter, self.jitter))

    def _token_ok(self, token: str | None) -> bool:
        """False only for a token outside the ``tokens`` mapping (no token is fine)."""
        return token is None or self.tokens is None or token in self.tokens

    def _owner(self, token: str | None, user: SimUser) -> _Response | None:
        """None when ``token`` may see ``user``'s private data, else the 401/403 response."""
        if token is None:
            return _message(401, MSG_AUTH)
        if self.tokens is None:
            return None
        name = self.tokens.get(token)
        if name is None:
            return _message(401, MSG_AUTH)
        if name.lower() != user.name.lower():
            return _message(403, MSG_FORBIDDEN)
        return None

    def _route(
        self, kind: str, params: dict[str, str], query: list[tuple[str, str]], token: str | None
    ) -> _Response:
        """Answer one GET (no rate limiting, no faults): a status and a JSON-able body."""
        catalogue = self.catalogue
        if kind == "release":
            rid = int(params["id"])
            if catalogue.is_deleted(rid):
                return _message(404, MSG_RELEASE_NOT_FOUND)
            raw = catalogue.release_json(rid)
            if raw is None:
                return _message(404, MSG_RELEASE_NOT_FOUND)
            return _Response(200, None, raw)
        if kind == "marketplace":
            # Tokenless calls get USD whatever they ask, as on Discogs.
            currency = dict(query).get("curr_abbr", "USD") if token is not None else "USD"
            stats = catalogue.market_stats(int(params["id"]), currency.upper())
            if stats is None:
                return _message(404, MSG_RELEASE_NOT_FOUND)
            return _Response(200, stats)
        if kind == "identity":
            if token is None:
                return _message(401, MSG_AUTH)
            name = (self.tokens or {}).get(token, "demo")
            known = catalogue.find_user(name)
            return _Response(
                200,
                {
                    "id": known.id if known else 1,
                    "username": known.name if known else name,
                    "resource_url": f"{API_ROOT}/users/{known.name if known else name}",
                    "consumer_name": "discogs-toolkit simulator",
                },
            )
        user = catalogue.find_user(params.get("user", ""))
        if user is None:
            return _message(404, MSG_USER_NOT_FOUND)
        if kind == "user":
            return _Response(200, user.profile())
        if kind == "folders":
            folders = user.folder_list()
            if self._owner(token, user) is not None:
                folders = folders[:1]
            return _Response(200, {"folders": folders})
        if kind == "value":
            denied = self._owner(token, user)
            return denied or _Response(200, catalogue.user_value(user))
        if kind == "fields":
            fields = user.collection_fields()
            if self._owner(token, user) is not None:
                fields = [f for f in fields if f["public"]]
            return _Response(200, {"fields": fields})
        if kind == "wants":
            return self._page(user.wants, "wants", query, f"/users/{user.name}/wants")
        if kind == "collection_release":
            rid = int(params["id"])
            items = [it for it in user.items if it["id"] == rid]
            path = f"/users/{user.name}/collection/releases/{rid}"
            return self._page(items, "releases", query, path)
        folder_id = int(params["folder"])
        if folder_id != 0:
            denied = self._owner(token, user)
            if denied is not None:
                return denied
        if kind == "folder":
            for folder in user.folder_list():
                if folder["id"] == folder_id:
                    return _Response(200, folder)
            return _message(404, MSG_FOLDER_NOT_FOUND)
        items_or_none = user.folder_items(folder_id)
        if items_or_none is None:
            return _message(404, MSG_FOLDER_NOT_FOUND)
        path = f"/users/{user.name}/collection/folders/{folder_id}/releases"
        return self._page(items_or_none, "releases", query, path)

    @staticmethod
    def _sorted(items: list[dict[str, Any]], sort: str, order: str) -> list[dict[str, Any]]:
        """Items in ``sort`` order (ties by instance id); no or unknown sort: collection order."""
        if sort not in _SORTS:
            return items if order != "desc" else items[::-1]

        def key(item: dict[str, Any]) -> tuple[Any, int]:
            info = item.get("basic_information", {})
            labels = info.get("labels") or [{}]
            value: Any
            if sort == "label":
                value = str(labels[0].get("name", "")).lower()
            elif sort == "catno":
                value = str(labels[0].get("catno", "")).lower()
            elif sort == "artist":
                value = str((info.get("artists") or [{}])[0].get("name", "")).lower()
            elif sort == "title":
                value = str(info.get("title", "")).lower()
            elif sort == "format":
                value = str((info.get("formats") or [{}])[0].get("name", "")).lower()
            elif sort == "rating":
                value = int(item.get("rating", 0))
            elif sort == "year":
                value = int(info.get("year", 0))
            else:
                value = str(item.get("date_added", ""))
            return value, int(item.get("instance_id", item.get("id", 0)))

        return sorted(items, key=key, reverse=order == "desc")

    def _page(
        self,
        items: list[dict[str, Any]],
        field_name: str,
        query: list[tuple[str, str]],
        path: str,
    ) -> _Response:
        """One page of ``items`` under ``field_name`` with the real ``pagination`` block."""
        args = dict(query)
        per_page = _int(args.get("per_page"), 50)
        per_page = 50 if per_page < 1 else min(per_page, 100)
        page = _int(args.get("page"), 1)
        pages = max(1, math.ceil(len(items) / per_page))
        if not 1 <= page <= pages:
            return _message(404, f"Page {page} is outside of valid range [1, {pages}].")
        ordered = self._sorted(items, args.get("sort", ""), args.get("sort_order", "asc"))
        chunk = ordered[(page - 1) * per_page : page * per_page]
        return _Response(
            200,
            {
                "pagination": {
                    "page": page,
                    "pages": pages,
                    "per_page": per_page,
                    "items": len(items),
                    "urls": _page_urls(path, query, page, pages),
                },
                field_name: chunk,
            },
        )

    def _release_bytes(self, rid: int, raw: str) -> bytes:
        # Keyed by the body too: SimCatalogue.override_release may change what a release serves.
        cached = self._release_cache.get(rid)
        if cached is None or cached[0] != raw:
            cached = (raw, raw.replace(API_ROOT, self.url).encode())
            self._release_cache[rid] = cached
        return cached[1]

    def _render(self, response: _Response, kind: str, params: dict[str, str]) -> bytes:
        """Serialise a response body with this simulator's URLs."""
        if response.raw is not None:
            if kind == "release":
                return self._release_bytes(int(params["id"]), response.raw)
            return response.raw.replace(API_ROOT, self.url).encode()
        text = json.dumps(response.body, ensure_ascii=False)
        return text.replace(API_ROOT, self.url).encode()


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def _page_urls(path: str, query: list[tuple[str, str]], page: int, pages: int) -> dict[str, str]:
    keep = [(k, v) for k, v in query if k != "page"]

    def url(number: int) -> str:
        return f"{API_ROOT}{path}?{urlencode([*keep, ('page', str(number))])}"

    urls: dict[str, str] = {}
    if page > 1:
        urls["first"] = url(1)
        urls["prev"] = url(page - 1)
    if page < pages:
        urls["last"] = url(pages)
        urls["next"] = url(page + 1)
    return urls


def _token(header: str | None, query: list[tuple[str, str]]) -> str | None:
    """The personal token from ``Authorization: Discogs token=...`` or the ``token`` parameter."""
    if header:
        match = re.match(r"^\s*Discogs\s+(.*)$", header)
        if match:
            for part in match.group(1).split(","):
                name, _, value = part.strip().partition("=")
                if name == "token" and value:
                    return value
    for name, value in query:
        if name == "token" and value:
            return value
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], sim: DiscogsSimulator
    ) -> None:
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            sockets = list(self.connections)
            self.connections.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 60.0
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
        with self.server.sim._lock:
            self.server.sim._connections += 1

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        """Answer one GET: User-Agent check, window and storms, faults, then the route."""
        sim = self.server.sim
        arrival = sim._clock()
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        query = parse_qsl(split.query, keep_blank_values=True)
        kind, params = "other", {}
        for name, pattern in _ROUTES:
            match = pattern.match(path)
            if match:
                kind, params = name, match.groupdict()
                break
        self._record = RequestRecord(arrival, "GET", path, kind, 0, str(self.client_address[0]), 0)
        self._fault: Fault | None = None
        if sim.require_user_agent and not self.headers.get("User-Agent", "").strip():
            self._answer(403, _json({"message": MSG_USER_AGENT}), {})
            return
        token = _token(self.headers.get("Authorization"), query)
        limit = sim.rate_limit if token is not None else sim.rate_limit_unauthenticated
        key = f"token:{token}" if token is not None else f"ip:{self._record.client}"
        number, fault, used, retry = sim._admit(key, limit, arrival, kind)
        self._record = self._record._replace(number=number)
        self._fault = fault
        headers = {
            "X-Discogs-Ratelimit": str(limit),
            "X-Discogs-Ratelimit-Used": str(used),
            "X-Discogs-Ratelimit-Remaining": str(max(0, limit - used)),
        }
        delay = sim._delay()
        if fault is not None and fault.kind == "slow":
            delay += sim.faults.slow_seconds
        if fault is not None and fault.kind == "throttle":
            if sim.retry_after:
                headers["Retry-After"] = str(max(1, math.ceil(retry)))
            body = _json({"message": MSG_RATE_LIMIT})
            status = 429
        elif fault is not None and fault.kind == "error":
            body = _json({"message": _phrase(fault.status)})
            status = fault.status
        elif fault is not None and fault.kind == "reset":
            self._wait(delay - (sim._clock() - arrival))
            self.close_connection = True
            sim._record(self._record, fault)  # before the reset, as answers record before sending
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        else:
            status, body = self._respond(sim, kind, params, query, token)
            if fault is not None and fault.kind == "malformed" and status == 200:
                body = body[: max(1, len(body) // 2)]
        # Latency counts from arrival: 10 answers built at once must not each add their CPU time.
        self._wait(delay - (sim._clock() - arrival))
        self._answer(status, body, headers)

    @staticmethod
    def _respond(
        sim: DiscogsSimulator,
        kind: str,
        params: dict[str, str],
        query: list[tuple[str, str]],
        token: str | None,
    ) -> tuple[int, bytes]:
        if not sim._token_ok(token):
            response = _message(401, MSG_AUTH)
        elif kind == "other":
            response = _message(404, MSG_NOT_FOUND)
        else:
            try:
                response = sim._route(kind, params, query, token)
            except Exception as exc:  # a simulator bug must still answer
                response = _message(500, f"simulator error: {exc!r}")
        return response.status, sim._render(response, kind, params)

    def _wait(self, delay: float) -> None:
        if delay > 0:
            self.server.sim._sleep(delay)

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Record, then write status line, headers and body in one send."""
        lines = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            "Server: nginx",
            f"Date: {self.date_time_string()}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "X-Discogs-Media-Type: discogs.v2",
            "Access-Control-Allow-Origin: *",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        self.server.sim._record(self._record._replace(status=status), self._fault)
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            self.close_connection = True

    def _not_allowed(self) -> None:
        length = _int(self.headers.get("Content-Length"), 0)
        if length > 0:
            self.rfile.read(length)
        sim = self.server.sim
        path = urlsplit(self.path).path
        self._record = RequestRecord(
            sim._clock(), str(self.command), path, "other", 0, str(self.client_address[0]), 0
        )
        self._fault = None
        self.close_connection = True
        self._answer(405, _json({"message": "Method not allowed."}), {})

    do_POST = _not_allowed
    do_PUT = _not_allowed
    do_DELETE = _not_allowed
    do_PATCH = _not_allowed


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
