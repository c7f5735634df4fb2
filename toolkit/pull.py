"""Pull a Discogs collection into the database: pages in parallel batches, release details by priority.

Resumable and idempotent: the database knows what it has, failures are recorded and retried next time.

Every pull lists the collection from the network (``refresh=True``: neither the in-memory nor the
HTTP cache answers a collection page), so a listing is never a mix of stale and fresh pages and a
removal is seen at once. Release details go through both caches. After Ctrl-C or ``kill -9`` the
next pull therefore re-lists the pages (a few requests) but refetches no release it already stored
(the database) or received (the HTTP cache); only requests in flight at the interruption are sent
again.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.batch import BatchProcessor
from toolkit.budget import background, track
from toolkit.collection import (
    CollectionDataError,
    clear_failures,
    create_schema,
    failure_ids,
    known_release_ids,
    load_collection,
    permanent_failure_ids,
    record_failure,
    remove_missing_items,
)
from toolkit.concurrency import ConcurrencyManager, Task, TaskResult
from toolkit.config import Settings
from toolkit.db import Database
from toolkit.errors import (
    BatchError,
    DiscogsNotFoundError,
    DiscogsRateLimitError,
    DiscogsResponseError,
    DiscogsUnavailableError,
    PullError,
    TaskTimeoutError,
    ToolkitError,
)

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.discogs.client import DiscogsClient, RequestEvent

__all__ = [
    "LAST_NETWORK_PULL_FILE",
    "LAST_PULL_FILE",
    "PullReport",
    "load_saved_pull",
    "pull_collection",
    "rate_bound_seconds",
    "save_pull",
]

#: The latest pull's report, saved under the data dir by the CLI and notebook 01.
LAST_PULL_FILE = "last_pull.json"
#: The latest pull that sent ``/releases`` requests (e.g. ``make demo``'s cold pull): a warm re-pull
#: never overwrites it, so notebook 01 can still chart a pull against the rate limit.
LAST_NETWORK_PULL_FILE = "last_network_pull.json"

#: Collection pages per BatchProcessor batch (each page is written as soon as it arrives).
PAGES_PER_BATCH = 4

#: Errors worth another attempt by the ConcurrencyManager after the client's own retries gave up.
RETRYABLE: tuple[type[BaseException], ...] = (
    DiscogsUnavailableError,
    DiscogsRateLimitError,
    DiscogsResponseError,
    TaskTimeoutError,
)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, RETRYABLE)


def rate_bound_seconds(requests: int, limit: int, window: float) -> float:
    """Least time a moving window of ``limit`` requests per ``window`` seconds allows for ``requests``.

    The first ``limit`` requests may go at once; every further ``limit`` must wait one more window:
    ``max(0, ceil(requests / limit) - 1) * window``.
    """
    if requests <= 0 or limit <= 0:
        return 0.0
    return max(0, math.ceil(requests / limit) - 1) * float(window)


@dataclass(frozen=True)
class PullReport:
    """What one pull did and how efficiently: compare ``elapsed_seconds`` with ``rate_bound_seconds``.

    ``rate_bound_seconds`` is :func:`rate_bound_seconds` of the network requests made, i.e. the least
    time the rate limit (``rate_limit`` per ``rate_window`` s) allows for them.
    """

    username: str
    folder_id: int
    items: int
    pages: int
    pages_failed: int
    releases_fetched: int
    releases_skipped: int
    items_removed: int
    network_requests: int
    cache_hits: int
    retries: int
    rate_limited: int
    failures: int
    permanent_failures: int
    elapsed_seconds: float
    rate_bound_seconds: float
    rate_limit: int
    rate_window: float
    limiter_wait_seconds: float = 0.0
    timeline: tuple[RequestEvent, ...] = field(default=(), repr=False, compare=False)

    @property
    def complete(self) -> bool:
        """True when every page was listed (so removed items were synced) and nothing failed."""
        return self.pages_failed == 0 and self.failures == 0

    @property
    def release_requests(self) -> int:
        """``/releases/{id}`` requests sent over the network (from the timeline)."""
        return sum(1 for event in self.timeline if event.path.startswith("/releases/"))

    def as_dict(self) -> dict[str, Any]:
        """Every field except the timeline, for JSON or a table."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "timeline"}

    def to_frame(self) -> pd.DataFrame:
        """A two-column (metric, value) DataFrame for notebook display."""
        import pandas as pd

        rows = [(name, _fmt(value)) for name, value in self.as_dict().items()]
        return pd.DataFrame(rows, columns=["metric", "value"])

    def as_table(self) -> str:
        """A short aligned text table for the terminal."""
        rows = [(name, _fmt(value)) for name, value in self.as_dict().items()]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)

    def save(self, path: str | Path) -> Path:
        """Write the report and its timeline as JSON (no token is ever part of a report)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.as_dict()
        data["timeline"] = [
            [e.started, e.finished, e.path, e.status, e.from_cache] for e in self.timeline
        ]
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(target)
        return target

    @classmethod
    def load(cls, path: str | Path) -> PullReport:
        """Read a report written by :meth:`save`."""
        from toolkit.discogs.client import RequestEvent

        data = json.loads(Path(path).read_text(encoding="utf-8"))
        events = tuple(RequestEvent(*row) for row in data.pop("timeline", []))
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names}, timeline=events)

    def timeline_frame(self) -> pd.DataFrame:
        """The request timeline: one row per request with start/finish seconds from the first one."""
        import pandas as pd

        columns = ["started", "finished", "path", "status", "from_cache"]
        if not self.timeline:
            return pd.DataFrame(columns=columns)
        t0 = min(event.started for event in self.timeline)
        return pd.DataFrame(
            [
                (e.started - t0, e.finished - t0, e.path, e.status, e.from_cache)
                for e in self.timeline
            ],
            columns=columns,
        )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def save_pull(report: PullReport, data_dir: str | Path) -> list[Path]:
    """Save ``report`` as :data:`LAST_PULL_FILE` under ``data_dir``, and as
    :data:`LAST_NETWORK_PULL_FILE` too when it sent ``/releases`` requests. Returns the files written.
    """
    folder = Path(data_dir)
    written = [report.save(folder / LAST_PULL_FILE)]
    if report.release_requests:
        written.append(report.save(folder / LAST_NETWORK_PULL_FILE))
    return written


def load_saved_pull(
    data_dir: str | Path | None = None, name: str = LAST_PULL_FILE
) -> PullReport | None:
    """A report saved by :func:`save_pull` (default data dir: ``Settings``), or None if absent/unreadable."""
    folder = Settings.from_env().data_dir if data_dir is None else Path(data_dir)
    path = folder / name
    if not path.is_file():
        return None
    try:
        return PullReport.load(path)
    except (OSError, ValueError, TypeError, KeyError):
        return None


@contextmanager
def _progress(total: int, desc: str, unit: str, enabled: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=True)
    try:
        yield bar
    finally:
        bar.close()


def _stats_dict(client: DiscogsClient) -> dict[str, float]:
    stats = client.stats()
    return {f.name: float(getattr(stats, f.name)) for f in fields(stats)}


class _Writer:
    """Serialises writes to the database: one transaction per call, never interleaved.

    A batch the loader rejects (:class:`CollectionDataError`: a malformed answer) is written again
    one record at a time, so one bad record never costs the others.
    """

    def __init__(self, db: Database, username: str) -> None:
        self.db = db
        self.username = username
        self.lock = threading.Lock()

    def items(self, items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Write collection items; returns those written (all of them unless some are malformed)."""
        with self.lock:
            try:
                load_collection(self.db, list(items), [], username=self.username)
                return list(items)
            except CollectionDataError:
                pass
            written = []
            for item in items:
                try:
                    load_collection(self.db, [item], [], username=self.username)
                except CollectionDataError:
                    continue
                written.append(item)
            return written

    def releases(self, batch: Sequence[tuple[int, Mapping[str, Any]]]) -> tuple[int, int]:
        """Write ``(release_id, body)`` pairs; returns (written, malformed).

        A malformed body is recorded in ``pull_failures`` as not permanent (the next answer may be
        fine), so the next pull asks again.
        """
        if not batch:
            return 0, 0
        with self.lock:
            try:
                self._write_releases(batch)
                return len(batch), 0
            except CollectionDataError:
                pass
            written = bad = 0
            for rid, body in batch:
                try:
                    self._write_releases([(rid, body)])
                except CollectionDataError as exc:
                    record_failure(self.db, rid, _describe(exc), False)
                    bad += 1
                else:
                    written += 1
            return written, bad

    def _write_releases(self, batch: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        with self.db.transaction():
            load_collection(
                self.db, [], [body for _, body in batch], fetched_at=_now(), username=self.username
            )
            clear_failures(self.db, [rid for rid, _ in batch])

    def failure(self, release_id: int, error: str, permanent: bool) -> None:
        with self.lock:
            record_failure(self.db, release_id, error, permanent)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:500]


