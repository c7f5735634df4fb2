"""Python columns → Arrow arrays, without making pyarrow import pandas.

``pa.array`` asks pandas whether a Python list is a pandas object, which imports pandas (~45 MiB
of RSS) the first time it runs in a process. A pull writes every page and batch through Arrow
and needs no pandas at all. So :func:`column` uses ``pa.array`` (the fastest converter) only when
pandas is loaded anyway (a notebook, the benchmarks); otherwise it builds the array from buffers
with numpy: the same values, types and nulls for the six types the collection schema uses (a test
holds :func:`from_buffers` to agreement with ``pa.array``), at about a third of its speed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["column", "from_buffers", "table"]

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_NUMBERS: dict[pa.DataType, type[np.generic]] = {
    pa.int64(): np.int64,
    pa.int32(): np.int32,
    pa.float64(): np.float64,
    pa.bool_(): np.bool_,
}
_SEPARATOR = "\x00"


def column(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``values`` (Python objects, None for null) as an Arrow array of type ``kind``."""
    if "pandas" in sys.modules:  # pyarrow's pandas probe is free now: its own converter is fastest
        return pa.array(values, type=kind)
    return from_buffers(values, kind)


def table(columns: Sequence[Sequence[Any]], spec: Sequence[tuple[str, pa.DataType]]) -> pa.Table:
    """An Arrow table of ``columns`` named and typed by ``spec`` (``(name, type)`` pairs)."""
    return pa.table(
        [column(values, kind) for (_, kind), values in zip(spec, columns, strict=True)],
        names=[name for name, _ in spec],
    )


def from_buffers(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of type ``kind``, built from numpy buffers (no pandas).

    The values must already be of ``kind`` (the collection parser sees to that): a float in an
    integer column is truncated, and any object is true in a boolean one, where ``pa.array`` would
    refuse them. Text that is not valid UTF-8 (a lone surrogate) raises UnicodeEncodeError.
    """
    n = len(values)
    nulls = 0 if None not in values else sum(1 for value in values if value is None)
    validity = None
    if nulls:
        valid = np.array([value is not None for value in values], dtype=np.bool_)
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    if kind == pa.string():
        return _strings(values, n, validity, nulls)
    if kind == pa.timestamp("us"):
        memo: dict[datetime, int] = {}
        micros = np.array(
            [0 if value is None else memo.get(value) or _micros(value, memo) for value in values],
            dtype=np.int64,
        )
        return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(micros)], null_count=nulls)
    dtype = _NUMBERS.get(kind)
    if dtype is None:
        return pa.array(values, type=kind)
    if nulls:
        data = np.array([0 if value is None else value for value in values], dtype=dtype)
    else:
        data = np.fromiter(values, dtype=dtype, count=n)
    if dtype is np.bool_:
        data = np.packbits(data, bitorder="little")
    return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(data)], null_count=nulls)


def _micros(value: datetime, memo: dict[datetime, int]) -> int:
    """Microseconds since the epoch, as Arrow stores ``timestamp("us")`` (naive = wall clock)."""
    delta = value - (_EPOCH if value.tzinfo is None else _EPOCH_UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    memo[value] = micros
    return micros


def _strings(values: Sequence[Any], n: int, validity: pa.Buffer | None, nulls: int) -> pa.Array:
    """A string array: all the text joined and encoded once, split again at the separators."""
    texts = [value if value is not None else "" for value in values] if nulls else values
    joined = _SEPARATOR.join(texts)
    raw = joined.encode()
    if n == 0 or joined.count(_SEPARATOR) != n - 1:  # empty, or NUL characters in the text
        encoded = [text.encode() for text in texts]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
        data: Any = b"".join(encoded)
    else:
        octets = np.frombuffer(raw, dtype=np.uint8)
        cuts = np.flatnonzero(octets == 0)
        keep = np.ones(len(octets), dtype=np.bool_)
        keep[cuts] = False
        data = octets[keep]
        offsets = np.empty(n + 1, dtype=np.int64)
        offsets[0] = 0
        offsets[1:n] = cuts - np.arange(n - 1)
        offsets[n] = len(data)
    if offsets[-1] >= 2**31:
        return pa.array(list(values), type=pa.string())  # too big for 32-bit offsets
    buffers = [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string(), n, buffers, null_count=nulls)
