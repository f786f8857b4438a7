"""What every store offers: staged writes committed in one step, tagged with the entity run id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

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
    # Keys gone from the source (key columns, pinned types), applied in the same commit as the rows.
    deletes: pa.Table | None = None
    soft_column: str | None = None  # soft deletes: set this UTC timestamp column instead of removing
    deleted_at: dt.datetime | None = None
    owner: str | None = None  # project/flow/entity: recorded with the commit, checked by later writers
    position: str | None = None  # a change feed's position this commit reaches (journaled with it)

    @property
    def delete_count(self) -> int:
        return self.deletes.num_rows if self.deletes is not None else 0


@dataclass(frozen=True)
class Confirmation:
    """What the far end reported once it had applied a write (Fabric, for Open Mirroring)."""

    status: str
    processed_rows: int | None
    seconds: float  # from the start of publishing to the confirmation


@dataclass(frozen=True)
class Commit:
    """The store's record of the last committed write: lets a rerun detect an unjournaled commit."""

    entity_run_id: str
    run_type: str
    rows: int | None = None
    detail: str = ""
    owner: str | None = None
    position: str | None = None
    foreign: str | None = None  # a change another writer made on top of this commit, if the store can tell
    confirmation: Confirmation | None = None  # the far end applied the write (Open Mirroring `confirm:`)


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

    def landed_keys(self, keys: list[str], soft_column: str | None) -> Iterator[pa.RecordBatch]:
        """The key columns of every live landed row (soft-deleted rows excluded), batch by batch."""
        ...


def live_only(batch: pa.RecordBatch, keys: list[str], soft_column: str | None) -> pa.RecordBatch:
    """The key columns of the rows not soft-deleted."""
    if soft_column and soft_column in batch.schema.names:
        batch = batch.filter(pc.is_null(batch.column(soft_column)))
    return batch.select(keys)


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
    if problem is None:
        strict = {f.name for f in landed if not f.nullable}
        relaxed = [f.name for f in incoming if f.nullable and f.name in strict]
        if relaxed:
            problem = f"column '{relaxed[0]}' allows NULL now (it landed as NOT NULL)"
    added = [name for name in now if name not in before]
    if problem is None and added:
        problem = f"column '{added[0]}' is new in the source"
    if problem is not None:
        raise StoreError(
            f"{problem} since {what} was landed; an incremental run cannot change landed columns",
            hint="run this entity once with --full-drop to rebuild it with the source's columns",
        )
