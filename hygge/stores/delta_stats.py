"""Delta file statistics: row and NULL counts for every column, min/max bounds for the columns whose
bounds have an exact, reader-independent JSON form, and the table property that names those columns.

Bounds are taken from the parquet footer (no data read again). Which columns get them:
- integers and dates: their exact values;
- timestamps: to the microsecond, as deltalake writes them (nanoseconds rounded outward, so a
  bound stays a true bound);
- strings: exact when short; a long one is bounded by its first `PREFIX` characters (the minimum)
  or those plus U+10FFFF (the maximum; a noncharacter, which no text holds). A footer without a
  string's bounds (pyarrow drops bounds over 4 KB) gets the widest bounds instead.
Floats (NaN has no JSON form and no order), decimals (JSON numbers are read as doubles), booleans
and binary get counts only.

Every file must state bounds for every listed column: deltalake's pyarrow reader turns a bound
missing from `minValues` into a NULL bound and skips the file (a filter on such a column then loses
rows: tests/test_delta_stats.py). The table's `delta.dataSkippingStatsColumns` names the columns that
have bounds, so that reader, Spark and polars use bounds only where they exist.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from hygge.stores.files import WrittenFile

PROPERTY = "delta.dataSkippingStatsColumns"
PREFIX = 64  # characters of a string bound
_TOP = chr(0x10FFFF)  # the largest code point: greater than any text character
_WIDEST = ("", _TOP * 2)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EPOCH = dt.datetime(1970, 1, 1)
_LOW, _HIGH = dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
_MIN_US = (_LOW - _EPOCH) // dt.timedelta(microseconds=1)
_MAX_US = (_HIGH - _EPOCH) // dt.timedelta(microseconds=1)


def bounded(field: pa.Field) -> bool:
    """Whether a column of this type gets min/max bounds."""
    kind = field.type
    if "`" in field.name:  # cannot be named in the property
        return False
    return (
        pa.types.is_integer(kind)
        or pa.types.is_date32(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    )


def property_for(schema: pa.Schema) -> dict[str, str]:
    """The table configuration that names the bounded columns (backquoted where the name needs it)."""
    names = [f.name if _PLAIN_NAME.fullmatch(f.name) else f"`{f.name}`" for f in schema if bounded(f)]
    return {PROPERTY: ",".join(names)}


def new_table_configuration(schema: pa.Schema) -> dict[str, str]:
    """What a table hygge creates is configured with: its bounded columns, and checkpoints every 10
    commits (Spark's default, and what Fabric's writers use; deltalake's own is 100)."""
    return {**property_for(schema), "delta.checkpointInterval": "10"}


def listed(configuration: dict[str, Any]) -> frozenset[str]:
    """The columns a table's property names: bounds go to these only (none for a table created
    before hygge wrote bounds, until `hygge maintain` sets the property)."""
    value = configuration.get(PROPERTY)
    if not value:
        return frozenset()
    names, current, quoted = [], [], False
    for char in value:  # split on commas outside backquotes
        if char == "`":
            quoted = not quoted
        elif char == "," and not quoted:
            names.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    names.append("".join(current).strip())
    return frozenset(n for n in names if n)


def file_stats(file: WrittenFile, columns: Iterable[str] = ()) -> str:
    """The `stats` JSON of one written file: counts, and bounds for `columns` that can have them."""
    meta = file.metadata
    wanted = set(columns)
    nulls: dict[str, int] = {}
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    for index, field in enumerate(meta.schema.to_arrow_schema()):
        chunks = [meta.row_group(g).column(index).statistics for g in range(meta.num_row_groups)]
        if not all(s is not None and s.has_null_count for s in chunks):
            continue
        nulls[field.name] = sum(s.null_count for s in chunks)
        if field.name in wanted and bounded(field) and nulls[field.name] < file.rows:
            low[field.name], high[field.name] = _bounds(field.type, chunks)
    stats: dict[str, Any] = {"numRecords": file.rows}
    if low:
        stats["minValues"], stats["maxValues"] = low, high
    stats["nullCount"] = nulls
    return json.dumps(stats, ensure_ascii=False)


def _bounds(kind: pa.DataType, chunks: list[Any]) -> tuple[Any, Any]:
    """The smallest and largest value over the row groups holding values, in Delta's JSON form."""
    valued = [s for s in chunks if s.num_values]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if not all(s.has_min_max for s in valued):
            return _WIDEST
        smallest = min(_text(s.min) for s in valued)
        largest = max(_text(s.max) for s in valued)
        if len(largest) > PREFIX:
            largest = largest[:PREFIX] + _TOP
        return smallest[:PREFIX], largest
    if not all(s.has_min_max for s in valued):  # never for these types; the type's range if it were
        return _type_range(kind)
    smallest, largest = min(s.min_raw for s in valued), max(s.max_raw for s in valued)
    if pa.types.is_integer(kind):
        return int(smallest), int(largest)
    if pa.types.is_date32(kind):
        return str(dt.date(1970, 1, 1) + dt.timedelta(days=smallest)), str(
            dt.date(1970, 1, 1) + dt.timedelta(days=largest)
        )
    scale = _UNITS[kind.unit]
    if scale > 1_000_000:  # nanoseconds: outward to microseconds
        step = scale // 1_000_000
        smallest, largest = smallest // step, -(-largest // step)
    else:
        smallest, largest = smallest * (1_000_000 // scale), largest * (1_000_000 // scale)
    return _instant(smallest), _instant(largest)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _instant(us: int) -> str:
    """Microseconds since the epoch as Delta writes a timestamp bound (within years 1-9999, the range
    of every value hygge reads)."""
    when = _EPOCH + dt.timedelta(microseconds=min(max(us, _MIN_US), _MAX_US))
    return when.isoformat(timespec="microseconds") + "Z"


def _type_range(kind: pa.DataType) -> tuple[Any, Any]:
    if pa.types.is_integer(kind):
        bits = kind.bit_width
        if pa.types.is_unsigned_integer(kind):
            return 0, (1 << bits) - 1
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if pa.types.is_date32(kind):
        return "0001-01-01", "9999-12-31"
    return _instant(_MIN_US), _instant(_MAX_US)
