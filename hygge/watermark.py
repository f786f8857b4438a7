"""Watermark values: which column types qualify, their text form in the journal, and tracking the max.

The incremental predicate is inclusive (`col >= previous max`, optionally minus a lookback) so rows
sharing the previous maximum or committing late are read again; the runner removes what already
landed (merge on the primary key, or a multiset difference against the store's rows in that window).

SQL Server `rowversion` columns are the exception: a read is bounded above by MIN_ACTIVE_ROWVERSION()
(read first), and that ceiling, not the maximum seen, is journaled, so windows never overlap
(`SqlHome.watermark_ceiling`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import ConfigError

WatermarkValue = int | Decimal | dt.date | dt.datetime | str | bytes  # bytes: an 8-byte rowversion

ROWVERSION_BYTES = 8


def kind_of(arrow_type: pa.DataType) -> str | None:
    """The watermark kind of a pinned column type, or None when the type cannot be a watermark."""
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "datetime_tz" if arrow_type.tz else "datetime"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    return None


def check_column(schema: pa.Schema, column: str, rowversion: Collection[str] = ()) -> str:
    """Validate a watermark column against the pinned schema; returns its kind.

    `rowversion` names the columns the source says are SQL Server rowversions (`SqlHome.rowversion_columns`):
    only those binary columns qualify, as kind "rowversion"; any other binary column is refused.
    """
    index = schema.get_field_index(column)
    if index < 0:
        raise ConfigError(
            f"watermark column '{column}' is not in the source",
            hint=f"use one of: {', '.join(schema.names)}",
            field="watermark.watermark_column",
        )
    arrow_type = schema.field(index).type
    if column in rowversion and pa.types.is_binary(arrow_type):
        return "rowversion"
    kind = kind_of(arrow_type)
    if kind is None:
        hint = "use an integer, decimal, date, datetime or string column"
        if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
            hint += " (a binary column qualifies only as a SQL Server rowversion/timestamp column)"
        raise ConfigError(
            f"watermark column '{column}' has type {arrow_type}, which cannot be a watermark",
            hint=hint,
            field="watermark.watermark_column",
        )
    return kind


def rowversion_from_text(text: str) -> bytes:
    """A rowversion's 8 bytes from its text form, '0x' and 16 hex digits (either case)."""
    digits = text.strip()
    if digits[:2].lower() != "0x" or len(digits) != 2 + 2 * ROWVERSION_BYTES:
        raise ValueError(f"a rowversion is written 0x and 16 hex digits, not {text!r}")
    try:
        return bytes.fromhex(digits[2:])
    except ValueError:
        raise ValueError(f"a rowversion is written 0x and 16 hex digits, not {text!r}") from None


def to_text(value: WatermarkValue, kind: str) -> str:
    if kind == "rowversion":
        assert isinstance(value, bytes) and len(value) == ROWVERSION_BYTES, value
        return "0x" + value.hex().upper()  # fixed width: text order is the counter's order
    if kind in ("datetime", "datetime_tz"):
        assert isinstance(value, dt.datetime)
        if kind == "datetime_tz":
            value = value.astimezone(dt.UTC)
        return value.isoformat(timespec="microseconds")
    if kind == "date":
        return value.isoformat()  # type: ignore[union-attr]
    if kind == "decimal":
        return format(value, "f")
    return str(value)


def from_text(text: str, kind: str) -> WatermarkValue:
    if kind == "int":
        return int(text)
    if kind == "decimal":
        return Decimal(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "datetime":
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    if kind == "datetime_tz":
        value = dt.datetime.fromisoformat(text)
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    if kind == "string":
        return text
    if kind == "rowversion":
        return rowversion_from_text(text)
    raise ValueError(f"unknown watermark kind {kind}")


def lower_bound(previous: WatermarkValue, kind: str, lookback: float | None) -> WatermarkValue:
    """Where the next read starts: the previous maximum itself, less the lookback (a rowversion's
    journaled ceiling is exact: nothing below it can still commit, so it takes no lookback)."""
    if not lookback or kind == "rowversion":
        return previous
    if kind in ("datetime", "datetime_tz"):
        return previous - dt.timedelta(seconds=lookback)  # type: ignore[operator]
    if kind == "date":
        return previous - dt.timedelta(days=max(1, round(lookback / 86400)))  # type: ignore[operator]
    if kind == "int":
        return previous - int(lookback)  # type: ignore[operator]
    if kind == "decimal":
        return previous - Decimal(str(lookback))  # type: ignore[operator]
    return previous


@dataclass
class MaxTracker:
    """Keeps the running maximum of one column over the batches that pass through."""

    column: str
    kind: str
    value: WatermarkValue | None = None
    nulls: int = 0

    def update(self, batch: pa.RecordBatch) -> None:
        array = batch.column(batch.schema.get_field_index(self.column))
        self.nulls += array.null_count
        if len(array) == array.null_count:
            return
        found: Any = pc.max(array).as_py()
        if self.kind == "datetime_tz" and found.tzinfo is None:
            found = found.replace(tzinfo=dt.UTC)
        if self.value is None or found > self.value:
            self.value = found
