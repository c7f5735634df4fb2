"""The ``discogs-toolkit`` command line: one sub-command per job, exit 0 / 1 (explained) / 2 (usage)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack, closing, suppress
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit import __version__
from toolkit.config import Settings
from toolkit.errors import PullError, ToolkitError

if TYPE_CHECKING:
    from toolkit.db import Database

__all__ = ["build_parser", "main"]

_DEBUG_HELP = "show tracebacks on errors"
#: The token ``pull --simulator --value`` sends to the built-in simulator, which takes any token
#: as the collection owner's: it unlocks the owner-only value there and nowhere else.
SIMULATOR_OWNER_TOKEN = "builtin-simulator-owner"


def _sub_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,
    description: str,
) -> argparse.ArgumentParser:
    """A sub-command parser that also takes ``--debug`` (so it works after the sub-command too)."""
    parser = commands.add_parser(name, help=help, description=description)
    # SUPPRESS: when absent here, the value given before the sub-command (or False) stays.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; sub-commands register themselves here."""
    parser = argparse.ArgumentParser(
        prog="discogs-toolkit",
        description="Pull a Discogs collection, cache it, load it into DuckDB and explore it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Each sub-command is added by one small function below: _add_<name>(commands).
    _add_pull(commands)
    _add_stats(commands)
    _add_query(commands)
    _add_cache(commands)
    _add_repair(commands)
    _add_history(commands)
    _add_serve(commands)
    _add_bench(commands)
    _add_status(commands)
    _add_catalogue(commands)
    del commands
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        # Read once, here at the edge; handlers take ``args.settings`` and pass them down.
        args.settings = Settings.from_env()
        handler = args.handler
        return int(handler(args))
    except (ToolkitError, OSError) as exc:
        if args.debug:
            raise
        text = _describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        # One line, always: engine messages (SQL parser errors) can span several.
        message = " ".join(line.strip() for line in text.splitlines() if line.strip())
        print(f"discogs-toolkit: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("discogs-toolkit: interrupted", file=sys.stderr)
        return 130


def _describe_os_error(exc: OSError) -> str:
    """``<strerror>: <file>`` for a file-system error that no command explained itself."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename else reason


def _blocking_file(path: Path) -> Path | None:
    """The nearest of ``path`` and its parents that exists but is not a folder, if any."""
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


def _make_dir(path: Path, failure: str) -> None:
    """Create ``path`` (and parents) or raise a one-line :class:`PullError`: ``failure: reason``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = _blocking_file(path)
        if blocker is not None:
            reason = f"{blocker} is a file, not a folder"
        else:
            reason = exc.strerror or str(exc)
        raise PullError(f"{failure}: {reason}") from None


# -- pull, stats, query, cache ------------------------------------------------------------------


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="collection database (default: data/collection.duckdb; a .sqlite path selects sqlite)",
    )


def _add_pull(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``pull``: fetch a collection (and release details) into the database."""
    parser = _sub_parser(
        commands,
        "pull",
        help="pull a Discogs collection into the database",
        description=(
            "Pull a collection into the database. The server comes from DISCOGS_API_URL and the "
            "token from DISCOGS_TOKEN; with neither set, a built-in simulator serves user 'demo'."
        ),
    )
    parser.add_argument(
        "--username", "-u", help="whose collection (default with the simulator: demo)"
    )
    _add_db_option(parser)
    parser.add_argument(
        "--folder", type=int, default=0, help="collection folder id (default 0 = All)"
    )
    parser.add_argument(
        "--no-details", dest="details", action="store_false", help="list items only, no /releases"
    )
    parser.add_argument(
        "--details-from",
        choices=("auto", "catalogue", "api"),
        default="auto",
        help="where release details come from: auto (default) = the local catalogue for every "
        "release it holds, the API for the rest; catalogue = only the catalogue; api = only the "
        "API (replacing details taken from the catalogue)",
    )
    parser.add_argument("--concurrency", type=_positive_int, help="requests in flight at once")
    parser.add_argument(
        "--per-page", type=_positive_int, default=100, help="collection items per page (max 100)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no bars")
    _add_redis_option(parser)
    parser.add_argument(
        "--simulator",
        action="store_true",
        help="use the built-in simulator even when DISCOGS_TOKEN / DISCOGS_API_URL are set",
    )
    parser.add_argument(
        "--simulator-rate-limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="built-in simulator only: requests per minute it allows (default 60)",
    )
    parser.add_argument(
        "--simulator-latency",
        type=_non_negative_float,
        default=None,
        metavar="S",
        help="built-in simulator only: seconds each answer takes (default 0.05)",
    )
    parser.add_argument(
        "--simulator-epoch",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="built-in simulator only: serve the world after N changes (items added and removed, "
        "prices moved), to see history between two pulls (default 0)",
    )
    extras = parser.add_argument_group("history extras (stored with the pull's history)")
    extras.add_argument(
        "--value",
        action="store_true",
        help="record the collection's value (minimum/median/maximum; needs the owner's token)",
    )
    extras.add_argument(
        "--market",
        action="store_true",
        help="record marketplace prices of the collection's releases (one request each)",
    )
    extras.add_argument(
        "--market-max",
        type=_positive_int,
        metavar="N",
        help="with --market: at most N releases this run, those fetched longest ago first",
    )
    extras.add_argument(
        "--currency",
        type=_currency,
        metavar="CUR",
        help="with --market: prices in CUR (USD GBP EUR CAD AUD JPY CHF MXN BRL NZD SEK ZAR)",
    )
    extras.add_argument("--wants", action="store_true", help="sync the wantlist into 'wants'")
    parser.set_defaults(handler=_run_pull)


def _redis_url(text: str) -> str:
    if not text.strip().startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError("expected a redis://, rediss:// or unix:// URL")
    return text.strip()


def _add_redis_option(
    parser: argparse.ArgumentParser,
    help: str = "keep the shared rate budget on this Redis server (default: TOOLKIT_REDIS_URL, "
    "else a file in the data directory)",
) -> None:
    parser.add_argument("--redis", type=_redis_url, default=None, metavar="URL", help=help)


def _with_redis(settings: Settings, args: argparse.Namespace) -> Settings:
    """``settings`` with ``--redis`` applied."""
    from dataclasses import replace

    return replace(settings, redis_url=args.redis) if args.redis else settings


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``status``: the shared rate budget and every process spending it."""
    parser = _sub_parser(
        commands,
        "status",
        help="show the shared rate budget and who is spending it",
        description="Show each API host's shared window (used / limit, when the next slot "
        "frees) and every toolkit process using it: pid, host, what it does, progress and ETA "
        "of a pull, its 429s and cache hit rate. Read from the shared state itself.",
    )
    parser.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    parser.add_argument(
        "--interval", type=_non_negative_float, default=1.0, metavar="S", help="--watch period"
    )
    _add_redis_option(parser)
    parser.set_defaults(handler=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    from toolkit.budget import open_storage
    from toolkit.budget.monitor import format_status, read_status, watch

    storage = open_storage(_with_redis(args.settings, args))
    try:
        if args.watch:
            with suppress(KeyboardInterrupt):
                watch(storage, lambda text: print(text, end="", flush=True), interval=args.interval)
            return 0
        print(format_status(read_status(storage)))
    finally:
        storage.close()
    return 0


def _currency(text: str) -> str:
    from toolkit.history import check_currency

    try:
        return str(check_currency(text))
    except PullError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--currency ")) from None


def _add_history(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``history``: the recorded pulls and what each changed."""
    parser = _sub_parser(
        commands,
        "history",
        help="show the pulls and what each added and removed",
        description="Show the recorded pulls (newest last): items, added, removed, requests, "
        "value, and the items each pull added (+) and removed (-).",
    )
    _add_db_option(parser)
    parser.add_argument(
        "--limit", type=_positive_int, default=20, help="pulls to show (default 20)"
    )
    parser.set_defaults(handler=_run_history)


def _run_history(args: argparse.Namespace) -> int:
    from toolkit.explore import connect, resolve_database
    from toolkit.history import history_text

    path = resolve_database(args.db, settings=args.settings)
    with closing(connect(path, require_schema=True)) as db:
        if not db.table_exists("pulls"):
            print(f"database: {path}")
            print("no pulls recorded yet (the next pull upgrades the database and records one)")
            return 0
        text = history_text(db, limit=args.limit)
    print(f"database: {path}")
    print(text)
    return 0


def _add_stats(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``stats``: a summary of what the database holds."""
    parser = _sub_parser(
        commands,
        "stats",
        help="summarise the collection database",
        description="Summarise the database.",
    )
    _add_db_option(parser)
    parser.set_defaults(handler=_run_stats)


def _add_query(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``query``: run one SQL statement (read-only unless ``--write``) and print the result."""
    parser = _sub_parser(
        commands,
        "query",
        help="run SQL against the database",
        description="Run SQL against the database. It is opened read-only: a statement that "
        "would change it fails (exit 1) unless --write is given. The local catalogue is attached "
        "as schema catalogue (catalogue.releases, ...; empty before `catalogue load`).",
    )
    parser.add_argument("sql", help='the SQL to run, e.g. "SELECT count(*) FROM collection"')
    _add_db_option(parser)
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--write", action="store_true", help="allow statements that change data")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="show the query plan and the indexes that would serve it, instead of the result",
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="with --explain: create the suggested indexes (opens the database for writing)",
    )
    parser.set_defaults(handler=_run_query)


def _add_cache(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``cache stats|clear``: inspect or delete the HTTP cache file under the data dir (and the
    cache on Redis with ``TOOLKIT_REDIS_HTTP_CACHE``)."""
    parser = _sub_parser(
        commands,
        "cache",
        help="show or clear the HTTP cache",
        description="Show or clear the HTTP cache file (data/http_cache.sqlite), and the cache "
        "on Redis when TOOLKIT_REDIS_HTTP_CACHE=true (at TOOLKIT_REDIS_URL).",
    )
    parser.add_argument("action", choices=("stats", "clear"))
    _add_redis_option(
        parser,
        "the HTTP cache on this Redis server too (default: TOOLKIT_REDIS_URL when "
        "TOOLKIT_REDIS_HTTP_CACHE=true)",
    )
    parser.set_defaults(handler=_run_cache)


def _add_repair(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``repair``: recreate collection tables dropped by hand."""
    parser = _sub_parser(
        commands,
        "repair",
        help="recreate missing collection tables",
        description="Recreate the tables (empty) and view missing from a collection database; "
        "releases whose details lived in them are fetched again by the next pull.",
    )
    _add_db_option(parser)
    parser.set_defaults(handler=_run_repair)


def _run_pull(args: argparse.Namespace) -> int:
    from toolkit.discogs.client import DiscogsClient
    from toolkit.explore import resolve_database
    from toolkit.history import Extras
    from toolkit.pull import PULL_CLIENT_MEMORY_ENTRIES, pull_collection, save_pull

    settings = _with_redis(Settings.from_env(), args)
    db_path = resolve_database(args.db, settings=settings)
    # Both folders first, so a bad path fails in one line before any server is started or asked.
    data_dir = settings.data_dir
    _make_dir(data_dir, f"cannot create the data directory {data_dir} (TOOLKIT_DATA_DIR)")
    _make_dir(db_path.parent, f"cannot create the folder of the database {db_path}")
    if args.details_from == "catalogue" and args.details:
        from toolkit.catalogue import catalogue_dir, current_generation

        if current_generation(catalogue_dir(data_dir)) is None:
            print(
                "discogs-toolkit pull: error: --details-from catalogue, but no catalogue is loaded "
                f"in {catalogue_dir(data_dir)}; run `discogs-toolkit catalogue load` first",
                file=sys.stderr,
            )
            return 2
    with ExitStack() as stack:
        if args.simulator or not (settings.discogs_api_url_configured or settings.has_token):
            from toolkit.demo import start_simulator

            username = args.username or "demo"
            reason = "--simulator" if args.simulator else "No DISCOGS_TOKEN or DISCOGS_API_URL set"
            rate = args.simulator_rate_limit or 60
            latency = 0.05 if args.simulator_latency is None else args.simulator_latency
            catalogue = None
            if args.simulator_epoch:
                from toolkit.discogs.simdata import SimCatalogue

                catalogue = SimCatalogue()
                for _ in range(args.simulator_epoch):
                    catalogue.advance()
            simulator = stack.enter_context(start_simulator(rate, latency, catalogue=catalogue))
            epoch = f" (after {args.simulator_epoch} changes)" if args.simulator_epoch else ""
            print(
                f"{reason}: pulling user {username!r} from the built-in simulator at "
                f"{simulator.url}{epoch}.",
                flush=True,
            )
            client = DiscogsClient(
                # --value: the built-in simulator takes any token as the owner's (not a secret).
                SIMULATOR_OWNER_TOKEN if args.value else "",
                base_url=simulator.url,
                settings=settings,
                memory_max_entries=PULL_CLIENT_MEMORY_ENTRIES,
            )
        else:
            if not args.username:
                print(
                    "discogs-toolkit pull: error: --username is required with a real server",
                    file=sys.stderr,
                )
                return 2
            username = args.username
            client = DiscogsClient.from_settings(
                settings, memory_max_entries=PULL_CLIENT_MEMORY_ENTRIES
            )
        stack.enter_context(client)
        report = pull_collection(
            username,
            db_path,
            client=client,
            folder_id=args.folder,
            details=args.details,
            concurrency=args.concurrency,
            progress=args.progress,
            per_page=min(args.per_page, 100),
            settings=settings,
            extras=Extras(
                value=args.value,
                market=args.market,
                market_max=args.market_max,
                currency=args.currency,
                wants=args.wants,
            ),
            details_from=args.details_from,
        )
    for notice in report.notices:
        print(f"discogs-toolkit: {notice}", file=sys.stderr)
    print(report.as_table())
    print(f"database: {db_path}")
    for line in report.malformed_items:
        print(f"discogs-toolkit: malformed item not loaded: {line}", file=sys.stderr)
    if report.not_in_catalogue:
        print(
            f"discogs-toolkit: {report.not_in_catalogue} releases are not in the "
            "catalogue and were left without details (pull with --details-from auto or api)",
            file=sys.stderr,
        )
    # The saved reports are a convenience for notebook 01; the pull itself succeeded regardless.
    with suppress(OSError):
        save_pull(report, settings.data_dir)
    return 0


def _run_stats(args: argparse.Namespace) -> int:
    from toolkit.catalogue.explore import catalogue_status
    from toolkit.explore import collection_summary, connect, resolve_database

    settings = Settings.from_env()
    path = resolve_database(args.db, settings=settings)
    with closing(connect(path, settings=settings, require_schema=True)) as db:
        summary = collection_summary(db)
        status = catalogue_status(db)
    print(f"database: {path}")
    print(summary.as_text())
    print(status.as_text())
    return 0


def _run_query(args: argparse.Namespace) -> int:
    from toolkit.errors import ReadOnlyError
    from toolkit.explore import connect

    if args.apply and not args.explain:
        print("discogs-toolkit query: error: --apply needs --explain", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    with closing(
        connect(args.db, settings=settings, read_only=not (args.write or args.apply))
    ) as db:
        if args.explain:
            return _explain(db, args.sql, apply=args.apply)
        try:
            frame = db.df(args.sql)
        except ReadOnlyError as exc:
            raise ReadOnlyError(f"{exc} (pass --write to allow changes)") from exc
    if args.format == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif args.format == "json":
        sys.stdout.write(frame.to_json(orient="records", date_format="iso") + "\n")
    else:
        print(frame.to_string(index=False) if len(frame.columns) else "(no result)")
    return 0


def _explain(db: Database, sql: str, *, apply: bool) -> int:
    """Print ``sql``'s plan and the indexes that would serve it; create them with ``apply``."""
    from toolkit.indexes import DUCKDB_NOTE

    print("plan:")
    for line in db.explain(sql):
        print(f"  {line}")
    suggestions = db.suggest_indexes(sql)
    if not suggestions:
        reason = DUCKDB_NOTE if db.engine == "duckdb" else "no full scan an index would remove"
        print(f"no index suggested: {reason}")
        return 0
    print("suggested indexes:")
    for suggestion in suggestions:
        print(f"  {suggestion.sql};")
        print(f"    -- {suggestion.reason}")
    if apply:
        with db.transaction():
            for suggestion in suggestions:
                db.execute(suggestion.sql)
        print(f"created {len(suggestions)} index(es); plan now:")
        for line in db.explain(sql):
            print(f"  {line}")
    return 0


def _run_repair(args: argparse.Namespace) -> int:
    from toolkit.collection import repair_schema
    from toolkit.db import Database
    from toolkit.errors import DatabaseError
    from toolkit.explore import resolve_database

    path = resolve_database(args.db, settings=Settings.from_env())
    if not path.exists():
        raise DatabaseError(f"no database at {path}; nothing to repair")
    with closing(Database.connect(path)) as db:
        repair = repair_schema(db)
    if not repair.recreated:
        print(f"{path}: nothing missing")
        return 0
    print(f"{path}: recreated {', '.join(repair.recreated)}")
    if repair.releases_to_refetch:
        print(f"{repair.releases_to_refetch} releases will be fetched again by the next pull")
    return 0


def _run_cache(args: argparse.Namespace) -> int:
    from toolkit.budget.redisstore import redis_where
    from toolkit.discogs.httpcache import (
        clear_http_cache,
        clear_redis_http_cache,
        http_cache_stats,
        redis_http_cache_stats,
    )

    settings = Settings.from_env()
    path = settings.http_cache_path
    # With TOOLKIT_REDIS_HTTP_CACHE the clients keep their answers on Redis: that cache too.
    on_redis = args.redis or (settings.redis_url if settings.redis_http_cache else None)
    if args.action == "clear":
        removed = clear_http_cache(path)
        print(f"removed {path} ({removed} bytes)" if removed else f"no cache at {path}")
        if on_redis:
            answers = clear_redis_http_cache(on_redis)
            print(f"removed {answers} answers from the HTTP cache on {redis_where(on_redis)}")
        return 0
    stats = http_cache_stats(path)
    if on_redis:
        remote = redis_http_cache_stats(on_redis)
        stats.update(redis=remote["redis"], namespace=remote["namespace"])
        stats["on redis"] = remote["responses"]
    for key, value in stats.items():
        print(f"{key:<10} {value}")
    return 0


# -- serve --------------------------------------------------------------------------------------


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``serve``: run the Discogs API simulator on loopback until Ctrl-C."""
    parser = _sub_parser(
        commands,
        "serve",
        help="run the local Discogs API simulator",
        description="Serve the Discogs API simulator (real shapes, strict rate limit) until Ctrl-C. "
        "Prints its URL on one line; point DISCOGS_API_URL at it.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--releases", type=int, default=5000, help="catalogue size (<= 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of catalogue, users and faults")
    parser.add_argument("--rate-limit", type=int, default=60, help="requests per window")
    parser.add_argument(
        "--rate-limit-unauthenticated", type=int, default=None, help="default min(25, rate limit)"
    )
    parser.add_argument("--window", type=float, default=60.0, help="rate-limit window, seconds")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per response")
    parser.add_argument("--jitter", type=float, default=0.02, help="+/- seconds of latency")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx answers")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="share of dropped sockets")
    parser.add_argument("--retry-after", action="store_true", help="send Retry-After on 429")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME=ITEMS",
        help="add a user with ITEMS collection items (repeatable; 'demo' always exists)",
    )
    parser.add_argument(
        "--epoch",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="serve the world after N changes (items added and removed, prices moved)",
    )
    parser.add_argument(
        "--value-currency",
        type=_currency,
        default="USD",
        metavar="CUR",
        help="the currency (and format) of every user's collection value (default USD)",
    )
    parser.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import contextlib
    import threading

    from toolkit.discogs.simdata import SimCatalogue
    from toolkit.discogs.simulator import DiscogsSimulator, FaultPlan

    try:
        catalogue = SimCatalogue(releases=args.releases, seed=args.seed)
        for spec in args.user:
            name, _, items = spec.partition("=")
            catalogue.user(name, items=int(items or 100))
        for _ in range(args.epoch):
            catalogue.advance()
        for user in catalogue.users.values():
            user.currency = args.value_currency
        faults = FaultPlan(error_rate=args.error_rate, reset_rate=args.reset_rate)
        simulator = DiscogsSimulator(
            catalogue,
            host=args.host,
            port=args.port,
            rate_limit=args.rate_limit,
            rate_limit_unauthenticated=args.rate_limit_unauthenticated,
            window=args.window,
            retry_after=args.retry_after,
            latency=args.latency,
            jitter=args.jitter,
            faults=faults,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"discogs-toolkit serve: error: {exc}", file=sys.stderr)
        return 2
    with simulator:
        print(simulator.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


# -- bench --------------------------------------------------------------------------------------


def _add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``bench``: measure every row of the spec's performance table against baselines."""
    parser = _sub_parser(
        commands,
        "bench",
        help="run the benchmarks (results.json/csv and PNG charts)",
        description="Measure the spec's performance claims next to baselines measured in the same "
        "run; writes results.json, results.csv and charts/*.png under --out.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default DATA_DIR/bench)"
    )
    parser.add_argument(
        "--only", default=None, metavar="ROWS", help="rows to run: numbers, ranges or keys (1,3-5)"
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the Markdown table of the existing OUT/results.json (runs nothing)",
    )
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the table of OUT/results.json into FILE between the bench markers",
    )
    parser.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from toolkit.bench import default_out_dir, load_results, run_benchmarks, to_markdown
    from toolkit.bench.report import update_readme

    out = args.out if args.out is not None else default_out_dir(args.settings)
    if args.markdown or args.readme is not None:
        if not (out / "results.json").is_file():
            print(f"discogs-toolkit bench: no results in {out}; run the benchmarks first",
                  file=sys.stderr)  # fmt: skip
            return 1
        run = load_results(out)
        if args.readme is not None:
            update_readme(args.readme, run)
        if args.markdown:
            print(to_markdown(run), end="")
        return 0
    try:
        run = run_benchmarks(out, quick=args.quick, only=args.only, log=print)
    except ValueError as exc:
        print(f"discogs-toolkit bench: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'results.json'}, {out / 'results.csv'} and {len(run.rows)} charts")
    return 0 if all(row.status != "error" for row in run.rows) else 1


# -- catalogue ----------------------------------------------------------------------------------


def _add_catalogue(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``catalogue load``: stream Discogs monthly dump files into the local catalogue."""
    parser = _sub_parser(
        commands,
        "catalogue",
        help="load Discogs monthly data dumps into the local catalogue",
        description="Load Discogs monthly data dump files (discogs_YYYYMMDD_{releases,masters,"
        "artists,labels}.xml[.gz]) into DATA_DIR/catalogue, queryable as catalogue.* tables.",
    )
    actions = parser.add_subparsers(dest="catalogue_action", metavar="ACTION", required=True)
    load = actions.add_parser("load", help="load dump files (one per kind; streamed)")
    load.add_argument("paths", nargs="+", metavar="PATH", help="dump files, .xml.gz or .xml")
    _add_db_option(load)
    load.add_argument(
        "--only-collection",
        action="store_true",
        help="keep only the releases in the --db collection and their masters, artists, labels",
    )
    load.add_argument("--no-progress", dest="progress", action="store_false", help="no bar")
    load.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    load.set_defaults(handler=_run_catalogue_load)
    simulated = actions.add_parser(
        "simulate-dump",
        help="write the built-in simulator's releases as monthly dump files (for the demo)",
        description="Write the releases the built-in simulator serves as the four files of a "
        "Discogs monthly dump (discogs_YYYYMMDD_{releases,masters,artists,labels}.xml.gz): the "
        "real sample releases as the sample has them, the others as the simulated API serves "
        "them. Prints the paths, one per line.",
    )
    simulated.add_argument("out", type=Path, metavar="DIR", help="folder to write the files to")
    simulated.add_argument(
        "--date", type=_iso_date, default=SIMULATOR_DUMP_DATE, metavar="YYYY-MM-DD",
        help=f"the dump's date (default {SIMULATOR_DUMP_DATE.isoformat()}, the sample's)",
    )  # fmt: skip
    simulated.add_argument("--releases", type=_positive_int, default=5000,
                           help="simulated catalogue size, as `serve` (default 5000)")  # fmt: skip
    simulated.add_argument("--seed", type=int, default=0, help="as `serve` (default 0)")
    simulated.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP
    )
    simulated.set_defaults(handler=_run_catalogue_simulate)


#: The date of the simulator's dump by default: its real releases are the 2020-08-06 sample's.
SIMULATOR_DUMP_DATE = date(2020, 8, 6)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _run_catalogue_simulate(args: argparse.Namespace) -> int:
    from toolkit.discogs.simdata import SimCatalogue
    from toolkit.errors import DumpError

    try:
        catalogue = SimCatalogue(releases=args.releases, seed=args.seed)
    except ValueError as exc:
        print(f"discogs-toolkit catalogue simulate-dump: error: {exc}", file=sys.stderr)
        return 2
    try:
        paths = catalogue.write_dump(args.out, args.date)
    except OSError as exc:
        raise DumpError(f"cannot write the dump to {args.out}: {exc.strerror or exc}") from None
    for path in paths:
        print(path)
    return 0


def _run_catalogue_load(args: argparse.Namespace) -> int:
    from toolkit.catalogue import LoadProgress, collection_refs, load_dumps

    settings = Settings.from_env()
    only = None
    if args.only_collection:
        from toolkit.explore import connect

        with closing(
            connect(args.db, settings=settings, require_schema=True, catalogue=False)
        ) as db:
            only = collection_refs(db)
    with ExitStack() as stack:
        callback = None
        if args.progress:
            from tqdm import tqdm

            total = sum(Path(p).stat().st_size for p in args.paths if Path(p).is_file())
            bars: list[tqdm[None]] = []  # made at the first record: a bad file fails barless
            done: dict[Path, int] = {}

            def callback(state: LoadProgress) -> None:
                if not bars:
                    bars.append(
                        stack.enter_context(
                            tqdm(total=total, unit="B", unit_scale=True, desc="catalogue")
                        )
                    )
                bar = bars[0]
                done[state.path] = state.bytes_read
                bar.update(sum(done.values()) - bar.n)
                elapsed = bar.format_dict["elapsed"] or 0.0
                rate = state.records / elapsed if elapsed >= 1 else 0.0  # steady after 1 s
                bar.set_postfix_str(
                    f"{state.kind} {state.records:,} ({rate:,.0f}/s)", refresh=False
                )

        report = load_dumps(args.paths, settings.data_dir, only=only, progress=callback)
    print(report.summary())
    return 0
