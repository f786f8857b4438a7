"""Every common reader reads every store: what hygge lands (parquet, Delta, and the Delta table Fabric
makes of an Open Mirroring zone, here by the local replicator) gives exactly the source's rows to
pyarrow.dataset, polars, DuckDB and deltalake, on local disk and on Azurite, with a table, an entity
and columns named with spaces and non-ASCII letters.

Two readers are left out where they cannot work, for reasons outside hygge: DuckDB reads only the
local stores (reading Azure needs its `azure` extension, downloaded at first use, and this machine has
no network); polars' read_delta/scan_delta fail on any Delta table whose folder name needs percent
encoding (pola-rs/polars#20944), so they read a plainly named entity of the same table instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable

from hygge.fabric.replicator import LocalReplicator
from hygge.storage import Storage
from tests.helpers import (
    MirrorItem,
    azurite_store,
    entity_of,
    load,
    mirror_item,
    pg_execute,
    pg_rows,
    run,
    sql_flow,
    write_project,
)

ENTITY = "Kunden Übersicht"
PLAIN = "kunden"  # the same table under a name no reader has to encode
COLUMNS = ("id", "full name", "städte", "amount", "at")
Reader = Callable[[Storage], pa.Table]


@pytest.fixture
def kunden(pg_db: str) -> str:
    at = dt.datetime(2026, 1, 1, 12, 30, 0, 123456)
    pg_execute(
        pg_db,
        'CREATE TABLE "Kunden Übersicht" (id int PRIMARY KEY, "full name" text, "städte" text, '
        "amount numeric(12,2), at timestamp)",
        (
            'INSERT INTO "Kunden Übersicht" SELECT i, \'Åsa 😀 \' || i, CASE WHEN i %% 3 = 0 THEN NULL '
            "ELSE 'Zürich' END, i * 1.25, %s + i * interval '1 day' FROM generate_series(1, 40) AS i",
            (at,),
        ),
    )
    return pg_db


def source(pg_db: str) -> list[dict[str, Any]]:
    return sorted(pg_rows(pg_db, 'SELECT * FROM "Kunden Übersicht"')[1], key=lambda r: r["id"])


def rows_of(table: pa.Table | pl.DataFrame) -> list[dict[str, Any]]:
    arrow = table.to_arrow() if isinstance(table, pl.DataFrame) else table
    return sorted(arrow.select(list(COLUMNS)).to_pylist(), key=lambda r: r["id"])


def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], Storage]:
    """Store settings and the store's folder, on local disk or in a fresh Azurite container."""
    if request.param == "local":
        return {"path": "lake"}, Storage.local(tmp_path / "lake")
    settings = azurite_store(request, "lake")
    from hygge.config.models import ParquetStoreConfig

    config = ParquetStoreConfig.model_validate({"type": "parquet", **settings})
    return settings, Storage.at(config.path, None, config)


@pytest.fixture(params=["local", "azurite"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], Storage]:
    return place(request, tmp_path)


def land(tmp_path: Path, pg_db: str, store: dict[str, Any]) -> Path:
    entities = [{"name": ENTITY, "table": ENTITY}, {"name": PLAIN, "table": ENTITY}]
    flow = {**sql_flow("parquet", entities, primary_key=["id"], watermark_column="at"), "store": store}
    root = write_project(tmp_path, connections={"db": {"type": "postgres", "url": pg_db}}, flows={"f": flow})
    for name in (ENTITY, PLAIN):
        result = run(root, "f", name, run_type="full_drop")
        assert result.status == "success", result.error
    pg_execute(
        pg_db,
        """UPDATE "Kunden Übersicht" SET "städte" = 'Genève', at = at + interval '1 year' WHERE id <= 4""",
        """INSERT INTO "Kunden Übersicht" VALUES (41, 'neu', 'Köln', 1.5, '2030-01-01')""",
    )
    for name in (ENTITY, PLAIN):
        result = run(root, "f", name)  # an upsert: a landed file rewritten, a new one added
        assert result.status == "success", result.error
    return root


