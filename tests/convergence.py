"""Helpers for convergence tests: one PostgreSQL table landed into any store kind, local or on Azurite,
with a delete policy, and the comparison of what a reader of the store sees with the source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from hygge.verify import verify_entity
from tests.helpers import entity_of, landed, load, pg_rows, run, write_project

STORES = ["parquet", "delta", "open_mirroring"]
T0 = dt.datetime(2024, 1, 1, 9, 0, 0, 123456)
COLUMNS = "id, name, amount, updated_at"


def store_block(kind: str, azure: tuple[Any, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A flow's store settings for `kind` (local, or in an Azurite container) and hygge.yml credentials."""
    credentials: dict[str, Any] = {}
    if kind == "open_mirroring":
        store: dict[str, Any] = {"type": "open_mirroring", "path": "zone", "folder_deletion_wait_seconds": 0}
    else:
        store = {"type": kind, "path": "lake"}
    if azure is not None:
        info, container = azure
        credentials = {"azurite": {"type": "account_key", "account_key": info.key}}
        remote = {"account": info.account, "endpoint": info.blob_endpoint, "credential": "azurite"}
        if kind == "open_mirroring":
            store.update(path=f"az://{container}/db/Files/LandingZone", **remote)
        else:
            store = {"type": "adls", "format": kind, "container": container, "path": "lake", **remote}
    return store, credentials


def project(
    root: Path,
    pg_db: str,
    kind: str,
    *,
    azure: tuple[Any, str] | None = None,
    deletes: dict[str, Any] | None = None,
    watermark: dict[str, Any] | None = None,
    entity: dict[str, Any] | None = None,
    flow: str = "f",
    name: str = "t",
    extra_flows: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A project with flow `flow` landing table `items` (keyed on id, watermark updated_at)."""
    store, credentials = store_block(kind, azure)
    item: dict[str, Any] = {"name": "items", **(entity or {})}
    if deletes is not None:
        item["deletes"] = deletes
    flows = {
        flow: {
            "home": {"type": "sql", "connection": "db", "batch_size": 7},
            "store": store,
            "run_type": "incremental",
            "watermark": {"primary_key": ["id"], "watermark_column": "updated_at", **(watermark or {})},
            "entities": [item],
        },
        **(extra_flows or {}),
    }
    root = write_project(root, connections={"db": {"type": "postgres", "url": pg_db}}, flows=flows, name=name)
    if credentials:
        config = yaml.safe_load((root / "hygge.yml").read_text())
        config["credentials"] = credentials
        (root / "hygge.yml").write_text(yaml.safe_dump(config))
    return root


def create(pg_db: str, rows: int = 20, *, key: str = "PRIMARY KEY") -> None:
    from tests.helpers import pg_execute

    pg_execute(
        pg_db,
        f"CREATE TABLE items (id int {key}, name text, amount numeric(12,2), updated_at timestamp)",
        (
            "INSERT INTO items SELECT g, 'n' || g, g * 1.5, %s + g * interval '1 second' "
            "FROM generate_series(1, %s) g",
            (T0, rows),
        ),
    )


def source(pg_db: str) -> list[dict]:
    _, rows = pg_rows(pg_db, f"SELECT {COLUMNS} FROM items")
    return sorted(rows, key=lambda r: r["id"])


def landed_rows(root: Path, flow: str = "f", soft: str | None = None) -> list[dict]:
    """What a reader of the store sees (Open Mirroring: the replay), live rows only where deletes are
    soft, in the source's columns."""
    table = landed(root, flow, "items")
    if not table.num_rows:
        return []
    if soft:
        import pyarrow.compute as pc

        table = table.filter(pc.is_null(table.column(soft)))
    names = [c.strip() for c in COLUMNS.split(",")]
    rows = table.select(names).to_pylist()
    for row in rows:  # readers may widen types; compare values as the source gives them
        if isinstance(row["updated_at"], dt.datetime):
            row["updated_at"] = row["updated_at"].replace(tzinfo=None)
    return sorted(rows, key=lambda r: r["id"])


def soft_deleted(root: Path, column: str, flow: str = "f") -> dict[int, Any]:
    table = landed(root, flow, "items")
    return {r["id"]: r[column] for r in table.select(["id", column]).to_pylist() if r[column] is not None}


def verified(root: Path, flow: str = "f") -> bool:
    loaded = load(root)
    return verify_entity(loaded, entity_of(loaded, flow, "items")).ok


def land(root: Path, flow: str = "f", **options: Any):
    return run_with(root, flow, **options)


def run_with(root: Path, flow: str, run_type: str | None = None, **options: Any):
    from hygge.journal import new_id
    from hygge.runner import RunIds, land_entity

    if not options:
        return run(root, flow, "items", run_type=run_type)
    loaded = load(root)
    ids = RunIds("tests", new_id(), new_id())
    return land_entity(loaded, entity_of(loaded, flow, "items"), ids, run_type=run_type, **options)


def listing(root: Path, kind: str) -> list[tuple[str, int]]:
    """Every file a reader could see in the entity's store folder (names and sizes), hygge's
    bookkeeping included: a run that writes nothing leaves it unchanged."""
    folder = root / ("zone/items" if kind == "open_mirroring" else "lake/items")
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def empty_table() -> pa.Table:
    return pa.table({})
