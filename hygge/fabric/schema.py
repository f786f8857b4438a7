"""The one map from Arrow types to Fabric column types, and the casts that make data fit it.

Fabric Open Mirroring accepts these column types: long, int, short, boolean, double, float,
decimal(p,s), date, timestamp (datetime2(6)), string and binary. Parquet data files must carry
timestamps in microseconds and complex values as JSON text. `_resolve` decides, for every Arrow type,
both the Fabric type and the Arrow type a data file holds for it; `fabric_type`, `conformed_type`,
`conform_for_fabric` and `schema_manifest` all read that one decision, so the manifest and the data
files cannot disagree.

The map works on types, never on values: an all-null column keeps its real type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import SourceError

FABRIC_TYPES = frozenset(
    {"long", "int", "short", "boolean", "double", "float", "decimal", "date", "timestamp", "string", "binary"}
)
MAX_DECIMAL_PRECISION = 38


@dataclass(frozen=True)
class FabricType:
    """A Fabric column type, and whether every value of the Arrow type survives in it exactly.

    `lossless` is False when values or their meaning can change (text in place of a numeric or an
    interval, sub-microsecond digits, an unknown type); `note` then says what happens, and callers
    should show it as a warning.
    """

    name: str
    precision: int | None = None
    scale: int | None = None
    lossless: bool = True
    note: str | None = None

    def __post_init__(self) -> None:
        if self.name not in FABRIC_TYPES:
            raise ValueError(f"'{self.name}' is not a Fabric column type")
        if (self.name == "decimal") != (self.precision is not None and self.scale is not None):
            raise ValueError("precision and scale are required for decimal, and only for decimal")

    def __str__(self) -> str:
        if self.name == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return self.name


_INTS: dict[pa.DataType, tuple[str, pa.DataType]] = {
    pa.int8(): ("short", pa.int16()),
    pa.uint8(): ("short", pa.int16()),
    pa.int16(): ("short", pa.int16()),
    pa.uint16(): ("int", pa.int32()),
    pa.int32(): ("int", pa.int32()),
    pa.uint32(): ("long", pa.int64()),
    pa.int64(): ("long", pa.int64()),
}

_UTC = "UTC"


def _join(*notes: str | None) -> str | None:
    text = "; ".join(n for n in notes if n)
    return text or None


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_binary(t: pa.DataType) -> bool:
    return (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    )


def _is_list_view(t: pa.DataType) -> bool:
    return pa.types.is_list_view(t) or pa.types.is_large_list_view(t)


def _is_complex(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or _is_list_view(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
    )


def _text(note: str, *, lossless: bool) -> tuple[FabricType, pa.DataType]:
    return FabricType("string", lossless=lossless, note=note), pa.string()


def _resolve(t: pa.DataType) -> tuple[FabricType, pa.DataType]:
    """THE map: an Arrow type → (its Fabric type, the Arrow type a Fabric data file holds for it)."""
    if isinstance(t, pa.BaseExtensionType):
        fabric, target = _resolve(t.storage_type)
        note = f"extension type {t.extension_name} landed by its storage type {t.storage_type}"
        return replace(fabric, note=_join(note, fabric.note)), target
    if pa.types.is_dictionary(t) or pa.types.is_run_end_encoded(t):
        return _resolve(t.value_type)  # encodings, not types: landed decoded
    if pa.types.is_null(t):
        return _text(
            "warning: the column has Arrow type null (no values were seen to type it), landed as "
            "string; if the source column has another type, a later run changes the column's type, "
            "which stops replication: pin the type under `columns:`",
            lossless=False,
        )
    if pa.types.is_boolean(t):
        return FabricType("boolean"), pa.bool_()
    if t in _INTS:
        name, target = _INTS[t]
        note = None if t == target else f"{t} widened to {target}"
        return FabricType(name, note=note), target
    if pa.types.is_uint64(t):
        return FabricType("decimal", 20, 0, note="uint64 widened to decimal(20,0)"), pa.decimal128(20, 0)
    if pa.types.is_float16(t):
        return FabricType("float", note="float16 widened to float32"), pa.float32()
    if pa.types.is_float32(t):
        return FabricType("float"), pa.float32()
    if pa.types.is_float64(t):
        return FabricType("double"), pa.float64()
    if pa.types.is_decimal(t):
        precision, scale = t.precision, t.scale
        if scale < 0:  # Fabric has no negative scale: the same values at scale 0
            precision, scale = precision - scale, 0
        if precision <= MAX_DECIMAL_PRECISION:
            return FabricType("decimal", precision, scale), pa.decimal128(precision, scale)
        return _text(
            f"{t} exceeds Fabric's {MAX_DECIMAL_PRECISION} digits: landed as exact decimal text",
            lossless=False,
        )
    if pa.types.is_date32(t):
        return FabricType("date"), pa.date32()
    if pa.types.is_date64(t):
        return FabricType("date", note="date64 landed as date32 (values must be whole days)"), pa.date32()
    if pa.types.is_timestamp(t):
        notes = []
        if t.tz is not None:
            notes.append(f"timezone-aware ({t.tz}): landed as UTC instants in a timestamp column")
        if t.unit == "ns":
            notes.append("Fabric keeps microseconds: a value with sub-microsecond digits fails to conform")
        target = pa.timestamp("us", tz=_UTC if t.tz is not None else None)
        return FabricType("timestamp", lossless=t.unit != "ns", note=_join(*notes)), target
    if _is_string(t):
        return FabricType("string"), pa.string()
    if _is_binary(t):
        return FabricType("binary"), pa.binary()
    if pa.types.is_time(t):
        return _text(f"{t}: Fabric has no time type; landed as ISO text HH:MM:SS[.fraction]", lossless=True)
    if _is_complex(t):
        return _text(
            f"{t}: complex values landed as JSON text (maps as objects, binary as base64, "
            "decimals as strings, NaN/Infinity as null)",
            lossless=True,
        )
    if pa.types.is_duration(t):
        return _text(f"{t}: Fabric has no interval type; landed as ISO 8601 duration text", lossless=False)
    return _text(f"{t} has no Fabric type; landed as text", lossless=False)


def fabric_type(arrow_type: pa.DataType) -> FabricType:
    """The Fabric column type for an Arrow type."""
    return _resolve(arrow_type)[0]


def conformed_type(arrow_type: pa.DataType) -> pa.DataType:
    """The Arrow type `conform_for_fabric` turns a column of `arrow_type` into."""
    return _resolve(arrow_type)[1]


def conform_schema(schema: pa.Schema) -> pa.Schema:
    """The schema of `conform_for_fabric`'s result; names, nullability and metadata are kept."""
    return pa.schema(
        [field.with_type(conformed_type(field.type)) for field in schema], metadata=schema.metadata
    )


