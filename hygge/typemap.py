"""The one place that maps source column types to the pinned Arrow schema, and casts batches to it.

Each source column becomes a `Mapped` value: the Arrow type hygge lands, and whether the SELECT list
must fetch it as text because the driver would lose data (connectorx returns every decimal as
decimal128(38,10) and panics on values it cannot hold; it has no interval or array support).
Text-fetched values are parsed back into the exact Arrow type by `cast_batch`.

SQL Server has two engines (connectorx, mssql-python); both run the same SELECT list and every batch
is cast to the same pinned type, so the engine never changes what lands. Where the drivers' own
output differs in value (a uniqueidentifier's letter case), the SELECT list fixes it (`fetch="guid"`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from hygge.errors import SourceError

UTC_TS = pa.timestamp("us", tz="UTC")
NAIVE_TS = pa.timestamp("us")

# connectorx carries decimals as 96-bit rust_decimal values at scale 10: 28 digits in all.
_CX_DECIMAL_SCALE = 10
_CX_DECIMAL_INT_DIGITS = 18


@dataclass(frozen=True)
class SourceColumn:
    """A column as the source catalog describes it."""

    name: str
    data_type: str
    precision: int | None = None
    scale: int | None = None
    nullable: bool = True


@dataclass(frozen=True)
class Mapped:
    """How hygge lands one source column."""

    name: str
    arrow_type: pa.DataType
    fetch: str = "native"  # native | text | money | guid (lower-case text, whichever driver reads it)
    note: str | None = None
    # SQL Server rowversion (timestamp): binary(8) but a database-wide counter, so it may be a watermark.
    rowversion: bool = False
    nullable: bool = True  # False where the source's catalog says NOT NULL


def _unsupported(name: str, data_type: str, hint: str) -> SourceError:
    return SourceError(
        f"column '{name}' has type {data_type}, which hygge cannot land", hint=hint, field=name
    )


def decimal_or_text(name: str, precision: int | None, scale: int | None) -> Mapped:
    """Exact decimal; fetched as text when connectorx's decimal(38,10) cannot hold it exactly."""
    if precision is None:
        # Unconstrained NUMERIC: exact up to 38 digits with 18 after the point, else a loud cast error.
        return Mapped(name, pa.decimal128(38, 18), "text", "unconstrained numeric pinned to decimal(38,18)")
    scale = scale or 0
    if precision > 38:
        return Mapped(name, pa.string(), "text", f"numeric({precision},{scale}) exceeds 38 digits")
    arrow = pa.decimal128(precision, scale)
    if scale > _CX_DECIMAL_SCALE or precision - scale > _CX_DECIMAL_INT_DIGITS:
        return Mapped(name, arrow, "text")
    return Mapped(name, arrow)


_TYPE_WORD = re.compile(r"^\s*([a-zA-Z_ ]+?)\s*(?:\(([^)]*)\))?\s*$")


def _args(text: str | None) -> list[int]:
    if not text:
        return []
    return [int(x) for x in re.findall(r"\d+", text)]


def map_postgres(col: SourceColumn) -> Mapped:
    t = col.data_type.lower()
    n = col.name
    simple = {
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "real": pa.float32(),
        "double precision": pa.float64(),
        "boolean": pa.bool_(),
        "text": pa.string(),
        "character varying": pa.string(),
        "character": pa.string(),
        "name": pa.string(),
        "date": pa.date32(),
        "timestamp without time zone": NAIVE_TS,
        "timestamp with time zone": UTC_TS,
        "uuid": pa.string(),
        "bytea": pa.binary(),
    }
    if t in simple:
        return Mapped(n, simple[t])
    if t in ("json", "jsonb"):
        # connectorx re-serialises JSON through f64: big or precise numbers would change. Fetch the text.
        return Mapped(n, pa.string(), "text")
    if t == "numeric":
        return decimal_or_text(n, col.precision, col.scale)
    if t == "money":
        return Mapped(n, pa.decimal128(19, 2), "money")
    if t in ("time without time zone", "time with time zone", "interval") or t in (
        "array",
        "user-defined",
        "inet",
        "cidr",
        "macaddr",
        "xml",
        "tsvector",
        "bit",
        "bit varying",
    ):
        return Mapped(n, pa.string(), "text", f"{t} landed as text")
    raise _unsupported(n, t, "select it through a `query:` entity with an explicit CAST")


