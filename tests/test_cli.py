"""The ``discogs-toolkit`` command: pull/stats/query/cache, exit codes and one-line error messages."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.cli import main
from toolkit.config import ENV_FILE_VARIABLE
from toolkit.discogs.simdata import DEMO_ITEMS, SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator
from toolkit.pull import LAST_NETWORK_PULL_FILE, LAST_PULL_FILE, PullReport

FAST = 100_000
TOKEN = "tok-Sup3rSecret-4ab9e1"


@pytest.fixture(scope="module")
def catalogue() -> SimCatalogue:
    catalogue = SimCatalogue(releases=2000, seed=11)
    catalogue.user("clara", items=45)
    return catalogue


@pytest.fixture
def sim(catalogue: SimCatalogue) -> Iterator[DiscogsSimulator]:
    with DiscogsSimulator(
        catalogue,
        rate_limit=FAST,
        rate_limit_unauthenticated=FAST,
        latency=0.0,
        jitter=0.0,
    ) as server:
        yield server


def _clean_environ() -> dict[str, str]:
    """The environment without the settings a test set, and still with no ``.env`` (conftest)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISCOGS_", "TOOLKIT_", "CONCURRENCY_", "CACHE_"))
    }
    env[ENV_FILE_VARIABLE] = ""
    return env


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with nothing configured (conftest) but a private data dir (returned)."""
    data = tmp_path / "data"
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(data))
    monkeypatch.setenv("DISCOGS_RATE_LIMIT", str(FAST))
    return data


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("discogs-toolkit: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])


# ---------------------------------------------------------------------------- happy paths


def test_pull_then_stats_query_and_cache(
    sim: DiscogsSimulator,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DISCOGS_API_URL", sim.url)
    code, out, _ = run(["pull", "--username", "clara", "--no-progress"], capsys)
    assert code == 0
    assert re.search(r"^items +45$", out, re.MULTILINE)
    assert "rate_bound_seconds" in out
    assert (env / "collection.duckdb").is_file()
    saved = PullReport.load(env / LAST_PULL_FILE)  # for notebook 01's "last pull" chart
    assert saved.items == 45 and len(saved.timeline) == saved.network_requests > 0
    assert PullReport.load(env / LAST_NETWORK_PULL_FILE).as_dict() == saved.as_dict()

    # A warm re-pull only lists the pages: it is the latest pull, but the saved network pull
    # (the one worth charting against the rate limit) stays the cold one.
    code, _, _ = run(["pull", "--username", "clara", "--no-progress"], capsys)
    assert code == 0
    warm = PullReport.load(env / LAST_PULL_FILE)
    assert warm.release_requests == 0 and warm.network_requests == warm.pages
    kept = PullReport.load(env / LAST_NETWORK_PULL_FILE)
    assert kept.as_dict() == saved.as_dict() and kept.release_requests == kept.releases_fetched > 0

    code, out, _ = run(["stats"], capsys)
    assert code == 0
    assert "items       45" in out
    assert "top genres" in out and "years" in out

    code, out, _ = run(
        ["query", "SELECT count(*) AS n FROM collection_items", "--format", "json"], capsys
    )
    assert code == 0 and json.loads(out) == [{"n": 45}]
    code, out, _ = run(
        [
            "query",
            "SELECT rating, count(*) AS n FROM collection_items GROUP BY 1 ORDER BY 1",
            "--format",
            "csv",
        ],
        capsys,
    )
    assert code == 0 and out.splitlines()[0] == "rating,n"
    code, out, _ = run(["query", "SELECT 41 + 1 AS answer"], capsys)
    assert code == 0 and "42" in out

    code, out, _ = run(["cache", "stats"], capsys)
    assert code == 0 and "exists     True" in out
    responses = int(
        next(line.split()[1] for line in out.splitlines() if line.startswith("responses"))
    )
    assert responses > 0
    code, out, _ = run(["cache", "clear"], capsys)
    assert code == 0 and "removed" in out
    assert not (env / "http_cache.sqlite").exists()
    code, out, _ = run(["cache", "stats"], capsys)
    assert "exists     False" in out


def test_pull_into_sqlite_by_suffix(
    sim: DiscogsSimulator,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DISCOGS_API_URL", sim.url)
    target = tmp_path / "c.sqlite"
    code, _, _ = run(
        ["pull", "-u", "clara", "--db", str(target), "--no-details", "--no-progress"], capsys
    )
    assert code == 0
    assert target.read_bytes().startswith(b"SQLite format 3")
    code, out, _ = run(
        [
            "query",
            "SELECT count(*) AS n FROM collection_items",
            "--db",
            str(target),
            "--format",
            "json",
        ],
        capsys,
    )
    assert json.loads(out) == [{"n": 45}]
    assert sim.stats().by_kind.get("release", 0) == 0


@pytest.mark.slow
def test_no_configuration_uses_the_builtin_simulator_and_demo_user(tmp_path: Path) -> None:
    env = _clean_environ()
    env["TOOLKIT_DATA_DIR"] = str(tmp_path / "data")
    # The CLI starts the simulator through toolkit.demo, without the notebook helpers.
    script = (
        "import sys; from toolkit.cli import main; code = main(sys.argv[1:]); "
        "assert 'toolkit.notebook' not in sys.modules; sys.exit(code)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "pull",
            "--no-details",
            "--no-progress",
            "--simulator-rate-limit",
            str(FAST),
            "--simulator-latency",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert "built-in simulator" in first and "'demo'" in first
    assert re.search(rf"^items +{DEMO_ITEMS}$", done.stdout, re.MULTILINE)
    assert (tmp_path / "data" / "collection.duckdb").is_file()


@pytest.mark.slow
def test_token_never_lands_in_data_files_or_output(sim: DiscogsSimulator, tmp_path: Path) -> None:
    env = _clean_environ()
    data = tmp_path / "data"
    env.update(
        DISCOGS_API_URL=sim.url,
        DISCOGS_TOKEN=TOKEN,
        TOOLKIT_DATA_DIR=str(data),
        DISCOGS_RATE_LIMIT=str(FAST),
    )
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", "pull", "-u", "clara"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert sim.stats().by_kind.get("release", 0) > 0
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"collection.duckdb", "http_cache.sqlite"}
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in done.stdout + done.stderr


# ---------------------------------------------------------------------------- failures


def test_unknown_user(
    sim: DiscogsSimulator,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DISCOGS_API_URL", sim.url)
    code, _, err = run(["pull", "-u", "nobody-here", "--no-progress"], capsys)
    assert code == 1
    assert_one_line_error(err, "no user 'nobody-here'", "404")


def test_bad_token(
    catalogue: SimCatalogue,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with DiscogsSimulator(catalogue, tokens={"the-good-one": "clara"}, latency=0.0) as server:
        monkeypatch.setenv("DISCOGS_API_URL", server.url)
        monkeypatch.setenv("DISCOGS_TOKEN", TOKEN)
        code, out, err = run(["pull", "-u", "clara", "--no-progress"], capsys)
    assert code == 1
    assert_one_line_error(err, "refused the token", "401")
    assert TOKEN not in out + err


@pytest.mark.slow
def test_unreachable_server(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DISCOGS_API_URL", f"http://127.0.0.1:{port}")
    code, _, err = run(["pull", "-u", "clara", "--no-progress"], capsys)
    assert code == 1
    assert_one_line_error(err, "could not be reached")


def test_locked_database(
    sim: DiscogsSimulator,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DISCOGS_API_URL", sim.url)
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute('CREATE TABLE t (x INT)');"
            " print('ready', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        code, _, err = run(["pull", "-u", "clara", "--db", str(path), "--no-progress"], capsys)
        assert code == 1
        assert_one_line_error(err, "locked", str(path))
        code, _, err = run(["stats", "--db", str(path)], capsys)
        assert code == 1
        assert_one_line_error(err, "locked")
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert sim.stats().requests == 0  # the database is opened before any request


@pytest.mark.parametrize("suffix", [".duckdb", ".sqlite"])
def test_corrupt_database(
    suffix: str,
    sim: DiscogsSimulator,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DISCOGS_API_URL", sim.url)
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"this is not a database file at all\n" * 200)
    code, _, err = run(["pull", "-u", "clara", "--db", str(path), "--no-progress"], capsys)
    assert code == 1
    assert_one_line_error(err, "cannot open", str(path))
    code, _, err = run(["query", "SELECT 1", "--db", str(path)], capsys)
    assert code == 1
    assert_one_line_error(err, "cannot open")


def test_missing_database(env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["stats", "--db", str(tmp_path / "nope.duckdb")], capsys)
    assert code == 1
    assert_one_line_error(err, "no database", "pull")
    code, _, err = run(["query", "SELECT 1", "--db", str(tmp_path / "x.duckdb")], capsys)
    assert code == 1
    assert_one_line_error(err, "no database")
    assert not (tmp_path / "x.duckdb").exists()  # a query never creates a database


def test_bad_sql_is_one_line(env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "q.duckdb"
    duckdb.connect(str(path)).close()
    code, _, err = run(["query", "SELEC nonsense", "--db", str(path)], capsys)
    assert code == 1
    assert_one_line_error(err, "syntax")


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(where: str, env: Path, tmp_path: Path) -> None:
    from toolkit.errors import DatabaseError

    command = ["stats", "--db", str(tmp_path / "nope.duckdb")]
    argv = ["--debug", *command] if where == "before" else [*command, "--debug"]
    with pytest.raises(DatabaseError):
        main(argv)


def test_stats_on_a_database_that_is_not_the_toolkits(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import duckdb

    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    code, _, err = run(["stats", "--db", str(path)], capsys)
    assert code == 1
    assert_one_line_error(err, f"{path} is not a discogs-toolkit database", "discogs-toolkit pull")


def test_corrupt_http_cache(
    sim: DiscogsSimulator,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DISCOGS_API_URL", sim.url)
    env.mkdir(parents=True)
    (env / "http_cache.sqlite").write_bytes(b"not a cache at all\n" * 300)
    code, _, err = run(["pull", "-u", "clara", "--no-progress"], capsys)
    assert code == 1
    assert_one_line_error(err, "http_cache.sqlite", "cache clear")


def test_data_dir_that_cannot_be_created(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    monkeypatch.setenv("TOOLKIT_DATA_DIR", str(blocker / "data"))
    code, _, err = run(["pull", "--no-progress", "--simulator"], capsys)
    assert code == 1
    assert_one_line_error(
        err, f"cannot create the data directory {blocker / 'data'}", f"{blocker} is a file"
    )


def test_db_whose_parent_is_a_file(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    target = blocker / "sub" / "c.duckdb"
    code, out, err = run(["pull", "--no-progress", "--simulator", "--db", str(target)], capsys)
    assert code == 1
    assert_one_line_error(err, f"folder of the database {target}", f"{blocker} is a file, not a")
    assert "simulator" not in out  # refused before anything was started


def test_db_path_that_is_a_folder(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "dir.duckdb"
    folder.mkdir()
    code, _, err = run(["stats", "--db", str(folder)], capsys)
    assert code == 1
    assert_one_line_error(err, str(folder))


@pytest.mark.parametrize(
    "argv",
    [
        ["pull", "--concurrency", "0"],
        ["pull", "--bogus"],
        ["query"],
        ["query", "SELECT 1", "--format", "xml"],
        ["cache", "purge"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str], tmp_path: Path) -> None:
    env = _clean_environ()
    env["TOOLKIT_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "toolkit", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert "usage:" in done.stderr


def test_username_required_with_a_real_server(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DISCOGS_API_URL", "http://127.0.0.1:9")
    code, _, err = run(["pull", "--no-progress"], capsys)
    assert code == 2 and "--username" in err


# ---------------------------------------------------------------------------- query safety, schema


def _collection_db(tmp_path: Path, suffix: str) -> Path:
    """A small collection database (schema + one detailed release in the collection)."""
    from toolkit.collection import create_schema, load_collection
    from toolkit.db import Database

    path = tmp_path / f"c{suffix}"
    release = {
        "id": 7,
        "title": "Seven",
        "genres": ["Jazz"],
        "tracklist": [{"position": "A1", "title": "One", "duration": "3:00"}],
    }
    item = {"instance_id": 70, "id": 7, "basic_information": {"id": 7, "title": "Seven"}}
    with Database.connect(path) as db:
        create_schema(db)
        load_collection(db, [item], [release], username="clara")
    return path


@pytest.mark.parametrize("suffix", [".duckdb", ".sqlite"])
def test_query_is_read_only_unless_write(
    suffix: str, env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _collection_db(tmp_path, suffix)
    code, _, err = run(["query", "DROP TABLE tracks", "--db", str(path)], capsys)
    assert code == 1
    assert_one_line_error(err, "read-only", "--write")
    code, out, _ = run(["query", "SELECT count(*) AS n FROM tracks", "--db", str(path)], capsys)
    assert code == 0 and out.split() == ["n", "1"]
    code, _, err = run(["query", "DELETE FROM tracks", "--db", str(path), "--write"], capsys)
    assert code == 0, err
    code, out, _ = run(["query", "SELECT count(*) AS n FROM tracks", "--db", str(path)], capsys)
    assert out.split() == ["n", "0"]


@pytest.mark.parametrize("suffix", [".duckdb", ".sqlite"])
def test_a_dropped_table_is_named_with_its_repair(
    suffix: str,
    sim: DiscogsSimulator,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DISCOGS_API_URL", sim.url)
    path = _collection_db(tmp_path, suffix)
    code, _, err = run(["query", "DROP TABLE release_genres", "--db", str(path), "--write"], capsys)
    assert code == 0, err
    for argv in (
        ["stats", "--db", str(path)],
        ["query", "SELECT 1", "--db", str(path)],
        ["pull", "-u", "clara", "--db", str(path), "--no-progress"],
    ):
        code, _, err = run(argv, capsys)
        assert code == 1, argv
        assert_one_line_error(err, "release_genres", f"discogs-toolkit repair --db {path}")
    assert sim.stats().requests == 0
    code, out, _ = run(["repair", "--db", str(path)], capsys)
    assert code == 0
    assert "recreated release_genres" in out
    assert "1 releases will be fetched again" in out
    code, out, _ = run(["stats", "--db", str(path)], capsys)
    assert code == 0
    code, out, _ = run(["repair", "--db", str(path)], capsys)
    assert code == 0 and "nothing missing" in out


def test_explain_suggests_an_index_and_apply_creates_it(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _collection_db(tmp_path, ".sqlite")
    sql = "SELECT count(*) FROM release_genres WHERE genre = 'Jazz'"
    code, out, _ = run(["query", sql, "--db", str(path), "--explain"], capsys)
    assert code == 0
    assert "SCAN release_genres" in out
    assert "CREATE INDEX IF NOT EXISTS ix_release_genres_genre ON release_genres (genre);" in out
    code, out, _ = run(["query", sql, "--db", str(path), "--explain", "--apply"], capsys)
    assert code == 0
    assert "created 1 index(es)" in out
    assert "USING COVERING INDEX ix_release_genres_genre (genre=?)" in out
    code, out, _ = run(["query", sql, "--db", str(path), "--explain"], capsys)
    assert "no index suggested" in out


def test_explain_on_duckdb_says_why_no_index(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _collection_db(tmp_path, ".duckdb")
    sql = "SELECT count(*) FROM release_genres WHERE genre = 'Jazz'"
    code, out, _ = run(["query", sql, "--db", str(path), "--explain"], capsys)
    assert code == 0
    assert "no index suggested: DuckDB scans columnar data" in out
    assert "zone maps" in out


def test_apply_without_explain_is_a_usage_error(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _collection_db(tmp_path, ".sqlite")
    code, _, err = run(["query", "SELECT 1", "--db", str(path), "--apply"], capsys)
    assert code == 2
    assert "--apply needs --explain" in err


def test_cache_stats_and_clear_cover_the_http_cache_on_redis(
    sim: DiscogsSimulator,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    redis_url: str,
) -> None:
    """With TOOLKIT_REDIS_HTTP_CACHE the answers live on Redis: `cache stats|clear` see them too."""
    from urllib.parse import urlsplit, urlunsplit

    from toolkit.config import Settings
    from toolkit.discogs.client import DiscogsClient
    from toolkit.discogs.httpcache import clear_redis_http_cache

    own_db = urlunsplit(urlsplit(redis_url)._replace(path="/9"))  # no other test's answers here
    clear_redis_http_cache(own_db)
    monkeypatch.setenv("DISCOGS_API_URL", sim.url)
    monkeypatch.setenv("TOOLKIT_REDIS_URL", own_db)
    monkeypatch.setenv("TOOLKIT_REDIS_HTTP_CACHE", "true")
    with DiscogsClient.from_settings(Settings.from_env()) as client:
        for rid in sim.catalogue.release_ids()[:3]:
            client.get_release(rid)

    def redis_stats() -> dict[str, str]:
        code, out, _ = run(["cache", "stats"], capsys)
        assert code == 0
        return {line[:10].strip(): line[11:].strip() for line in out.splitlines()}

    stats = redis_stats()
    assert stats["on redis"] == "3" and stats["redis"].endswith("/9")
    assert stats["namespace"] == "discogs-toolkit:http"
    code, out, _ = run(["cache", "clear"], capsys)
    assert code == 0 and "removed 3 answers from the HTTP cache on redis://" in out
    assert redis_stats()["on redis"] == "0"
    # --redis names the server without the environment's switch.
    monkeypatch.delenv("TOOLKIT_REDIS_HTTP_CACHE")
    code, out, _ = run(["cache", "stats"], capsys)
    assert code == 0 and "on redis" not in out
    code, out, _ = run(["cache", "stats", "--redis", own_db], capsys)
    assert code == 0 and "on redis   0" in out