def pyarrow_dataset(folder: Storage) -> pa.Table:
    filesystem, path = folder.filesystem()
    return ds.dataset(path, format="parquet", filesystem=filesystem).to_table()


def polars_read(folder: Storage) -> pl.DataFrame:
    # A folder in object storage is a prefix: polars reads it as one when the path ends with "/".
    return pl.read_parquet(folder.uri.rstrip("/") + "/", storage_options=folder.options())


def polars_scan(folder: Storage) -> pl.DataFrame:
    return pl.scan_parquet(folder.uri.rstrip("/") + "/", storage_options=folder.options()).collect()


def duckdb_glob(folder: Storage) -> pa.Table:
    import duckdb

    return duckdb.sql(f"SELECT * FROM read_parquet('{folder.location.path}/**/*.parquet')").to_arrow_table()


PARQUET_READERS = {"pyarrow.dataset": pyarrow_dataset, "polars.read_parquet": polars_read,
                   "polars.scan_parquet": polars_scan, "duckdb.read_parquet": duckdb_glob}


def deltalake_read(table: Storage) -> pa.Table:
    return DeltaTable(table.uri, storage_options=table.options()).to_pyarrow_table()


def deltalake_dataset(table: Storage) -> pa.Table:
    return DeltaTable(table.uri, storage_options=table.options()).to_pyarrow_dataset().to_table()


def polars_read_delta(table: Storage) -> pl.DataFrame:
    return pl.read_delta(table.uri, storage_options=table.options())


def polars_scan_delta(table: Storage) -> pl.DataFrame:
    return pl.scan_delta(table.uri, storage_options=table.options()).collect()


DELTA_READERS = {"deltalake": deltalake_read, "deltalake.dataset": deltalake_dataset,
                 "polars.read_delta": polars_read_delta, "polars.scan_delta": polars_scan_delta}


def read_all(readers: dict[str, Reader], folder: Storage, plain: Storage | None = None) -> dict[str, Any]:
    """What each reader gives, by reader name ("polars.*_delta" read `plain`, see the module's note)."""
    found: dict[str, Any] = {}
    for name, reader in readers.items():
        if name.startswith("duckdb") and not folder.is_local:
            continue
        where = plain if plain is not None and name.startswith("polars") else folder
        found[name] = rows_of(reader(where))
    return found


@pytest.mark.parametrize("kind", ["parquet", "delta"])
def test_each_store_reads_right_in_every_reader(
    where: tuple[dict[str, Any], Storage], tmp_path: Path, kunden: str, kind: str
) -> None:
    settings, lake = where
    land(tmp_path, kunden, {"type": kind, **settings})
    expected = source(kunden)
    if kind == "parquet":
        found = read_all(PARQUET_READERS, lake.child(ENTITY))
        assert {name: rows == expected for name, rows in found.items()} == dict.fromkeys(found, True)
    else:
        found = read_all(DELTA_READERS, lake.child(ENTITY), lake.child(PLAIN))
        assert {name: rows == expected for name, rows in found.items()} == dict.fromkeys(DELTA_READERS, True)


@pytest.fixture(params=["local", "azurite"])
def item(request: pytest.FixtureRequest, tmp_path: Path) -> MirrorItem:
    return mirror_item(request, tmp_path)


def test_open_mirroring_reads_right_replayed_and_as_fabrics_table(item: MirrorItem, tmp_path: Path, kunden: str) -> None:
    """hygge's replay of the whole landing zone, then (once the replicator applied it, deleting the
    files it applied) the Delta table Fabric keeps, in every Delta reader."""
    root = land(tmp_path, kunden, {"type": "open_mirroring", **item.store, "folder_deletion_wait_seconds": 0})
    expected = source(kunden)
    project = load(root)
    from hygge.stores import make_store

    assert rows_of(make_store(entity_of(project, "f", ENTITY), project.root).scan()) == expected
    LocalReplicator(item.item).step()
    tables = item.item.child("Tables", "dbo")
    found = read_all(DELTA_READERS, tables.child(ENTITY), tables.child(PLAIN))
    assert {name: rows == expected for name, rows in found.items()} == dict.fromkeys(DELTA_READERS, True)
