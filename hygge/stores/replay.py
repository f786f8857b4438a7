"""Replay an Open Mirroring table folder as Fabric would: data files in sequence order, row markers
applied by key columns (the last change per key wins; 2 deletes). Tables without keys are
append-only: inserted rows accumulate. The store's `scan()` and `hygge verify` both read through it.
"""

from __future__ import annotations

import io
import re

import pyarrow as pa
import pyarrow.parquet as pq

from hygge.storage import Storage

ROW_MARKER = "__rowMarker__"
DELETE = 2
DATA_FILE = re.compile(r"^(\d{20})\.parquet$")


def replay_open_mirroring(table: Storage, keys: list[str]) -> pa.Table:
    import polars as pl  # imported where used: `import hygge` stays free of it (24 MB)

    names = sorted(o["path"] for o in table.list() if DATA_FILE.match(o["path"]))
    if not names:
        return pa.table({})
    frames = []
    for sequence, name in enumerate(names):
        data = pq.read_table(io.BytesIO(table.get(name)))
        frame = pl.from_arrow(data)
        if ROW_MARKER not in frame.columns:  # an initial load may omit the marker
            frame = frame.with_columns(pl.lit(0, pl.Int32).alias(ROW_MARKER))
        frames.append(
            frame.with_columns(pl.lit(sequence).alias("__file"), pl.int_range(pl.len()).alias("__row"))
        )
    changes = pl.concat(frames, how="diagonal_relaxed").sort("__file", "__row")
    if keys:
        changes = changes.unique(subset=keys, keep="last", maintain_order=True)
    changes = changes.filter(pl.col(ROW_MARKER) != DELETE)
    return changes.drop(ROW_MARKER, "__file", "__row").to_arrow()