Data = TypeVar("Data", pa.RecordBatch, pa.Table)


def conform_for_fabric(data: Data) -> Data:
    """Cast a RecordBatch or Table to what a Fabric Open Mirroring data file may hold.

    Timestamps become microseconds (timezone-aware ones UTC), complex values JSON text, times ISO
    text, unsigned and small integers are widened, encodings decoded; see `fabric_type` for every
    type. Types only are looked at, so an all-null column keeps its real (conformed) type. A value
    that would change (sub-microsecond digits, a date64 that is not a whole day) fails, naming the
    column.
    """
    if not isinstance(data, pa.RecordBatch | pa.Table):
        raise TypeError(f"conform_for_fabric takes a pyarrow RecordBatch or Table, not {type(data).__name__}")
    target = conform_schema(data.schema)
    if target.equals(data.schema, check_metadata=True):
        return data
    columns: list[Any] = []
    for field, column in zip(target, data.columns, strict=True):
        if column.type.equals(field.type):
            columns.append(column)
        elif isinstance(column, pa.ChunkedArray):
            chunks = [_conform_array(chunk, field.name, field.type) for chunk in column.chunks]
            columns.append(pa.chunked_array(chunks, type=field.type))
        else:
            columns.append(_conform_array(column, field.name, field.type))
    return type(data).from_arrays(columns, schema=target)


_TYPE_NAMES = {
    str(t): t
    for t in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64(), pa.bool_(),
              pa.string(), pa.large_string(), pa.binary(), pa.large_binary(), pa.date32())
}  # fmt: skip


