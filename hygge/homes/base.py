"""What every home offers: a pinned Arrow schema and a stream of batches already cast to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from hygge.watermark import WatermarkValue


@dataclass(frozen=True)
class Bound:
    """Read only rows whose `column` is at least `value` (inclusive, so no shared maximum is lost)."""

    column: str
    kind: str
    value: WatermarkValue


class Home(Protocol):
    def schema(self) -> pa.Schema:
        """The pinned schema, from the source's own metadata; fixed before the first batch."""
        ...

    def read(self, bound: Bound | None = None) -> pa.RecordBatchReader:
        """Stream the entity's rows (those at or above `bound`), cast to `schema()`."""
        ...

    def describe(self) -> str:
        """Where the data comes from, safe to log (no secrets)."""
        ...
