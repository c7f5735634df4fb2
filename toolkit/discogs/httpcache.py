"""The HTTP cache: a requests-cache SQLite file (or memory) of 200 answers, its salt, and its upkeep.

Reads take a fast path into requests-cache's stored records (``tests/test_client.py`` checks
that it agrees with requests-cache); SQLite errors become :class:`~toolkit.errors.HTTPCacheError`.
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from requests.structures import CaseInsensitiveDict
from requests_cache.backends.base import BaseCache
from requests_cache.backends.redis import RedisCache
from requests_cache.backends.sqlite import SQLiteCache, SQLiteDict
from requests_cache.cache_keys import filter_sort_dict, filter_url, redact_response
from requests_cache.models.request import CachedRequest
from requests_cache.models.response import CachedResponse
from requests_cache.serializers import CattrStage

from toolkit.discogs.transport import Answer
from toolkit.errors import DatabaseError, HTTPCacheError
from toolkit.sqlitewait import retry_while_locked

__all__ = [
    "REDIS_NAMESPACE",
    "CachedBody",
    "HTTPCacheStore",
    "clear_http_cache",
    "clear_redis_http_cache",
    "http_cache_stats",
    "redis_http_cache_stats",
]

_log = logging.getLogger(__name__)
_CLEAR_HINT = "delete it or run `discogs-toolkit cache clear`"
#: The cache file's busy timeout, and how long opening it is retried while other processes open
#: it too (seconds).
_OPEN_WAIT = 30.0


@dataclass(frozen=True)
class CachedBody:
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


class HTTPCacheStore:
    """200 answers by cache key, in a requests-cache SQLite file at ``path`` (None: in memory).

    requests-cache stores, serialises and redacts (the ``Authorization`` header never reaches the
    file); it never sends a request nor decides about staleness. The file also holds a random
    ``salt`` for the caller's token-partitioned keys. Raises HTTPCacheError when the file or its
    directory cannot be opened, with everything opened so far closed again.
    """

    def __init__(self, path: Path | None, *, redis_url: str | None = None) -> None:
        """``redis_url``: keep the answers on that Redis server instead (``path`` is ignored), so
        machines sharing a rate budget do not fetch the same release twice."""
        self._path = None if redis_url else path
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._save_lock = threading.Lock()
        # Byte stages of the serializer, bytes -> stored record; None: always use requests-cache.
        self._record_loads: list[Callable[[Any], Any]] | None = None
        self._record_dumps: list[Callable[[Any], Any]] | None = None
        self._unstructure: Callable[[Any], Any] | None = None
        #: Whether records are built directly (see save): None until the first save checked it.
        self._fast_save: bool | None = None
        self._table = "responses"
        self._backend: BaseCache
        if redis_url:
            self._backend, self._salt = _open_redis(redis_url)
        elif path is None:
            self._backend = BaseCache()
            self._salt = secrets.token_bytes(32)
        else:
            self._backend, self._salt = self._open_file(path)

    def _open_file(self, path: Path) -> tuple[SQLiteCache, bytes]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HTTPCacheError(
                f"the HTTP cache directory {path.parent} cannot be created "
                f"({exc.strerror or exc}); set TOOLKIT_DATA_DIR to a writable directory"
            ) from None
        try:
            backend, salt = retry_while_locked(lambda: self._open_sqlite(path), _OPEN_WAIT)
        except (sqlite3.Error, OSError) as exc:
            raise HTTPCacheError(
                f"the HTTP cache file {self._path or path} is not readable ({exc}); {_CLEAR_HINT}"
            ) from None
        storage = backend.responses
        serializer = getattr(storage, "serializer", None)
        stages = list(getattr(serializer, "stages", ()))
        if isinstance(storage, SQLiteDict) and stages and isinstance(stages[0], CattrStage):
            # Every stage but the first (record <-> CachedResponse): bytes -> the stored record,
            # and back.
            self._record_loads = [stage.loads for stage in reversed(stages[1:])]
            self._record_dumps = [stage.dumps for stage in stages[1:]]
            self._unstructure = stages[0].dumps
            self._table = storage.table_name
        return backend, salt

    def _open_sqlite(self, path: Path) -> tuple[SQLiteCache, bytes]:
        """One attempt at opening the file: requests-cache's backend, our reader and the salt
        (everything opened is closed again when a step fails)."""
        backend: SQLiteCache | None = None
        try:
            backend = SQLiteCache(str(path), wal=True, busy_timeout=int(_OPEN_WAIT * 1000))
            # One connection of our own for reads: a SELECT of the stored record (see read()).
            # The file requests-cache opened: it adds ".sqlite" to a path without a suffix.
            actual = Path(getattr(backend.responses, "db_path", path))
            self._path = actual
            self._reader = sqlite3.connect(str(actual), timeout=_OPEN_WAIT, check_same_thread=False)
            return backend, _cache_salt(self._reader)
        except BaseException:
            if backend is not None:
                backend.close()  # type: ignore[no-untyped-call]
            self._close_reader()
            raise

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for an in-memory cache."""
        return self._path

    @property
    def salt(self) -> bytes:
        """Random bytes kept with the cache, for keys that must not reveal what they derive from."""
        return self._salt

    @property
    def backend(self) -> BaseCache:
        """The requests-cache backend (``get_response`` is the slow, reference read)."""
        return self._backend

    def read(self, key: str) -> CachedBody | None:
        """The 200 answer stored under ``key``, or None.

        For the SQLite file this is one SELECT and the serializer's byte stages (pickle by
        default): the stored record's body and expiry are read without rebuilding a requests
        ``CachedResponse`` around them, which costs more than the SELECT and JSON parse together.
        Records in a shape not understood here go through requests-cache's own ``get_response``.
        """
        if self._record_loads is not None:
            try:
                with self._reader_lock:
                    if self._reader is None:
                        raise HTTPCacheError("the HTTP cache is closed")
                    row = self._reader.execute(
                        f"SELECT value FROM {self._table} WHERE key = ?", (key,)
                    ).fetchone()
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            if row is None:
                return None
            try:
                record = row[0]
                for loads in self._record_loads:
                    record = loads(record)
                content = record["_content"]
                if record["status_code"] == 200 and isinstance(content, bytes):
                    return CachedBody(content, _is_expired(record["expires"]))
            except Exception:  # any surprise: let requests-cache read it
                _log.debug("HTTP cache record in an unexpected shape; using requests-cache")
        try:
            response = self._backend.get_response(key)
        except (sqlite3.Error, redis.RedisError) as exc:
            raise self._error(exc) from None
        if response is None or response.status_code != 200:
            return None
        return CachedBody(response.content, bool(response.is_expired))

    def save(self, answer: Answer, key: str, ttl: float) -> None:
        """Store a 200 answer for ``ttl`` seconds; failures only logged.

        The record is requests-cache's own (a ``CachedResponse`` through its serializer, the
        ``Authorization`` header redacted), built from the answer as received: the transport
        sends on urllib3 directly, so there is no requests ``Response`` to copy it from. For the
        SQLite file the record is written the fast way (see :meth:`_fast_record`) once the first
        save found it equal to what requests-cache builds.
        """
        # One save at a time, from building the record to its commit. Ten workers whose answers
        # arrive together would otherwise interleave their saves under the GIL (and requests-cache
        # serialises the SQLite part anyway), so every one of them finished late; one after
        # another, the first is on its way again after one save (row 10).
        with self._save_lock:
            now = datetime.now(UTC)
            expires = now + timedelta(seconds=ttl)
            try:
                if self._record_dumps is not None and self._fast_save is not False:
                    record = self._fast_record(answer, now, expires)
                    if self._fast_save is None:  # the first save: the fast way must agree
                        reference = self._cached(answer, now, expires)
                        self._fast_save = record == self._record_of(reference)
                        if not self._fast_save:
                            _log.debug("HTTP cache records differ from requests-cache's; slow way")
                            self._backend.responses[key] = reference
                            return
                    self._write_record(key, record, round(expires.timestamp()))
                else:
                    self._backend.responses[key] = self._cached(answer, now, expires)
            except (sqlite3.Error, redis.RedisError) as exc:
                _log.warning("could not store %s in the HTTP cache: %s", answer.url, exc)

    def _cached(self, answer: Answer, now: datetime, expires: datetime) -> CachedResponse:
        """The answer as requests-cache stores it: a redacted ``CachedResponse``."""
        request = CachedRequest(
            method="GET", url=answer.url, headers=CaseInsensitiveDict(answer.request_headers)
        )
        cached = CachedResponse(
            url=answer.url,
            status_code=answer.status,
            reason=answer.reason or "",
            headers=CaseInsensitiveDict(answer.headers),
            request=request,
            expires=expires,
            created_at=now,
        )
        cached._content = answer.content
        return redact_response(cached, self._backend._settings.ignored_parameters)

    def _record_of(self, cached: CachedResponse) -> Any:
        """The record requests-cache's serializer makes of ``cached`` (before its byte stages)."""
        assert self._unstructure is not None
        return self._unstructure(cached)

    def _fast_record(self, answer: Answer, now: datetime, expires: datetime) -> dict[str, Any]:
        """The stored record of the answer, built as a dict directly.

        Building a ``CachedResponse`` and unstructuring it (cookie jars, attrs validators) cost
        0.25 ms of CPU per save (a release request took 0.87 against 0.62 ms single-threaded),
        paid one save after another (see :meth:`save`). The
        record is the mirror of the one :meth:`read` takes apart; the first save checks it
        against requests-cache's own, and ``tests/test_client.py`` reads it back through
        requests-cache.
        """
        ignored = self._backend._settings.ignored_parameters
        url = filter_url(answer.url, ignored)
        return {
            "_content": answer.content,
            "created_at": now.isoformat(),
            "expires": expires.isoformat(),
            # A header sent twice is one "a, b" value, as CaseInsensitiveDict(headers) makes it.
            "headers": dict(
                filter_sort_dict({k: answer.headers[k] for k in answer.headers}, ignored)
            ),
            "reason": answer.reason or "",
            "request": {
                "headers": dict(filter_sort_dict(answer.request_headers, ignored)),
                "method": "GET",
                "url": url,
            },
            "status_code": answer.status,
            "url": url,
        }

    def _write_record(self, key: str, record: Any, expires_unix: int) -> None:
        """Serialise ``record`` with the byte stages and write it as requests-cache's SQLite
        backend writes a response (one ``INSERT OR REPLACE`` in its transaction)."""
        assert self._record_dumps is not None
        value = record
        for dumps in self._record_dumps:
            value = dumps(value)
        storage = self._backend.responses
        assert isinstance(storage, SQLiteDict)
        with storage.connection(commit=True) as con:
            con.execute(
                f"INSERT OR REPLACE INTO {storage.table_name} (key,value,expires) VALUES (?,?,?)",
                (key, value, expires_unix),
            )

    def delete(self, key: str) -> None:
        """Remove an entry (an answer that must be asked for again); failures only logged."""
        try:
            self._backend.delete(key)
        except (sqlite3.Error, redis.RedisError) as exc:
            _log.warning("could not delete an HTTP cache entry: %s", exc)

    def close(self) -> None:
        """Close the backend and the read connection (idempotent)."""
        self._backend.close()  # type: ignore[no-untyped-call]
        self._close_reader()

    def _close_reader(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _error(self, exc: sqlite3.Error | redis.RedisError) -> HTTPCacheError:
        where = f"the HTTP cache file {self._path}" if self._path else "the HTTP cache"
        return HTTPCacheError(f"{where} is not readable ({exc}); {_CLEAR_HINT}")


#: Keys of the HTTP cache on Redis start with this.
REDIS_NAMESPACE = "discogs-toolkit:http"


def _redis_error(url: str, exc: BaseException) -> HTTPCacheError:
    """The one-line error for a Redis HTTP cache that cannot be used (never its password)."""
    from toolkit.budget.redisstore import redis_where

    return HTTPCacheError(
        f"the HTTP cache on the Redis server {redis_where(url)} cannot be used "
        f"({type(exc).__name__}); check TOOLKIT_REDIS_URL"
    )


def _redis_connection(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def _open_redis(url: str) -> tuple[RedisCache, bytes]:
    """requests-cache's Redis backend at ``url`` and the salt kept beside it (created once)."""
    try:
        connection = _redis_connection(url)
        backend = RedisCache(namespace=REDIS_NAMESPACE, connection=connection)
        salt_key = f"{REDIS_NAMESPACE}:salt"
        fresh = secrets.token_bytes(32)
        connection.set(salt_key, fresh, nx=True)
        # None only if `cache clear` deleted it in between: then this client's keys just miss.
        salt = connection.get(salt_key) or fresh
    except (redis.RedisError, ValueError) as exc:
        raise _redis_error(url, exc) from None
    assert isinstance(salt, bytes)
    return backend, salt


def _redis_keys(url: str, *, delete: bool) -> int:
    """Count (and with ``delete`` remove) the answers kept under :data:`REDIS_NAMESPACE` at ``url``.

    Answers are the keys named by a client's 32-hex-digit cache key; the namespace also holds the
    salt and requests-cache's redirects, which ``delete`` removes too (a new salt comes with the
    next client, so nothing stored before could be found again anyway).
    """
    prefix = f"{REDIS_NAMESPACE}:"
    try:
        connection = _redis_connection(url)
        try:
            keys = list(connection.scan_iter(f"{prefix}*", count=1000))
            answers = sum(1 for key in keys if _ANSWER_KEY.fullmatch(key[len(prefix) :]))
            if delete:
                for start in range(0, len(keys), 1000):
                    connection.delete(*keys[start : start + 1000])
                connection.delete(f"{REDIS_NAMESPACE}-redirects")  # requests-cache's hash
            return answers
        finally:
            connection.close()
    except (redis.RedisError, ValueError) as exc:
        raise _redis_error(url, exc) from None


_ANSWER_KEY = re.compile(rb"[0-9a-f]{32}")


def redis_http_cache_stats(url: str) -> dict[str, Any]:
    """Where the HTTP cache on Redis is (``url`` without its password) and how many answers it holds."""
    from toolkit.budget.redisstore import redis_where

    return {
        "redis": redis_where(url),
        "namespace": REDIS_NAMESPACE,
        "responses": _redis_keys(url, delete=False),
    }


def clear_redis_http_cache(url: str) -> int:
    """Delete the HTTP cache on the Redis server at ``url``; returns the answers it held."""
    return _redis_keys(url, delete=True)


# ---------------------------------------------------------------------------- file upkeep


def http_cache_stats(path: Path) -> dict[str, Any]:
    """Size and entry count of the requests-cache SQLite file at ``path`` (read-only look)."""
    if not path.exists():
        return {"path": str(path), "exists": False, "bytes": 0, "responses": 0}
    size = sum(p.stat().st_size for p in _cache_files(path))
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            tables = {
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            responses = (
                int(con.execute("SELECT count(*) FROM responses").fetchone()[0])
                if "responses" in tables
                else 0
            )
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path} is not a readable HTTP cache: {exc}") from None
    return {"path": str(path), "exists": True, "bytes": size, "responses": responses}


def _cache_files(path: Path) -> list[Path]:
    candidates = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return [p for p in candidates if p.exists()]


def clear_http_cache(path: Path) -> int:
    """Delete the HTTP cache file (and its WAL files); returns the bytes freed (0 if none)."""
    freed = 0
    for file in _cache_files(path):
        freed += file.stat().st_size
        try:
            file.unlink()
        except OSError as exc:
            raise DatabaseError(f"cannot delete {file}: {exc.strerror}") from None
    return freed
