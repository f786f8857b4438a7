"""The rows at an Open Mirroring table's watermark boundary, which hygge keeps itself: Fabric deletes
the files it processed, yet the next run must tell a re-read row from a new one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

ROW_MARKER = "__rowMarker__"


class Boundary:
    """Rows whose watermark lies within `lookback` of the maximum seen: what the next run re-reads."""

    def __init__(self, column: str | None, lookback: float | None) -> None:
        self.column = column
        self.lookback = lookback
        self.max: Any = None
        self.batches: list[pa.RecordBatch] = []

    def update(self, batch: pa.RecordBatch) -> None:
        if not self.column or not batch.num_rows:
            return
        values = batch.column(batch.schema.get_field_index(self.column))
        if values.null_count == len(values):
            return
        top = pc.max(values).as_py()
        if self.max is None or top > self.max:
            self.max = top
        kept = batch.filter(pc.fill_null(pc.greater_equal(values, self._low()), False))
        if kept.num_rows:
            self.batches.append(kept)
        low = self._low()
        self.batches = [
            b.filter(
                pc.fill_null(pc.greater_equal(b.column(b.schema.get_field_index(self.column)), low), False)
            )
            for b in self.batches
        ]

    def _low(self) -> Any:
        if self.max is None or not self.lookback:
            return self.max
        from hygge.watermark import lower_bound

        kind = {int: "int", str: "string", dt.date: "date"}.get(type(self.max), "decimal")
        if isinstance(self.max, dt.datetime):
            kind = "datetime"
        return lower_bound(self.max, kind, self.lookback)

    def next_rows(
        self, previous: pa.Table | None, deletes: pa.Table | None, keys: list[str]
    ) -> pa.Table | None:
        """The boundary rows to keep after this commit, or None when they stay as they were. A key the
        commit deletes is no longer landed at the boundary: re-inserted as it was, it must land."""
        deleted = (
            deletes is not None and deletes.num_rows > 0 and previous is not None and previous.num_rows > 0
        )
        if deleted:
            assert deletes is not None and previous is not None
            previous = previous.join(deletes.select(keys), keys=keys, join_type="left anti")
        if self.column and self.max is not None:
            return self.rows(previous=previous)
        return previous if deleted else None

    def rows(self, previous: pa.Table | None) -> pa.Table:
        tables = [pa.Table.from_batches(self.batches)] if self.batches else []
        if previous is not None and previous.num_rows:
            prev = previous.drop_columns([c for c in previous.column_names if c == ROW_MARKER])
            tables.insert(0, prev)
        if not tables:
            return pa.table({})
        table = pa.concat_tables(tables, promote_options="permissive")
        values = table.column(self.column)
        return table.filter(pc.fill_null(pc.greater_equal(values, self._low()), False))
