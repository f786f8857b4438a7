"""Shared helpers for landing tests: write a project to disk, run one entity, read what landed.

Each helper loads the project from disk again, so every run sees the configuration the way a user's
command would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import yaml

from hygge.config import load_project
from hygge.config.loader import Project
from hygge.config.models import ResolvedEntity
from hygge.journal import Entry, new_id
from hygge.runner import EntityResult, RunIds, journal_for, land_entity
from hygge.storage import Storage
from hygge.stores import make_store

STORE_TYPES = ["delta", "parquet"]


def write_project(
    root: Path,
    *,
    connections: dict[str, dict[str, Any]],
    flows: dict[str, dict[str, Any]],
    entity_files: dict[tuple[str, str], dict[str, Any]] | None = None,
    name: str = "t",
) -> Path:
    """Write hygge.yml, flows/<flow>/flow.yml and flows/<flow>/entities/<entity>.yml under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "hygge.yml").write_text(yaml.safe_dump({"name": name, "connections": connections}))
    for flow, config in flows.items():
        folder = root / "flows" / flow
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "flow.yml").write_text(yaml.safe_dump(config))
    for (flow, entity), config in (entity_files or {}).items():
        folder = root / "flows" / flow / "entities"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{entity}.yml").write_text(yaml.safe_dump(config))
    return root


def sql_flow(
    store_type: str,
    entities: list[Any],
    *,
    connection: str = "db",
    primary_key: list[str] | None = None,
    watermark_column: str | None = "updated_at",
    run_type: str = "incremental",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """A flow.yml body: one SQL home, one local store named `lake`, the given watermark."""
    home: dict[str, Any] = {"type": "sql", "connection": connection}
    if batch_size is not None:
        home["batch_size"] = batch_size
    flow: dict[str, Any] = {
        "home": home,
        "store": {"type": store_type, "path": "lake"},
        "run_type": run_type,
        "entities": entities,
    }
    watermark: dict[str, Any] = {}
    if primary_key:
        watermark["primary_key"] = primary_key
    if watermark_column:
        watermark["watermark_column"] = watermark_column
    if watermark:
        flow["watermark"] = watermark
    return flow


def load(root: Path) -> Project:
    return load_project(root)


def entity_of(project: Project, flow: str, entity: str) -> ResolvedEntity:
    for candidate in project.flows[flow].entities:
        if candidate.name == entity:
            return candidate
    raise KeyError(f"{flow}.{entity}")


def run(root: Path, flow: str, entity: str, run_type: str | None = None) -> EntityResult:
    """Land one entity the way a flow run would (fresh project load, fresh run ids)."""
    project = load(root)
    ids = RunIds(coordinator="tests", coordinator_run_id=new_id(), flow_run_id=new_id())
    return land_entity(project, entity_of(project, flow, entity), ids, run_type=run_type)


def landed(root: Path, flow: str, entity: str) -> pa.Table:
    """Everything the entity's store shows right now."""
    project = load(root)
    return make_store(entity_of(project, flow, entity), project.root).scan()


def journal(root: Path, flow: str, entity: str) -> list[Entry]:
    project = load(root)
    return journal_for(entity_of(project, flow, entity), project).entries(flow, entity)


def statuses(entries: list[Entry]) -> list[str]:
    return [e.status for e in entries]


def pg_execute(url: str, *statements: str | tuple[str, Any]) -> None:
    """Run statements (text, or (text, params)) in one autocommitted session."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            if isinstance(statement, tuple):
                conn.execute(statement[0], statement[1])
            else:
                conn.execute(statement)


def pg_rows(url: str, sql: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows (as dicts) of a query, read with psycopg."""
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        names = [d.name for d in cur.description]
        return names, [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def row_sort_key(row: dict[str, Any]) -> tuple:
    """Orders rows by every value (None first) so multisets of rows can be compared as lists."""
    return tuple((value is not None, repr(value) if value is not None else "") for value in row.values())


MIRRORED_ITEM = "Erp.MountedRelationalDatabase"


@dataclass(frozen=True)
class MirrorItem:
    """A mirrored database item for Open Mirroring tests, on local disk or Azurite: the store settings
    that reach its Files/LandingZone, and the item (LandingZone, Monitoring, Tables/) as a Storage."""

    store: dict[str, Any]
    item: Storage

    def table(self, name: str) -> Storage:
        return self.item.child("Files", "LandingZone", name)

    def mirrored(self, name: str, schema: str = "dbo") -> pa.Table:
        """The Delta table the (local) replicator keeps under Tables/."""
        from deltalake import DeltaTable

        place = self.item.child("Tables", schema, name)
        return DeltaTable(place.uri, storage_options=place.options()).to_pyarrow_table()


def azurite_store(request: Any, path: str) -> dict[str, Any]:
    """Store settings for `path` in a fresh container of the session's Azurite (account key)."""
    info, container = request.getfixturevalue("azure_container")
    return {
        "path": f"az://{container}/{path}",
        "account": info.account,
        "endpoint": info.blob_endpoint,
        "credential": {"type": "account_key", "account_key": info.key},
    }


def mirror_item(request: Any, root: Path) -> MirrorItem:
    """The item for a test parametrized "local" (under the project `root`) or "azurite" (a fresh
    container of the session's Azurite)."""
    if request.param == "local":
        return MirrorItem({"path": f"{MIRRORED_ITEM}/Files/LandingZone"}, Storage.local(root / MIRRORED_ITEM))
    from hygge.config.models import OpenMirroringStoreConfig

    store = azurite_store(request, f"{MIRRORED_ITEM}/Files/LandingZone")
    from hygge.fabric.status import mirrored_item

    settings = OpenMirroringStoreConfig.model_validate({"type": "open_mirroring", **store})
    item = mirrored_item(Storage.at(settings.location, None, settings))
    assert item is not None
    return MirrorItem(store, item)
