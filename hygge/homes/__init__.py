"""Homes: where data comes from. `make_home` picks the implementation for an entity."""

from __future__ import annotations

from pathlib import Path

from hygge.config.models import (
    ConnectionConfig,
    DeltaHomeConfig,
    ParquetHomeConfig,
    ResolvedEntity,
    SqlHomeConfig,
)
from hygge.homes.base import Bound, Home


def make_home(
    entity: ResolvedEntity, connections: dict[str, ConnectionConfig], project_root: Path | None = None
) -> Home:
    if isinstance(entity.home, SqlHomeConfig):
        from hygge.homes.sql.home import SqlHome

        return SqlHome(entity, connections[entity.home.connection], project_root)
    if isinstance(entity.home, ParquetHomeConfig):
        from hygge.homes.parquet import ParquetHome

        return ParquetHome(entity, project_root)
    if isinstance(entity.home, DeltaHomeConfig):
        from hygge.homes.delta import DeltaHome

        return DeltaHome(entity, project_root)
    raise TypeError(f"no home for {type(entity.home).__name__}")


__all__ = ["Bound", "Home", "make_home"]
