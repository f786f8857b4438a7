"""NOT NULL kept: columns the catalog declares NOT NULL (primary keys among them) land non-nullable in parquet and
Delta; an Open Mirroring zone keeps every column nullable (Fabric's schema merge breaks on a dropped
non-nullable column); a column that starts allowing NULLs stops an incremental run with the fix;
stores landed before (every column nullable) carry on. A real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from hygge.errors import HyggeError
from tests.helpers import pg_execute, run, sql_flow, write_project

T0 = dt.datetime(2026, 1, 1)


@pytest.fixture
def source(pg_db: str) -> str:
    pg_execute(
        pg_db,
        "CREATE TABLE items (id int PRIMARY KEY, sku text NOT NULL, note text, updated_at timestamp NOT NULL)",
        ("INSERT INTO items SELECT i, 's' || i, NULL, %s FROM generate_series(1, 20) AS i", (T0,)),
    )
    return pg_db


def project(tmp_path: Path, pg_db: str, store: str) -> Path:
    flows = {
        "f": sql_flow(store, ["items", {"name": "q", "query": "SELECT id, sku, note, updated_at FROM items"}],
                      primary_key=["id"]),
    }  # fmt: skip
    return write_project(tmp_path, connections={"db": {"type": "postgres", "url": pg_db}}, flows=flows)


def _nullable(schema) -> dict[str, bool]:
    return {f.name: f.nullable for f in schema}


def _landed_schema(root: Path, store: str, entity: str):
    folder = root / "lake" / entity
    if store == "delta":
        import pyarrow as pa

        return pa.schema(DeltaTable(str(folder)).schema().to_arrow())
    if store == "parquet":
        return pq.read_schema(next(folder.glob("*.parquet")))
    return pq.read_schema(next(folder.glob("0*.parquet")))


@pytest.mark.parametrize("store", ["parquet", "delta", "open_mirroring"])
def test_not_null_and_key_columns_land_non_nullable_where_the_store_keeps_it(
    tmp_path: Path, source: str, store: str
) -> None:
    root = project(tmp_path, source, store)
    for entity in ("items", "q"):
        assert run(root, "f", entity).status == "success"
    table = _nullable(_landed_schema(root, store, "items"))
    query = _nullable(_landed_schema(root, store, "q"))
    if store == "open_mirroring":
        assert all(table[c] for c in ("id", "sku", "note", "updated_at")), table
    else:
        assert table == {"id": False, "sku": False, "note": True, "updated_at": False}
    # A query's columns: PostgreSQL's description cannot tell (an outer join makes a NOT NULL table
    # column NULL), so they stay nullable, the key too.
    assert all(v for k, v in query.items() if k != "__rowMarker__"), query


@pytest.mark.parametrize("store", ["parquet", "delta"])
def test_a_column_that_starts_allowing_null_stops_the_incremental_with_the_fix(
    tmp_path: Path, source: str, store: str
) -> None:
    root = project(tmp_path, source, store)
    assert run(root, "f", "items").status == "success"
    pg_execute(
        source,
        "ALTER TABLE items ALTER COLUMN sku DROP NOT NULL",
        ("INSERT INTO items VALUES (21, NULL, 'n', %s)", (T0 + dt.timedelta(days=1),)),
    )
    with pytest.raises(HyggeError) as failure:
        run(root, "f", "items")
    text = str(failure.value)
    assert "column 'sku' allows NULL now" in text and "--full-drop" in text, text
    assert run(root, "f", "items", run_type="full_drop").status == "success"
    assert _nullable(_landed_schema(root, store, "items"))["sku"] is True


@pytest.mark.parametrize("store", ["parquet", "delta"])
def test_a_store_landed_with_every_column_nullable_carries_on(tmp_path: Path, source: str, store: str) -> None:
    """What an older hygge landed (no NOT NULL anywhere) takes the next incremental as before: a column
    that is stricter now than what landed is no schema change."""
    pg_execute(source, "ALTER TABLE items ALTER COLUMN sku DROP NOT NULL")
    root = project(tmp_path, source, store)
    assert run(root, "f", "items").status == "success"
    pg_execute(
        source,
        "ALTER TABLE items ALTER COLUMN sku SET NOT NULL",
        ("INSERT INTO items VALUES (21, 's21', 'n', %s)", (T0 + dt.timedelta(days=1),)),
    )
    result = run(root, "f", "items")
    assert result.status == "success" and result.rows == 1
