"""The Fabric schema helper: one Arrow → Fabric type map, batch conforming, and the `_schema.json` manifest.

The map is checked against every Fabric column type of the Open Mirroring contract and against every
Arrow type the SQL homes can produce (enumerated from hygge.typemap's own mappers).
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import json
import re
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hygge import typemap
from hygge.errors import SourceError
from hygge.fabric.schema import (
    FABRIC_TYPES,
    FabricType,
    conform_for_fabric,
    conform_schema,
    conformed_type,
    fabric_type,
    schema_manifest,
)
from hygge.typemap import SourceColumn

UTC = dt.UTC

# (Arrow source, Fabric name, precision, scale, lossless, Arrow type a Fabric data file holds)
CASES = [
    (pa.int64(), "long", None, None, True, pa.int64()),
    (pa.int32(), "int", None, None, True, pa.int32()),
    (pa.int16(), "short", None, None, True, pa.int16()),
    (pa.int8(), "short", None, None, True, pa.int16()),
    (pa.uint8(), "short", None, None, True, pa.int16()),
    (pa.uint16(), "int", None, None, True, pa.int32()),
    (pa.uint32(), "long", None, None, True, pa.int64()),
    (pa.uint64(), "decimal", 20, 0, True, pa.decimal128(20, 0)),
    (pa.bool_(), "boolean", None, None, True, pa.bool_()),
    (pa.float64(), "double", None, None, True, pa.float64()),
    (pa.float32(), "float", None, None, True, pa.float32()),
    (pa.float16(), "float", None, None, True, pa.float32()),
    (pa.decimal128(19, 4), "decimal", 19, 4, True, pa.decimal128(19, 4)),
    (pa.decimal128(38, 18), "decimal", 38, 18, True, pa.decimal128(38, 18)),
    (pa.decimal128(1, 0), "decimal", 1, 0, True, pa.decimal128(1, 0)),
    (pa.decimal32(9, 2), "decimal", 9, 2, True, pa.decimal128(9, 2)),
    (pa.decimal64(18, 3), "decimal", 18, 3, True, pa.decimal128(18, 3)),
    (pa.decimal256(38, 2), "decimal", 38, 2, True, pa.decimal128(38, 2)),
    (pa.decimal128(10, -2), "decimal", 12, 0, True, pa.decimal128(12, 0)),
    (pa.decimal256(40, 2), "string", None, None, False, pa.string()),
    (pa.date32(), "date", None, None, True, pa.date32()),
    (pa.date64(), "date", None, None, True, pa.date32()),
    (pa.timestamp("s"), "timestamp", None, None, True, pa.timestamp("us")),
    (pa.timestamp("ms"), "timestamp", None, None, True, pa.timestamp("us")),
    (pa.timestamp("us"), "timestamp", None, None, True, pa.timestamp("us")),
    (pa.timestamp("ns"), "timestamp", None, None, False, pa.timestamp("us")),
    (pa.timestamp("us", tz="UTC"), "timestamp", None, None, True, pa.timestamp("us", tz="UTC")),
    (pa.timestamp("ms", tz="+02:00"), "timestamp", None, None, True, pa.timestamp("us", tz="UTC")),
    (pa.timestamp("ns", tz="Europe/Oslo"), "timestamp", None, None, False, pa.timestamp("us", tz="UTC")),
    (pa.string(), "string", None, None, True, pa.string()),
    (pa.large_string(), "string", None, None, True, pa.string()),
    (pa.string_view(), "string", None, None, True, pa.string()),
    (pa.binary(), "binary", None, None, True, pa.binary()),
    (pa.large_binary(), "binary", None, None, True, pa.binary()),
    (pa.binary(16), "binary", None, None, True, pa.binary()),
    (pa.binary_view(), "binary", None, None, True, pa.binary()),
    (pa.time32("s"), "string", None, None, True, pa.string()),
    (pa.time32("ms"), "string", None, None, True, pa.string()),
    (pa.time64("us"), "string", None, None, True, pa.string()),
    (pa.time64("ns"), "string", None, None, True, pa.string()),
    (pa.list_(pa.int64()), "string", None, None, True, pa.string()),
    (pa.large_list(pa.string()), "string", None, None, True, pa.string()),
    (pa.list_(pa.int64(), 3), "string", None, None, True, pa.string()),
    (pa.list_view(pa.int64()), "string", None, None, True, pa.string()),
    (pa.struct([("a", pa.int64())]), "string", None, None, True, pa.string()),
    (pa.map_(pa.string(), pa.int64()), "string", None, None, True, pa.string()),
    (pa.dictionary(pa.int32(), pa.string()), "string", None, None, True, pa.string()),
    (pa.dictionary(pa.int8(), pa.int64()), "long", None, None, True, pa.int64()),
    (pa.run_end_encoded(pa.int32(), pa.int16()), "short", None, None, True, pa.int16()),
    (pa.uuid(), "binary", None, None, True, pa.binary()),
    (pa.json_(), "string", None, None, True, pa.string()),
    (pa.null(), "string", None, None, False, pa.string()),
    (pa.duration("s"), "string", None, None, False, pa.string()),
    (pa.month_day_nano_interval(), "string", None, None, False, pa.string()),
    (pa.dense_union([pa.field("a", pa.int64())]), "string", None, None, False, pa.string()),
]


@pytest.mark.parametrize(("source", "name", "precision", "scale", "lossless", "target"), CASES, ids=str)
def test_type_map(source, name, precision, scale, lossless, target) -> None:
    fabric = fabric_type(source)
    assert (fabric.name, fabric.precision, fabric.scale, fabric.lossless) == (
        name,
        precision,
        scale,
        lossless,
    )
    assert conformed_type(source) == target
    if not lossless:
        assert fabric.note, "a lossy mapping must say why"
    # The map is stable: a conformed column maps to the same Fabric type (nothing changes on a rerun).
    again = fabric_type(target)
    assert (again.name, again.precision, again.scale) == (name, precision, scale)
    assert conformed_type(target) == target


def test_every_fabric_type_is_produced() -> None:
    assert {fabric_type(case[0]).name for case in CASES} == FABRIC_TYPES
    assert str(fabric_type(pa.decimal128(12, 3))) == "decimal(12,3)"
    assert str(fabric_type(pa.int16())) == "short"


def test_notes_for_the_contract_cases() -> None:
    assert "UTC" in fabric_type(pa.timestamp("us", tz="America/New_York")).note
    assert fabric_type(pa.timestamp("us")).note is None
    assert fabric_type(pa.null()).note.startswith("warning:")
    assert "JSON" in fabric_type(pa.struct([("a", pa.int8())])).note
    assert "no Fabric type" in fabric_type(pa.month_day_nano_interval()).note
    with pytest.raises(ValueError):
        FabricType("varchar")
    with pytest.raises(ValueError):
        FabricType("decimal")


# ---- every type the SQL homes can produce -------------------------------------------------------


def _names_in(func) -> set[str]:
    """Every lower-case word in a mapper's source: the SQL type names it knows (and a few other
    words, such as fetch modes, which the mapper rejects and the enumeration skips)."""
    tree = ast.parse(inspect.getsource(func))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[a-z][a-z_ ]*", node.value)
    }


_PRECISIONS = [(None, None), (1, 0), (10, 2), (18, 0), (19, 4), (28, 10), (29, 0), (38, 0), (38, 18), (50, 2)]
_SQLITE_DECLARED = [
    "INTEGER", "INT", "BIGINT", "TINYINT", "TEXT", "VARCHAR(20)", "NCHAR(5)", "CLOB", "BLOB", "REAL",
    "DOUBLE", "DOUBLE PRECISION", "FLOAT", "NUMERIC", "NUMERIC(10,2)", "DECIMAL(38,0)", "DECIMAL(5)",
    "BOOLEAN", "BOOL", "DATE", "DATETIME", "TIMESTAMP", "", "whatever",
]  # fmt: skip


def _sql_home_types() -> dict[str, list[tuple[str, typemap.Mapped]]]:
    produced: dict[str, list[tuple[str, typemap.Mapped]]] = {}
    for dialect, mapper in typemap.MAPPERS.items():
        names = _names_in(mapper)
        if dialect == "mysql":
            names |= {f"{n} unsigned" for n in names}
        if dialect == "sqlite":
            names |= set(_SQLITE_DECLARED)
        rows = produced.setdefault(dialect, [])
        for name in sorted(names):
            for precision, scale in _PRECISIONS:
                try:
                    mapped = mapper(SourceColumn("c", name, precision, scale))
                except SourceError:
                    continue
                rows.append((name, mapped))
    return produced


SQL_TYPES = _sql_home_types()


def test_the_enumeration_finds_the_sql_types() -> None:
    known = {dialect: {name for name, _ in rows} for dialect, rows in SQL_TYPES.items()}
    assert {"bigint", "numeric", "money", "timestamp with time zone", "bytea", "interval"} <= known[
        "postgres"
    ]
    assert {"tinyint", "money", "smallmoney", "datetimeoffset", "uniqueidentifier", "time"} <= known["mssql"]
    assert {"bigint unsigned", "int unsigned", "year", "json", "decimal"} <= known["mysql"]
    assert {"INTEGER", "NUMERIC(10,2)", "DATETIME", "BLOB"} <= known["sqlite"]
    produced = {m.arrow_type for rows in SQL_TYPES.values() for _, m in rows}
    assert {
        pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64(), pa.bool_(), pa.date32(),
        pa.timestamp("us"), pa.timestamp("us", tz="UTC"), pa.string(), pa.binary(),
        pa.decimal128(19, 4), pa.decimal128(10, 4), pa.decimal128(20, 0), pa.decimal128(38, 18),
    } <= produced  # fmt: skip


_EXPECTED = {
    pa.int16(): "short",
    pa.int32(): "int",
    pa.int64(): "long",
    pa.float32(): "float",
    pa.float64(): "double",
    pa.bool_(): "boolean",
    pa.date32(): "date",
    pa.timestamp("us"): "timestamp",
    pa.timestamp("us", tz="UTC"): "timestamp",
    pa.string(): "string",
    pa.binary(): "binary",
}


@pytest.mark.parametrize("dialect", sorted(SQL_TYPES))
def test_every_sql_home_type_maps_losslessly(dialect: str) -> None:
    for name, mapped in SQL_TYPES[dialect]:
        arrow = mapped.arrow_type
        fabric = fabric_type(arrow)
        where = f"{dialect} {name} -> {arrow}"
        assert fabric.lossless, where
        if pa.types.is_decimal(arrow):
            assert (fabric.name, fabric.precision, fabric.scale) == (
                "decimal",
                arrow.precision,
                arrow.scale,
            ), where
        else:
            assert fabric.name == _EXPECTED[arrow], where
        if mapped.fetch == "text" and not pa.types.is_decimal(arrow):
            assert fabric.name == "string", where  # documented text casts are strings anyway
        # What the SQL homes land already fits Fabric: conforming it is a no-op.
        assert conformed_type(arrow) == arrow, where


def test_contract_examples_from_sql() -> None:
    money = typemap.map_mssql(SourceColumn("m", "money"))
    assert str(fabric_type(money.arrow_type)) == "decimal(19,4)"
    offset = typemap.map_mssql(SourceColumn("o", "datetimeoffset"))
    assert fabric_type(offset.arrow_type).name == "timestamp" and offset.arrow_type.tz == "UTC"
    tiny = typemap.map_mssql(SourceColumn("t", "tinyint"))
    assert fabric_type(tiny.arrow_type).name == "short"
    assert fabric_type(typemap.map_postgres(SourceColumn("p", "money")).arrow_type).name == "decimal"


# ---- conform_for_fabric ---------------------------------------------------------------------------


def _every_kind() -> pa.Table:
    ns = 1_700_000_000_123_456_000  # whole microseconds
    person = pa.struct([("name", pa.string()), ("born", pa.date32()), ("tags", pa.list_(pa.string()))])
    columns = {
        "id": pa.array([1, 2, 3], pa.int64()),
        "i8": pa.array([-128, None, 127], pa.int8()),
        "u8": pa.array([255, 0, None], pa.uint8()),
        "u16": pa.array([65535, 0, None], pa.uint16()),
        "u32": pa.array([4_294_967_295, 0, None], pa.uint32()),
        "u64": pa.array([2**64 - 1, 0, None], pa.uint64()),
        "flag": pa.array([True, None, False]),
        "f32": pa.array([1.5, None, -0.0], pa.float32()),
        "f64": pa.array([0.1, float("nan"), None], pa.float64()),
        "amount": pa.array([Decimal("12.3400"), None, Decimal("-0.0001")], pa.decimal128(19, 4)),
        "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1, 1, 1)], pa.date32()),
        "naive": pa.array([dt.datetime(2024, 1, 1, 12, 0, 0, 123456), None, None], pa.timestamp("us")),
        "aware_ns": pa.array([ns, None, 0], pa.timestamp("ns", tz="Europe/Oslo")),
        "empty_ts": pa.array([None, None, None], pa.timestamp("ns", tz="+01:00")),
        "empty_dec": pa.array([None, None, None], pa.decimal128(10, 2)),
        "text": pa.array(["a", None, "æøå"], pa.large_string()),
        "blob": pa.array([b"\x00\xff", None, b""], pa.binary()),
        "at": pa.array([dt.time(1, 2, 3, 456789), None, dt.time(0, 0)], pa.time64("us")),
        "person": pa.array(
            [
                {"name": 'Ada "A"', "born": dt.date(1815, 12, 10), "tags": ["x", None]},
                None,
                {"name": None, "born": None, "tags": []},
            ],
            person,
        ),
        "scores": pa.array([[1, 2], None, []], pa.list_(pa.int64())),
        "attrs": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
        "empty_struct": pa.array([None, None, None], person),
        "cat": pa.array(["x", "y", None]).dictionary_encode(),
        "nothing": pa.nulls(3),
    }
    return pa.table(columns)


def test_conform_every_kind_of_column() -> None:
    table = _every_kind()
    conformed = conform_for_fabric(table)
    assert conformed.schema == conform_schema(table.schema)
    types = {f.name: f.type for f in conformed.schema}
    assert types == {
        "id": pa.int64(), "i8": pa.int16(), "u8": pa.int16(), "u16": pa.int32(), "u32": pa.int64(),
        "u64": pa.decimal128(20, 0), "flag": pa.bool_(), "f32": pa.float32(), "f64": pa.float64(),
        "amount": pa.decimal128(19, 4), "day": pa.date32(), "naive": pa.timestamp("us"),
        "aware_ns": pa.timestamp("us", tz="UTC"), "empty_ts": pa.timestamp("us", tz="UTC"),
        "empty_dec": pa.decimal128(10, 2), "text": pa.string(), "blob": pa.binary(), "at": pa.string(),
        "person": pa.string(), "scores": pa.string(), "attrs": pa.string(), "empty_struct": pa.string(),
        "cat": pa.string(), "nothing": pa.string(),
    }  # fmt: skip
    rows = conformed.to_pydict()
    assert rows["u64"] == [Decimal(2**64 - 1), Decimal(0), None]
    assert rows["u32"] == [4_294_967_295, 0, None] and rows["i8"] == [-128, None, 127]
    assert rows["aware_ns"][0] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert rows["aware_ns"][1:] == [None, dt.datetime(1970, 1, 1, tzinfo=UTC)]
    assert rows["empty_ts"] == [None, None, None] and rows["empty_dec"] == [None, None, None]
    assert rows["at"] == ["01:02:03.456789", None, "00:00:00.000000"]
    assert rows["cat"] == ["x", "y", None] and rows["nothing"] == [None, None, None]
    assert [json.loads(v) if v is not None else None for v in rows["person"]] == [
        {"name": 'Ada "A"', "born": "1815-12-10", "tags": ["x", None]},
        None,
        {"name": None, "born": None, "tags": []},
    ]
    assert [json.loads(v) if v is not None else None for v in rows["scores"]] == [[1, 2], None, []]
    assert [json.loads(v) if v is not None else None for v in rows["attrs"]] == [{"k": 1}, None, {}]
    assert rows["empty_struct"] == [None, None, None]  # SQL NULL, not the text "null"
    # Columns that already fit are passed through untouched.
    assert conformed.column("id") is table.column("id") or conformed.column("id").equals(table.column("id"))


def test_conform_a_record_batch_and_empty_data_keep_types() -> None:
    table = _every_kind()
    batch = table.to_batches()[0]
    conformed = conform_for_fabric(batch)
    assert isinstance(conformed, pa.RecordBatch)
    assert conformed.schema == conform_schema(batch.schema)
    empty = conform_for_fabric(batch.slice(0, 0))
    assert empty.num_rows == 0 and empty.schema == conformed.schema
    assert conform_for_fabric(table.slice(0, 0)).schema == conformed.schema


def test_conform_keeps_names_nullability_and_metadata_and_is_idempotent() -> None:
    schema = pa.schema(
        [pa.field("k", pa.int32(), nullable=False, metadata={"a": "1"}), pa.field("u", pa.uint16())],
        metadata={"hygge": "yes"},
    )
    batch = pa.record_batch([pa.array([1, 2], pa.int32()), pa.array([3, None], pa.uint16())], schema=schema)
    once = conform_for_fabric(batch)
    assert once.schema.field("k").nullable is False and once.schema.field("k").metadata == {b"a": b"1"}
    assert once.schema.metadata == {b"hygge": b"yes"}
    assert conform_for_fabric(once) is once


def test_conform_sliced_and_chunked_complex_columns() -> None:
    """Sliced arrays and several chunks, with what polars' JSON writer cannot take natively: binary,
    decimal256, list views (pyarrow 26's list_view cast drops values), maps with integer keys."""
    nested = pa.struct(
        [("b", pa.binary()), ("d", pa.decimal256(40, 2)), ("m", pa.map_(pa.int64(), pa.large_binary()))]
    )
    values = pa.array(
        [{"b": b"\x00", "d": Decimal("1.50"), "m": [(1, b"a")]}, None,
         {"b": None, "d": Decimal("-2.00"), "m": [(2, b"b"), (3, None)]}],
        nested,
    )  # fmt: skip
    views = pa.array([[b"x"], None, [b"y", None]], pa.list_view(pa.binary(1)))
    table = pa.Table.from_batches(
        [pa.record_batch({"n": values, "v": views}), pa.record_batch({"n": values, "v": views}).slice(1)]
    )
    conformed = conform_for_fabric(table)
    assert conformed.num_rows == 5
    decoded = [
        [json.loads(x) if x is not None else None for x in col.to_pylist()] for col in conformed.columns
    ]
    third = {"b": None, "d": "-2.00", "m": {"2": "Yg==", "3": None}}
    assert decoded[0] == [{"b": "AA==", "d": "1.50", "m": {"1": "YQ=="}}, None, third, None, third]
    assert decoded[1] == [["eA=="], None, ["eQ==", None], None, ["eQ==", None]]


def test_conform_refuses_to_change_values() -> None:
    precise = pa.record_batch({"when": pa.array([1_700_000_000_123_456_789], pa.timestamp("ns"))})
    with pytest.raises(SourceError) as err:
        conform_for_fabric(precise)
    assert err.value.context.field == "when" and "when" in str(err.value)
    not_a_day = pa.record_batch({"d": pa.array([1], pa.date64())})
    with pytest.raises(SourceError, match="'d'"):
        conform_for_fabric(not_a_day)
    interval = pa.record_batch({"iv": pa.array([pa.MonthDayNano([1, 2, 3])], pa.month_day_nano_interval())})
    with pytest.raises(SourceError, match="'iv'"):
        conform_for_fabric(interval)
    with pytest.raises(TypeError):
        conform_for_fabric({"a": [1]})


def test_conform_duration_and_wide_decimal_as_text() -> None:
    batch = pa.record_batch(
        {
            "took": pa.array([dt.timedelta(seconds=90), None], pa.duration("s")),
            "huge": pa.array([Decimal("1" * 39 + ".25"), None], pa.decimal256(41, 2)),
        }
    )
    rows = conform_for_fabric(batch).to_pydict()
    assert rows["took"] == ["PT90S", None]
    assert rows["huge"] == ["1" * 39 + ".25", None]


def test_conformed_data_file_reads_back_with_fabric_types(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000001.parquet"
    pq.write_table(conform_for_fabric(_every_kind()), path)
    schema = pq.read_schema(path)
    assert schema.field("aware_ns").type == pa.timestamp("us", tz="UTC")
    assert schema.field("empty_ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("i8").type == pa.int16() and schema.field("u64").type == pa.decimal128(20, 0)
    assert schema.field("person").type == pa.string()


# ---- schema_manifest ------------------------------------------------------------------------------


def test_schema_manifest_exact() -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("amount", pa.decimal128(19, 4)),
            pa.field("created", pa.timestamp("us")),
            pa.field("changed", pa.timestamp("ns", tz="Europe/Oslo")),
            pa.field("day", pa.date32()),
            pa.field("flag", pa.bool_()),
            pa.field("small", pa.int16()),
            pa.field("ratio", pa.float32()),
            pa.field("score", pa.float64()),
            pa.field("big", pa.uint64()),
            pa.field("name", pa.large_string()),
            pa.field("photo", pa.binary()),
            pa.field("tags", pa.list_(pa.string())),
        ]
    )
    manifest = schema_manifest(schema, system_columns=[pa.field("__rowMarker__", pa.int32(), nullable=False)])
    assert manifest == {
        "columns": [
            {"name": "id", "type": "long", "nullable": False},
            {"name": "amount", "type": "decimal", "nullable": True, "precision": 19, "scale": 4},
            {"name": "created", "type": "timestamp", "nullable": True},
            {"name": "changed", "type": "timestamp", "nullable": True},
            {"name": "day", "type": "date", "nullable": True},
            {"name": "flag", "type": "boolean", "nullable": True},
            {"name": "small", "type": "short", "nullable": True},
            {"name": "ratio", "type": "float", "nullable": True},
            {"name": "score", "type": "double", "nullable": True},
            {"name": "big", "type": "decimal", "nullable": True, "precision": 20, "scale": 0},
            {"name": "name", "type": "string", "nullable": True},
            {"name": "photo", "type": "binary", "nullable": True},
            {"name": "tags", "type": "string", "nullable": True},
            {"name": "__rowMarker__", "type": "int", "nullable": False},
        ]
    }
    assert json.loads(json.dumps(manifest)) == manifest
    # The manifest of the conformed schema is the same: manifest and data files agree.
    assert (
        schema_manifest(conform_schema(schema), system_columns=[pa.field("__rowMarker__", pa.int32(), False)])
        == manifest
    )


def test_schema_manifest_of_every_kind_is_json_and_types_datetimes() -> None:
    manifest = schema_manifest(_every_kind().schema)
    text = json.dumps(manifest)
    by_name = {c["name"]: c for c in json.loads(text)["columns"]}
    assert [c["name"] for c in manifest["columns"]] == _every_kind().column_names
    for name in ("naive", "aware_ns", "empty_ts"):
        assert by_name[name]["type"] == "timestamp"
    assert by_name["empty_dec"] == {
        "name": "empty_dec",
        "type": "decimal",
        "nullable": True,
        "precision": 10,
        "scale": 2,
    }
    assert all(c["type"] in FABRIC_TYPES for c in manifest["columns"])


def test_schema_manifest_rejects_a_duplicate_column() -> None:
    schema = pa.schema([pa.field("__rowMarker__", pa.int32())])
    with pytest.raises(ValueError, match="__rowMarker__"):
        schema_manifest(schema, system_columns=[pa.field("__rowMarker__", pa.int32())])
