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
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from toolkit.batch import BatchProcessor
from toolkit.budget import background, track
from toolkit.collection import (
    CollectionDataError,
    NameMemo,
    check_schema,
    clear_failures,
    create_schema,
    delete_release_rows,
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
    DatabaseError,
    DiscogsError,
    DiscogsNotFoundError,
    DiscogsRateLimitError,
    DiscogsResponseError,
    DiscogsUnavailableError,
    PullError,
    TaskTimeoutError,
)
from toolkit.history import (
    Extras,
    ExtrasReport,
    PullRecord,
    current_items,
    finish_pull,
    pull_extras,
    record_pull,
    store_fields,
    unnamed_fields,
)

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.discogs.client import DiscogsClient, RequestEvent

__all__ = [
    "DUCKDB_PULL_SETTINGS",
    "LAST_NETWORK_PULL_FILE",
    "LAST_PULL_FILE",
    "PULL_CLIENT_MEMORY_ENTRIES",
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

#: Collection pages per BatchProcessor batch. One: a driver takes the next page as soon as it is
#: free, so a slow page (or the driver that happened to write the queued pages) holds up no other
#: page; with four, a 50-page listing ended on two batches run one after the other.
PAGES_PER_BATCH = 1

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
    #: Where details came from (``pull --details-from``): releases copied from the local
    #: catalogue, fetched from the API (= ``releases_fetched``), and, with ``catalogue``, releases
    #: the catalogue lacks (left without details).
    details_from: str = "api"
    from_catalogue: int = 0
    from_api: int = 0
    not_in_catalogue: int = 0
    #: One line per collection item the loader refused (where it was and what was wrong with it).
    malformed_items: tuple[str, ...] = ()
    #: The ``pulls`` row of this pull and the items it found added (history, toolkit.history).
    pull_id: int | None = None
    items_added: int = 0
    #: What ``--wants`` and ``--market`` did: wants stored, details of releases only wanted
    #: fetched from the API and copied from the local catalogue, marketplace requests sent.
    wants: int | None = None
    want_releases_fetched: int = 0
    want_releases_from_catalogue: int = 0
    market_requests: int = 0
    #: One-line messages about the extras (e.g. that the value needs the owner's token).
    notices: tuple[str, ...] = ()
    timeline: tuple[RequestEvent, ...] = field(default=(), repr=False, compare=False)

    @property
    def complete(self) -> bool:
        """True when every page was listed and loaded (so removed items were synced) and nothing failed."""
        return self.pages_failed == 0 and self.failures == 0 and not self.malformed_items

    @property
    def release_requests(self) -> int:
        """``/releases/{id}`` requests sent over the network (from the timeline)."""
        return sum(1 for event in self.timeline if event.path.startswith("/releases/"))

    def as_dict(self) -> dict[str, Any]:
        """Every field except the timeline, for JSON or a table; ``malformed_items`` as a count."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _DETAILED}
        data["items_malformed"] = len(self.malformed_items)
        return data

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
        del data["items_malformed"]
        data["malformed_items"] = list(self.malformed_items)
        data["notices"] = list(self.notices)
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
        malformed = tuple(str(line) for line in data.pop("malformed_items", []))
        notices = tuple(str(line) for line in data.pop("notices", []))
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        return cls(**values, malformed_items=malformed, notices=notices, timeline=events)

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


#: Fields left out of :meth:`PullReport.as_dict` (saved with the report all the same).
_DETAILED = frozenset({"timeline", "malformed_items", "notices"})


def _fmt(value: object) -> str:
    if value is None:  # not asked for (e.g. wants without --wants)
        return "—"
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
    """A report saved by :func:`save_pull` (default data dir: ``Settings()``'s), or None if absent/unreadable."""
    folder = Settings().data_dir if data_dir is None else Path(data_dir)
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


#: How long the clean-up after an interruption waits for a write another thread is making.
CLEANUP_WAIT = 60.0


def _database_failed(failure: BaseException, writer: _Writer) -> bool:
    """True when the database refused a write (then nothing more is written after a failure)."""
    return isinstance(failure, DatabaseError) or writer.failed is not None


def _after(failure: BaseException, what: str, step: Callable[[], object]) -> None:
    """Run a clean-up step after ``failure``; if it fails too, say so on ``failure`` and go on."""
    try:
        step()
    except Exception as exc:
        failure.add_note(f"then {what} failed: {type(exc).__name__}: {exc}")


def _spent(client: DiscogsClient, before: Mapping[str, float]) -> dict[str, float]:
    """The client's counters since ``before`` (a :func:`_stats_dict`)."""
    after = _stats_dict(client)
    return {name: after[name] - before.get(name, 0.0) for name in after}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:500]


@contextmanager
def _arrow_released() -> Iterator[None]:
    """Hand the memory Arrow's pool kept from a write back to the OS (a pull makes thousands of
    small Arrow tables; the pool would otherwise hold on to their peak). Costs microseconds."""
    try:
        yield
    finally:
        pa.default_memory_pool().release_unused()


#: Listed pages the writer may fall behind by before page workers wait for it: bounds the raw
#: items held in memory (~100 KiB a page) when the network outruns the database.
MAX_QUEUED_PAGES = 10


class _Abandoned(Exception):
    """Thrown into a held-open transaction to roll it back (see :func:`_abandon`)."""


def _abandon(stack: ExitStack) -> None:
    """Roll back the transaction ``stack`` holds open (what it deleted is back)."""
    stack.__exit__(_Abandoned, _Abandoned(), None)


class _Writer:
    """Serialises the pull's writes: one transaction per call, never interleaved.

    Only :class:`CollectionDataError` (malformed Discogs JSON) is handled here: the batch is written
    again one record at a time, so one bad record never costs the others. Any other database error
    (disk full, file locked, a table gone) propagates and stops the pull.
    """

    def __init__(self, db: Database, username: str, failed_before: set[int]) -> None:
        self.db = db
        self.username = username
        #: Releases with a ``pull_failures`` row at the start: a success clears only those (no
        #: other release can have one, and a statement less per write is a few ms less).
        self.failed_before = failed_before
        self.lock = threading.Lock()
        #: Listed pages not written yet (page number, raw items), and what the written ones held.
        self.queue: list[tuple[int, Sequence[Mapping[str, Any]]]] = []
        self.queue_lock = threading.Lock()
        self.seen: set[int] = set()  # instance ids of the items written (only ids: items are big)
        self.malformed: list[str] = []
        #: The first write the database refused: every later write raises it again, so no page
        #: worker goes on writing to a database that just failed.
        self.failed: DatabaseError | None = None
        #: Artist and label names this pull stored: later writes leave them out.
        self.names = NameMemo()

    @contextmanager
    def _naming(self) -> Iterator[None]:
        """Settle :attr:`names` with the write in the block: kept once its transaction committed,
        dropped when it failed (one joining the delete-ahead transaction settles when that ends)."""
        try:
            yield
        except BaseException:
            self.names.discard()
            raise
        if not self.db.in_transaction:
            self.names.commit()

    def check(self) -> None:
        """Raise the database error an earlier write met, if any."""
        if self.failed is not None:
            raise self.failed

    def items(self, page: int, items: Sequence[Mapping[str, Any]], *, defer: bool = False) -> None:
        """Queue one page's items and write the queue unless another thread is writing (or
        ``defer``: leave it to the next writer or :meth:`flush`).

        Group commit: a page worker does not wait for another's write. Pages that arrive during a
        write queue up, and whoever writes next writes them all in one transaction (100 items
        cost ~12 ms on DuckDB, 1,000 in one go ~31 ms); only past :data:`MAX_QUEUED_PAGES` does
        a worker wait and write (back-pressure). :meth:`flush` writes what is left.
        """
        self.check()
        with self.queue_lock:
            self.queue.append((page, items))
            full = len(self.queue) > MAX_QUEUED_PAGES
        if not defer:
            self._drain(block=full)  # back-pressure: a full queue makes the worker wait and write

    def flush(self, timeout: float | None = None) -> None:
        """Write every queued page (waits for a write in progress, at most ``timeout`` s:
        then TimeoutError says how many pages were left unwritten)."""
        self._drain(block=True, timeout=timeout)
        with self.queue_lock:
            left = len(self.queue)
        if left and timeout is not None:
            raise TimeoutError(f"{left} listed pages not written: the database stayed busy")

    def _drain(self, *, block: bool, timeout: float | None = None) -> None:
        while self.lock.acquire(
            blocking=block, timeout=-1 if timeout is None or not block else timeout
        ):
            batch: list[tuple[int, Sequence[Mapping[str, Any]]]] = []
            try:
                self.check()
                with self.queue_lock:
                    batch, self.queue = self.queue, []
                if batch:
                    with _arrow_released():
                        self._write_pages(batch)
            except DatabaseError as exc:
                self.failed = exc
                raise
            except BaseException:  # Ctrl-C: the pages go back (a rewrite is a harmless upsert)
                with self.queue_lock:
                    self.queue[:0] = batch
                raise
            finally:
                self.lock.release()
            with self.queue_lock:  # a page queued while we held the lock: its thread went on
                if not self.queue:
                    return

    def _write_pages(self, batch: list[tuple[int, Sequence[Mapping[str, Any]]]]) -> None:
        try:
            with self._naming():
                load_collection(
                    self.db,
                    [item for _, items in batch for item in items],
                    [],
                    username=self.username,
                    names=self.names,
                )
        except CollectionDataError:
            for page, items in batch:
                self._write_page(page, items)
        else:
            for _, items in batch:
                self.seen.update(int(item["instance_id"]) for item in items)

    def _write_page(self, page: int, items: Sequence[Mapping[str, Any]]) -> None:
        """One page whose batch held a malformed item: the page, else item by item."""
        try:
            load_collection(self.db, items, [], username=self.username)
        except CollectionDataError:
            pass
        else:
            self.seen.update(int(item["instance_id"]) for item in items)
            return
        for index, item in enumerate(items):
            try:
                load_collection(self.db, [item], [], username=self.username)
            except CollectionDataError as exc:
                # The loader names the place as items[0] (one item at a time): say which one.
                where = f"page {page} items[{index}]"
                self.malformed.append(str(exc).replace("items[0]", where, 1)[:500])
            else:
                self.seen.add(int(item["instance_id"]))

    def releases(self, batch: Sequence[tuple[int, Mapping[str, Any]]]) -> tuple[int, int]:
        """Write ``(release_id, body)`` pairs; returns (written, malformed).

        A malformed body is recorded in ``pull_failures`` as not permanent (the next answer may be
        fine), so the next pull asks again.
        """
        if not batch:
            return 0, 0
        self.check()
        with self.lock, _arrow_released():
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

    def _write_releases(
        self, batch: Sequence[tuple[int, Mapping[str, Any]]], deleted: Collection[int] = ()
    ) -> None:
        with self._naming(), self.db.transaction():
            load_collection(
                self.db,
                [],
                [body for _, body in batch],
                fetched_at=_now(),
                username=self.username,
                deleted=deleted,
                names=self.names,
            )
            clear_failures(self.db, [rid for rid, _ in batch if rid in self.failed_before])

    def delete_ahead(self, release_ids: Sequence[int]) -> ExitStack:
        """Open a transaction and delete these releases' rows in it, for :meth:`write_ahead`.

        The caller ends it: ``close()`` commits, :func:`_abandon` rolls it back (the deleted rows
        are back). Until then the database is this thread's.
        """
        self.check()
        stack = ExitStack()
        stack.enter_context(self.db.transaction())
        try:
            delete_release_rows(self.db, release_ids)
        except BaseException:
            _abandon(stack)
            raise
        return stack

    def write_ahead(self, batch: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Write the answers of releases :meth:`delete_ahead` deleted, into its transaction; all
        or nothing (a malformed body raises CollectionDataError: roll back, write them as usual)."""
        with self.lock, _arrow_released():
            self._write_releases(batch, deleted={rid for rid, _ in batch})

    def failure(self, release_id: int, error: str, permanent: bool) -> None:
        with self.lock:
            record_failure(self.db, release_id, error, permanent)

    def copy_catalogue(self, release_ids: Sequence[int], as_of: datetime) -> set[int]:
        """Copy the attached catalogue's rows of these releases; returns the ids it held."""
        from toolkit.catalogue.details import copy_from_catalogue

        self.check()
        with self.lock, _arrow_released():
            self.names = NameMemo()  # the dump's names may differ from those stored so far
            copied = copy_from_catalogue(self.db, release_ids, as_of)
            failed = [rid for rid in copied if rid in self.failed_before]
            if failed:
                clear_failures(self.db, failed)
            return copied


def _release_id(item: Any) -> int | None:
    """The release id of a raw collection item, or None when it has no usable one."""
    if not isinstance(item, Mapping):
        return None
    basic = item.get("basic_information")
    value = item.get("id", basic.get("id") if isinstance(basic, Mapping) else None)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)  # ASCII digits only: "²".isdigit() is true, int("²") fails
    if type(value) is int and 0 < value < 2**63:
        return value
    return None


def _rating(item: Mapping[str, Any]) -> int:
    try:
        return int(item.get("rating") or 0)
    except (TypeError, ValueError, OverflowError):
        return 0  # a malformed rating: the loader reports the item, the release just goes last


class _Listing:
    """The pages of one listing as they settle (arrived or failed), from any thread.

    Keeps each release's best rating (its priority). The thread that settles the last page calls
    ``on_complete`` before that page's items are written, so release requests start at once.
    """

    def __init__(self, pages: int, on_complete: Callable[[dict[int, int]], None] | None) -> None:
        self.lock = threading.Lock()
        self.remaining = pages
        self.priority: dict[int, int] = {}
        self.on_complete = on_complete

    def settle(self, items: Sequence[Mapping[str, Any]] | None) -> None:
        """Record a page's raw items (None: the page failed)."""
        with self.lock:
            for item in items or ():
                rid = _release_id(item)
                if rid is not None:
                    self.priority[rid] = max(self.priority.get(rid, 0), _rating(item))
            self.remaining -= 1
            last = self.remaining == 0
        if last and self.on_complete is not None:
            self.on_complete(self.priority)


#: Most releases requested but not yet written: bounds the bodies held in memory when writing
#: falls behind the network (~20 KiB each), yet lets every request of a usual pull start at once.
MAX_UNWRITTEN = 500

#: In-memory cache size of a client made for one pull (by :func:`pull_collection` or the CLI): a
#: pull asks for each release once, so parsed answers kept in memory are only dead weight (the
#: client's default of 2,000 is ~40 MiB of release bodies); the HTTP cache file keeps them all.
PULL_CLIENT_MEMORY_ENTRIES = 10


def _as_asked(release_id: int, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The body under the id asked for (Discogs answers a merged release with the survivor's)."""
    return body if body.get("id") == release_id else {**body, "id": release_id}


#: Put on :attr:`_Details.answers` when a future given to :meth:`_Details.beside` is done.
_BESIDE = -1


class _Details:
    """Release details: requests fed to a ConcurrencyManager by priority, answers written as they come.

    ``start`` may run on any thread (the one that settled the listing); ``collect`` and ``salvage``
    run on the pull's thread, which alone writes releases. An answer is written in a batch of
    ``batch_size``, except that once every answer still to come is on its way (the last round of
    requests), what has gathered is written while they travel: after the last answer arrives
    only the last round is left to write.
    """

    def __init__(
        self,
        client: DiscogsClient,
        writer: _Writer,
        manager: ConcurrencyManager,
        known: set[int],
        retrying: set[int],
        batch_size: int,
        catalogue: _CatalogueSource | None = None,
    ) -> None:
        self.client = client
        self.catalogue = catalogue
        self.from_catalogue = self.not_in_catalogue = 0
        self.writer = writer
        self.manager = manager
        self.known = known
        self.retrying = retrying
        self.batch_size = batch_size
        self.lock = threading.Lock()
        #: Wakes the pull's thread in completion order; ``outstanding`` is what salvage trusts.
        self.answers: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.outstanding: dict[int, Future[TaskResult[Mapping[str, Any]]]] = {}
        self.pending: list[tuple[int, Future[TaskResult[Mapping[str, Any]]]]] = []
        self.wanted: list[int] = []
        self.priority: Mapping[int, int] = {}
        self.fed = self.settled = 0
        self.last_round_written = False
        #: The transaction holding the last round's rows deleted (see the class), and their ids.
        self.ahead: tuple[ExitStack, frozenset[int]] | None = None
        #: Run in that transaction just before it commits (the pull's record, when final).
        self.closing: Callable[[], None] | None = None
        #: Work that waits for a future (see :meth:`beside`), run on the pull's thread, and the
        #: first error one raised (it does not cut the details short).
        self.beside_jobs: list[tuple[Future[Any], Callable[[], None]]] = []
        self.beside_error: Exception | None = None
        self.skipped = self.fetched = self.failed = self.permanent = 0

    def start(self, priority: Mapping[int, int]) -> None:
        """Queue the releases not stored yet, best rated first (up to :data:`MAX_UNWRITTEN`)."""
        wanted = sorted(
            (r for r in priority if r not in self.known), key=lambda r: (-priority[r], r)
        )
        skipped = len(priority) - len(wanted)
        if self.catalogue is not None and wanted:
            copied = self.writer.copy_catalogue(wanted, self.catalogue.as_of)
            wanted = [r for r in wanted if r not in copied]
            self.from_catalogue = len(copied)
            if self.catalogue.only:
                self.not_in_catalogue, wanted = len(wanted), []
        with self.lock:
            self.priority = priority
            self.wanted = wanted
            self.skipped = skipped
        self._feed()

    def _feed(self) -> None:
        with self.lock:
            upto = min(len(self.wanted), self.settled + MAX_UNWRITTEN)
            todo, self.fed = self.wanted[self.fed : upto], max(self.fed, upto)
        for rid in todo:
            refresh = rid in self.retrying

            def fetch(rid: int = rid, refresh: bool = refresh) -> Mapping[str, Any]:
                return self.client.get_release(rid, refresh=refresh)

            future = self.manager.enqueue(Task(str(rid), fetch, self.priority[rid]))
            with self.lock:
                self.outstanding[rid] = future
            future.add_done_callback(self._answered(rid))

    def _answered(self, rid: int) -> Callable[[Future[TaskResult[Mapping[str, Any]]]], None]:
        return lambda _: self.answers.put(rid)

    def beside(self, future: Future[Any], job: Callable[[], None]) -> None:
        """Run ``job`` on the pull's thread during :meth:`collect` once ``future`` is done, so its
        write happens while the details travel (not after the last answer). A job still waiting
        when collect ends is the caller's to run."""
        with self.lock:
            self.beside_jobs.append((future, job))
        future.add_done_callback(lambda _: self.answers.put(_BESIDE))

    def _take(self, rid: int) -> None:
        if rid == _BESIDE:
            if self.ahead is None:  # else after it: a rollback would take the job's rows too
                self._run_beside()
            return
        with self.lock:
            future = self.outstanding.pop(rid, None)
        if future is not None:
            self.pending.append((rid, future))

    def _run_beside(self) -> None:
        """Run the jobs beside the details whose futures are done."""
        with self.lock:
            ready = [job for job in self.beside_jobs if job[0].done()]
            self.beside_jobs = [job for job in self.beside_jobs if not job[0].done()]
        for _, job in ready:
            try:
                job()
            except Exception as exc:  # raised once the details are written (see collect)
                self.beside_error = self.beside_error or exc

    def _due(self) -> bool:
        if not self.pending:  # woken for a job beside the details: nothing to write
            return False
        to_come = len(self.wanted) - self.settled - len(self.pending)
        if to_come == 0 or len(self.pending) >= self.batch_size:
            return True
        if to_come <= self.manager.max_concurrent and not self.last_round_written:
            self.last_round_written = True
            return True
        return False

    def collect(self, bar: Any) -> None:
        """Write every answer (see the class) until all wanted releases are settled."""
        try:
            while self.settled < len(self.wanted):
                self._take(self.answers.get())
                while True:
                    try:
                        self._take(self.answers.get_nowait())
                    except queue.Empty:
                        break
                before = self.last_round_written
                if self._due():
                    done = len(self.pending)
                    last_round = self.last_round_written and not before  # _due just said so
                    self._write_pending()
                    bar.update(done)
                    self._feed()
                    if last_round:
                        self._delete_ahead()
                    elif self.ahead is None:
                        self._run_beside()  # any that waited for the delete-ahead transaction
        except BaseException:
            self._abandon_ahead()
            raise
        if self.beside_error is not None:
            raise self.beside_error

    def _delete_ahead(self) -> None:
        """Delete the rows of every release still to come (all on their way) now; see the class.

        Only on DuckDB (sqlite would lock out other writers for the round). A job beside the
        details that becomes ready meanwhile waits until the transaction ends (a rollback would
        take its rows too).
        """
        if self.writer.db.engine != "duckdb":
            return
        with self.lock:
            coming = list(self.outstanding)
            ready = self.fed == len(self.wanted)
        if not ready or not coming or len(coming) != len(self.wanted) - self.settled:
            return
        ids = frozenset(coming)
        self.ahead = (self.writer.delete_ahead(coming), ids)

    def _abandon_ahead(self) -> None:
        """Roll the delete-ahead transaction back, if one is open (the deleted rows are back)."""
        if self.ahead is not None:
            try:
                _abandon(self.ahead[0])
            finally:
                self.ahead = None
                self.writer.names.discard()

    def _write_ahead(self) -> bool:
        """Write ``pending`` into the delete-ahead transaction and commit it; False (rolled back,
        nothing written) unless every one of its releases answered and loads.

        The transaction stays in :attr:`ahead` until it is committed or rolled back, so an
        interruption anywhere here still finds it (see :meth:`_abandon_ahead`).
        """
        assert self.ahead is not None
        stack, deleted = self.ahead
        try:
            bodies: list[tuple[int, Mapping[str, Any]]] = []
            for rid, future in self.pending:
                result = future.result()
                if not result.success or result.result is None:
                    break
                bodies.append((rid, _as_asked(rid, result.result)))
            fits = len(bodies) == len(self.pending) and {rid for rid, _ in bodies} == deleted
            if fits:
                try:
                    self.writer.write_ahead(bodies)
                except CollectionDataError:
                    fits = False
            if not fits:
                self._abandon_ahead()
                return False
            if self.closing is not None:
                self.closing()
        except BaseException:
            self._abandon_ahead()
            raise
        try:
            stack.close()  # COMMIT (a refusal propagates: the pull stops)
        except BaseException:
            self.writer.names.discard()
            raise
        finally:
            self.ahead = None
        self.writer.names.commit()
        count = len(self.pending)
        self.pending = []
        self.fetched += count
        with self.lock:
            self.settled += count
        self.manager.reset()
        return True

    def salvage(self) -> None:
        """After an interruption: write every answer that has arrived, collected or not."""
        self._abandon_ahead()
        with self.lock:
            arrived = [rid for rid, f in self.outstanding.items() if f.done() and not f.cancelled()]
        for rid in arrived:
            self._take(rid)
        self._write_pending()

    def _write_pending(self) -> None:
        """Record the failures among ``pending``, then write its bodies in one transaction."""
        if self.ahead is not None and self._write_ahead():
            return
        count = len(self.pending)
        bodies: list[tuple[int, Mapping[str, Any]]] = []
        keep: list[tuple[int, Future[TaskResult[Mapping[str, Any]]]]] = []
        for rid, future in self.pending:
            result = future.result()
            if result.success and result.result is not None:
                bodies.append((rid, _as_asked(rid, result.result)))
                keep.append((rid, future))
            elif not isinstance(result.error, CancelledError):  # dropped by close(), not failed
                permanent = isinstance(result.error, DiscogsNotFoundError)
                self.writer.failure(rid, _describe(result.error), permanent)
                self.failed += 1
                self.permanent += int(permanent)
        self.pending = keep  # failures are recorded; until the write succeeds the bodies stay here
        written, bad = self.writer.releases(bodies)
        self.pending = []
        self.fetched += written
        self.failed += bad
        with self.lock:
            self.settled += count
        self.manager.reset()  # written: the manager need not keep those bodies alive any longer


@dataclass(frozen=True)
class _CatalogueSource:
    """Details from the attached catalogue (dated ``as_of``); ``only``: never ask the API."""

    as_of: datetime
    only: bool


def _catalogue_source(
    db: Database, details_from: str, data_dir: Path | None, max_age: float | None
) -> tuple[_CatalogueSource | None, bool]:
    """What ``details_from`` means for ``db``: the catalogue source to use (None: the API only),
    and whether the catalogue was attached here (to detach after the pull)."""
    from toolkit.catalogue.details import catalogue_as_of
    from toolkit.catalogue.store import attach, catalogue_dir, current_generation

    if details_from == "api":
        return None, False
    attached = False
    as_of = catalogue_as_of(db)  # a catalogue the caller attached (toolkit.dbopen.connect does)
    if (
        as_of is None
        and data_dir is not None
        and current_generation(catalogue_dir(data_dir)) is not None
    ):
        attach(db, data_dir)
        attached = True
        as_of = catalogue_as_of(db)
    if as_of is None:
        if attached:
            _detach_catalogue(db)
        if details_from == "catalogue":
            where = "attached" if data_dir is None else f"in {catalogue_dir(data_dir)}"
            raise PullError(
                f"details from the catalogue, but no catalogue is loaded ({where}); "
                "run `discogs-toolkit catalogue load` first"
            )
        return None, False
    if (
        details_from == "auto"
        and max_age is not None
        and as_of < _now() - timedelta(seconds=max_age)
    ):
        source = None  # older than max_age allows: the API answers for every release
    else:
        source = _CatalogueSource(as_of, only=details_from == "catalogue")
    return source, attached


def _detach_catalogue(db: Database) -> None:
    """Detach the catalogue a pull attached for itself."""
    from toolkit.catalogue.store import detach

    detach(db)


def _attempt_timeout(settings: Settings, client: DiscogsClient) -> float:
    """``CONCURRENCY_TIMEOUT`` for one attempt, plus one rate window: before its request an attempt
    may wait that long for a slot of the client's limiter, which is not the request being slow."""
    return settings.concurrency_timeout + float(client.limiter.window)


#: DuckDB settings for a database the pull opens itself (a path, as the CLI gives): a bounded
#: buffer pool (evicted blocks are on disk anyway; a pull's transactions are a page or a batch of
#: releases), one thread (each brings its own allocator arenas) and no insertion order to keep.
#: Peak RSS of a 20,000-item pull: 423 MiB with DuckDB's defaults, 314 MiB with these.
DUCKDB_PULL_SETTINGS: tuple[tuple[str, str], ...] = (
    ("memory_limit", "'64MB'"),
    ("threads", "1"),
    ("preserve_insertion_order", "false"),
)


def _open(target: str | Path) -> Database:
    database = Database.connect(target)
    if database.engine == "duckdb":
        try:
            for name, value in DUCKDB_PULL_SETTINGS:
                database.execute(f"SET {name} = {value}")
        except BaseException:
            database.close()
            raise
    return database


@contextmanager
def _one_thread(db: Database) -> Iterator[None]:
    """DuckDB runs the pull's statements on one thread, as DUCKDB_PULL_SETTINGS does for a
    database the pull opens itself; a caller's setting is restored afterwards.

    A pull writes small transactions (a page, a batch of releases), which a second thread only
    slows down: the last write of a 100-release pull took 34 ms on two threads, 29 on one.
    DuckDB's setting belongs to the database, so other connections to it share the one thread
    meanwhile, and of two pulls into one database at once the later one restores one thread.
    """
    threads = 1
    if db.engine == "duckdb":
        try:
            threads = int(db.scalar("SELECT current_setting('threads')"))
            if threads != 1:
                db.execute("SET threads = 1")
        except DatabaseError:  # e.g. lock_configuration: the pull runs with the caller's setting
            threads = 1
    try:
        yield
    finally:
        if threads != 1:
            with suppress(DatabaseError):  # a closed or failed connection: nothing to restore
                db.execute(f"SET threads = {threads}")


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
    settings: Settings | None = None,
    extras: Extras | None = None,
    details_from: str = "auto",
) -> PullReport:
    """Pull ``username``'s collection (folder ``folder_id``) into ``db`` and report what it took.

    Page 1 gives the page count; the other pages are fetched from the network (never a cache) in
    BatchProcessor batches of one page, ``concurrency`` batches at once, and each page's items
    are written as soon as it arrives. With ``details`` every release not yet stored (or stored
    more than ``max_age`` seconds ago; ``None`` = never stale) is fetched through a
    ConcurrencyManager (``concurrency`` at once, ``retries`` more attempts after the client's own,
    each attempt bounded by ``concurrency_timeout`` plus one rate window), rated items first,
    starting as soon as the last page has arrived, and written as the answers come, in
    transactions of at most ``batch_size``. ``settings`` (default ``Settings()``; the CLI passes
    the environment's) gives the defaults of ``concurrency`` and ``retries``, the attempt timeout
    and, without ``client``, the client. Items gone from the collection are removed only after
    every page was listed and loaded.

    Single failures are recorded and never abort the pull: a release that keeps failing or whose
    answer is malformed goes into ``pull_failures`` (a 404 as permanent), a malformed collection
    item into the report's ``malformed_items``. Errors before any item is listed (auth, unknown
    user, server down) are raised, and so is any database error (disk full, file locked, schema
    damaged): :class:`~toolkit.errors.DatabaseError` stops the pull, and what earlier
    transactions stored stays.

    Interrupted (Ctrl-C) it writes every release already received before re-raising; after a
    ``kill -9`` the next pull re-lists the pages but refetches no release stored or cached.

    Every pull is recorded (``pulls``, ``item_events``; see :mod:`toolkit.history`) and updates
    the custom fields; ``extras`` adds the collection value, the wantlist and marketplace prices.
    ``details_from``: ``"auto"`` copies every wanted release the local catalogue holds from it
    (the one attached to ``db``, else that of ``settings.data_dir``) and asks the API for the
    rest; ``"catalogue"`` asks the API for none (releases it lacks are counted in
    ``not_in_catalogue``; no catalogue loaded raises :class:`PullError`); ``"api"`` asks
    the API for every release not stored with details from the API (so it replaces catalogue
    rows). Without a catalogue ``"auto"`` is ``"api"``.
    """
    from toolkit.catalogue.details import DETAILS_FROM

    if details_from not in DETAILS_FROM:
        choices = ", ".join(DETAILS_FROM)
        raise PullError(f"details_from must be one of {choices}, got {details_from!r}")
    config = settings if settings is not None else Settings()
    workers = concurrency if concurrency is not None else config.concurrency_max_tasks
    if workers < 1:
        raise PullError(f"concurrency must be >= 1, got {workers}")
    attempts = retries if retries is not None else config.concurrency_retries
    if attempts < 0:
        raise PullError(f"retries must be >= 0, got {attempts}")
    own_db = not isinstance(db, Database)
    database = db if isinstance(db, Database) else _open(db)
    own_client = client is None
    attached = False
    try:
        # The catalogue beside the data, as toolkit.dbopen.connect finds it: the settings' data
        # dir when given, else the database file's folder; a Database brings its own (or none).
        if settings is not None:
            data_dir: Path | None = settings.data_dir
        else:
            data_dir = None if isinstance(db, Database) else Path(db).expanduser().parent
        source, attached = _catalogue_source(
            database, details_from if details else "api", data_dir, max_age
        )
        if client is None:
            from toolkit.discogs.client import DiscogsClient

            client = DiscogsClient.from_settings(
                config, memory_max_entries=PULL_CLIENT_MEMORY_ENTRIES
            )
        # A pull is background work: it leaves the shared budget's reserve to interactive calls.
        with background(client), _one_thread(database):
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
                timeout=_attempt_timeout(config, client),
                extras=extras if extras is not None else Extras(),
                details_from=details_from,
                catalogue=source,
            )
    finally:
        if attached and not own_db:
            _detach_catalogue(database)
        if own_db:
            database.close()
        if own_client and client is not None:
            client.close()


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
    timeout: float,
    extras: Extras,
    details_from: str = "api",
    catalogue: _CatalogueSource | None = None,
) -> PullReport:
    started = time.monotonic()
    started_at = _now()
    stats_before = _stats_dict(client)

    def get_page(page: int) -> Mapping[str, Any]:
        return client.get_collection_page(
            username, folder_id=folder_id, page=page, per_page=per_page, refresh=True
        )

    # 1. Page 1 tells how many pages there are; errors here mean the pull cannot run at all. The
    # database is readied while it is on its way. A database with dropped tables is refused first,
    # before any request is sent.
    check_schema(db, view=False)
    with ThreadPoolExecutor(1, thread_name_prefix="pull-page-1") as one:
        asked = one.submit(get_page, 1)
        create_schema(db)
        before = current_items(db, username, folder_id)
        fresh_since = None if max_age is None else _now() - timedelta(seconds=max_age)
        known = known_release_ids(db, fresh_since=fresh_since) | permanent_failure_ids(db)
        if details_from == "api":  # the API's answer replaces what came from the catalogue
            from toolkit.catalogue.details import catalogue_sourced_ids

            known -= catalogue_sourced_ids(db)
        # A release that failed before may sit in the HTTP cache in a form the loader rejected:
        # ask the server again rather than re-read the bad copy until it expires.
        retrying = failure_ids(db, permanent=False)
        try:
            first = asked.result()
        except DiscogsNotFoundError as exc:
            what = f"user {username!r}" if folder_id == 0 else f"folder {folder_id} of {username!r}"
            raise DiscogsNotFoundError(
                f"Discogs has no {what} (HTTP 404). {exc}", url=exc.url, status=exc.status
            ) from None
    pages = max(1, int(first["pagination"]["pages"]))
    writer = _Writer(db, username, retrying)

    # No manager thread starts before the first task, so a pull without details costs nothing here.
    manager = ConcurrencyManager(
        max_concurrent=workers, retries=retries, timeout=timeout, retry_on=_retryable
    )
    fetcher = _Details(client, writer, manager, known, retrying, batch_size, catalogue)
    listing = _Listing(pages, fetcher.start if details else None)

    def land(page: int, items: Sequence[Mapping[str, Any]], *, defer: bool = False) -> None:
        """Settle the page (the last one starts the details), then queue its items for writing."""
        listing.settle(items)
        writer.items(page, items, defer=defer)

    clean = False
    failure: BaseException | None = None
    record: PullRecord | None = None
    extras_out: ExtrasReport | None = None  # set once the fields answer is stored
    #: What the pull's record was completed with in the last write (requests, 429s, complete).
    finished: tuple[int, int, bool] | None = None
    try:
        with _progress(pages, "pages", "page", progress) as bar:
            bar = track(client, bar, f"pull {username}: pages", pages)

            def fetch_pages(batch: list[int]) -> list[bool]:
                """One BatchProcessor batch: fetch and write each page in turn; True = listed."""
                listed = []
                for page in batch:
                    writer.check()  # the database refused a write: list no more pages
                    try:
                        data = get_page(page)
                    except DiscogsError:  # a page that failed after the client's retries
                        listing.settle(None)
                        listed.append(False)
                    else:
                        land(page, data["releases"])
                        listed.append(True)
                    bar.update(1)
                return listed

            # Page 1 waits in the queue while the other pages are requested: it is written with
            # the first of them (or by the flush below when it is the only page).
            land(1, first["releases"], defer=pages > 1)
            bar.update(1)
            listed = [True]
            rest = list(range(2, pages + 1))
            if rest:
                size = PAGES_PER_BATCH
                try:
                    listed += BatchProcessor.process_parallel_batches(
                        rest, batch_size=size, concurrency=workers, handler=fetch_pages
                    )
                except BatchError as exc:  # a database error, or a bug: surface it
                    errors = [exc.failed[index] for index in sorted(exc.failed)]
                    error = next((e for e in errors if isinstance(e, DatabaseError)), errors[0])
                    raise error from None
            writer.flush()
        pages_failed = listed.count(False)
        seen, malformed = writer.seen, writer.malformed

        # 3. Sync: only a complete listing, every item of it loaded, may remove items. In the same
        # transaction, the history: the pulls row and the items this listing added and removed,
        # recorded now, while the details travel (finish_pull completes the row at the end, or
        # after an interruption), so no removal is ever without its event.
        removed = 0
        listing_complete = pages_failed == 0 and not malformed
        with db.transaction():
            if listing_complete:
                removed = remove_missing_items(db, username, folder_id, seen)
            record = record_pull(
                db,
                username=username,
                folder_id=folder_id,
                started_at=started_at,
                before=before,
                listed=seen,
                listing_complete=listing_complete,
                requests=0,
                rate_limited=0,
                complete=False,
            )

        # Custom field names (when an item uses one not stored yet) are asked while the details
        # travel, not after them: one more request, but never one more round trip.
        fields_answer: Future[dict[str, Any]] | None = None
        if extras.fields and unnamed_fields(db, username):
            one = ThreadPoolExecutor(1, thread_name_prefix="pull-fields")
            fields_answer = one.submit(client.get_collection_fields, username)
            one.shutdown(wait=False)  # its one task still runs; the thread ends with it
            if details:  # stored as soon as it arrives, while the details travel
                fields_future = fields_answer

                def fields_arrived() -> None:
                    nonlocal extras_out
                    extras_out = ExtrasReport()
                    store_fields(client, db, username, extras_out, fields_future)

                fetcher.beside(fields_future, fields_arrived)

        def figures(spent: Mapping[str, float]) -> tuple[int, int, bool]:
            """What the pull's record is completed with: requests, 429s, whether it got all."""
            network, throttled = int(spent.get("network_requests", 0)), spent.get("rate_limited", 0)
            return network, int(throttled), listing_complete and fetcher.failed == 0

        def finish_early() -> None:
            """Complete the pull's record in the last write's transaction (a commit less after
            the last answer) when nothing after the details can send a request or fail."""
            nonlocal finished
            if extras.value or extras.market or extras.wants:
                return
            if fields_answer is not None and extras_out is None:  # still to be stored
                return
            if fetcher.beside_error is not None:  # the pull will raise it: not complete
                return
            finished = figures(_spent(client, stats_before))
            requests, rate_limited, complete = finished
            assert record is not None
            finish_pull(
                db, record.pull_id, requests=requests, rate_limited=rate_limited, complete=complete
            )

        fetcher.closing = finish_early

        # 2. Details: requested since the last page arrived; written here as they come.
        if details:
            with _progress(len(fetcher.wanted), "releases", "release", progress) as bar:
                fetcher.collect(
                    track(client, bar, f"pull {username}: releases", len(fetcher.wanted))
                )
        clean = True
    except BaseException as exc:
        failure = exc
        raise
    finally:
        # On Ctrl-C or a crash keep every answer that arrived, and drop what has not started. A
        # database error is not retried: the database just refused a write. Not waited for: after
        # a clean run every task is done and its idle workers end on their own (joining ten
        # threads took ~1 ms after the last write).
        manager.close(wait=False, cancel_pending=not clean)
        if not clean and failure is not None and not _database_failed(failure, writer):
            # Keep every page and answer that arrived, then let the history say how far the pull
            # got (the items it added stay added; a listing cut short removes nothing). A step
            # that fails is noted on the original error, which is what propagates.
            def record_stop() -> None:
                stopped = record or record_pull(
                    db, username=username, folder_id=folder_id, started_at=started_at,
                    before=before, listed=writer.seen, listing_complete=False, requests=0,
                    rate_limited=0, complete=False,
                )  # fmt: skip
                spent = _spent(client, stats_before)
                finish_pull(
                    db, stopped.pull_id, requests=int(spent.get("network_requests", 0)),
                    rate_limited=int(spent.get("rate_limited", 0)), complete=False,
                )  # fmt: skip

            steps: list[tuple[str, Callable[[], object]]] = [
                ("writing the pages listed", lambda: writer.flush(timeout=CLEANUP_WAIT)),
                ("writing the answers received", fetcher.salvage),
                ("recording the pull's history", record_stop),
            ]
            for what, step in steps:
                if writer.failed is None:  # the database refused a write: write nothing more
                    _after(failure, what, step)
        if failure is not None and writer.failed is not None and failure is not writer.failed:
            failure.add_note(f"the database had refused a write: {writer.failed}")

    # The extras belong to this pull too.
    done = pull_extras(
        client,
        db,
        username,
        record.pull_id,
        extras,
        workers=workers,
        known_releases=known,
        fields_answer=fields_answer,
        # Wanted releases' details come the way the collection's did (--details-from).
        replace_catalogue=details_from == "api",
        from_catalogue=None
        if catalogue is None
        else lambda ids: writer.copy_catalogue(ids, catalogue.as_of),
        api_details=catalogue is None or not catalogue.only,
        out=extras_out,
    )

    delta = _spent(client, stats_before)
    final = figures(delta)
    network = final[0]
    if final != finished:  # not completed with the last write, or the extras changed it
        requests, rate_limited, complete = final
        finish_pull(
            db, record.pull_id, requests=requests, rate_limited=rate_limited, complete=complete
        )
    limiter = client.limiter
    limit, window = int(limiter.limit), float(limiter.window)
    timeline = tuple(e for e in client.timeline() if e.started >= started)
    return PullReport(
        username=username,
        folder_id=folder_id,
        items=len(seen),
        pages=pages,
        pages_failed=pages_failed,
        releases_fetched=fetcher.fetched,
        releases_skipped=fetcher.skipped,
        items_removed=removed,
        network_requests=network,
        cache_hits=int(delta.get("cache_hits", 0) + delta.get("memory_hits", 0)),
        retries=int(delta.get("retries", 0)),
        rate_limited=int(delta.get("rate_limited", 0)),
        failures=fetcher.failed,
        permanent_failures=fetcher.permanent,
        elapsed_seconds=time.monotonic() - started,
        rate_bound_seconds=rate_bound_seconds(network, limit, window),
        rate_limit=limit,
        rate_window=window,
        limiter_wait_seconds=delta.get("limiter_wait_seconds", 0.0),
        details_from=details_from,
        from_catalogue=fetcher.from_catalogue,
        from_api=fetcher.fetched,
        not_in_catalogue=fetcher.not_in_catalogue,
        malformed_items=tuple(malformed),
        pull_id=record.pull_id,
        items_added=record.added,
        wants=done.wants,
        want_releases_fetched=done.want_releases_fetched,
        want_releases_from_catalogue=done.want_releases_from_catalogue,
        market_requests=done.market_requests,
        notices=tuple(done.notices),
        timeline=timeline,
    )
