"""`query:` entities on PostgreSQL are typed by the server, as tables are: numeric precision and scale,
jsonb text as the server writes it, so a query over a table lands exactly what the table does; a query
the server refuses is one message naming the entity (a real PostgreSQL server)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from hygge.errors import SourceError
from tests.helpers import landed, pg_execute, run, sql_flow, write_project

BIG = Decimal("12345678901234567890.123456789012345678")  # numeric(38,18): 20 + 18 digits
WHOLE = Decimal("12345678901234567890123456789012345678")  # numeric(38,0): 38 digits
DOC = '{"a": 1, "b": [1.10, 2e3], "c": "ü"}'


@pytest.fixture
def wide(pg_db: str) -> str:
    pg_execute(
        pg_db,
        "CREATE TABLE wide (id int PRIMARY KEY, big numeric(38,18), whole numeric(38,0), doc jsonb, "
        "plain json, note text NOT NULL)",
        (
            "INSERT INTO wide VALUES (1, %s, %s, %s, %s, 'x'), (2, %s, %s, NULL, NULL, 'y')",
            (BIG, WHOLE, DOC, DOC, -BIG, -WHOLE),
        ),
    )
    return pg_db


def project(tmp_path: Path, pg_db: str, entities: list) -> Path:
    flow = sql_flow("parquet", entities, watermark_column=None, run_type="full_drop")
    return write_project(tmp_path, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})


def test_a_query_lands_what_its_table_lands(tmp_path: Path, wide: str) -> None:
    root = project(
        tmp_path,
        wide,
        [
            "wide",
            {"name": "q", "query": "SELECT * FROM wide WHERE id > 0"},
            {"name": "calc", "query": "SELECT id, big * 2 AS doubled, doc -> 'b' AS b FROM wide"},
        ],
    )
    for name in ("wide", "q", "calc"):
        result = run(root, "f", name)
        assert result.status == "success", result.error
    table, query = landed(root, "f", "wide").sort_by("id"), landed(root, "f", "q").sort_by("id")
    # Same names, types and values; only NOT NULL differs (a PostgreSQL query's columns stay nullable).
    assert [(f.name, f.type) for f in query.schema] == [(f.name, f.type) for f in table.schema]
    assert query.to_pylist() == table.to_pylist()
    assert not table.schema.field("note").nullable and query.schema.field("note").nullable
    first = query.to_pylist()[0]
    assert first["big"] == BIG and first["whole"] == WHOLE
    assert first["doc"] == '{"a": 1, "b": [1.10, 2e3], "c": "ü"}'.replace("2e3", "2000")  # jsonb's own text
    assert first["plain"] == DOC  # json keeps the text as written
    calc = landed(root, "f", "calc").sort_by("id").to_pylist()
    assert calc[0]["doubled"] == Decimal("24691357802469135780.246913578024691356") and calc[0]["b"] == "[1.10, 2000]"


def test_a_query_the_server_refuses_names_the_entity(tmp_path: Path, wide: str) -> None:
    root = project(tmp_path, wide, [{"name": "q", "query": "SELECT nope FROM wide"}])
    with pytest.raises(SourceError) as caught:
        run(root, "f", "q")
    text = str(caught.value)
    assert "cannot describe the query's result" in text and 'column "nope" does not exist' in text
    assert caught.value.details.context.entity == "q" and caught.value.details.context.field == "query"


# --- SQLite ---------------------------------------------------------------------------------------
def sqlite_project(tmp_path: Path, entities: list) -> Path:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(tmp_path / "shop.db")) as db:
        db.execute(
            "CREATE TABLE wide (id INTEGER PRIMARY KEY, big DECIMAL(38,18) NOT NULL, day DATE, "
            "at DATETIME, note TEXT)"
        )
        db.execute("INSERT INTO wide VALUES (1, ?, '2026-01-02', '2026-01-02 03:04:05', 'x')", (str(BIG),))
        db.execute("INSERT INTO wide VALUES (2, ?, NULL, NULL, NULL)", (str(-BIG),))
        db.commit()
    flow = sql_flow("parquet", entities, watermark_column=None, run_type="full_drop")
    connections = {"db": {"type": "sqlite", "path": str(tmp_path / "shop.db")}}
    return write_project(tmp_path / "p", connections=connections, flows={"f": flow})


def test_a_sqlite_query_lands_its_table_columns_as_the_table_does(tmp_path: Path) -> None:
    """Columns taken straight from a table keep the table's declared types (decimal(38,18), dates,
    timestamps: before, a query typed them from the driver's first values); an expression gets the
    driver's type."""
    root = sqlite_project(
        tmp_path,
        ["wide", {"name": "q", "query": "SELECT id, big, day, at AS stamp, length(note) AS n FROM wide"}],
    )
    for name in ("wide", "q"):
        result = run(root, "f", name)
        assert result.status == "success", result.message
    table, query = landed(root, "f", "wide").sort_by("id"), landed(root, "f", "q").sort_by("id")
    for column in ("id", "big", "day"):
        assert query.schema.field(column).type == table.schema.field(column).type, column
        assert query.column(column).to_pylist() == table.column(column).to_pylist(), column
    assert query.schema.field("stamp").type == table.schema.field("at").type
    assert pa.types.is_decimal(query.schema.field("big").type)  # SQLite itself keeps BIG as a REAL
    # An expression has no declaration: the driver's type (text, as connectorx types an empty result).
    assert query.column("n").to_pylist() == ["1", None]


def test_a_sqlite_query_it_cannot_describe_names_the_entity(tmp_path: Path) -> None:
    root = sqlite_project(tmp_path, [{"name": "q", "query": "SELECT id FROM wide; DELETE FROM wide"}])
    with pytest.raises(SourceError) as failure:
        run(root, "f", "q")
    text = str(failure.value)
    assert "entity 'q'" in text and "query" in text, text


def test_a_drivers_decimal_error_names_the_candidate_columns_and_the_pin() -> None:
    """connectorx's decimal errors name no column: the message lists the pinned decimal columns and
    the `columns:` pin that reads them exactly; no retry (the data will not change)."""
    from hygge.homes.sql.driver_errors import driver_error

    raw = RuntimeError(
        "cx writer failed: Destination(Other(decimal scale is not equal to expected scale, got: 9 expected: 10"
    )
    error = driver_error(raw, [], "q from postgres", True, decimals=["big", "whole"], flow="f", entity="q")
    text = str(error)
    assert "big, whole" in text and "`columns: {big: string}`" in text and not error.transient, text
    assert "check the connection" not in text