def parse_type(text: str) -> pa.DataType | None:
    """A Fabric data file's Arrow type from its str() form (as schema records keep it), or None."""
    if text in _TYPE_NAMES:
        return _TYPE_NAMES[text]
    if m := re.fullmatch(r"decimal128\((\d+), (\d+)\)", text):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    if m := re.fullmatch(r"timestamp\[(\w+)(?:, tz=(.+))?\]", text):
        return pa.timestamp(m.group(1), tz=m.group(2))
    return None


def schema_manifest(schema: pa.Schema, *, system_columns: Sequence[pa.Field] = ()) -> dict:
    """The `_schema.json` manifest: `{"columns": [{"name", "type", "nullable", "precision"?, "scale"?}]}`.

    Columns in schema order, then the system columns (e.g. `__rowMarker__`) in the order given.
    """
    fields = [*schema, *system_columns]
    seen: set[str] = set()
    columns = []
    for field in fields:
        if field.name in seen:
            raise ValueError(f"column '{field.name}' appears twice in the schema manifest")
        seen.add(field.name)
        fabric = fabric_type(field.type)
        entry: dict[str, Any] = {"name": field.name, "type": fabric.name, "nullable": field.nullable}
        if fabric.name == "decimal":
            entry["precision"] = fabric.precision
            entry["scale"] = fabric.scale
        columns.append(entry)
    return {"columns": columns}


# ---- conforming values ----------------------------------------------------------------------------


def _cannot(name: str, source: pa.DataType, target: pa.DataType, why: object) -> SourceError:
    return SourceError(
        f"column '{name}' ({source}) cannot be landed in Fabric as {target} without changing data: {why}",
        hint="cast or truncate it at the source (a `query:` entity), or set its type under `columns:`",
        field=name,
    )


