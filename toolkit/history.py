"""The collection over time: what each pull saw and changed, the collection's value, marketplace
prices, the wantlist and the custom fields.

Every pull records a ``pulls`` row and its ``item_events``; ``pull --value``, ``--market`` and
``--wants`` add ``collection_value``, ``market_stats`` and ``wants`` (see :func:`pull_extras`). All
of it stays in the user's own database: nothing here is sent anywhere but to Discogs as requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from toolkit.collection import clear_failures, failure_ids, load_collection, record_failure
from toolkit.collection.loading import insert_rows
from toolkit.collection.parsing import (
    BadValue,
    _opt_float,
    _opt_int,
    _text,
    as_mapping,
    data_error,
    parse_id,
)
from toolkit.db import Database
from toolkit.errors import (
    CollectionDataError,
    DatabaseError,
    DiscogsAuthError,
    DiscogsError,
    DiscogsNotFoundError,
    MoneyFormatError,
    PullError,
)
from toolkit.money import MARKET_CURRENCIES, parse_money

if TYPE_CHECKING:
    from toolkit.discogs.client import DiscogsClient

__all__ = [
    "MARKET_CURRENCIES",
    "VALUE_NEEDS_OWNER",
    "Extras",
    "ExtrasReport",
    "PullRecord",
    "check_currency",
    "current_items",
    "finish_pull",
    "history_text",
    "market_targets",
    "pull_extras",
    "record_pull",
    "store_fields",
    "unnamed_fields",
]

#: The one line a pull prints when ``--value`` cannot be had (no token, or not the owner's).
VALUE_NEEDS_OWNER = "collection value needs the collection owner's token (DISCOGS_TOKEN); skipped"
#: Market rows written per transaction (an interrupted run keeps what it wrote).
_MARKET_BATCH = 50


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _stamp(db: Database, moment: datetime) -> Any:
    """Naive UTC as each engine stores a TIMESTAMP column (see toolkit.collection.loading)."""
    return moment if db.engine == "duckdb" else moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def check_currency(currency: str | None) -> str | None:
    """``currency`` upper-cased when Discogs accepts it as ``curr_abbr``, else :class:`PullError`."""
    if currency is None:
        return None
    code = currency.strip().upper()
    if code not in MARKET_CURRENCIES:
        raise PullError(
            f"--currency {currency!r} is not one Discogs accepts: {' '.join(MARKET_CURRENCIES)}"
        )
    return code


# --------------------------------------------------------------------------- pulls and events


@dataclass(frozen=True)
class PullRecord:
    """The ``pulls`` row a pull wrote: its id and how many items it saw added and removed."""

    pull_id: int
    added: int
    removed: int


def current_items(db: Database, username: str, folder_id: int) -> dict[int, int]:
    """``instance_id -> release_id`` of the user's stored items (``folder_id`` 0: every folder), as
    they were before a pull; empty when no pull of this user was recorded (the first pull records
    every item as added)."""
    if not db.scalar("SELECT count(*) FROM pulls WHERE username = ?", [username]):
        return {}
    sql = "SELECT instance_id, release_id FROM collection_items WHERE username = ?"
    params: list[Any] = [username]
    if folder_id:
        sql += " AND folder_id = ?"
        params.append(folder_id)
    return {int(i): int(r) for i, r in db.fetchall(sql, params)}


def record_pull(
    db: Database,
    *,
    username: str,
    folder_id: int,
    started_at: datetime,
    before: Mapping[int, int],
    listed: Iterable[int],
    listing_complete: bool,
    requests: int,
    rate_limited: int,
    complete: bool,
    finished_at: datetime | None = None,
) -> PullRecord:
    """Write the ``pulls`` row and the ``item_events`` of one pull, in one transaction.

    ``before`` is :func:`current_items` from before the pull, ``listed`` the instance ids it
    listed. Items listed but not there before are ``added``; with ``listing_complete`` (every page
    listed and loaded) items there before but not listed are ``removed``, otherwise none are.
    """
    finished = finished_at if finished_at is not None else _now()
    seen = set(listed)
    added = sorted(seen - set(before))
    removed = sorted(set(before) - seen) if listing_complete else []
    with db.transaction():
        # Releases of the added items, from the table the pull just wrote.
        releases: dict[int, int] = {}
        if added:
            rows = db.fetchall(
                "SELECT instance_id, release_id FROM collection_items WHERE username = ?",
                [username],
            )
            releases = {int(i): int(r) for i, r in rows}
        pull_id = int(db.scalar("SELECT COALESCE(max(pull_id), 0) + 1 FROM pulls") or 1)
        db.execute(
            "INSERT INTO pulls (pull_id, username, folder_id, started_at, finished_at, items, "
            "added, removed, requests, rate_limited, complete) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                pull_id,
                username,
                folder_id,
                _stamp(db, started_at),
                _stamp(db, finished),
                len(seen),
                len(added),
                len(removed),
                requests,
                rate_limited,
                complete,
            ],
        )
        at = _stamp(db, finished)
        events = [(pull_id, i, releases[i], "added", at) for i in added if i in releases]
        events += [(pull_id, i, before[i], "removed", at) for i in removed]
        insert_rows(db, "item_events", events)
    return PullRecord(pull_id, len(added), len(removed))


def finish_pull(
    db: Database,
    pull_id: int,
    *,
    requests: int,
    rate_limited: int,
    complete: bool | None = None,
    finished_at: datetime | None = None,
) -> None:
    """Complete a ``pulls`` row once the pull's details and extras are done (or it was stopped):
    its end, the requests it sent and, unless None, whether it got everything."""
    finished = finished_at if finished_at is not None else _now()
    sets = "finished_at = ?, requests = ?, rate_limited = ?"
    params: list[Any] = [_stamp(db, finished), requests, rate_limited]
    if complete is not None:
        sets += ", complete = ?"
        params.append(complete)
    with db.transaction():
        db.execute(f"UPDATE pulls SET {sets} WHERE pull_id = ?", [*params, pull_id])


def history_text(db: Database, *, limit: int = 20) -> str:
    """The last ``limit`` pulls, one line each, with the items each added and removed."""
    pulls = db.fetchall(
        "SELECT pull_id, username, folder_id, started_at, finished_at, items, added, removed, "
        "requests, rate_limited, complete FROM pulls ORDER BY pull_id DESC LIMIT ?",
        [limit],
    )
    if not pulls:
        return "no pulls recorded yet"
    lines: list[str] = []
    for (
        pid,
        user,
        folder,
        started,
        _,
        items,
        added,
        removed,
        requests,
        limited,
        complete,
    ) in reversed(pulls):
        when = str(started)[:19]
        state = "complete" if complete else "incomplete"
        where = user if not folder else f"{user} folder {folder}"
        lines.append(
            f"pull {pid}  {when}  {where}: {items} items, +{added} -{removed}, "
            f"{requests} requests ({limited} throttled), {state}"
        )
        value = db.fetchone(
            "SELECT currency, minimum, median, maximum FROM collection_value WHERE pull_id = ?",
            [pid],
        )
        if value is not None:
            cur, low, med, high = value
            lines.append(f"    value {cur} {low:,.2f} / {med:,.2f} / {high:,.2f} (min/median/max)")
        events = db.fetchall(
            "SELECT e.event, e.instance_id, e.release_id, r.title FROM item_events e "
            "LEFT JOIN releases r ON r.release_id = e.release_id "
            "WHERE e.pull_id = ? ORDER BY e.event, e.instance_id",
            [pid],
        )
        shown = events if len(events) <= 10 else events[:10]
        for event, instance, release, title in shown:
            sign = "+" if event == "added" else "-"
            lines.append(f"    {sign} {release} {title or '(title not fetched)'} [{instance}]")
        if len(events) > len(shown):
            lines.append(f"    ... and {len(events) - len(shown)} more")
    return "\n".join(lines)


# ------------------------------------------------------------------ value, market, wants, fields


def record_value(db: Database, pull_id: int, body: Mapping[str, Any], at: datetime) -> str:
    """Parse ``/collection/value`` and write its ``collection_value`` row; returns its currency.

    Raises :class:`MoneyFormatError` (nothing written) for an amount it cannot read or amounts in
    different currencies.
    """
    parsed = {
        name: parse_money(str(body.get(name, ""))) for name in ("minimum", "median", "maximum")
    }
    currencies = {code for code, _ in parsed.values()}
    if len(currencies) != 1:
        raise MoneyFormatError(f"collection value in several currencies: {dict(body)!r}")
    (currency,) = currencies
    with db.transaction():
        db.execute(
            'INSERT INTO collection_value (pull_id, "at", currency, minimum, median, maximum) '
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pull_id) DO UPDATE SET "
            '"at" = excluded."at", currency = excluded.currency, minimum = excluded.minimum, '
            "median = excluded.median, maximum = excluded.maximum",
            [pull_id, _stamp(db, at), currency, *(value for _, value in parsed.values())],
        )
    return currency


def market_targets(db: Database, username: str, limit: int | None = None) -> list[int]:
    """The user's releases for ``--market``: never fetched first, then the longest ago, at most
    ``limit`` of them (so repeated capped runs cover the whole collection)."""
    sql = (
        'SELECT ci.release_id, max(m."at") AS last FROM collection_items ci '
        "LEFT JOIN market_stats m ON m.release_id = ci.release_id "
        "WHERE ci.username = ? GROUP BY ci.release_id "
        'ORDER BY (max(m."at") IS NOT NULL), max(m."at"), ci.release_id'
    )
    params: list[Any] = [username]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [int(rid) for rid, _ in db.fetchall(sql, params)]


def _market_row(
    release_id: int, body: Mapping[str, Any], at: Any, asked: str | None
) -> tuple[Any, ...]:
    where = f"marketplace stats of release {release_id}"
    body = as_mapping(body, where)
    try:
        return _market_values(release_id, body, at, asked)
    except BadValue as exc:
        raise data_error(f"{where}.{exc.field}", exc.message) from None


def _market_values(
    release_id: int, body: Mapping[str, Any], at: Any, asked: str | None
) -> tuple[Any, ...]:
    price = body.get("lowest_price")
    currency, value = asked, None
    if isinstance(price, Mapping):
        currency = _text(price.get("currency")) or asked
        value = _opt_float(price.get("value"), "lowest_price.value")
    elif price is not None:
        value = _opt_float(price, "lowest_price")
    blocked = body.get("blocked_from_sale")
    return (
        release_id,
        at,
        currency,
        value,
        _opt_int(body.get("num_for_sale"), "num_for_sale"),
        None if blocked is None else bool(blocked),
    )


def _write_market(db: Database, rows: Sequence[tuple[Any, ...]]) -> None:
    if rows:
        with db.transaction():
            insert_rows(db, "market_stats", rows)


def _want_rows(username: str, wants: Iterable[Any]) -> list[tuple[Any, ...]]:
    rows: dict[int, tuple[Any, ...]] = {}
    for index, want in enumerate(wants):
        want = as_mapping(want, f"wants[{index}]")
        basic = as_mapping(want.get("basic_information"), f"wants[{index}].basic_information")
        rid = parse_id(want.get("id", basic.get("id")), f"wants[{index}].id")
        try:
            rating = _opt_int(want.get("rating"), "rating")
        except BadValue as exc:
            raise data_error(f"wants[{index}].{exc.field} (release {rid})", exc.message) from None
        rows[rid] = (username, rid, _text(want.get("date_added")), rating, _text(want.get("notes")))
    return list(rows.values())


def sync_wants(db: Database, username: str, wants: Iterable[Any]) -> int:
    """Replace ``username``'s ``wants`` with these entries (a want removed on Discogs goes)."""
    rows = _want_rows(username, wants)
    with db.transaction():
        db.execute("DELETE FROM wants WHERE username = ?", [username])
        insert_rows(db, "wants", rows)
    return len(rows)


