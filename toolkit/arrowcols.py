"""Python columns → Arrow arrays, built from buffers (numpy) instead of ``pa.array``.

``pa.array`` asks pandas whether a Python list is a pandas object, which imports pandas (~45 MiB
of RSS) the first time it runs in a process. A pull writes every page and batch through Arrow
and needs no pandas at all, so its columns are built here: the same values, types and nulls as
``pa.array(values, type=kind)`` for the six types the collection schema uses (a test holds the
two to agreement).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["column", "table"]

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_NUMBERS: dict[pa.DataType, type[np.generic]] = {
    pa.int64(): np.int64,
    pa.int32(): np.int32,
    pa.float64(): np.float64,
}


def _validity(values: Sequence[Any], n: int) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap of ``values`` (None where no value is null) and the null count."""
    if None not in values:
        return None, 0
    valid = np.fromiter((value is not None for value in values), dtype=np.bool_, count=n)
    nulls = n - int(np.count_nonzero(valid))
    return pa.py_buffer(np.packbits(valid, bitorder="little")), nulls


def _micros(value: datetime) -> int:
    """Microseconds since the epoch, as Arrow stores ``timestamp("us")`` (naive = wall clock)."""
    epoch = _EPOCH if value.tzinfo is None else _EPOCH_UTC
    delta = value - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def column(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``values`` (Python objects, None for null) as an Arrow array of type ``kind``.

    The values must already be of ``kind`` (the collection parser sees to that): a float in an
    integer column is truncated here where ``pa.array`` would refuse it. An integer out of range
    raises OverflowError, text that is not valid UTF-8 (a lone surrogate) UnicodeEncodeError.
    """
    n = len(values)
    validity, nulls = _validity(values, n)
    if kind == pa.string():
        encoded = [b"" if value is None else value.encode() for value in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
        if offsets[-1] >= 2**31:
            return pa.array(values, type=kind)  # too big for 32-bit offsets: Arrow chunks it
        data = pa.py_buffer(b"".join(encoded))
        buffers = [validity, pa.py_buffer(offsets.astype(np.int32)), data]
        return pa.Array.from_buffers(kind, n, buffers, null_count=nulls)
    if kind == pa.bool_():
        bits = np.fromiter((bool(value) for value in values), dtype=np.bool_, count=n)
        data = pa.py_buffer(np.packbits(bits, bitorder="little"))
        return pa.Array.from_buffers(kind, n, [validity, data], null_count=nulls)
    if kind == pa.timestamp("us"):
        micros = np.fromiter(
            (0 if value is None else _micros(value) for value in values), dtype=np.int64, count=n
        )
        return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(micros)], null_count=nulls)
    dtype = _NUMBERS.get(kind)
    if dtype is None:
        return pa.array(values, type=kind)
    numbers = np.fromiter((0 if value is None else value for value in values), dtype=dtype, count=n)
    return pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(numbers)], null_count=nulls)


def table(columns: Sequence[Sequence[Any]], spec: Sequence[tuple[str, pa.DataType]]) -> pa.Table:
    """An Arrow table of ``columns`` named and typed by ``spec`` (``(name, type)`` pairs)."""
    return pa.table(
        [column(values, kind) for (_, kind), values in zip(spec, columns, strict=True)],
        names=[name for name, _ in spec],
    )
