"""The Open Mirroring store's record of landed keys: the service deletes the files it processed, so
hygge keeps, per commit, the keys it published (full rows where deletes are soft) with their
operation, under `_hygge/<table>/keys/`. Replaying the logs in order gives the live landed keys.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hygge.storage import Storage

OP = "__hygge_op"
LIVE, GONE = 0, 2
FOLDER = "keys"
COMPACT_AFTER = 32  # logs before they are folded into one snapshot of the live keys


class KeyLogWriter:
    """Streams one commit's keys (or rows) and their operations into a staged parquet file."""

    def __init__(self, work: Storage, path: str, schema: pa.Schema) -> None:
        self.work = work
        self.path = path
        self.schema = schema.append(pa.field(OP, pa.int8()))
        self.rows = 0
        self._sink: Any = None
        self._writer: pq.ParquetWriter | None = None

    def add(self, batch: pa.RecordBatch, op: int) -> None:
        if not batch.num_rows:
            return
        if self._writer is None:
            self._sink = self.work.open_writer(self.path)
            self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")
        columns = [batch.column(f.name).cast(f.type) for f in self.schema if f.name != OP]
        columns.append(pa.array([op] * batch.num_rows, pa.int8()))
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))
        self.rows += batch.num_rows

    def close(self) -> str | None:
        """The staged path, or None when nothing was logged."""
        if self._writer is None:
            return None
        self._writer.close()
        if not self._sink.closed:
            self._sink.close()
        return self.path


def log_paths(work: Storage) -> list[str]:
    return sorted(o["path"] for o in work.list(FOLDER) if o["path"].endswith(".parquet"))


def live_rows(work: Storage, keys: list[str], soft_column: str | None) -> Any:
    """A polars frame of the last logged row per key that is neither deleted nor soft-deleted."""
    import polars as pl

    paths = log_paths(work)
    if not paths:
        return None
    frames = [pl.read_parquet(io.BytesIO(work.get(p))) for p in paths]
    logged = pl.concat(frames, how="diagonal_relaxed")
    last = logged.unique(subset=keys, keep="last", maintain_order=True).filter(pl.col(OP) == LIVE)
    if soft_column and soft_column in last.columns:
        last = last.filter(pl.col(soft_column).is_null())
    return last


def landed_keys(work: Storage, keys: list[str], soft_column: str | None) -> Iterator[pa.RecordBatch]:
    live = live_rows(work, keys, soft_column)
    if live is None:
        return
    yield from live.select(keys).to_arrow().to_batches(max_chunksize=262_144)


def last_rows(work: Storage, keys: list[str], soft_column: str, wanted: pa.Table, schema: pa.Schema) -> pa.Table:
    """The last landed rows of the `wanted` keys (soft deletes rewrite them with a deleted-at time)."""
    import polars as pl

    live = live_rows(work, keys, soft_column)
    if live is None:
        return schema.empty_table()
    found = live.join(pl.from_arrow(wanted.select(keys)), on=keys, how="semi").drop(OP).to_arrow()
    return pa.table([found.column(f.name).cast(f.type) for f in schema], schema=schema)


def compact(work: Storage, keys: list[str], soft_column: str | None, name: str) -> None:
    """Fold every log into one of the live rows once there are more than COMPACT_AFTER.

    The snapshot is written first under a name that sorts after every log, then the older logs are
    deleted: a crash in between leaves logs whose replay gives the same live keys."""
    paths = log_paths(work)
    if len(paths) <= COMPACT_AFTER:
        return
    live = live_rows(work, keys, None)
    if live is None:
        return
    import polars as pl

    sink = io.BytesIO()
    live.with_columns(pl.lit(LIVE, pl.Int8).alias(OP)).write_parquet(sink, compression="zstd")
    work.put(f"{FOLDER}/{name}", sink.getvalue())
    for path in paths:
        work.delete(path)