def sync_fields(db: Database, username: str, fields: Iterable[Any]) -> int:
    """Replace ``username``'s ``collection_fields`` with the ``/collection/fields`` list."""
    rows = []
    for index, item in enumerate(fields):
        item = as_mapping(item, f"fields[{index}]")
        options = item.get("options")
        public = item.get("public")
        try:
            position = _opt_int(item.get("position"), "position")
        except BadValue as exc:
            raise data_error(f"fields[{index}].{exc.field}", exc.message) from None
        rows.append(
            (
                username,
                parse_id(item.get("id"), f"fields[{index}].id"),
                _text(item.get("name")),
                _text(item.get("type")),
                None if options is None else json.dumps(options, ensure_ascii=False),
                position,
                None if public is None else bool(public),
            )
        )
    with db.transaction():
        db.execute("DELETE FROM collection_fields WHERE username = ?", [username])
        insert_rows(db, "collection_fields", rows)
    return len(rows)


@dataclass(frozen=True)
class Extras:
    """What a pull fetches besides the collection: ``value``, ``market`` (at most ``market_max``
    releases, prices in ``currency``) and ``wants``. ``fields``: the custom fields' names, asked
    whenever an item uses a field whose name is not stored yet."""

    value: bool = False
    market: bool = False
    market_max: int | None = None
    currency: str | None = None
    wants: bool = False
    fields: bool = True


