"""The shared window on a Redis server: one budget for every machine behind one address.

Each change is an optimistic transaction (``WATCH`` the window key, read it, run the same Python
rule as the SQLite file does, ``MULTI``/``EXEC`` the result; a concurrent writer makes ``EXEC``
fail and the step runs again). The rules are written once in :mod:`toolkit.budget.window`; a Lua
script would have been a second copy of them. Time is the Redis server's (``TIME``, read once
as an offset), so machines whose clocks disagree still agree on the window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis

from toolkit.budget.window import WindowState
from toolkit.errors import BudgetError

__all__ = ["PREFIX", "RedisWindowStorage", "redis_where"]

T = TypeVar("T")

#: Prefix of every key the toolkit writes.
PREFIX = "discogs-toolkit"
#: A window nobody touched for this long is dropped by Redis itself.
KEY_SECONDS = 3600
#: Completed requests kept per API host for the monitor's chart.
HISTORY_ENTRIES = 20_000
#: A process that has not published for this long is forgotten.
FORGET_SECONDS = 600.0


def redis_where(url: str) -> str:
    """``redis://host:port/db`` of ``url``, without user or password (for messages and status)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisWindowStorage:
    """Windows, processes and request history on the Redis server at ``url``.

    Raises :class:`BudgetError` naming the server (never its password) when it cannot be reached.
    """

    def __init__(self, url: str, *, clock: Callable[[], float] | None = None) -> None:
        self.where = redis_where(url)
        try:
            self._redis: redis.Redis = redis.Redis.from_url(
                url, socket_timeout=10, socket_connect_timeout=5
            )
            seconds, micros = self._redis.time()
        except (redis.RedisError, ValueError) as exc:
            raise BudgetError(
                f"the Redis server {self.where} for the shared rate budget cannot be used "
                f"({type(exc).__name__}: {_clean(exc, url)}); check TOOLKIT_REDIS_URL / --redis"
            ) from None
        offset = seconds + micros / 1e6 - time.time()
        self._clock = clock or (lambda: time.time() + offset)

    def clock(self) -> float:
        """The Redis server's time in seconds (this machine's clock plus the measured offset)."""
        return self._clock()

    def _k(self, kind: str, key: str) -> str:
        return f"{PREFIX}:{kind}:{key}"

    def update(self, key: str, step: Callable[[WindowState], T]) -> T:
        """Run ``step`` on ``key``'s window in a WATCH/MULTI/EXEC transaction, retried on conflict."""
        name = self._k("window", key)
        try:
            with self._redis.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(name)  # type: ignore[no-untyped-call]
                        state = WindowState.loads(pipe.get(name))
                        result = step(state)
                        pipe.multi()
                        pipe.set(name, state.dumps(), ex=KEY_SECONDS)
                        pipe.sadd(f"{PREFIX}:hosts", key)
                        if state.events:
                            history = self._k("history", key)
                            pipe.rpush(history, *[f"{t!r} {owner}" for t, owner in state.events])
                            pipe.ltrim(history, -HISTORY_ENTRIES, -1)
                        pipe.execute()
                        return result
                    except redis.WatchError:
                        continue
        except redis.RedisError as exc:
            raise self._error(exc) from None

    def read(self, key: str) -> WindowState:
        """``key``'s window as stored."""
        try:
            raw = self._redis.get(self._k("window", key))
        except redis.RedisError as exc:
            raise self._error(exc) from None
        return WindowState.loads(raw)

    def hosts(self) -> list[str]:
        """Every API host with a window on the server."""
        try:
            members = self._redis.smembers(f"{PREFIX}:hosts")
        except redis.RedisError as exc:
            raise self._error(exc) from None
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def publish(self, key: str, owner: str, info: dict[str, Any]) -> None:
        """Store process ``owner``'s ``info`` in the key's hash of processes."""
        name = self._k("processes", key)
        try:
            self._redis.hset(name, owner, json.dumps(info))
            self._redis.expire(name, int(FORGET_SECONDS))
        except redis.RedisError as exc:
            raise self._error(exc) from None

    def withdraw(self, key: str, owner: str) -> None:
        """Forget process ``owner``."""
        try:
            self._redis.hdel(self._k("processes", key), owner)
        except redis.RedisError as exc:
            raise self._error(exc) from None

    def processes(self, key: str) -> dict[str, dict[str, Any]]:
        """Every published process of ``key`` (silent for ten minutes: dropped)."""
        try:
            raw: dict[bytes, bytes] = self._redis.hgetall(self._k("processes", key))  # type: ignore[assignment]
        except redis.RedisError as exc:
            raise self._error(exc) from None
        now = self.clock()
        found = {}
        for owner, info in raw.items():
            data: dict[str, Any] = json.loads(info)
            if now - float(data.get("updated", now)) < FORGET_SECONDS:
                found[owner.decode()] = data
        return found

    def history(self, key: str, since: float) -> list[tuple[float, str]]:
        """Completed requests (time, owner) since ``since``, oldest first."""
        try:
            rows: list[bytes] = self._redis.lrange(self._k("history", key), 0, -1)  # type: ignore[assignment]
        except redis.RedisError as exc:
            raise self._error(exc) from None
        found = []
        for row in rows:
            t, _, owner = row.decode().partition(" ")
            if float(t) >= since:
                found.append((float(t), owner))
        return found

    def _error(self, exc: redis.RedisError) -> BudgetError:
        return BudgetError(
            f"the Redis server {self.where} of the shared rate budget failed "
            f"({type(exc).__name__}: {exc})"
        )

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        self._redis.close()

    def __repr__(self) -> str:
        return f"RedisWindowStorage({self.where!r})"


def _clean(exc: BaseException, url: str) -> str:
    """The exception's text with the URL (which may hold a password) replaced by its safe form."""
    text = str(exc)
    parts = urlsplit(url)
    if parts.password:
        text = text.replace(parts.password, "***")
    return text.replace(url, redis_where(url))
