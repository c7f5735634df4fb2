"""Query results as pandas DataFrames with one dtype rule on both engines (see ``Database.df``).

Kept apart from :mod:`toolkit.db` so that only code which asks for a frame imports pandas: a pull
or a CLI command that never makes one does not pay its ~45 MiB.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

__all__ = ["duckdb_frame", "frame", "sqlite_frame"]


def _empty_column(length: int) -> Any:
    return pd.array([None] * length, dtype=object)


def _sqlite_column(values: list[Any]) -> Any:
    """One sqlite result column as a pandas array, typed by its values (the rule in ``df``)."""
    kinds = {type(value) for value in values}
    kinds.discard(type(None))
    if not kinds:
        return _empty_column(len(values))
    if kinds == {int}:
        return pd.array(values, dtype="Int64")
    if kinds <= {int, float}:
        return pd.Series(values, dtype="float64").array
    if kinds == {str}:
        return pd.Series(values).array  # pandas' default string dtype
    if kinds == {bool}:
        return pd.array(values, dtype="boolean")
    if kinds <= {datetime, date}:
        return pd.Series(pd.to_datetime(values)).astype("datetime64[us]").array
    return pd.array(values, dtype=object)


def _duckdb_column(series: pd.Series, duckdb_type: str) -> Any:
    """One DuckDB result column, converted to the dtype the ``df`` rule gives it."""
    if series.isna().all():
        return _empty_column(len(series))
    dtype = series.dtype
    # DuckDB's sum() of integers is a 128-bit HUGEINT, which its pandas conversion turns into
    # float64; sqlite's sum() is a 64-bit integer. Give both Int64 when the values fit.
    if (
        duckdb_type == "HUGEINT"
        and pd.api.types.is_float_dtype(dtype)
        and bool((series.dropna().abs() < 2.0**63).all())
    ):
        return series.astype("Int64").array
    if pd.api.types.is_bool_dtype(dtype):
        return series.astype("boolean").array
    if pd.api.types.is_integer_dtype(dtype):
        wide_unsigned = str(dtype).lower() == "uint64"
        return series.astype("UInt64" if wide_unsigned else "Int64").array
    if pd.api.types.is_float_dtype(dtype):
        return series.astype("float64").array
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return series.array
    if (
        pd.api.types.is_object_dtype(dtype)
        and pd.api.types.infer_dtype(series, skipna=True) == "string"
    ):
        return pd.Series(series.tolist()).array
    return series.array


def frame(names: Sequence[str], columns: Sequence[Any]) -> pd.DataFrame:
    frame = pd.DataFrame(dict(enumerate(columns)))
    frame.columns = pd.Index(list(names))
    return frame


def duckdb_frame(raw: pd.DataFrame, description: Sequence[Any]) -> pd.DataFrame:
    types = [str(entry[1]) for entry in description]
    columns = [_duckdb_column(raw.iloc[:, i], types[i]) for i in range(raw.shape[1])]
    return frame([str(name) for name in raw.columns], columns)


def sqlite_frame(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """sqlite rows as a frame, each column typed by its values."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return frame(names, [_sqlite_column(list(column)) for column in columns])
