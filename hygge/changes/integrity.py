"""Key integrity: NULL and duplicate primary keys in what was read are found before anything commits.

A key that is NULL or not unique cannot be merged, deleted or mirrored: Delta would keep a stale
row, parquet would double one, Open Mirroring would receive two inserts for one key. The check
wraps the stream a store consumes; it raises at the first NULL key (after counting the rest) or,
for duplicates, when the stream ends — in both cases before the store's commit point, so the
store discards what it staged.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hygge.changes.keys import FingerprintSet, KeyShape, null_rows
from hygge.errors import SourceError

SAMPLES = 5


def _render(row: dict) -> str:
    values = ["NULL" if v is None else repr(v) for v in row.values()]
    return values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"


class KeyCheck:
    """Wraps a stream: fails on NULL keys and on keys that occur more than once in it."""

    def __init__(self, shape: KeyShape, hint_field: str = "watermark.primary_key") -> None:
        self.shape = shape
        self.field = hint_field
        self.seen = FingerprintSet()
        self._spill: pq.ParquetWriter | None = None
        self._spill_path: str | None = None

    def wrap(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                keys = self.shape.select(batch)
                nulls = null_rows(keys)
                if pc.any(nulls).as_py():
                    self._fail_nulls(keys.filter(nulls), batches)
                self.seen.add(self.shape.fingerprints(keys))
                if not self.shape.exact:
                    self._spill_keys(keys)
                yield batch
            self._check_duplicates()
        finally:
            self._close()

    def check_tables(self, tables: Iterator[pa.Table]) -> None:
        """The same check over key columns read some other way (files landed byte for byte)."""
        for _ in self.wrap(b for t in tables for b in t.to_batches()):
            pass

    # --- NULL keys -----------------------------------------------------------------------------
    def _fail_nulls(self, first: pa.Table, rest: Iterator[pa.RecordBatch]) -> None:
        count = first.num_rows
        samples = [_render(r) for r in first.slice(0, SAMPLES).to_pylist()]
        for batch in rest:  # count them all: the message says how many
            count += pc.sum(null_rows(self.shape.select(batch))).as_py() or 0
        names = ", ".join(self.shape.names)
        raise SourceError(
            f"{count:,} row(s) read have a NULL in the primary key ({names}), e.g. {', '.join(samples)}; "
            "a NULL key cannot be merged or deleted, so nothing was landed",
            hint="filter those rows out with a `query:`, or set `watermark.primary_key` to columns that "
            "are never NULL",
            field=self.field,
        )

    # --- duplicate keys ------------------------------------------------------------------------
    def _spill_keys(self, keys: pa.Table) -> None:
        """Keys that are not their own fingerprint go to a local file, so duplicates can be named
        exactly (and fingerprint collisions told apart) without holding the keys in memory."""
        if self._spill is None:
            handle, self._spill_path = tempfile.mkstemp(prefix="hygge-keys-", suffix=".parquet")
            os.close(handle)
            self._spill = pq.ParquetWriter(self._spill_path, keys.schema, compression="lz4")
        self._spill.write_table(keys)

    def _check_duplicates(self) -> None:
        candidates = self.seen.repeated()
        if not len(candidates):
            return
        if self.shape.exact:
            fingerprints = self.seen.finish()
            counts = np.searchsorted(fingerprints, candidates, "right") - np.searchsorted(
                fingerprints, candidates, "left"
            )
            values = candidates.view(np.int64)
            dupes = [(repr(int(v)), int(c)) for v, c in zip(values, counts, strict=True)]
            total = len(dupes)
        else:
            dupes, total = self._exact_duplicates(candidates)
        if not total:
            return  # fingerprint collisions only: every key is unique
        shown = ", ".join(f"{key} ({count} rows)" for key, count in dupes[:SAMPLES])
        raise SourceError(
            f"{total:,} primary key value(s) ({', '.join(self.shape.names)}) occur more than once in what "
            f"was read, e.g. {shown}; landing them would keep an arbitrary row per key, so nothing was "
            "landed",
            hint="fix the source or `watermark.primary_key` so the key is unique, or set "
            "`watermark.dedupe_by: <column>` to keep the row with the largest value of that column",
            field=self.field,
        )

    def _exact_duplicates(self, candidates: np.ndarray) -> tuple[list[tuple[str, int]], int]:
        assert self._spill is not None and self._spill_path is not None
        self._spill.close()
        self._spill = None
        wanted = FingerprintSet()
        wanted.add(candidates)
        hits: list[pa.Table] = []
        file = pq.ParquetFile(self._spill_path)
        for batch in file.iter_batches(batch_size=65_536):
            keys = pa.Table.from_batches([batch])
            mask = wanted.contains(self.shape.fingerprints(keys))
            if mask.any():
                hits.append(keys.filter(pa.array(mask)))
        counted = pa.concat_tables(hits).group_by(list(self.shape.names)).aggregate([([], "count_all")])
        counted = counted.filter(pc.greater(counted.column("count_all"), 1))
        rows = counted.to_pylist()
        dupes = [(_render({k: r[k] for k in self.shape.names}), r["count_all"]) for r in rows]
        return dupes, len(rows)

    def _close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if self._spill_path is not None:
            try:
                os.unlink(self._spill_path)
            except OSError:
                pass
            self._spill_path = None