@dataclass
class ExtrasReport:
    """What :func:`pull_extras` did; ``notices`` are one-line messages for the user."""

    value_currency: str | None = None
    market_requests: int = 0
    market_rows: int = 0
    market_failed: int = 0
    wants: int | None = None
    want_releases_fetched: int = 0
    #: Wanted releases whose details came from the attached catalogue instead.
    want_releases_from_catalogue: int = 0
    fields: int | None = None
    notices: list[str] = field(default_factory=list)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc) or 'no details'}"[:300]


def pull_extras(
    client: DiscogsClient,
    db: Database,
    username: str,
    pull_id: int,
    extras: Extras,
    *,
    workers: int = 4,
    known_releases: set[int] | None = None,
    fields_answer: Future[dict[str, Any]] | None = None,
    from_catalogue: Callable[[Sequence[int]], set[int]] | None = None,
    api_details: bool = True,
    replace_catalogue: bool = False,
    out: ExtrasReport | None = None,
) -> ExtrasReport:
    """Fetch and store what ``extras`` asks for, after the collection itself was pulled.

    Value, wants and prices are asked from the server (never a cached answer: each pull records
    the day's figures); fields go through the caches. A refused value (no token, not the owner's)
    or an unreadable one becomes a notice, never an error; a failed marketplace request is
    counted and skipped; database errors propagate (they stop the pull, as for the collection).
    ``pull_id`` is the pull's ``pulls`` row (the ``collection_value`` row belongs to it).
    ``fields_answer`` is the ``/collection/fields`` answer when the pull already asked for it.
    ``from_catalogue`` copies wanted releases' details from the attached catalogue and returns the
    ids it held (the pull's ``--details-from``); ``api_details=False`` asks the API for none;
    ``replace_catalogue`` asks it again for wanted releases whose details came from a catalogue.
    ``out``: a report :func:`store_fields` already filled (the pull stores the fields answer
    as soon as it arrives); its fields are not asked again.
    """
    if out is None:
        out = ExtrasReport()
        if extras.fields and (fields_answer is not None or unnamed_fields(db, username)):
            store_fields(client, db, username, out, fields_answer)
    if extras.value:
        _pull_value(client, db, username, pull_id, out)
    if extras.wants:
        _pull_wants(
            client, db, username, out, workers, known_releases, from_catalogue, api_details,
            replace_catalogue,
        )  # fmt: skip
    if extras.market:
        _pull_market(client, db, username, extras, out, workers)
    return out


