"""Stream helpers of an entity run: count and observe batches, drop rows that already landed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hygge import watermark as wm
from hygge.faults import fault

RowsCallback = Callable[[int], None]


class Guard:
    """Remembers an error raised while a store consumes the stream (drivers may wrap it)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def wrap(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except BaseException as exc:
            self.error = exc
            raise


class Observer:
    """Counts rows, tracks the watermark maximum and reports progress as batches pass."""

    def __init__(self, tracker: wm.MaxTracker | None, on_rows: RowsCallback | None) -> None:
        self.tracker = tracker
        self.on_rows = on_rows
        self.rows = 0

    def wrap(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if not batch.num_rows:
                continue  # an empty batch is not a change: "nothing new" must stay nothing
            if self.tracker is not None:
                self.tracker.update(batch)
            self.count(batch.num_rows)
            fault("extract.batch")
            yield batch

    def count(self, rows: int) -> None:
        self.rows += rows
        if self.on_rows is not None:
            self.on_rows(rows)


def observe_copies(observer: Observer, copies: list[Any], column: str | None) -> None:
    """Count the copied rows, and track the watermark from that one column (never the whole file)."""
    import pyarrow.parquet as pq

    for source in copies:
        if column is not None and observer.tracker is not None:
            with source.filesystem.open_input_file(source.path) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(columns=[column]):
                    observer.tracker.update(batch)
        observer.count(source.metadata.num_rows)


def copy_keys(copies: list[Any], keys: list[str]) -> Iterator[pa.Table]:
    """The key columns of files landed byte for byte, batch by batch (for the key integrity check)."""
    import pyarrow.parquet as pq

    for source in copies:
        with source.filesystem.open_input_file(source.path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(columns=keys, batch_size=262_144):
                yield pa.Table.from_batches([batch])


def prepend(first: pa.RecordBatch | None, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    if first is not None:
        yield first
    yield from rest


def drop_already_landed(
    batches: Iterator[pa.RecordBatch], landed: pa.Table, column: str, low: Any, high: Any
) -> Iterator[pa.RecordBatch]:
    """Rows re-read in the watermark window [low, high] that already landed exactly as they are now
    are dropped, matched against the landed rows of that window as a multiset: without a key they
    would land twice, with one they would rewrite files (or publish a file) for nothing.

    Only the (small) re-read window is compared row by row; every other row passes untouched. Landed
    columns the source does not have (a soft delete's deleted-at) are left out of the comparison.
    """
    remaining: Counter = Counter()
    names: list[str] | None = None

    def fill(schema: pa.Schema) -> None:
        nonlocal names
        names = schema.names
        if landed.num_rows and all(n in landed.column_names for n in names):
            rows = landed
            for extra in [n for n in landed.column_names if n not in names]:
                rows = rows.filter(pc.is_null(rows.column(extra)))  # a soft-deleted row is not live
            rows = rows.select(names)
            try:
                rows = rows.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            remaining.update(tuple(row.values()) for row in rows.to_pylist())

    for batch in batches:
        if names is None:
            fill(batch.schema)
        values = batch.column(batch.schema.get_field_index(column))
        in_window = pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))
        in_window = pc.fill_null(in_window, False)
        if not remaining or not pc.any(in_window).as_py():
            yield batch
            continue
        keep = [True] * batch.num_rows
        window_rows = pc.indices_nonzero(in_window).to_pylist()
        for index, row in zip(window_rows, batch.take(window_rows).to_pylist(), strict=True):
            key = tuple(row.values())
            if remaining[key] > 0:
                remaining[key] -= 1
                keep[index] = False
        kept = batch.filter(pa.array(keep))
        if kept.num_rows:
            yield kept