def pull_collection(
    username: str,
    db: Database | str | Path,
    *,
    client: DiscogsClient | None = None,
    folder_id: int = 0,
    details: bool = True,
    concurrency: int | None = None,
    retries: int | None = None,
    progress: bool = True,
    per_page: int = 100,
    max_age: float | None = None,
    batch_size: int = 50,
) -> PullReport:
    """Pull ``username``'s collection (folder ``folder_id``) into ``db`` and report what it took.

    Page 1 gives the page count; the other pages are fetched from the network (never a cache) in
    BatchProcessor batches of a few pages, ``concurrency`` batches at once, and each page's items
    are written as soon as it arrives. With ``details`` every release not yet stored (or stored
    more than ``max_age`` seconds ago; ``None`` = never stale) is fetched through a
    ConcurrencyManager (``concurrency`` at once, ``retries`` more attempts after the client's own),
    rated items first, and written in transactions of ``batch_size``. ``concurrency`` and
    ``retries`` default to ``Settings.from_env()``'s ``concurrency_max_tasks`` and
    ``concurrency_retries``. Items gone from the collection are removed only after every page was
    listed. Single failures (a release that keeps failing, a malformed answer) are recorded in
    ``pull_failures`` (a 404 as permanent) and never abort the pull; errors before any item is
    listed (auth, unknown user, server down) are raised.

    Interrupted (Ctrl-C) it writes every release already received before re-raising; after a
    ``kill -9`` the next pull re-lists the pages but refetches no release stored or cached.
    """
    settings: Settings | None = None
    if client is None or concurrency is None or retries is None:
        settings = Settings.from_env()
    workers = concurrency if concurrency is not None else _require(settings).concurrency_max_tasks
    if workers < 1:
        raise PullError(f"concurrency must be >= 1, got {workers}")
    attempts = retries if retries is not None else _require(settings).concurrency_retries
    if attempts < 0:
        raise PullError(f"retries must be >= 0, got {attempts}")
    own_db = not isinstance(db, Database)
    database = db if isinstance(db, Database) else Database.connect(db)
    own_client = client is None
    try:
        if client is None:
            from toolkit.discogs.client import DiscogsClient

            client = DiscogsClient.from_settings(_require(settings))
        # A pull is background work: it leaves the shared budget's reserve to interactive calls.
        with background(client):
            return _pull(
                username,
                database,
                client,
                folder_id=folder_id,
                details=details,
                workers=workers,
                progress=progress,
                per_page=per_page,
                max_age=max_age,
                batch_size=max(1, batch_size),
                retries=attempts,
            )
    finally:
        if own_db:
            database.close()
        if own_client and client is not None:
            client.close()


