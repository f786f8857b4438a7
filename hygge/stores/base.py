"""What every store offers: staged writes committed in one step, tagged with the entity run id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from hygge.homes.base import SourceFile


@dataclass(frozen=True)
class WriteRequest:
    run_type: str  # full_drop | incremental
    entity_run_id: str
    version: int  # increases with every attempt of an entity; Delta's transaction version
    primary_key: list[str] = field(default_factory=list)
    watermark_column: str | None = None
    lookback: float | None = None
    copies: tuple[SourceFile, ...] = ()  # parquet files to land byte for byte instead of the stream


@dataclass(frozen=True)
class Commit:
    """The store's record of the last committed write: lets a rerun detect an unjournaled commit."""

    entity_run_id: str
    run_type: str
    rows: int | None = None
    detail: str = ""


class Store(Protocol):
    def describe(self) -> str: ...

    def recover(self) -> Commit | None:
        """Finish or discard interrupted work; return the last committed write, if any."""
        ...

    def write(self, reader: pa.RecordBatchReader, request: WriteRequest) -> Commit:
        """Stage everything from `reader`, then make it visible in one commit."""
        ...

    def max_value(self, column: str) -> Any:
        """Largest value of `column` in the landed data (None when empty)."""
        ...

    def rows_between(self, column: str, low: Any, high: Any) -> pa.Table:
        """Landed rows whose `column` lies in [low, high]; used to drop rows read twice."""
        ...

    def scan(self) -> pa.Table:
        """Everything landed (tests, verification)."""
        ...


def _plain(arrow: pa.DataType) -> pa.DataType:
    """The type as hygge pins it: readers may report large or view strings and binaries."""
    if pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
        return pa.string()
    if pa.types.is_large_binary(arrow) or pa.types.is_binary_view(arrow):
        return pa.binary()
    return arrow


def check_columns_unchanged(landed: pa.Schema | None, incoming: pa.Schema, run_type: str, what: str) -> None:
    """An incremental run adds rows to what landed; a column whose type changed, that is gone or that
    is new would leave files that disagree with each other. Raises StoreError naming the column."""
    if run_type != "incremental" or landed is None:
        return
    from hygge.errors import StoreError

    now = {f.name: _plain(f.type) for f in incoming}
    before = {f.name: _plain(f.type) for f in landed}
    problem = None
    for name, old in before.items():
        if name not in now:
            problem = f"column '{name}' (type {old}) is gone from the source"
        elif now[name] != old:
            problem = f"column '{name}' changed type from {old} to {now[name]}"
        if problem:
            break
    added = [name for name in now if name not in before]
    if problem is None and added:
        problem = f"column '{added[0]}' is new in the source"
    if problem is not None:
        raise StoreError(
            f"{problem} since {what} was landed; an incremental run cannot change landed columns",
            hint="run this entity once with --full-drop to rebuild it with the source's columns",
        )