def store_fields(
    client: DiscogsClient,
    db: Database,
    username: str,
    out: ExtrasReport,
    fields_answer: Future[dict[str, Any]] | None = None,
) -> None:
    """Store the custom field names: ``fields_answer`` when the pull asked already, else ask.

    A refused or malformed answer becomes a notice in ``out``; a database error propagates.
    """
    try:
        if fields_answer is not None:
            body = fields_answer.result()
        else:
            body = client.get_collection_fields(username)
        out.fields = sync_fields(db, username, body.get("fields") or [])
    except (DiscogsError, CollectionDataError) as exc:
        if isinstance(exc, DatabaseError) and not isinstance(exc, CollectionDataError):
            raise
        out.notices.append(f"custom fields not updated: {_describe(exc)}")


def unnamed_fields(db: Database, username: str) -> bool:
    """True when the user's items use a custom field whose name is not stored: only then is
    ``/collection/fields`` asked (fields change rarely; a pull's requests are precious)."""
    return bool(
        db.scalar(
            "SELECT count(*) FROM item_fields f "
            "JOIN collection_items ci ON ci.instance_id = f.instance_id "
            "LEFT JOIN collection_fields cf "
            "ON cf.username = ci.username AND cf.field_id = f.field_id "
            "WHERE ci.username = ? AND cf.field_id IS NULL AND f.field_id > 0",
            [username],
        )
    )


def _pull_value(
    client: DiscogsClient,
    db: Database,
    username: str,
    pull_id: int,
    out: ExtrasReport,
) -> None:
    if not client.has_token:
        out.notices.append(VALUE_NEEDS_OWNER)
        return
    try:
        body = client.get_collection_value(username, refresh=True)
    except DiscogsAuthError:
        out.notices.append(VALUE_NEEDS_OWNER)
        return
    except DiscogsError as exc:
        if exc.status in (401, 403):
            out.notices.append(VALUE_NEEDS_OWNER)
        else:
            out.notices.append(f"collection value not recorded: {_describe(exc)}")
        return
    try:
        out.value_currency = record_value(db, pull_id, body, _now())
    except MoneyFormatError as exc:
        out.notices.append(f"collection value not recorded: {exc}")


