"""Keyed changes applied by rewriting files: the one path for upserts and deletes of file stores.

Every landed file holding a key that the run's rows replace, or that the source deleted, is rewritten
without those rows (a soft delete keeps the row and sets its deleted-at time instead), batch by batch,
so a large file is never held whole. The parquet store stages the results beside its commit record; a
plain Delta table commits them with the matching remove actions (hygge.stores.delta_commit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.changes.keys import FingerprintSet, KeyShape, null_rows
from hygge.storage import Storage
from hygge.stores.base import WriteRequest
from hygge.stores.files import FileLayout, WrittenFile, write_files


@dataclass
class Rewrite:
    """What a keyed change did to the landed files: the files written in place of the `removed` ones."""

    written: list[WrittenFile]
    removed: list[str]


class KeyMatcher:
    """Which rows of a table hold one of a set of keys. The keys become a fingerprint set once
    (hygge.changes.keys); each batch is then a lookup, where a join built a hash table of every
    changed key for every 64k-row batch (a third of a 10M-row rewrite, measured). Fingerprints of
    keys other than one integer column are only candidates: those are confirmed by an exact join."""

    def __init__(self, keys: pa.Table, names: list[str]) -> None:
        self.keys = keys.select(names)
        self.names = names
        self.shape = KeyShape.of(self.keys.schema, names)
        self.set = FingerprintSet()
        self.set.add(self.shape.fingerprints(self.keys))

    def mask(self, table: pa.Table) -> np.ndarray:
        keys = self.shape.select(table)
        nulls = null_rows(keys)
        valid = np.flatnonzero(~np.asarray(nulls)) if pc.any(nulls).as_py() else None
        if valid is not None:
            keys = keys.take(pa.array(valid))
        found = self.set.contains(self.shape.fingerprints(keys))
        if not self.shape.exact and found.any():
            at = np.flatnonzero(found)
            candidates = keys.take(pa.array(at)).append_column("__hygge_at", pa.array(at))
            exact = candidates.join(self.keys, keys=self.names, join_type="left semi")
            found = np.zeros(len(found), bool)
            found[exact.column("__hygge_at").to_numpy()] = True
        if valid is None:
            return found
        full = np.zeros(table.num_rows, bool)
        full[valid] = found
        return full


def changed_files(
    location: Storage,
    files: list[str],
    replaced: pa.Table | None,
    request: WriteRequest,
    name: Callable[[int, int], str],
    layout: FileLayout,
) -> Rewrite:
    """Rewrite every file of `files` holding a key of `replaced` (the new rows' keys) or of the request's
    deletes; `name(file index, part)` names each written file."""
    keys = request.primary_key
    deletes = request.deletes if request.delete_count else None
    soft = request.soft_column if deletes is not None else None
    gone = [t.select(keys) for t in (replaced, None if soft else deletes) if t is not None]
    # The new rows' keys keep the source's NOT NULL, the deletes' come from landed files: one schema.
    dropped = KeyMatcher(pa.concat_tables(gone, promote_options="default"), keys) if gone else None
    marked = KeyMatcher(deletes, keys) if soft and deletes is not None else None
    if dropped is None and marked is None:
        return Rewrite([], [])
    result = Rewrite([], [])
    filesystem, _ = location.filesystem()
    for index, path in enumerate(files):
        _, [local] = location.dataset_paths([path])
        # The key columns are matched once a file; its rows are then read in the same order, so each
        # batch takes its slice of these masks.
        old_keys = pq.read_table(local, columns=keys, filesystem=filesystem)
        drop = dropped.mask(old_keys) if dropped is not None else np.zeros(old_keys.num_rows, bool)
        mark = marked.mask(old_keys) if marked is not None else None
        if not (drop.any() or (mark is not None and mark.any())):
            continue
        result.removed.append(path)
        if mark is None and drop.all():
            continue  # every row is replaced or deleted: nothing to keep
        with filesystem.open_input_file(local) as handle:
            file = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1024 * 1024)
            schema = file.schema_arrow

            def kept(
                file: pq.ParquetFile = file, drop: np.ndarray = drop, mark: np.ndarray | None = mark
            ) -> Iterator[pa.RecordBatch]:
                at = 0
                for batch in file.iter_batches(batch_size=65_536):
                    rows = slice(at, at + batch.num_rows)
                    at += batch.num_rows
                    rest = pa.Table.from_batches([batch])
                    if mark is not None and soft:
                        rest = _soft_delete(rest, mark[rows], soft, request.deleted_at)
                    yield from rest.filter(pa.array(~drop[rows])).to_batches()

            result.written += write_files(kept(), schema, location, lambda n, i=index: name(i, n), layout)
    return result


def _soft_delete(rows: pa.Table, marked: np.ndarray, column: str, when: dt.datetime | None) -> pa.Table:
    """Set `column` to `when` on the `marked` rows that are not soft-deleted yet."""
    if not rows.num_rows or column not in rows.column_names:
        return rows
    current = rows.column(column)
    hit = pc.and_(pa.array(marked), pc.is_null(current))
    stamp = pa.scalar(when or dt.datetime.now(dt.UTC), current.type)
    return rows.set_column(rows.schema.get_field_index(column), column, pc.if_else(hit, stamp, current))


def gathering_keys(
    batches: Iterable[pa.RecordBatch], keys: list[str], into: list[pa.Table]
) -> Iterator[pa.RecordBatch]:
    """`batches` passed on as they are, their key columns kept in `into`: the keys the new rows replace."""
    for batch in batches:
        into.append(pa.Table.from_batches([batch.select(keys)]))
        yield batch
