"""The Open Mirroring store's record of landed keys: the service deletes the files it processed, so
hygge keeps, per commit, the keys it published (full rows where deletes are soft) with their
operation, under `_hygge/<table>/keys/`. Replaying the logs in order gives the live landed keys.

The first log is a full load's or a compaction's: one row per key. Later logs are the commits since,
few and small (compaction folds them once there are more than COMPACT_AFTER or COMPACT_ROWS). A
replay streams the first log batch by batch, less the keys the later ones mention (an exact
anti-join with their small table), then the later logs' last row per key: memory is one batch plus
the recent changes, never the table's keys in a polars frame (1.4 GB for 10M keys, measured).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.storage import Storage

OP = "__hygge_op"
LIVE, GONE = 0, 2
FOLDER = "keys"
COMPACT_AFTER = 32  # logs after the first before they are folded into one
COMPACT_ROWS = 1_000_000  # or rows in those logs
BATCH = 262_144


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


def _batches(work: Storage, path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    filesystem, [full] = work.dataset_paths([path])
    with filesystem.open_input_file(full) as handle:
        yield from pq.ParquetFile(handle, pre_buffer=False).iter_batches(batch_size=BATCH, columns=columns)


def live_floor(work: Storage) -> int:
    """At most the live keys, from footers and the later logs' operations only: the first log holds one
    row a key, and each later delete removes at most one of them (upserts only add). A replay of 10M
    keys costs seconds; this costs the small later logs' op columns."""
    paths = log_paths(work)
    if not paths:
        return 0
    filesystem, [first] = work.dataset_paths(paths[:1])
    floor = pq.read_metadata(first, filesystem=filesystem).num_rows
    for path in paths[1:]:
        for batch in _batches(work, path, [OP]):
            floor -= pc.sum(pc.equal(batch.column(0), GONE)).as_py() or 0
    return max(floor, 0)


def _recent(work: Storage, paths: list[str], keys: list[str], schema: pa.Schema) -> pa.Table | None:
    """The later logs' last row per key (in the first log's types), or None without later logs."""
    if not paths:
        return None
    tables = [pa.Table.from_batches(list(_batches(work, p))) for p in paths]
    logged = pa.concat_tables([t for t in tables if t.num_rows], promote_options="permissive")
    if not logged.num_rows:
        return None
    numbered = logged.append_column("__hygge_seq", pa.array(range(logged.num_rows), pa.int64()))
    last = numbered.group_by(keys, use_threads=False).aggregate([("__hygge_seq", "max")])
    chosen = numbered.take(last.column("__hygge_seq_max")).drop_columns(["__hygge_seq"])
    fields = [schema.field(n) if n in schema.names else chosen.schema.field(n) for n in chosen.column_names]
    return chosen.cast(pa.schema(fields))


def replay(work: Storage, keys: list[str], soft_column: str | None) -> Iterator[pa.RecordBatch]:
    """The last logged row of every key that is live (not deleted; with `soft_column`, not soft-
    deleted either), batch by batch."""
    paths = log_paths(work)
    if not paths:
        return
    filesystem, [full] = work.dataset_paths(paths[:1])
    first = pq.read_schema(full, filesystem=filesystem)
    recent = _recent(work, paths[1:], keys, first)
    mentioned = recent.select(keys) if recent is not None else None

    def live(table: pa.Table) -> Iterator[pa.RecordBatch]:
        keep = pc.equal(table.column(OP), LIVE)
        if soft_column and soft_column in table.column_names:
            keep = pc.and_(keep, pc.is_null(table.column(soft_column)))
        yield from table.filter(keep).to_batches(max_chunksize=BATCH)

    for batch in _batches(work, paths[0]):
        table = pa.Table.from_batches([batch])
        if mentioned is not None and mentioned.num_rows:
            table = table.join(mentioned, keys=keys, join_type="left anti")
        yield from live(table)
    if recent is not None:
        yield from live(recent)


def landed_keys(work: Storage, keys: list[str], soft_column: str | None) -> Iterator[pa.RecordBatch]:
    for batch in replay(work, keys, soft_column):
        yield batch.select(keys)


def last_rows(
    work: Storage, keys: list[str], soft_column: str, wanted: pa.Table, schema: pa.Schema
) -> pa.Table:
    """The last landed rows of the `wanted` keys (soft deletes rewrite them with a deleted-at time)."""
    targets = wanted.select(keys)
    found = [
        pa.Table.from_batches([b]).join(targets, keys=keys, join_type="left semi")
        for b in replay(work, keys, soft_column)
    ]
    parts = [t for t in found if t.num_rows]  # files of older runs may differ in NOT NULL only
    rows = pa.concat_tables(parts, promote_options="default") if parts else None
    if rows is None:
        return schema.empty_table()
    missing = [f.name for f in schema if f.name not in rows.column_names]
    if missing:
        from hygge.errors import StoreError

        raise StoreError(
            f"soft deletes need the last landed rows, and the key log holds only keys (no {missing[0]}): "
            "the entity switched to `deletes.mode: soft` after its last full load",
            hint="run this entity once with --full-drop: the key log then keeps full rows",
            field="deletes.mode",
        )
    return pa.table([rows.column(f.name).cast(f.type) for f in schema], schema=schema)


def install(work: Storage, record: dict[str, Any], keys: list[str], compacted_name: str) -> None:
    """Move a commit's staged key log into place (a full_drop's replaces every earlier one), then
    compact when due. Each step can be repeated: a rerun finishes an interrupted commit."""
    staged, final = record.get("keys_log"), record.get("keys_final")
    if not staged or not final:
        return
    if record["run_type"] == "full_drop":
        for path in log_paths(work):
            if path != final:
                work.delete(path)
    if work.exists(staged):
        work.rename(staged, final, overwrite=True)
    compact(work, keys, compacted_name)


def compact(work: Storage, keys: list[str], name: str) -> None:
    """Fold the logs into one of the last live rows once the later logs are many or large.

    The snapshot is streamed under a name that sorts after every log, then the older logs are
    deleted: a crash in between leaves logs whose replay gives the same live keys."""
    paths = log_paths(work)
    if len(paths) < 2:
        return
    filesystem, full = work.dataset_paths(paths[1:])
    later_rows = sum(pq.read_metadata(p, filesystem=filesystem).num_rows for p in full)
    if len(paths) - 1 <= COMPACT_AFTER and later_rows <= COMPACT_ROWS:
        return
    writer: pq.ParquetWriter | None = None
    sink: Any = None
    try:
        for batch in replay(work, keys, None):  # soft-deleted rows keep their state
            if writer is None:
                sink = work.open_writer(f"{FOLDER}/{name}")
                writer = pq.ParquetWriter(sink, batch.schema, compression="zstd")
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()
            if not sink.closed:
                sink.close()
    for path in paths:
        work.delete(path)
