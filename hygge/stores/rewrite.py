"""Keyed changes applied by rewriting files: the one path for upserts and deletes of file stores.

Every landed file holding a key that the run's rows replace, or that the source deleted, is rewritten
without those rows (a soft delete keeps the row and sets its deleted-at time instead), batch by batch,
so a large file is never held whole. The parquet store stages the results beside its commit record; a
plain Delta table commits them with the matching remove actions (hygge.stores.delta_commit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.storage import Storage
from hygge.stores.base import WriteRequest
from hygge.stores.files import FileLayout, WrittenFile, write_files

_GONE = "__hygge_gone"


@dataclass
class Rewrite:
    """What a keyed change did to the landed files: the files written in place of the `removed` ones."""

    written: list[WrittenFile]
    removed: list[str]


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
    dropped = pa.concat_tables(gone).group_by(keys).aggregate([]) if gone else None
    marked = None
    if soft and deletes is not None:
        marked = deletes.select(keys).append_column(_GONE, pa.array([True] * deletes.num_rows))
    if dropped is None and marked is None:
        return Rewrite([], [])
    touched = pa.concat_tables([t.select(keys) for t in (dropped, marked) if t is not None])
    result = Rewrite([], [])
    filesystem, _ = location.filesystem()
    for index, path in enumerate(files):
        _, [local] = location.dataset_paths([path])
        old_keys = pq.read_table(local, columns=keys, filesystem=filesystem)
        hit = old_keys.join(touched, keys=keys, join_type="left semi")
        if hit.num_rows == 0:
            continue
        result.removed.append(path)
        if marked is None and hit.num_rows == old_keys.num_rows:
            continue  # every row is replaced or deleted: nothing to keep
        with filesystem.open_input_file(local) as handle:
            file = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1024 * 1024)
            schema = file.schema_arrow

            def kept(file: pq.ParquetFile = file, schema: pa.Schema = schema) -> Iterator[pa.RecordBatch]:
                for batch in file.iter_batches(batch_size=65_536):
                    rest = pa.Table.from_batches([batch])
                    if dropped is not None:
                        rest = rest.join(dropped, keys=keys, join_type="left anti")
                    if marked is not None and soft:
                        rest = _soft_delete(rest, marked, keys, soft, request.deleted_at)
                    yield from rest.select(schema.names).cast(schema).to_batches()

            result.written += write_files(kept(), schema, location, lambda n, i=index: name(i, n), layout)
    return result


def _soft_delete(
    rows: pa.Table, marked: pa.Table, keys: list[str], column: str, when: dt.datetime | None
) -> pa.Table:
    """Set `column` to `when` on rows whose key is in `marked` and that are not soft-deleted yet."""
    if not rows.num_rows or column not in rows.column_names:
        return rows
    joined = rows.join(marked, keys=keys, join_type="left outer")
    current = joined.column(column)
    hit = pc.and_(pc.is_valid(joined.column(_GONE)), pc.is_null(current))
    stamp = pa.scalar(when or dt.datetime.now(dt.UTC), current.type)
    updated = pc.if_else(hit, stamp, current)
    return joined.set_column(joined.schema.get_field_index(column), column, updated).drop_columns([_GONE])