def map_mssql(col: SourceColumn) -> Mapped:
    t = col.data_type.lower()
    n = col.name
    simple = {
        "tinyint": pa.int16(),
        "smallint": pa.int16(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "bit": pa.bool_(),
        "real": pa.float32(),
        "float": pa.float64(),
        "date": pa.date32(),
        "datetime": NAIVE_TS,
        "datetime2": NAIVE_TS,
        "smalldatetime": NAIVE_TS,
        "datetimeoffset": UTC_TS,
        "char": pa.string(),
        "varchar": pa.string(),
        "nchar": pa.string(),
        "nvarchar": pa.string(),
        "text": pa.string(),
        "ntext": pa.string(),
        "binary": pa.binary(),
        "varbinary": pa.binary(),
        "image": pa.binary(),
    }
    if t in simple:
        return Mapped(n, simple[t])
    if t in ("timestamp", "rowversion"):  # the catalog says `timestamp` for a rowversion column
        return Mapped(n, pa.binary(), rowversion=True)
    if t == "uniqueidentifier":
        # connectorx writes GUIDs in lower case, SQL Server's (and mssql-python's) text is upper case.
        return Mapped(n, pa.string(), "guid")
    if t in ("decimal", "numeric"):
        return decimal_or_text(n, col.precision, col.scale)
    if t == "money":
        return Mapped(n, pa.decimal128(19, 4), "money")
    if t == "smallmoney":
        return Mapped(n, pa.decimal128(10, 4), "money")
    if t in ("time", "xml", "sql_variant", "hierarchyid"):
        return Mapped(n, pa.string(), "text", f"{t} landed as text")
    raise _unsupported(
        n, t, "select it through a `query:` entity with an explicit CAST (e.g. col.STAsText())"
    )


def map_mysql(col: SourceColumn) -> Mapped:
    t = col.data_type.lower()
    n = col.name
    unsigned = "unsigned" in t
    t = t.replace("unsigned", "").strip()
    ints = {
        "tinyint": (pa.int16(), pa.int16()),
        "smallint": (pa.int16(), pa.int32()),
        "mediumint": (pa.int32(), pa.int32()),
        "int": (pa.int32(), pa.int64()),
        "bigint": (pa.int64(), pa.decimal128(20, 0)),
    }
    if t in ints:
        arrow = ints[t][1 if unsigned else 0]
        return Mapped(n, arrow, "text" if pa.types.is_decimal(arrow) else "native")
    simple = {
        "float": pa.float32(),
        "double": pa.float64(),
        "date": pa.date32(),
        "datetime": NAIVE_TS,
        "timestamp": UTC_TS,
        "char": pa.string(),
        "varchar": pa.string(),
        "tinytext": pa.string(),
        "text": pa.string(),
        "mediumtext": pa.string(),
        "longtext": pa.string(),
        "json": pa.string(),
        "enum": pa.string(),
        "set": pa.string(),
        "binary": pa.binary(),
        "varbinary": pa.binary(),
        "tinyblob": pa.binary(),
        "blob": pa.binary(),
        "mediumblob": pa.binary(),
        "longblob": pa.binary(),
        "bool": pa.bool_(),
        "boolean": pa.bool_(),
        "year": pa.int16(),
    }
    if t in simple:
        return Mapped(n, simple[t])
    if t in ("decimal", "numeric"):
        return decimal_or_text(n, col.precision, col.scale)
    if t in ("time", "bit"):
        return Mapped(n, pa.string(), "text", f"{t} landed as text")
    raise _unsupported(n, t, "select it through a `query:` entity with an explicit CAST")


def map_sqlite(col: SourceColumn) -> Mapped:
    """SQLite types are declarations; follow its affinity rules, with the names connectorx knows."""
    declared = col.data_type.lower().strip()
    n = col.name
    m = _TYPE_WORD.match(declared)
    word = (m.group(1) if m else declared).strip()
    args = _args(m.group(2) if m else None)
    if word in ("bool", "boolean"):
        return Mapped(n, pa.bool_())
    if word == "date":
        return Mapped(n, pa.date32())
    if word in ("datetime", "timestamp"):
        return Mapped(n, NAIVE_TS)
    if word in ("decimal", "numeric") and args:
        precision, scale = args[0], args[1] if len(args) > 1 else 0
        if precision > 38:
            return Mapped(n, pa.string(), "text", f"{declared} exceeds 38 digits")
        return Mapped(n, pa.decimal128(precision, scale), "text")
    if "int" in word:
        return Mapped(n, pa.int64())
    if any(w in word for w in ("char", "clob", "text")) or word == "":
        return Mapped(n, pa.string())
    if "blob" in word:
        return Mapped(n, pa.binary())
    if any(w in word for w in ("real", "floa", "doub")):
        return Mapped(n, pa.float64())
    return Mapped(n, pa.float64(), "native", f"declared '{declared}' has numeric affinity")


MAPPERS = {"postgres": map_postgres, "mssql": map_mssql, "mysql": map_mysql, "sqlite": map_sqlite}


def map_column(dialect: str, col: SourceColumn) -> Mapped:
    try:
        return MAPPERS[dialect](col)
    except SourceError as exc:
        raise exc.with_context(field=col.name) from None


_NAMED: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "boolean": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "short": pa.int16(),
    "int32": pa.int32(),
    "int": pa.int32(),
    "int64": pa.int64(),
    "long": pa.int64(),
    "float32": pa.float32(),
    "float": pa.float32(),
    "float64": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": NAIVE_TS,
    "timestamptz": UTC_TS,
}


