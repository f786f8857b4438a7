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
