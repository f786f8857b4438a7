"""PostgreSQL types connectorx cannot carry (interval panics it; arrays, enums, time, money) land by
the documented casts, and a query entity's types can be pinned with `columns:`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from tests.helpers import landed, pg_execute, run, sql_flow, write_project


def test_awkward_types_land_by_documented_casts(tmp_path: Path, pg_db: str) -> None:
    """interval, int[], an enum, time, money and unconstrained numeric land exactly as documented."""
    pg_execute(
        pg_db,
        "CREATE TYPE mood AS ENUM ('sad', 'happy')",
        "CREATE TABLE odd (id int PRIMARY KEY, i interval, a int[], m mood, t time, cash money, n numeric, "
        '"Odd Name]" text)',
        "INSERT INTO odd VALUES (1, '1 day 02:03:04.5', '{1,2,3}', 'happy', '12:34:56.789012', 12.34, "
        "123456789012345678.123456789012345678, 'x'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    root = write_project(
        tmp_path,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={"f": sql_flow("delta", ["odd"], watermark_column=None, run_type="full_drop")},
    )
    result = run(root, "f", "odd")
    assert result.status == "success" and result.rows == 2
    table = landed(root, "f", "odd").sort_by("id")
    types = {f.name: f.type for f in table.schema}
    assert types["i"] == pa.string() and types["a"] == pa.string() and types["m"] == pa.string()
    assert types["t"] == pa.string() and types["cash"] == pa.decimal128(19, 2)
    assert types["n"] == pa.decimal128(38, 18) and types["Odd Name]"] == pa.string()
    first = table.to_pylist()[0]
    assert first["i"] == "1 day 02:03:04.5"
    assert first["a"] == "{1,2,3}" and first["m"] == "happy" and first["t"] == "12:34:56.789012"
    assert first["cash"] == Decimal("12.34")
    assert first["n"] == Decimal("123456789012345678.123456789012345678")
    assert all(v is None for k, v in table.to_pylist()[1].items() if k != "id")


def test_query_entity_with_pinned_columns(tmp_path: Path, pg_db: str) -> None:
    """A `query:` entity takes the driver's types, refined by `columns:` (here an exact decimal(38,18)
    that the driver alone would have carried as decimal(38,10))."""
    pg_execute(
        pg_db,
        "CREATE TABLE src (id int, amount numeric(38,18), at timestamptz)",
        "INSERT INTO src VALUES (1, 0.000000000000000001, '2024-01-01 00:00:00.000001+02')",
    )
    root = write_project(
        tmp_path,
        connections={"db": {"type": "postgres", "url": pg_db}},
        flows={
            "f": sql_flow(
                "parquet",
                [
                    {
                        "name": "q",
                        "query": "SELECT id, amount, at FROM src",
                        "columns": {"amount": "decimal(38,18)", "id": "int32"},
                    }
                ],
                watermark_column=None,
                run_type="full_drop",
            )
        },
    )
    assert run(root, "f", "q").rows == 1
    row = landed(root, "f", "q").to_pylist()[0]
    table = landed(root, "f", "q")
    assert table.schema.field("amount").type == pa.decimal128(38, 18)
    assert table.schema.field("id").type == pa.int32()
    assert row["amount"] == Decimal("0.000000000000000001")
    assert row["at"] == dt.datetime(2023, 12, 31, 22, 0, 0, 1, tzinfo=dt.UTC)
