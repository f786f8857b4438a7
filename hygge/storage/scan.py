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
    names = dataset.schema.names
    for fragment in dataset.get_fragments(filter=predicate):
        row_groups = None
        if predicate is not None:
            row_groups = [
                rg.id for piece in fragment.split_by_row_group(predicate) for rg in piece.row_groups
            ]
            if not row_groups:
                continue
        with dataset.filesystem.open_input_file(fragment.path) as handle:
            file = pq.ParquetFile(handle, pre_buffer=False, buffer_size=_READ_BUFFER)
            present = [n for n in names if n in file.schema_arrow.names]
            for batch in file.iter_batches(batch_size, row_groups=row_groups, columns=present):
                if len(present) < len(names):
                    batch = _with_nulls(batch, dataset.schema)
                yield batch if predicate is None else batch.filter(predicate)


def _with_nulls(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    columns = [
        batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def rows_where(dataset: Any, column: str, predicate: Any, batch_size: int = 65_536) -> pa.Table:
    """Rows matching `predicate`, which tests `column` only: each row group's `column` is read
    first and the rest of the row group only where it matches. A watermark's re-read window is a
    handful of rows, so this costs one column's read rather than a scan of the whole landed data."""
    found: list[pa.RecordBatch] = []
    names = dataset.schema.names
    for fragment in dataset.get_fragments(filter=predicate):
        groups = [rg.id for piece in fragment.split_by_row_group(predicate) for rg in piece.row_groups]
        if not groups:
            continue
        with dataset.filesystem.open_input_file(fragment.path) as handle:
            file = pq.ParquetFile(handle, pre_buffer=False, buffer_size=_READ_BUFFER)
            present = [n for n in names if n in file.schema_arrow.names]
            for group in groups:
                if (
                    column not in present
                    or not file.read_row_group(group, columns=[column]).filter(predicate).num_rows
                ):
                    continue
                for batch in file.iter_batches(batch_size, row_groups=[group], columns=present):
                    if len(present) < len(names):
                        batch = _with_nulls(batch, dataset.schema)
                    found.append(batch.filter(predicate))
    return pa.Table.from_batches(found, schema=dataset.schema)
