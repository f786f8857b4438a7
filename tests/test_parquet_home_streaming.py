"""The parquet home streams files batch by batch: memory stays near one batch even when a file holds
one huge row group, row groups below the watermark are skipped, and columns a file lacks read as null."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hygge.homes.base import Bound, scan_dataset

ROWS = 2_000_000


def _table(start: int, rows: int) -> pa.Table:
    ids = pa.array(range(start, start + rows), pa.int64())
    return pa.table(
        {"id": ids, "text": pa.compute.cast(ids, pa.string()), "at": pa.array(range(rows), pa.int64())}
    )


def test_one_huge_row_group_is_read_a_batch_at_a_time(tmp_path: Path) -> None:
    table = _table(0, ROWS)
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=ROWS)
    dataset = ds.dataset(tmp_path, format="parquet")
    pool = pa.default_memory_pool()
    baseline = pool.bytes_allocated()
    peak = 0
    rows = 0
    for batch in scan_dataset(dataset, table.schema, None, 1000, plain_files=True):
        rows += batch.num_rows
        peak = max(peak, pool.bytes_allocated() - baseline)
    assert rows == ROWS
    # The decoded row group is ~50 MB; a batch-at-a-time read holds a small fraction of it.
    assert peak < table.nbytes / 4, (peak, table.nbytes)


def test_row_groups_below_the_bound_are_skipped_and_rows_filtered(tmp_path: Path) -> None:
    pq.write_table(_table(0, 10_000), tmp_path / "a.parquet", row_group_size=1000)
    dataset = ds.dataset(tmp_path, format="parquet")
    fragment = next(iter(dataset.get_fragments()))
    kept = fragment.split_by_row_group(ds.field("id") >= 8500)
    assert sum(len(piece.row_groups) for piece in kept) == 2  # pyarrow prunes by statistics
    bound = Bound("id", "int", 8500)
    result = pa.Table.from_batches(
        list(scan_dataset(dataset, dataset.schema, bound, 300, plain_files=True)), dataset.schema
    )
    assert result.column("id").to_pylist() == list(range(8500, 10_000))


def test_a_column_missing_from_one_file_reads_as_null(tmp_path: Path) -> None:
    first = _table(0, 10).append_column("extra", pa.array([1.5] * 10))
    pq.write_table(first, tmp_path / "a.parquet")
    pq.write_table(_table(10, 5), tmp_path / "b.parquet")
    dataset = ds.dataset([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], format="parquet")
    result = pa.Table.from_batches(list(scan_dataset(dataset, dataset.schema, None, 4, plain_files=True)))
    assert result.num_rows == 15
    assert result.column("extra").null_count == 5


def test_a_datetime_bound_filters_a_naive_timestamp_column(tmp_path: Path) -> None:
    at = [dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i) for i in range(100)]
    pq.write_table(
        pa.table({"at": pa.array(at, pa.timestamp("us"))}), tmp_path / "t.parquet", row_group_size=10
    )
    dataset = ds.dataset(tmp_path, format="parquet")
    bound = Bound("at", "datetime", at[90])
    rows = sum(b.num_rows for b in scan_dataset(dataset, dataset.schema, bound, 7, plain_files=True))
    assert rows == 10


def test_a_watermark_window_reads_one_column_and_only_the_matching_row_group(tmp_path: Path) -> None:
    """A store's rows_between: the few rows at the boundary, without decoding the whole landed data
    (measured in a fresh process: the Arrow pool's peak while finding them)."""
    table = _table(0, ROWS)
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=ROWS // 4)
    code = (
        "import sys, json, pyarrow as pa, pyarrow.dataset as ds\n"
        "from hygge.storage.scan import rows_where\n"
        "d = ds.dataset(sys.argv[1], format='parquet')\n"
        "rows = rows_where(d, 'at', (ds.field('at') >= 10) & (ds.field('at') <= 11))\n"
        "print(json.dumps({'ids': sorted(rows.column('id').to_pylist()), 'names': rows.schema.names,"
        " 'peak': pa.default_memory_pool().max_memory()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    found = json.loads(out.stdout)
    assert found["ids"] == [10, 11]
    assert found["names"] == ["id", "text", "at"]
    assert found["peak"] < table.nbytes / 2, (found["peak"], table.nbytes)  # a full decode: 1.6x