def _pull_wants(
    client: DiscogsClient,
    db: Database,
    username: str,
    out: ExtrasReport,
    workers: int,
    known: set[int] | None,
    from_catalogue: Callable[[Sequence[int]], set[int]] | None = None,
    api_details: bool = True,
    replace_catalogue: bool = False,
) -> None:
    wants: list[Any] = []
    try:
        first = client.get_wants(username, 1, refresh=True)
        wants += first["wants"]
        pages = max(1, int(first["pagination"].get("pages") or 1))
        for page in range(2, pages + 1):
            wants += client.get_wants(username, page, refresh=True)["wants"]
    except DiscogsError as exc:
        # An incomplete wantlist must not delete the wants it did not list.
        out.notices.append(f"wantlist not synced: {_describe(exc)}")
        return
    try:
        out.wants = sync_wants(db, username, wants)
    except CollectionDataError as exc:
        out.notices.append(f"wantlist not synced: {exc}")
        return
    stored = known if known is not None else set()
    rows = db.fetchall(
        "SELECT w.release_id FROM wants w LEFT JOIN releases r ON r.release_id = w.release_id "
        "WHERE w.username = ? AND (r.fetched_at IS NULL"
        + (" OR r.source = 'catalogue')" if replace_catalogue else ")"),
        [username],
    )
    todo = [int(rid) for (rid,) in rows if int(rid) not in stored]
    if todo and from_catalogue is not None:
        copied = from_catalogue(todo)
        out.want_releases_from_catalogue = len(copied)
        todo = [rid for rid in todo if rid not in copied]
    if todo and api_details:
        out.want_releases_fetched = _fetch_releases(client, db, todo, workers)


def _fetch_releases(client: DiscogsClient, db: Database, ids: Sequence[int], workers: int) -> int:
    """Release details the way the collection's come (memory, HTTP cache, then the API); a
    failure goes into ``pull_failures`` as for the collection, and as there a release that
    failed before is asked from the server (not re-read from the cache) and, once written, its
    failure is cleared. Returns the releases written."""
    written = 0
    retrying = failure_ids(db, permanent=False) & set(ids)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="want-release") as pool:
        futures = {
            pool.submit(client.get_release, rid, refresh=rid in retrying): rid for rid in ids
        }
        for future in as_completed(futures):
            rid = futures[future]
            try:
                body = future.result()
            except DiscogsError as exc:
                record_failure(db, rid, _describe(exc), isinstance(exc, DiscogsNotFoundError))
                continue
            if body.get("id") != rid:
                body = {**body, "id": rid}
            try:
                with db.transaction():
                    load_collection(db, [], [body], fetched_at=_now())
                    if rid in retrying:
                        clear_failures(db, [rid])
                written += 1
            except CollectionDataError as exc:
                record_failure(db, rid, _describe(exc), False)
    return written


def _pull_market(
    client: DiscogsClient,
    db: Database,
    username: str,
    extras: Extras,
    out: ExtrasReport,
    workers: int,
) -> None:
    targets = market_targets(db, username, extras.market_max)
    currency = extras.currency if client.has_token else None
    if extras.currency and not client.has_token:
        out.notices.append("--currency needs a token: tokenless marketplace prices are in USD")
    pending: list[tuple[Any, ...]] = []
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="market") as pool:
        futures = {
            pool.submit(client.get_marketplace_stats, rid, currency=currency, refresh=True): rid
            for rid in targets
        }
        try:
            for future in as_completed(futures):
                rid = futures[future]
                out.market_requests += 1
                try:
                    row = _market_row(rid, future.result(), _stamp(db, _now()), currency)
                except (DiscogsError, CollectionDataError, ValueError):
                    out.market_failed += 1
                    continue
                pending.append(row)
                if len(pending) >= _MARKET_BATCH:
                    _write_market(db, pending)
                    out.market_rows += len(pending)
                    pending = []
        finally:
            for future in futures:
                future.cancel()
            _write_market(db, pending)
            out.market_rows += len(pending)
    if out.market_failed:
        out.notices.append(f"marketplace stats: {out.market_failed} requests failed (skipped)")
