"""The shared rate budget: one moving window for every process, on a SQLite file or a real Redis.

Rules are checked on a FakeClock against both storages (each limiter below is what one process
would hold: its own storage connection, its own owner); sharing between real processes is checked
with real processes hammering one window.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from toolkit.budget import SharedWindowLimiter, api_host
from toolkit.budget.redisstore import RedisWindowStorage, redis_where
from toolkit.budget.sqlitestore import SQLiteWindowStorage
from toolkit.budget.window import Rule, WindowState, WindowStorage
from toolkit.config import Settings
from toolkit.errors import BudgetError, ConfigError
from toolkit.testing import FakeClock

Factory = Callable[[], WindowStorage]


@pytest.fixture(params=["sqlite", "redis"])
def storages(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Factory]:
    """Opens a new connection to one shared store per call (one per simulated process)."""
    opened: list[WindowStorage] = []

    def open_one() -> WindowStorage:
        storage: WindowStorage
        if request.param == "sqlite":
            storage = SQLiteWindowStorage(tmp_path / "rate_budget.sqlite", clock=clock)
        else:
            storage = RedisWindowStorage(request.getfixturevalue("redis_url"), clock=clock)
        opened.append(storage)
        return storage

    yield open_one
    for storage in opened:
        storage.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def key() -> str:
    return f"test-{uuid.uuid4().hex}:443"


def _limiter(
    storages: Factory, key: str, clock: FakeClock, limit: int = 5, window: float = 60.0,
    reserve: int = 0,
) -> SharedWindowLimiter:  # fmt: skip
    return SharedWindowLimiter(
        storages(), key, limit, window, reserve=reserve, clock=clock, sleep=clock.sleep
    )


def test_two_processes_count_in_one_window(storages: Factory, key: str, clock: FakeClock) -> None:
    one, two = _limiter(storages, key, clock), _limiter(storages, key, clock)
    assert [one.allow() for _ in range(3)] == [True] * 3
    clock.advance(10.0)
    assert [two.allow() for _ in range(3)] == [True, True, False]
    assert one.in_window() == two.in_window() == 5
    clock.advance(49.9)
    assert not one.allow()
    clock.advance(0.1)  # one's three left the moving window, two's two are still in it
    assert [two.allow() for _ in range(4)] == [True, True, True, False]


def test_a_slot_counts_from_when_its_response_returned(
    storages: Factory, key: str, clock: FakeClock
) -> None:
    one, two = _limiter(storages, key, clock, limit=1), _limiter(storages, key, clock, limit=1)
    slot = one.acquire_slot(timeout=0)
    assert slot is not None
    clock.advance(5.0)  # a slow response
    slot.complete()
    clock.advance(59.0)  # 64 s after sending, 59 s after the answer: still in the window
    assert two.wait_time() == pytest.approx(1.0)
    assert not two.allow()
    clock.advance(1.0)
    assert two.allow()


def test_a_dead_process_slot_blocks_for_one_window_and_a_grace(
    storages: Factory, key: str, clock: FakeClock
) -> None:
    dead = _limiter(storages, key, clock, limit=2)
    assert dead.acquire_slot(timeout=0) and dead.acquire_slot(timeout=0)  # never completed
    alive = _limiter(storages, key, clock, limit=2)
    assert alive.wait_time() == pytest.approx(61.0)  # window 60 s + grace min(1 s, window/20)
    clock.advance(61.0)
    assert alive.allow() and alive.allow()


def test_the_server_saying_less_remains_slows_every_process(
    storages: Factory, key: str, clock: FakeClock
) -> None:
    one, two = _limiter(storages, key, clock, limit=10), _limiter(storages, key, clock, limit=10)
    assert one.allow()
    one.observe_remaining(2)  # someone else on the address used 7
    assert two.get_tokens() == 2.0
    assert two.allow() and two.allow() and not two.allow()


def test_a_retry_after_pause_holds_every_process(
    storages: Factory, key: str, clock: FakeClock
) -> None:
    one, two = _limiter(storages, key, clock), _limiter(storages, key, clock)
    assert one.pause(10.0) == pytest.approx(10.0)
    assert two.paused_for() == pytest.approx(10.0)
    assert not two.allow()
    assert two.acquire_slot() is not None  # waits out the pause on the fake clock
    assert clock.sleeps and sum(clock.sleeps) == pytest.approx(10.0)
    assert one.pause(10_000.0) == pytest.approx(120.0)  # capped at max_pause (two windows)


def test_a_pull_leaves_the_reserve_to_interactive_calls(
    storages: Factory, key: str, clock: FakeClock
) -> None:
    pull = _limiter(storages, key, clock, limit=10, reserve=3)
    person = _limiter(storages, key, clock, limit=10, reserve=3)
    with pull.background():
        taken = sum(pull.allow() for _ in range(10))
        assert taken == 4  # paced: at most max(ceil(7 / 2), 7 - 3 x 3) per 40 s
        clock.advance(39.0)
        assert not pull.allow()
        clock.advance(1.0)
        taken += sum(pull.allow() for _ in range(10))
        assert taken == 7  # never more than limit - reserve in the window
    assert [person.allow() for _ in range(4)] == [True, True, True, False]


def test_interactive_demand_holds_the_pull(storages: Factory, key: str, clock: FakeClock) -> None:
    pull = _limiter(storages, key, clock, limit=60, reserve=5)
    person = _limiter(storages, key, clock, limit=60, reserve=5)
    assert person.allow()
    with pull.background():
        assert not pull.allow()  # a person just asked: their next call finds the slot free
        clock.advance(2.0)  # hold = window / 30
        assert pull.allow()


@pytest.mark.parametrize("pull_started", [0.0, 10.0, 19.6, 20.1, 39.9, 40.1, 59.9])
def test_twenty_interactive_calls_within_30_s_at_60_per_minute_during_a_greedy_pull(
    tmp_path: Path, clock: FakeClock, key: str, pull_started: float
) -> None:
    """The reserve's guarantee, at Discogs' real 60/min on a fake clock, against a pull that
    takes every slot it may at every instant anyone looks (the worst case), whenever the person
    starts relative to the pull."""
    path = tmp_path / "rate_budget.sqlite"
    pull = SharedWindowLimiter(SQLiteWindowStorage(path, clock=clock), key, 60, clock=clock)

    def greedy() -> None:
        with pull.background():
            while (slot := pull.acquire_slot(timeout=0)) is not None:
                slot.complete()

    def sleep(seconds: float) -> None:  # the person waits; the pull grabs all it can meanwhile
        clock.sleep(seconds)
        greedy()

    person = SharedWindowLimiter(
        SQLiteWindowStorage(path, clock=clock), key, 60, clock=clock, sleep=sleep
    )
    start = clock.now
    while clock.now < start + pull_started + 60:  # the pull has run for a while
        greedy()
        clock.advance(0.5)
    began = clock.now
    for _ in range(20):
        greedy()
        slot = person.acquire_slot()
        assert slot is not None
        clock.advance(0.2)  # the answer takes 0.2 s
        slot.complete()
    assert clock.now - began <= 30.0
    assert pull.in_window() <= 60


def test_processes_hammering_one_window_never_exceed_it(
    tmp_path: Path, redis_url: str, key: str
) -> None:
    """Three real processes call allow() 60 times each on a window of 50 per minute, on the file
    and on Redis: exactly 50 pass on each."""
    code = (
        "import sys\n"
        "from toolkit.budget import SharedWindowLimiter\n"
        "from toolkit.budget.sqlitestore import SQLiteWindowStorage\n"
        "from toolkit.budget.redisstore import RedisWindowStorage\n"
        "path, url, key = sys.argv[1:]\n"
        "for s in (SQLiteWindowStorage(path), RedisWindowStorage(url)):\n"
        "    lim = SharedWindowLimiter(s, key, 50, 60.0)\n"
        "    print(sum(lim.allow() for _ in range(60)))\n"
    )
    args = [str(tmp_path / "rate_budget.sqlite"), redis_url, key]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    passed = [[int(n) for n in p.communicate(timeout=60)[0].split()] for p in procs]
    assert [sum(column) for column in zip(*passed, strict=True)] == [50, 50], passed


def test_state_round_trips_and_rules_are_pure() -> None:
    state = WindowState()
    rule = Rule(limit=2, window=10.0)
    from toolkit.budget.window import complete, try_acquire

    assert try_acquire(state, 100.0, rule, "me", "a") == 0.0
    complete(state, 101.0, "a", "me")
    again = WindowState.loads(state.dumps())
    assert [(e.id, e.stamp, e.pending) for e in again.entries] == [("a", 101.0, False)]
    assert again.limit == 2 and again.window == 10.0


def test_the_budget_is_keyed_by_api_host_not_token() -> None:
    assert api_host("https://api.discogs.com") == "api.discogs.com"
    assert api_host("http://127.0.0.1:5000/") == "127.0.0.1:5000"


def test_settings_read_the_budget_variables(tmp_path: Path) -> None:
    env = {
        "TOOLKIT_REDIS_URL": "redis://:secret@example:6379/0",
        "TOOLKIT_RATE_RESERVE": "7",
        "TOOLKIT_SHARED_BUDGET": "false",
    }
    settings = Settings.from_env(env, env_file=None)
    assert settings.redis_url == env["TOOLKIT_REDIS_URL"]
    assert settings.rate_reserve == 7 and not settings.shared_budget
    assert "secret" not in repr(settings)
    with pytest.raises(ConfigError, match="TOOLKIT_REDIS_URL"):
        Settings.from_env({"TOOLKIT_REDIS_URL": "http://x"}, env_file=None)
    with pytest.raises(ConfigError, match="TOOLKIT_RATE_RESERVE"):
        Settings.from_env({"TOOLKIT_RATE_RESERVE": "-1"}, env_file=None)


def test_an_unreachable_redis_is_a_budget_error_without_its_password() -> None:
    url = "redis://:hunter2@127.0.0.1:1/0"  # port 1: nothing listens
    with pytest.raises(BudgetError) as info:
        RedisWindowStorage(url)
    assert "hunter2" not in str(info.value)
    assert redis_where(url) in str(info.value)


def test_an_unusable_budget_file_is_a_budget_error(tmp_path: Path) -> None:
    bad = tmp_path / "rate_budget.sqlite"
    bad.write_bytes(b"not a database at all " * 100)
    storage = SQLiteWindowStorage(bad)
    with pytest.raises(BudgetError, match="cannot be opened"):
        storage.read("x")
    storage.close()


def test_a_client_shares_the_budget_by_default_and_can_opt_out(tmp_path: Path) -> None:
    from toolkit.discogs.client import DiscogsClient
    from toolkit.ratelimit import SlidingWindowLimiter

    with DiscogsClient("t", cache_path=":memory:", settings=Settings(data_dir=tmp_path)) as client:
        limiter = client.limiter
        assert isinstance(limiter, SharedWindowLimiter)
        assert limiter.key == "api.discogs.com" and limiter.reserve == 5
        assert client.budget_reporter is not None
        info = client.budget_reporter.info()
        assert info["activity"] == "idle" and info["network_requests"] == 0.0
        assert "t" not in json.dumps(info).split('"')  # the token is never published
    private = Settings(data_dir=tmp_path, shared_budget=False)
    with DiscogsClient("t", cache_path=":memory:", settings=private) as client:
        assert type(client.limiter) is SlidingWindowLimiter
        assert client.budget_reporter is None


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_status_reads_the_window_and_every_process_from_the_shared_state(
    tmp_path: Path, clock: FakeClock, key: str
) -> None:
    from toolkit.budget.monitor import format_status, read_status

    storage = SQLiteWindowStorage(tmp_path / "rate_budget.sqlite", clock=clock)
    limiter = SharedWindowLimiter(storage, key, 10, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        slot = limiter.acquire_slot(timeout=0)
        assert slot is not None
        slot.complete()
    pulling = {
        "pid": 4242, "host": "other-machine", "activity": "pull ann: releases", "done": 50,
        "total": 150, "activity_since": clock.now - 100, "updated": clock.now, "interval": 1.0,
        "network_requests": 40, "cache_hits": 10, "memory_hits": 0, "rate_limited": 2,
        "background": True,
    }  # fmt: skip
    storage.publish(key, "other-machine:4242:x", pulling)
    import socket

    dead = _dead_pid()
    storage.publish(
        key, "me:dead:y", {"pid": dead, "host": socket.gethostname(), "updated": clock.now}
    )
    status = read_status(storage)
    (host,) = [h for h in status.hosts if h.key == key]
    assert (host.used, host.limit, host.pending) == (3, 10, 0)
    by_pid = {p.pid: p for p in host.processes}
    pull = by_pid[4242]
    assert pull.state == "running" and pull.eta_seconds == pytest.approx(200.0)
    assert pull.cache_hit_rate == pytest.approx(0.2) and pull.rate_limited == 2
    assert by_pid[dead].state == "gone"
    clock.advance(30.0)
    assert {p.pid: p.state for p in read_status(storage).hosts[0].processes}[4242] == (
        "not responding"
    )
    text = format_status(status)
    assert "3/10 requests" in text and "pid 4242 on other-machine" in text
    assert "50/150, ETA 3.3 min" in text and "2 x 429, cache hits 20%" in text
    storage.close()


def test_status_command_and_redis_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    redis_url: str, key: str,
) -> None:  # fmt: skip
    from toolkit.cli import main

    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(tmp_path))
    assert main(["status"]) == 0
    assert "no requests made through it yet" in capsys.readouterr().out
    storage = RedisWindowStorage(redis_url)
    limiter = SharedWindowLimiter(storage, key, 60)
    assert limiter.allow()
    assert main(["status", "--redis", redis_url]) == 0
    out = capsys.readouterr().out
    assert redis_where(redis_url) in out and f"{key}: 1/60 requests" in out
    storage.close()
    with pytest.raises(SystemExit) as usage:
        main(["pull", "--redis", "http://nope"])
    assert usage.value.code == 2


def test_monitor_refreshes_and_charts_requests_per_window(tmp_path: Path, key: str) -> None:
    from toolkit.budget.monitor import Monitor
    from toolkit.testing import wait_until

    storage = SQLiteWindowStorage(tmp_path / "rate_budget.sqlite")
    limiter = SharedWindowLimiter(SQLiteWindowStorage(storage.path), key, 60, 1.0)
    shown: list[str] = []
    watcher = Monitor(storage, shown.append, interval=0.01)
    for _ in range(5):
        slot = limiter.acquire_slot()
        assert slot is not None
        slot.complete()
    wait_until(lambda: any("5/60" in markup for markup in shown), "the display to update")
    watcher.stop()  # as notebook 01 does once its pull is over: the chart comes after
    figure = watcher.chart(path=tmp_path / "budget-windows.png")
    assert figure.axes and figure.axes[0].patches  # one bar per window and process
    assert (tmp_path / "budget-windows.png").stat().st_size > 0
    watcher.close()
    limiter.storage.close()


def test_the_http_cache_can_follow_the_budget_onto_redis(tmp_path: Path, redis_url: str) -> None:
    """Two machines (two data dirs) on one Redis: the second gets the first's answer from the
    shared HTTP cache, and the token is nowhere in Redis."""
    import redis

    from toolkit.discogs.client import DiscogsClient
    from toolkit.discogs.simdata import SimCatalogue
    from toolkit.discogs.simulator import DiscogsSimulator

    token = f"tok{uuid.uuid4().hex}"
    with DiscogsSimulator(SimCatalogue(releases=50, seed=3), rate_limit=1000, latency=0.0) as sim:
        rid = sim.catalogue.release_ids()[0]
        answers = []
        for machine in ("one", "two"):
            settings = Settings(
                data_dir=tmp_path / machine, redis_url=redis_url, redis_http_cache=True
            )
            with DiscogsClient(token, base_url=sim.url, settings=settings) as client:
                assert client.cache_path is None  # not the data dir's file
                answers.append(client.get_release(rid))
                stats = client.stats()
        assert answers[0] == answers[1]
        assert (stats.network_requests, stats.cache_hits) == (0, 1)
    connection = redis.Redis.from_url(redis_url)
    try:
        for name in connection.scan_iter("discogs-toolkit:*"):
            kind = connection.type(name)
            values = [connection.get(name)] if kind == b"string" else []
            if kind == b"hash":
                values = list(connection.hgetall(name).values())
            assert all(token.encode() not in (v or b"") for v in values)
    finally:
        connection.close()
    assert not (tmp_path / "one" / "http_cache.sqlite").exists()


def test_toolkit_monitor_opens_the_settings_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import toolkit

    watcher = toolkit.monitor(Settings(data_dir=tmp_path), interval=0.01)
    try:
        assert watcher.storage.where == str(tmp_path / "rate_budget.sqlite")
        assert watcher.refresh().hosts == []
    finally:
        watcher.close()
    capsys.readouterr()  # outside a notebook IPython's display prints a placeholder


def test_watch_redraws_the_status(tmp_path: Path) -> None:
    from toolkit.budget.monitor import watch

    storage = SQLiteWindowStorage(tmp_path / "rate_budget.sqlite")
    screens: list[str] = []
    watch(storage, screens.append, interval=0.0, rounds=2)
    storage.close()
    assert len(screens) == 2
    assert all(s.startswith("\x1b[2J\x1b[H") and "shared rate budget" in s for s in screens)


def test_another_program_on_the_address_slows_every_process_down(tmp_path: Path) -> None:
    """The simulator has 6 requests of someone else in its window when we first show up: the
    first answer's Remaining tells one process, and the other holds back too (no 429)."""
    from toolkit.discogs.client import DiscogsClient
    from toolkit.discogs.simdata import SimCatalogue
    from toolkit.discogs.simulator import DiscogsSimulator

    with DiscogsSimulator(
        SimCatalogue(releases=50, seed=4), rate_limit_unauthenticated=10, window=1.0,
        pre_used=6, latency=0.0, jitter=0.0,
    ) as sim:  # fmt: skip
        ids = sim.catalogue.release_ids()
        clients = []
        for _process in range(2):  # each its own connection, as two processes would have
            storage = SQLiteWindowStorage(tmp_path / "rate_budget.sqlite")
            limiter = SharedWindowLimiter(storage, api_host(sim.url), 10, 1.0)
            clients.append(
                DiscogsClient("", base_url=sim.url, limiter=limiter, cache_path=":memory:")
            )
        one, two = clients
        one.get_release(ids[0])  # the answer says 3 remain: 6 + 1 of 10 used
        assert two.limiter.get_tokens() == 3.0
        for rid in ids[1:5]:  # the fourth waits for the window instead of being refused
            two.get_release(rid)
        assert sim.stats().throttled == 0
        assert two.stats().limiter_wait_seconds > 0
        for client in clients:
            client.close()
            assert isinstance(client.limiter, SharedWindowLimiter)
            client.limiter.storage.close()  # a limiter passed in is the caller's to close


# ----------------------------------------------------------------- SQLite lock retries


def test_retry_while_locked_waits_out_a_lock_and_nothing_else() -> None:
    import sqlite3

    from toolkit.sqlitewait import retry_while_locked

    def attempts(*outcomes: str | None) -> tuple[list[int], Callable[[], str]]:
        """An action meeting ``outcomes`` in turn, the last one for ever (an error message, or
        None: it returns "opened"), and the list of its calls."""
        calls: list[int] = []

        def action() -> str:
            calls.append(1)
            outcome = outcomes[min(len(calls), len(outcomes)) - 1]
            if outcome is not None:
                raise sqlite3.OperationalError(outcome)
            return "opened"

        return calls, action

    calls, locked_twice = attempts("database is locked", "database is locked", None)
    assert retry_while_locked(locked_twice, 5.0) == "opened"
    assert len(calls) == 3

    calls, broken = attempts("no such table: responses")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_while_locked(broken, 5.0)
    assert len(calls) == 1  # not a lock: raised at once

    calls, always_busy = attempts("database is busy")
    with pytest.raises(sqlite3.OperationalError, match="busy"):
        retry_while_locked(always_busy, 0.01)
    assert len(calls) >= 2  # tried again until the time was up, then raised