def _require(settings: Settings | None) -> Settings:
    assert settings is not None
    return settings


def _pull(
    username: str,
    db: Database,
    client: DiscogsClient,
    *,
    folder_id: int,
    details: bool,
    workers: int,
    progress: bool,
    per_page: int,
    max_age: float | None,
    batch_size: int,
    retries: int,
) -> PullReport:
    started = time.monotonic()
    before = _stats_dict(client)
    create_schema(db)
    writer = _Writer(db, username)

    # 1. Page 1 tells how many pages there are; errors here mean the pull cannot run at all.
    try:
        first = client.get_collection_page(
            username, folder_id=folder_id, page=1, per_page=per_page, refresh=True
        )
    except DiscogsNotFoundError as exc:
        what = f"user {username!r}" if folder_id == 0 else f"folder {folder_id} of {username!r}"
        raise DiscogsNotFoundError(
            f"Discogs has no {what} (HTTP 404). {exc}", url=exc.url, status=exc.status
        ) from None
    pages = max(1, int(first["pagination"]["pages"]))
    seen: dict[int, Mapping[str, Any]] = {}  # instance_id -> item
    seen_lock = threading.Lock()

    def land(page_items: Sequence[Mapping[str, Any]]) -> bool:
        """Write a page's items; False when some were malformed (the listing is incomplete)."""
        written = writer.items(page_items)
        with seen_lock:
            for item in written:
                seen[int(item["instance_id"])] = item
        return len(written) == len(page_items)

    with _progress(pages, "pages", "page", progress) as bar:
        bar = track(client, bar, f"pull {username}: pages", pages)

        def fetch_pages(batch: list[int]) -> list[bool]:
            """One BatchProcessor batch: fetch and write each page in turn; True = listed."""
            listed = []
            for page in batch:
                try:
                    data = client.get_collection_page(
                        username, folder_id=folder_id, page=page, per_page=per_page, refresh=True
                    )
                    ok = land(data["releases"])
                except ToolkitError:  # a page that failed after the client's retries
                    ok = False
                listed.append(ok)
                bar.update(1)
            return listed

        listed = [land(first["releases"])]
        bar.update(1)
        rest = list(range(2, pages + 1))
        if rest:
            size = max(1, min(PAGES_PER_BATCH, math.ceil(len(rest) / workers)))
            try:
                listed += BatchProcessor.process_parallel_batches(
                    rest, batch_size=size, concurrency=workers, handler=fetch_pages
                )
            except BatchError as exc:  # not a Discogs/database error: a bug, so surface it
                raise exc.failed[min(exc.failed)] from exc
    pages_failed = listed.count(False)

    # 3. Sync: only a complete listing may remove items.
    removed = 0
    if pages_failed == 0:
        removed = remove_missing_items(db, username, folder_id, set(seen))

    # 2. Details, rated items first.
    fetched = failed = permanent = skipped = 0
    if details:
        fresh_since = None if max_age is None else _now() - timedelta(seconds=max_age)
        known = known_release_ids(db, fresh_since=fresh_since) | permanent_failure_ids(db)
        priority: dict[int, int] = {}
        for item in seen.values():
            rid = int(item["id"])
            priority[rid] = max(priority.get(rid, 0), int(item.get("rating") or 0))
        wanted = sorted(
            (rid for rid in priority if rid not in known), key=lambda r: (-priority[r], r)
        )
        skipped = len(priority) - len(wanted)
        # A release that failed before may sit in the HTTP cache in a form the loader rejected:
        # ask the server again rather than re-read the bad copy until it expires.
        retrying = failure_ids(db, permanent=False)
        fetched, failed, permanent = _fetch_releases(
            client, writer, wanted, priority, retrying, workers, retries, batch_size, progress
        )

    after = _stats_dict(client)
    delta = {name: after[name] - before.get(name, 0.0) for name in after}
    network = int(delta.get("network_requests", 0))
    limiter = client.limiter
    limit, window = int(limiter.limit), float(limiter.window)
    timeline = tuple(e for e in client.timeline() if e.started >= started)
    return PullReport(
        username=username,
        folder_id=folder_id,
        items=len(seen),
        pages=pages,
        pages_failed=pages_failed,
        releases_fetched=fetched,
        releases_skipped=skipped,
        items_removed=removed,
        network_requests=network,
        cache_hits=int(delta.get("cache_hits", 0) + delta.get("memory_hits", 0)),
        retries=int(delta.get("retries", 0)),
        rate_limited=int(delta.get("rate_limited", 0)),
        failures=failed,
        permanent_failures=permanent,
        elapsed_seconds=time.monotonic() - started,
        rate_bound_seconds=rate_bound_seconds(network, limit, window),
        rate_limit=limit,
        rate_window=window,
        limiter_wait_seconds=delta.get("limiter_wait_seconds", 0.0),
        timeline=timeline,
    )


