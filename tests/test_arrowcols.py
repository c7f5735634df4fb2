"""Arrow columns built from buffers agree with ``pa.array``, and a pull never imports pandas.

(pytest has pandas loaded, so ``column`` would take ``pa.array`` here: the tests call
``from_buffers``, the path of a process without pandas, directly.)"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from toolkit.arrowcols import from_buffers, table
from toolkit.collection import TABLES
from toolkit.config import ENV_FILE_VARIABLE
from toolkit.discogs.simdata import SimCatalogue
from toolkit.discogs.simulator import DiscogsSimulator

CASES: list[tuple[list[Any], pa.DataType]] = [
    ([1, None, -3, 2**63 - 1, -(2**63)], pa.int64()),
    ([7, None, -(2**31), 2**31 - 1], pa.int32()),
    ([1.5, None, -0.0, 1e308, float("inf")], pa.float64()),
    (["a", None, "héllo", "", "日本語", "🎵" * 40], pa.string()),
    ([True, None, False, True, True, False, False, False, True], pa.bool_()),
    (
        [
            datetime(2020, 8, 6, 12, 30, 15, 123456),
            None,
            datetime(1950, 1, 1),
            datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC).replace(tzinfo=None),
        ],
        pa.timestamp("us"),
    ),
    ([], pa.string()),
    ([], pa.int64()),
    ([None, None, None], pa.int64()),
    ([None], pa.string()),
    ([None] * 17, pa.bool_()),
    (["a\x00b", "", None, "\x00"], pa.string()),  # NUL characters: the per-value path
    ([datetime(1970, 1, 1), datetime(1970, 1, 1), None, datetime(2000, 2, 29)], pa.timestamp("us")),
]


@pytest.mark.parametrize(("values", "kind"), CASES, ids=lambda case: str(case)[:20])
def test_column_equals_pa_array(values: list[Any], kind: pa.DataType) -> None:
    built = from_buffers(values, kind)
    built.validate(full=True)
    assert built.equals(pa.array(values, type=kind))
    assert built.null_count == values.count(None)


def test_every_schema_type_is_built_from_buffers_and_agrees_at_scale() -> None:
    """Each type the collection schema uses, 10,000 values with nulls sprinkled, as pa.array."""
    start = datetime(2000, 1, 1)
    make = {
        pa.int64(): lambda i: i * 1_000_003,
        pa.int32(): lambda i: i - 5_000,
        pa.float64(): lambda i: i / 7,
        pa.string(): lambda i: f"title {i} é" * (i % 3),
        pa.bool_(): lambda i: i % 3 == 0,
        pa.timestamp("us"): lambda i: start + timedelta(seconds=i * 997, microseconds=i),
    }
    kinds = {kind for spec in TABLES.values() for _, kind in spec}
    assert kinds <= set(make), kinds - set(make)
    for kind in kinds:
        values = [None if i % 11 == 0 else make[kind](i) for i in range(10_000)]
        assert from_buffers(values, kind).equals(pa.array(values, type=kind)), kind


def test_table_names_and_types_follow_the_spec() -> None:
    spec = TABLES["releases"]
    rows = [tuple(None for _ in spec)]
    built = table(list(zip(*rows, strict=True)), spec)
    assert built.column_names == [name for name, _ in spec]
    assert [field.type for field in built.schema] == [kind for _, kind in spec]


def test_text_that_is_not_unicode_raises() -> None:
    with pytest.raises(UnicodeEncodeError):
        from_buffers(["fine", "\udc80"], pa.string())


def test_integer_out_of_range_raises() -> None:
    with pytest.raises(OverflowError):
        from_buffers([2**63], pa.int64())


PROBE = """
import runpy, sys
sys.argv = ["discogs-toolkit", *sys.argv[1:]]
try:
    runpy.run_module("toolkit", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("PANDAS" if "pandas" in sys.modules else "NO-PANDAS", code, file=sys.stderr)
"""


def test_a_cli_pull_with_details_into_duckdb_never_imports_pandas(tmp_path: Path) -> None:
    """pandas is ~45 MiB of a pull's peak memory (bench row 14) and a pull makes no frame."""
    catalogue = SimCatalogue(releases=400, seed=3)
    catalogue.user("nopandas", items=60)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISCOGS_", "TOOLKIT_", "CONCURRENCY_", "CACHE_"))
    }
    env[ENV_FILE_VARIABLE] = ""
    with DiscogsSimulator(
        catalogue, rate_limit=100_000, rate_limit_unauthenticated=100_000, latency=0.0, jitter=0.0
    ) as server:
        env.update(DISCOGS_API_URL=server.url, TOOLKIT_DATA_DIR=str(tmp_path / "data"))
        done = subprocess.run(
            [
                *(sys.executable, "-c", PROBE, "pull", "--username", "nopandas", "--no-progress"),
                *("--db", str(tmp_path / "c.duckdb"), "--per-page", "25"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        releases = sum(1 for r in server.request_log if r.path.startswith("/releases/"))
    assert done.stderr.strip().splitlines()[-1] == "NO-PANDAS 0", done.stderr[-2000:]
    assert releases > 0  # the details were written through Arrow, not skipped
