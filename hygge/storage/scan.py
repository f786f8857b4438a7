"""Read a dataset's parquet files batch by batch through buffered streams, for homes and stores alike.

pyarrow's dataset scanner decodes whole row groups (and several ahead); with 1M-row groups that is
hundreds of MB. A buffered `ParquetFile` stream holds about one batch per column instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_READ_BUFFER = 1024 * 1024


def stream_files(dataset: Any, predicate: Any, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Batches of each file in turn: row groups pruned by their statistics (pyarrow's own pruning),
    rows filtered by `predicate`, columns the dataset has but a file lacks filled with nulls."""
    for file, groups in _pruned_files(dataset, predicate):
        yield from _read(file, groups, dataset.schema, batch_size, predicate)


def rows_where(dataset: Any, column: str, predicate: Any, batch_size: int = 65_536) -> pa.Table:
    """Rows matching `predicate`, which tests `column` only: each row group's `column` is read
    first and the rest of the row group only where it matches. A watermark's re-read window is a
    handful of rows, so this costs one column's read rather than a scan of the whole landed data."""
    found: list[pa.RecordBatch] = []
    for file, groups in _pruned_files(dataset, predicate):
        if column not in file.schema_arrow.names:
            continue
        for group in groups or range(file.num_row_groups):
            if file.read_row_group(group, columns=[column]).filter(predicate).num_rows:
                found.extend(_read(file, [group], dataset.schema, batch_size, predicate))
    return pa.Table.from_batches(found, schema=dataset.schema)


def _pruned_files(dataset: Any, predicate: Any) -> Iterator[tuple[pq.ParquetFile, list[int] | None]]:
    """Each file opened as a buffered stream, with the row groups its statistics cannot rule out
    (None: all of them, when there is no predicate); files with none left are skipped."""
    for fragment in dataset.get_fragments(filter=predicate):
        groups = None
        if predicate is not None:
            groups = [rg.id for piece in fragment.split_by_row_group(predicate) for rg in piece.row_groups]
            if not groups:
                continue
        with dataset.filesystem.open_input_file(fragment.path) as handle:
            yield pq.ParquetFile(handle, pre_buffer=False, buffer_size=_READ_BUFFER), groups


def _read(
    file: pq.ParquetFile, groups: list[int] | None, schema: pa.Schema, batch_size: int, predicate: Any
) -> Iterator[pa.RecordBatch]:
    """The row groups' batches in `schema` (missing columns as nulls), filtered by `predicate`."""
    present = [n for n in schema.names if n in file.schema_arrow.names]
    for batch in file.iter_batches(batch_size, row_groups=groups, columns=present):
        if len(present) < len(schema.names):
            batch = _with_nulls(batch, schema)
        yield batch if predicate is None else batch.filter(predicate)


def _with_nulls(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = [
        batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