def _fetch_releases(
    client: DiscogsClient,
    writer: _Writer,
    wanted: list[int],
    priority: Mapping[int, int],
    retrying: set[int],
    workers: int,
    retries: int,
    batch_size: int,
    progress: bool,
) -> tuple[int, int, int]:
    """Fetch ``wanted`` releases by priority; write successes in batches, record failures.

    Returns (written, failed, permanently failed). On Ctrl-C or any other exception every answer
    already received is written (even those not yet collected here), queued requests are dropped,
    and the exception propagates.
    """
    if not wanted:
        return 0, 0, 0
    fetched = failed = permanent = 0
    buffer: list[tuple[int, Mapping[str, Any]]] = []

    def make(rid: int) -> Callable[[], Mapping[str, Any]]:
        refresh = rid in retrying
        return lambda: client.get_release(rid, refresh=refresh)

    def flush() -> None:
        nonlocal buffer, fetched, failed
        written, bad = writer.releases(buffer)
        buffer = []
        fetched += written
        failed += bad
        manager.reset()  # written: the manager need not keep those bodies alive any longer

    def settle(rid: int, result: TaskResult[Mapping[str, Any]]) -> None:
        nonlocal failed, permanent
        if result.success and result.result is not None:
            body = result.result
            if body.get("id") != rid:  # merged into another release: keep it under the id asked
                body = {**body, "id": rid}
            buffer.append((rid, body))
            if len(buffer) >= batch_size:
                flush()
        elif not isinstance(result.error, CancelledError):  # dropped by close(), not failed
            is_permanent = isinstance(result.error, DiscogsNotFoundError)
            writer.failure(rid, _describe(result.error), is_permanent)
            failed += 1
            permanent += int(is_permanent)

    # No per-attempt timeout: an attempt may legitimately wait on the rate limiter for minutes,
    # and the client bounds each request with its own connect/read timeouts.
    manager = ConcurrencyManager(
        max_concurrent=workers, retries=retries, timeout=None, retry_on=_retryable
    )
    futures: dict[Future[TaskResult[Mapping[str, Any]]], int] = {}
    clean = False
    with _progress(len(wanted), "releases", "release", progress) as bar:
        bar = track(client, bar, f"pull {writer.username}: releases", len(wanted))
        try:
            for rid in wanted:
                task = Task(id=str(rid), execute=make(rid), priority=priority[rid])
                futures[manager.enqueue(task)] = rid
            for future in as_completed(futures):
                # Popped once settled, so a written body is not kept alive until the end.
                settle(futures.pop(future), future.result())
                bar.update(1)
            clean = True
        finally:
            # On Ctrl-C or a crash keep every answer that arrived, and drop what has not started.
            manager.close(wait=clean, cancel_pending=not clean)
            if not clean:
                for future, rid in futures.items():  # only the ones not settled yet
                    if future.done() and not future.cancelled():
                        settle(rid, future.result())
            flush()
    return fetched, failed, permanent
