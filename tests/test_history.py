"""The collection over time (issue 12): pulls and item events, value, marketplace prices, wants and
custom fields, against the simulator changing between two pulls."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolkit.cli import main
from toolkit.collection import create_schema
from toolkit.config import Settings
from toolkit.db import Database
from toolkit.discogs.client import DiscogsClient
from toolkit.discogs.simdata import SimCatalogue, SimUser
from toolkit.discogs.simulator import DiscogsSimulator
from toolkit.errors import MoneyFormatError
from toolkit.history import (
    VALUE_NEEDS_OWNER,
    Extras,
    market_targets,
    record_value,
)
from toolkit.money import MARKET_CURRENCIES, format_money, parse_money
from toolkit.pull import PullReport, pull_collection
from toolkit.ratelimit import SlidingWindowLimiter

FAST = 100_000
TOKEN = "tok-history-owner"
ENGINES = ("duckdb", "sqlite")
SUFFIX = {"duckdb": ".duckdb", "sqlite": ".sqlite"}
ALL = Extras(value=True, market=True, wants=True)


def simulator(catalogue: SimCatalogue, **kwargs: Any) -> DiscogsSimulator:
    options: dict[str, Any] = {
        "rate_limit": FAST,
        "rate_limit_unauthenticated": FAST,
        "latency": 0.0,
        "jitter": 0.0,
    }
    options.update(kwargs)
    return DiscogsSimulator(catalogue, **options)


def client_for(server: DiscogsSimulator, tmp_path: Path, token: str = TOKEN) -> DiscogsClient:
    return DiscogsClient(
        token,
        base_url=server.url,
        settings=Settings(data_dir=tmp_path),
        cache_path=tmp_path / "http_cache.sqlite",
        limiter=SlidingWindowLimiter(FAST, 60.0),
    )


def pull(username: str, db: Path, client: DiscogsClient, **kwargs: Any) -> PullReport:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("per_page", 25)
    kwargs.setdefault("concurrency", 4)
    return pull_collection(username, db, client=client, **kwargs)


def rows(path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with Database.connect(path, read_only=True) as db:
        return db.fetchall(sql, params or [])


def expected_value(catalogue: SimCatalogue, user: SimUser) -> tuple[str, float, float, float]:
    body = catalogue.user_value(user)
    parsed = [parse_money(body[k]) for k in ("minimum", "median", "maximum")]
    return (parsed[0][0], *(v for _, v in parsed))  # type: ignore[return-value]


# ------------------------------------------------------------------------------- money parsing


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("£2.50", "GBP", 2.5),
        ("£5", "GBP", 5.0),
        ("£1.05", "GBP", 1.05),
        ("$1,234.56", "USD", 1234.56),
        ("$250.00", "USD", 250.0),
        ("€1.234,56", "EUR", 1234.56),
        ("€12,50", "EUR", 12.5),
        ("¥1,234", "JPY", 1234.0),
        ("¥98", "JPY", 98.0),
        ("CA$12.00", "CAD", 12.0),
        ("A$1,000.10", "AUD", 1000.1),
        ("NZ$3.20", "NZD", 3.2),
        ("MX$1,500.00", "MXN", 1500.0),
        ("R$1.234,50", "BRL", 1234.5),
        ("CHF1'234.50", "CHF", 1234.5),
        ("1\u00a0234,56 kr", "SEK", 1234.56),
        ("R99.00", "ZAR", 99.0),
        ("USD 12", "USD", 12.0),
        ("12.5 EUR", "EUR", 12.5),
    ],
)
def test_parse_money(text: str, currency: str, amount: float) -> None:
    assert parse_money(text) == (currency, amount)


@pytest.mark.parametrize("text", ["₿5", "", "£", "£abc", "5"])
def test_unreadable_money_is_a_typed_error(text: str) -> None:
    with pytest.raises(MoneyFormatError):
        parse_money(text)


@pytest.mark.parametrize("currency", MARKET_CURRENCIES)
def test_every_simulated_format_reads_back(currency: str) -> None:
    amount = 1234.5 if currency != "JPY" else 1234.0
    assert parse_money(format_money(amount, currency)) == (currency, amount)


def test_an_unreadable_value_writes_nothing(tmp_path: Path) -> None:
    with Database.connect(tmp_path / "v.duckdb") as db:
        create_schema(db)
        body = {"minimum": "₿1", "median": "₿2", "maximum": "₿3"}
        with pytest.raises(MoneyFormatError, match="unknown currency"):
            record_value(db, 1, body, __import__("datetime").datetime(2026, 1, 1))
        assert db.scalar("SELECT count(*) FROM collection_value") == 0


# ------------------------------------------------------------------- two pulls, a change between


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("currency", ["GBP", "EUR", "JPY"])
def test_two_pulls_with_changes_record_exactly_what_happened(
    tmp_path: Path, engine: str, currency: str
) -> None:
    catalogue = SimCatalogue(releases=1200, seed=5)
    user = catalogue.user("hanna", items=30)
    user.currency = currency
    path = tmp_path / f"h{SUFFIX[engine]}"
    first_items = {it["instance_id"]: it["id"] for it in user.items}
    first_wants = {w["id"] for w in user.wants}
    with simulator(catalogue) as server, client_for(server, tmp_path) as client:
        value1 = expected_value(catalogue, user)
        prices1 = {rid: catalogue.market_stats(rid, "USD") for rid in set(first_items.values())}
        one = pull("hanna", path, client, extras=ALL)
        changes = catalogue.advance()
        added, removed = changes["hanna"]
        assert added and removed
        second_items = {it["instance_id"]: it["id"] for it in user.items}
        value2 = expected_value(catalogue, user)
        prices2 = {rid: catalogue.market_stats(rid, "USD") for rid in set(second_items.values())}
        two = pull("hanna", path, client, extras=ALL)

    assert one.complete and two.complete
    assert (one.pull_id, one.items_added, two.pull_id, two.items_added) == (1, 30, 2, len(added))
    assert rows(path, "SELECT pull_id, username, folder_id, items, added, removed, requests, "
                "rate_limited, complete FROM pulls ORDER BY pull_id") == [
        (1, "hanna", 0, 30, 30, 0, one.network_requests, 0, True),
        (2, "hanna", 0, len(second_items), len(added), len(removed), two.network_requests, 0, True),
    ]  # fmt: skip
    events = rows(path, "SELECT pull_id, instance_id, release_id, event FROM item_events")
    assert sorted(events) == sorted(
        [(1, i, r, "added") for i, r in first_items.items()]
        + [(2, i, second_items[i], "added") for i in added]
        + [(2, i, first_items[i], "removed") for i in removed]
    )
    stamps = rows(path, 'SELECT DISTINCT e."at" = p.finished_at FROM item_events e '
                  "JOIN pulls p USING (pull_id) WHERE e.pull_id = 1")  # fmt: skip
    assert stamps == [(False,)] or stamps == [(True,)]  # one stamp per pull, whichever it is

    values = rows(path, "SELECT pull_id, currency, minimum, median, maximum FROM collection_value "
                  "ORDER BY pull_id")  # fmt: skip
    assert values == [(1, *value1), (2, *value2)]
    assert values[0][1] == currency and values[0][2:] != values[1][2:]

    # Every release held through both pulls has exactly two price rows, as the server gave them.
    market = rows(path, 'SELECT release_id, lowest_price, num_for_sale, blocked_from_sale '
                  'FROM market_stats ORDER BY release_id, "at"')  # fmt: skip
    per_release: dict[int, list[tuple[Any, ...]]] = {}
    for rid, *rest in market:
        per_release.setdefault(rid, []).append(tuple(rest))
    both = set(first_items.values()) & set(second_items.values())
    assert set(per_release) == set(first_items.values()) | set(second_items.values())
    for rid in both:
        expected = []
        for prices in (prices1, prices2):
            stats = prices[rid]
            assert stats is not None
            low = stats["lowest_price"]
            expected.append(
                (None if low is None else low["value"], stats["num_for_sale"],
                 stats["blocked_from_sale"])
            )  # fmt: skip
        assert per_release[rid] == expected, rid
    assert one.market_requests == len(set(first_items.values()))

    wants = {rid for (rid,) in rows(path, "SELECT release_id FROM wants WHERE username = 'hanna'")}
    assert wants == {w["id"] for w in user.wants} and wants != first_wants
    assert len(wants - first_wants) == 1 and len(first_wants - wants) == 1
    detailed = rows(path, "SELECT count(*) FROM wants w JOIN releases r USING (release_id) "
                    "WHERE r.fetched_at IS NOT NULL")  # fmt: skip
    assert detailed == [(len(wants),)]

    assert rows(path, "SELECT field_id, name, type, position, public FROM collection_fields "
                "ORDER BY field_id") == [
        (1, "Media Condition", "dropdown", 1, True),
        (2, "Sleeve Condition", "dropdown", 2, True),
        (3, "Notes", "textarea", 3, True),
    ]  # fmt: skip
    notes = sorted(
        (it["instance_id"], n["field_id"], n["value"])
        for it in user.items
        for n in it.get("notes", [])
    )
    assert sorted(rows(path, "SELECT instance_id, field_id, value FROM item_fields")) == notes
    named = rows(path, "SELECT DISTINCT name FROM item_fields_named ORDER BY name")
    assert {n for (n,) in named} <= {"Media Condition", "Sleeve Condition", "Notes"}


@pytest.mark.parametrize("currency", MARKET_CURRENCIES)
def test_value_numbers_are_right_in_every_currency_format(tmp_path: Path, currency: str) -> None:
    """The stored value is the USD total times the simulator's rate, whatever the format
    (``€1.234,56``, ``¥1,234``, ``1 234,56 kr`` ...): the magnitude cannot come out wrong."""
    from toolkit.discogs.simdata import _RATES

    catalogue = SimCatalogue(releases=1200, seed=14)
    user = catalogue.user("pia", items=15)
    usd = expected_value(catalogue, user)
    user.currency = currency
    served = catalogue.user_value(user)
    path = tmp_path / "v.duckdb"
    with simulator(catalogue) as server, client_for(server, tmp_path) as client:
        pull("pia", path, client, details=False, extras=Extras(value=True))
    ((code, *stored),) = rows(
        path, "SELECT currency, minimum, median, maximum FROM collection_value"
    )
    rate, decimals = _RATES[currency]
    assert code == currency, served
    for value, dollars in zip(stored, usd[1:], strict=True):
        # Both sides are rounded: the USD figure to cents (times the rate), the served one to its
        # currency's decimals. A misread separator would be off by a factor of 100 or 1,000.
        assert value == pytest.approx(dollars * rate, abs=0.005 * rate + 0.5 * 10**-decimals), (
            served
        )


def test_a_pull_that_missed_a_page_records_no_removals(tmp_path: Path) -> None:
    from toolkit.discogs.simulator import FaultPlan

    catalogue = SimCatalogue(releases=1200, seed=6)
    catalogue.user("ines", items=60)
    path = tmp_path / "p.duckdb"
    with simulator(catalogue) as server, client_for(server, tmp_path) as client:
        pull("ines", path, client, details=False)
    catalogue.advance()
    plan = FaultPlan(error_rate=0.5, statuses=(503,), kinds=frozenset({"collection"}))
    # Request 1 (page 1) answers, request 2 (page 2) fails: deterministic for this seed.
    seed = next(
        s for s in range(10_000)
        if plan.decide(1, s, "collection") is None and plan.decide(2, s, "collection")
    )  # fmt: skip
    with simulator(catalogue, faults=plan, seed=seed) as faulty:
        client = DiscogsClient(
            TOKEN,
            base_url=faulty.url,
            settings=Settings(data_dir=tmp_path),
            cache_path=tmp_path / "other.sqlite",
            limiter=SlidingWindowLimiter(FAST, 60.0),
            max_retries=0,
        )
        with client:
            report = pull("ines", path, client, details=False, concurrency=1)
    assert report.pages_failed >= 1 and not report.complete
    history = rows(path, "SELECT pull_id, removed, complete FROM pulls ORDER BY pull_id")
    assert history == [(1, 0, True), (2, 0, False)]
    assert rows(path, "SELECT count(*) FROM item_events WHERE event = 'removed'") == [(0,)]


# ---------------------------------------------------------------------------- market rotation


@pytest.mark.parametrize("engine", ENGINES)
def test_market_max_caps_a_run_and_repeated_runs_cover_the_collection(
    tmp_path: Path, engine: str
) -> None:
    catalogue = SimCatalogue(releases=1200, seed=8)
    user = catalogue.user("jo", items=25)
    distinct = {it["id"] for it in user.items}
    path = tmp_path / f"m{SUFFIX[engine]}"
    capped = Extras(market=True, market_max=10)
    seen: list[set[int]] = []
    with simulator(catalogue) as server, client_for(server, tmp_path) as client:
        for _ in range(3):
            server.reset_counters()
            report = pull("jo", path, client, details=False, extras=capped)
            asked = {
                int(r.path.rsplit("/", 1)[1]) for r in server.request_log if r.kind == "marketplace"
            }
            assert report.market_requests == len(asked) == min(10, len(distinct))
            seen.append(asked)
    assert not seen[0] & seen[1]  # the second run took the releases the first did not
    assert seen[0] | seen[1] | seen[2] == distinct  # three runs of 10 cover 25 releases
    with Database.connect(path, read_only=True) as db:
        # Next in line: what was fetched longest ago (the first run's releases).
        waiting = seen[0] - seen[2]
        assert set(market_targets(db, "jo", len(waiting))) == waiting


def test_currency_is_passed_as_curr_abbr(tmp_path: Path) -> None:
    catalogue = SimCatalogue(releases=1200, seed=9)
    catalogue.user("kai", items=8)
    path = tmp_path / "c.duckdb"
    with simulator(catalogue) as server, client_for(server, tmp_path) as client:
        pull("kai", path, client, details=False, extras=Extras(market=True, currency="EUR"))
    currencies = {c for (c,) in rows(path, "SELECT DISTINCT currency FROM market_stats")}
    assert currencies <= {"EUR", None} and "EUR" in currencies


# ------------------------------------------------------------------------- owner-only value


def test_non_owner_value_is_one_notice_and_the_pull_goes_on(tmp_path: Path) -> None:
    catalogue = SimCatalogue(releases=1200, seed=10)
    catalogue.user("lou", items=12)
    path = tmp_path / "n.duckdb"
    with (
        simulator(catalogue, tokens={TOKEN: "someone-else"}) as server,
        client_for(server, tmp_path) as client,
    ):
        report = pull("lou", path, client, extras=Extras(value=True))
    assert report.complete and report.notices == (VALUE_NEEDS_OWNER,)
    assert rows(path, "SELECT count(*) FROM collection_value") == [(0,)]
    assert rows(path, "SELECT complete FROM pulls") == [(True,)]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DiscogsSimulator]:
    catalogue = SimCatalogue(releases=1200, seed=12)
    catalogue.user("mia", items=20)
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DISCOGS_RATE_LIMIT", str(FAST))
    with simulator(catalogue) as server:
        monkeypatch.setenv("DISCOGS_API_URL", server.url)
        yield server


def test_cli_tokenless_value_prints_one_line_and_pulls_completely(
    served: DiscogsSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.duckdb"
    code = main(["pull", "--username", "mia", "--db", str(db), "--value", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"discogs-toolkit: {VALUE_NEEDS_OWNER}"
    ]
    assert served.stats().by_kind.get("value", 0) == 0  # not even asked without a token
    assert rows(db, "SELECT items, added, complete FROM pulls") == [(20, 20, True)]
    assert re.search(r"^pull_id +1$", out, re.MULTILINE)


@pytest.mark.parametrize("bad", ["XYZ", "usd1", "BTC"])
def test_cli_bad_currency_is_a_usage_error(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["pull", "--db", str(tmp_path / "x.duckdb"), "--market", "--currency", bad])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--currency" in err and "USD GBP EUR" in err
    assert not (tmp_path / "x.duckdb").exists()


def test_cli_lowercase_currency_is_accepted(tmp_path: Path) -> None:
    from toolkit.cli import build_parser

    args = build_parser().parse_args(["pull", "--market", "--currency", "gbp"])
    assert args.currency == "GBP"


def test_cli_history_prints_each_pull_and_its_changes(
    served: DiscogsSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "h.sqlite"
    argv = ["pull", "--username", "mia", "--db", str(db), "--no-progress", "--wants"]
    assert main(argv) == 0
    added, removed = served.catalogue.advance()["mia"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["history", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.startswith("pull 1 ") and "+20 -0" in line for line in lines), out
    assert any(
        line.startswith("pull 2 ") and f"+{len(added)} -{len(removed)}" in line for line in lines
    ), out
    for instance in [*added, *removed]:
        assert f"[{instance}]" in out


def test_cli_history_on_a_database_without_pulls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path))
    db = tmp_path / "e.duckdb"
    with Database.connect(db) as database:
        create_schema(database)
    assert main(["history", "--db", str(db)]) == 0
    assert "no pulls recorded yet" in capsys.readouterr().out


# -------------------------------------------------------------------------------- simulator


def test_simulator_serves_fields_value_formats_and_moves_on(tmp_path: Path) -> None:
    catalogue = SimCatalogue(releases=1200, seed=13)
    user = catalogue.user("ned", items=10)
    user.currency = "EUR"
    with simulator(catalogue) as server, client_for(server, tmp_path) as client:
        fields = client.get_collection_fields("ned")["fields"]
        assert [f["name"] for f in fields] == ["Media Condition", "Sleeve Condition", "Notes"]
        value = client.get_collection_value("ned", refresh=True)
        assert value["median"].startswith("€") and "," in value["median"]
        rid = user.items[0]["id"]
        before = client.get_marketplace_stats(rid, currency="JPY", refresh=True)
        catalogue.advance()
        after = client.get_marketplace_stats(rid, currency="JPY", refresh=True)
        if before["lowest_price"] is not None:
            assert before["lowest_price"]["currency"] == "JPY"
            assert before["lowest_price"] != after["lowest_price"]
        assert client.get_collection_value("ned", refresh=True) != value


def test_advance_is_deterministic() -> None:
    one, two = SimCatalogue(releases=1200, seed=1), SimCatalogue(releases=1200, seed=1)
    for cat in (one, two):
        cat.user("x", items=40)
    assert one.advance() == two.advance()
    assert json.dumps(one.user("x").items) == json.dumps(two.user("x").items)
    assert one.user_value(one.user("x")) == two.user_value(two.user("x"))


def test_a_wanted_release_that_failed_is_asked_again_and_its_failure_cleared(
    tmp_path: Path,
) -> None:
    catalogue = SimCatalogue(releases=800, seed=21)
    user = catalogue.user("wendy", items=10)
    owned = {item["id"] for item in user.items}
    rid = next(w["id"] for w in user.wants if w["id"] not in owned)
    path = tmp_path / "w.duckdb"
    catalogue.override_release(rid, {"id": rid, "artists": "not a list"})  # refused by the client
    with simulator(catalogue) as server, client_for(server, tmp_path) as client:
        pull("wendy", path, client, extras=Extras(wants=True))
        assert rows(path, "SELECT release_id, permanent FROM pull_failures") == [(rid, False)]
        catalogue.override_release(rid, None)  # Discogs answers properly again
        server.reset_counters()
        pull("wendy", path, client, extras=Extras(wants=True))
        asked = [r.path for r in server.request_log if r.path == f"/releases/{rid}"]
    assert asked == [f"/releases/{rid}"]
    assert rows(path, "SELECT count(*) FROM pull_failures") == [(0,)]
    assert rows(path, "SELECT title IS NOT NULL FROM releases WHERE release_id = ?", [rid]) == [
        (True,)
    ]
