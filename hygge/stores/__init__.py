"""Stores: where data lands. `make_store` picks the implementation for an entity."""

from __future__ import annotations

from pathlib import Path

from hygge.config.models import AdlsStoreConfig, OneLakeStoreConfig, OpenMirroringStoreConfig, ResolvedEntity
from hygge.errors import HyggeError
from hygge.storage import Storage
from hygge.stores.base import Commit, Store, WriteRequest
from hygge.stores.files import layout_of


def store_root(entity: ResolvedEntity, project_root: Path | None = None) -> Storage:
    """The folder that holds every entity of the entity's store (and, by default, the journal)."""
    config = entity.store
    remote_parts = AdlsStoreConfig | OneLakeStoreConfig | OpenMirroringStoreConfig
    text = config.location if isinstance(config, remote_parts) else config.path
    try:
        return Storage.at(text, project_root, config)
    except HyggeError as exc:
        raise exc.with_context(file=entity.file, flow=entity.flow, entity=entity.name) from None


def store_format(entity: ResolvedEntity) -> str:
    config = entity.store
    if isinstance(config, OpenMirroringStoreConfig):
        return "open_mirroring"
    return config.format if isinstance(config, AdlsStoreConfig | OneLakeStoreConfig) else config.type


def make_store(entity: ResolvedEntity, project_root: Path | None = None) -> Store:
    if isinstance(entity.store, OpenMirroringStoreConfig):
        from hygge.stores.open_mirroring import OpenMirroringStore

        keys = list(entity.watermark.primary_key) if entity.watermark else []
        return OpenMirroringStore(store_root(entity, project_root), entity.name, entity.store, keys)
    root = store_root(entity, project_root)
    location = root.child(entity.name)
    kind = store_format(entity)
    if kind == "parquet":
        from hygge.stores.parquet import ParquetStore

        return ParquetStore(root, entity.name, entity.store)
    if kind == "delta":
        from hygge.stores.delta import DeltaStore

        return DeltaStore(
            location, app_id=f"hygge:{entity.flow}.{entity.name}", layout=layout_of(entity.store)
        )
    raise TypeError(f"no store for {type(entity.store).__name__}")


__all__ = ["Commit", "Store", "WriteRequest", "make_store", "store_root"]
