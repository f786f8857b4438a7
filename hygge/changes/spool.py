"""Spool a stream to a local temporary parquet file and read it back: for a change feed that learns
its deletes only while its upserts stream (SQL Server Change Tracking reads both in one query), the
deletes must be known before the store's commit is prepared, and memory must stay bounded."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq


def spooled(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """Drain `reader` into a temporary file now; the returned reader streams it and removes it."""
    handle, path = tempfile.mkstemp(prefix="hygge-spool-", suffix=".parquet")
    os.close(handle)
    try:
        with pq.ParquetWriter(path, reader.schema, compression="lz4") as writer:
            for batch in reader:
                if batch.num_rows:
                    writer.write_batch(batch)
    except BaseException:
        os.unlink(path)
        raise

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from pq.ParquetFile(path).iter_batches(batch_size=65_536)
        finally:
            os.unlink(path)

    return pa.RecordBatchReader.from_batches(reader.schema, batches())
