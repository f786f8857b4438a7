"""The PostgreSQL fixtures work and connectorx can stream from them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import connectorx as cx
import psycopg
import pyarrow as pa


def test_pg_db_is_reachable_and_streams_with_connectorx(pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        version = conn.execute("SELECT version()").fetchone()[0]
        assert version.startswith("PostgreSQL")
        conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, name text, amount numeric(18,4), at timestamp)")
        conn.execute(
            "INSERT INTO t SELECT g, 'row ' || g, g * 1.5, "
            "timestamp '2024-01-01' + g * interval '1 hour' FROM generate_series(1, 5) g"
        )

    reader = cx.read_sql(pg_db, "SELECT * FROM t ORDER BY id", return_type="arrow_stream", batch_size=2)
    assert isinstance(reader, pa.RecordBatchReader)
    table = reader.read_all()

    assert table.num_rows == 5
    assert table.column_names == ["id", "name", "amount", "at"]
    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("name")[0].as_py() == "row 1"
    assert table.column("amount")[1].as_py() == Decimal("3")
    assert table.column("at")[0].as_py() == dt.datetime(2024, 1, 1, 1)


def test_pg_db_gives_each_test_its_own_database(pg_db: str, pg_url: str) -> None:
    assert pg_db != pg_url
    with psycopg.connect(pg_db) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
    assert tables == 0