def _conform_array(arr: pa.Array, name: str, target: pa.DataType) -> pa.Array:
    t = arr.type
    if t.equals(target):
        return arr
    if isinstance(t, pa.BaseExtensionType):
        return _conform_array(arr.storage, name, target)
    if pa.types.is_dictionary(t):
        return _conform_array(arr.dictionary_decode(), name, target)
    if pa.types.is_run_end_encoded(t):
        return _conform_array(pc.run_end_decode(arr), name, target)
    if pa.types.is_null(t):
        return pa.nulls(len(arr), type=target)
    if _is_complex(t):
        return _polars_json(_jsonable(arr, name), name)
    if pa.types.is_duration(t):
        # Polars writes durations as ISO 8601 text ("PT1H30M"); pyarrow's cast gives a bare count.
        return _polars_json(arr, name, unquote=True)
    try:
        return pc.cast(arr, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _cannot(name, t, target, exc) from None


_WRAP = "v"
_PREFIX = '{"' + _WRAP + '":'


def _polars_json(arr: pa.Array, name: str, *, unquote: bool = False) -> pa.Array:
    """Each value as JSON text (null stays null), written by polars' JSON encoder.

    Polars encodes structs only, so the column is wrapped as field "v" of a struct and the
    wrapper's `{"v":` ... `}` is cut off again: what is left is the value's JSON, lists included.
    """
    import polars as pl  # lazily: only nested and binary columns need it, and it costs ~25 MB

    prefix, suffix = (_PREFIX + '"', '"}') if unquote else (_PREFIX, "}")
    try:
        frame = pl.DataFrame({_WRAP: pl.from_arrow(arr)})
        encoded = frame.select(
            pl.when(pl.col(_WRAP).is_null())
            .then(pl.lit(None, dtype=pl.String))
            .otherwise(
                pl.struct(_WRAP).struct.json_encode().str.strip_prefix(prefix).str.strip_suffix(suffix)
            )
        ).to_series()
        result = encoded.to_arrow()
    except BaseException as exc:
        # Polars signals unsupported types with a Rust panic, a BaseException: turn only that into an error.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise _cannot(name, arr.type, pa.string(), exc) from None
    return pc.cast(result, pa.string())


def _needs_rewrite(t: pa.DataType) -> bool:
    """Whether a type inside a complex value must be rewritten before polars can encode it."""
    if isinstance(t, pa.BaseExtensionType) or pa.types.is_dictionary(t) or pa.types.is_run_end_encoded(t):
        return True
    if _is_binary(t) or _is_list_view(t) or pa.types.is_union(t) or pa.types.is_interval(t):
        return True
    if pa.types.is_decimal(t):
        return not pa.types.is_decimal128(t)
    if pa.types.is_map(t):
        return not _is_string(t.key_type) or _needs_rewrite(t.item_type)
    if pa.types.is_struct(t):
        return any(_needs_rewrite(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _needs_rewrite(t.value_type)
    return False


def _mask(arr: pa.Array) -> pa.Array | None:
    return arr.is_null() if arr.null_count else None


def _rebased_offsets(arr: pa.Array) -> tuple[pa.Array, int, int]:
    """A list or map array's offsets starting at 0, and the range of its (unsliced) values they cover.

    pyarrow cannot build a list array with nulls from a sliced offsets array, and `.values`/`.keys`
    ignore the slice, so both are cut to what this array refers to.
    """
    offsets = arr.offsets
    if len(offsets) == 0:
        return pa.array([0], offsets.type), 0, 0
    start, stop = offsets[0].as_py(), offsets[-1].as_py()
    return pc.subtract(offsets, offsets[0]), start, stop


def _jsonable(arr: pa.Array, name: str) -> pa.Array:
    """Rewrite what polars' JSON encoder cannot take: binary → base64 text, decimal32/64/256 →
    decimal128 (or text beyond 38 digits), list views → lists, map keys → text, encodings decoded."""
    t = arr.type
    if not _needs_rewrite(t):
        return arr
    if isinstance(t, pa.BaseExtensionType):
        return _jsonable(arr.storage, name)
    if pa.types.is_dictionary(t):
        return _jsonable(arr.dictionary_decode(), name)
    if pa.types.is_run_end_encoded(t):
        return _jsonable(pc.run_end_decode(arr), name)
    if _is_binary(t):
        import polars as pl  # lazily, as in _polars_json

        encoded = pl.from_arrow(pc.cast(arr, pa.large_binary())).bin.encode("base64")
        return pc.cast(encoded.to_arrow(), pa.large_string())
    if pa.types.is_decimal(t):
        fabric, target = _resolve(t)
        return pc.cast(arr, target if fabric.name == "decimal" else pa.string())
    if _is_list_view(t):
        # pyarrow 26's list_view → list cast drops the values after a null entry: rebuild the offsets.
        sizes = pc.if_else(arr.is_null(), 0, arr.sizes)
        offsets = pa.concat_arrays([pa.array([0], sizes.type), pc.cumulative_sum(sizes)])
        cls = pa.LargeListArray if pa.types.is_large_list_view(t) else pa.ListArray
        return _jsonable(cls.from_arrays(offsets, arr.flatten(), mask=_mask(arr)), name)
    if pa.types.is_fixed_size_list(t):
        return _jsonable(arr.cast(pa.list_(t.value_field)), name)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
        offsets, start, stop = _rebased_offsets(arr)
        return cls.from_arrays(offsets, _jsonable(arr.values[start:stop], name), mask=_mask(arr))
    if pa.types.is_map(t):
        offsets, start, stop = _rebased_offsets(arr)
        keys = _jsonable(arr.keys[start:stop], name)
        if not _is_string(keys.type):
            try:
                keys = pc.cast(keys, pa.string())  # JSON object keys are text
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise _cannot(name, t, pa.string(), exc) from None
        items = _jsonable(arr.items[start:stop], name)
        return pa.MapArray.from_arrays(offsets, keys, items, mask=_mask(arr))
    if pa.types.is_struct(t):
        children = [_jsonable(arr.field(i), name) for i in range(t.num_fields)]
        fields = [pa.field(t.field(i).name, c.type) for i, c in enumerate(children)]
        return pa.StructArray.from_arrays(children, fields=fields, mask=_mask(arr))
    raise _cannot(name, t, pa.string(), f"{t} values cannot be written as JSON")