def pin_driver_type(arrow: pa.DataType) -> pa.DataType:
    """The type hygge pins for a query column the driver typed: regular (not large) strings and
    binaries, int16 for an unsigned byte (mssql-python's tinyint), UTC for zoned timestamps."""
    if pa.types.is_large_binary(arrow):
        return pa.binary()
    if pa.types.is_large_string(arrow):
        return pa.string()
    if pa.types.is_uint8(arrow):
        return pa.int16()
    if pa.types.is_timestamp(arrow) and arrow.tz is not None:
        return pa.timestamp(arrow.unit, tz="UTC")
    return arrow


def parse_arrow_type(text: str) -> pa.DataType:
    """Parse a type written in config: int32, decimal(38,18), timestamp, timestamptz, string, ..."""
    t = text.strip().lower()
    if t in _NAMED:
        return _NAMED[t]
    m = re.fullmatch(r"decimal\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", t)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    raise ValueError(f"unknown type '{text}'; use one of {', '.join(sorted(_NAMED))} or decimal(p,s)")


def cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to the pinned schema, column by column; any loss of data fails naming the column."""
    if batch.schema.equals(schema):
        return batch
    columns = []
    for target in schema:
        index = batch.schema.get_field_index(target.name)
        if index < 0:
            raise SourceError(
                f"column '{target.name}' is missing from the data read",
                hint="the source changed while reading; run again",
                field=target.name,
            )
        column = batch.column(index)
        if not column.type.equals(target.type):
            try:
                column = pc.cast(column, target.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SourceError(
                    f"column '{target.name}' cannot be landed as {target.type} without losing data "
                    f"(read as {column.type}): {exc}",
                    hint="fix the value at the source, or set a wider type under `columns:`",
                    field=target.name,
                ) from None
        if not target.nullable and column.null_count:
            raise SourceError(
                f"column '{target.name}' is NOT NULL in the source's catalog, yet NULL values were read",
                hint="check the column's definition at the source (a view or a query may allow NULLs "
                "its table does not)",
                field=target.name,
            )
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def all_nullable(schema: pa.Schema) -> pa.Schema:
    """`schema` with every column nullable (for stores whose contract keeps no NOT NULL)."""
    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short stable id of a pinned schema, recorded with every run as schema_version."""
    import hashlib

    text = ";".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
