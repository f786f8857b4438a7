"""How the shared writer cuts files: row groups end at a row count or a byte cap, files at a size;
and hygge's import settles the allocators that keep memory flat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hygge.config.models import ParquetStoreConfig
from hygge.storage import Storage
from hygge.stores.files import MB, FileLayout, layout_of, write_files


def _batches(rows: int, width: int, per_batch: int = 1000) -> list[pa.RecordBatch]:
    """Batches of an id and a `width`-byte random string (incompressible, so sizes are predictable)."""
    rng = np.random.default_rng(7)
    out = []
    for start in range(0, rows, per_batch):
        n = min(per_batch, rows - start)
        text = rng.integers(65, 91, size=n * width, dtype=np.uint8).tobytes().decode()
        strings = [text[i * width : (i + 1) * width] for i in range(n)]
        out.append(pa.record_batch({"id": pa.array(range(start, start + n), pa.int64()), "s": strings}))
    return out


def _write(tmp_path: Path, batches: list[pa.RecordBatch], layout: FileLayout) -> list[pq.FileMetaData]:
    files = write_files(
        batches, batches[0].schema, Storage.local(tmp_path), lambda n: f"f{n}.parquet", layout
    )
    return [pq.ParquetFile(tmp_path / f.path).metadata for f in files]


def test_row_groups_end_at_the_row_count_when_rows_are_narrow(tmp_path: Path) -> None:
    metas = _write(tmp_path, _batches(10_000, 8), FileLayout(row_group_rows=4000, row_group_bytes=64 * MB))
    groups = [m.row_group(i).num_rows for m in metas for i in range(m.num_row_groups)]
    assert groups == [4000, 4000, 2000]


def test_row_groups_end_at_the_byte_cap_when_rows_are_wide(tmp_path: Path) -> None:
    # 1,000 rows of ~1 KB per batch: a 2 MB cap closes a group every two batches, far below 1M rows.
    metas = _write(
        tmp_path, _batches(10_000, 1000), FileLayout(row_group_rows=1_000_000, row_group_bytes=2 * MB)
    )
    groups = [m.row_group(i).num_rows for m in metas for i in range(m.num_row_groups)]
    assert sum(groups) == 10_000
    assert max(groups) <= 3000 and len(groups) >= 4


def test_a_file_ends_once_it_reaches_its_size(tmp_path: Path) -> None:
    layout = FileLayout(row_group_rows=1000, row_group_bytes=64 * MB, file_bytes=2 * MB)
    metas = _write(tmp_path, _batches(20_000, 500), layout)  # ~10 MB of incompressible text
    sizes = [p.stat().st_size for p in sorted(tmp_path.glob("*.parquet"))]
    assert sum(m.num_rows for m in metas) == 20_000
    assert len(sizes) >= 4
    assert all(size < 3 * MB for size in sizes)  # a file closes at the first row group past 2 MB
    assert all(size >= 2 * MB for size in sizes[:-1])


def test_the_layout_comes_from_store_settings_in_mb() -> None:
    config = ParquetStoreConfig(type="parquet", path="x", row_group_mb=16, file_mb=512, file_rows=5)
    layout = layout_of(config)
    assert (layout.row_group_bytes, layout.file_bytes, layout.file_rows) == (16 * MB, 512 * MB, 5)
    default = layout_of(ParquetStoreConfig(type="parquet", path="x"))
    assert (default.row_group_rows, default.row_group_bytes, default.file_bytes, default.file_rows) == (
        1_000_000,
        32 * MB,
        256 * MB,
        None,
    )


def test_importing_hygge_first_picks_arrow_jemalloc_pool() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    code = "import hygge, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "jemalloc"
    chosen = dict(env, ARROW_DEFAULT_MEMORY_POOL="system")
    out = subprocess.run([sys.executable, "-c", code], env=chosen, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "system"  # the user's choice wins
