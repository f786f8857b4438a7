"""Generate a wide parquet bench file set of N rows, shaped like bench/generate.py's PostgreSQL table.

    python bench/make_parquet.py --out DIR --rows 100000000 [--seed 0] [--file-rows 10000000]

Every value is a pure function of (row id, seed): splitmix64 hashes of the id, computed with
numpy in whole row groups (no Python loop over rows), so two runs with the same N and seed write
identical data, and memory stays near one row group (~1M rows) whatever N is. Files are written
as ``part-00000.parquet`` ... with ``--row-group-rows`` rows per row group (default 1,000,000),
each under a hidden ``_writing-`` name first and renamed when complete. A ``_manifest.json``
(hidden from parquet readers by its leading ``_``) records rows, seed and layout; ``ensure()``
reuses a folder whose manifest matches and rebuilds it otherwise.

Columns (Arrow types as hygge's SQL home lands the PostgreSQL table): id int64, qty int32,
code int16, amount decimal128(18,4), score float64 (5 % null), active bool, note string of
20-60 chars, label string (10 % null), created_on date32, created_at timestamp[us], event_at
timestamp[us, UTC] (4 % null), ref string (36-char uuid text), updated_at timestamp[us].
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 1_000_000
FILE_ROWS = 10_000_000
_SLICE_ROWS = 250_000
MANIFEST = "_manifest.json"
LAYOUT_VERSION = 1  # bump when the generated data changes, so cached folders are rebuilt

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("qty", pa.int32(), nullable=False),
        pa.field("code", pa.int16(), nullable=False),
        pa.field("amount", pa.decimal128(18, 4), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("active", pa.bool_(), nullable=False),
        pa.field("note", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("created_on", pa.date32(), nullable=False),
        pa.field("created_at", pa.timestamp("us"), nullable=False),
        pa.field("event_at", pa.timestamp("us", tz="UTC")),
        pa.field("ref", pa.string(), nullable=False),
        pa.field("updated_at", pa.timestamp("us"), nullable=False),
    ]
)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_DAY_2015 = 16_436  # 2015-01-01 as days since the epoch
_US_2015 = _DAY_2015 * 86_400 * 1_000_000
_US_2024 = 19_723 * 86_400 * 1_000_000  # 2024-01-01
# Each byte's two hex digits as the bytes of one uint16 (so a lookup writes both characters).
_HEX_PAIRS = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16)
_LABELS = pa.array([f"region-{i:03d}" for i in range(250)], pa.string())


def _mix(ids: np.ndarray, seed: int, column: int) -> np.ndarray:
    """splitmix64 of each id with a per-(seed, column) offset: independent uniform uint64s."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64((seed * 1_000_003 + column) & 0xFFFFFFFFFFFFFFFF) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _fixed_strings(chars: np.ndarray) -> pa.Array:
    """A string array from an (n, width) uint8 matrix of ASCII bytes, one row per value."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars)))


def _ragged_strings(chars: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """A string array holding the first lengths[i] bytes of row i of an (n, width) ASCII matrix."""
    n, width = chars.shape
    keep = np.arange(width, dtype=np.int64)[None, :] < lengths[:, None]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars[keep]))


def _hex_bytes(words: list[np.ndarray]) -> np.ndarray:
    """Lower-case hex text of uint64 words: an (n, 16 * len(words)) uint8 matrix."""
    raw = np.stack(words, axis=1).astype(">u8").view(np.uint8)  # big-endian: digits read in order
    return _HEX_PAIRS.take(raw).view(np.uint8)


def make_batch(start: int, rows: int, seed: int = 0) -> pa.RecordBatch:
    """Rows with ids start .. start + rows - 1 (ids count from 1), as one record batch."""
    ids = np.arange(start, start + rows, dtype=np.int64)
    h = [ids] + [_mix(ids, seed, k) for k in range(1, 14)]  # h[1]..h[13]; h[0] unused

    amount_words = np.zeros((rows, 2), dtype=np.int64)  # little-endian 128-bit: low word, high word 0
    amount_words[:, 0] = (h[3] % np.uint64(100_000_000_000)).astype(np.int64)
    amount = pa.Array.from_buffers(
        pa.decimal128(18, 4), rows, [None, pa.py_buffer(amount_words)], null_count=0
    )

    score_null = h[4] % np.uint64(20) == 0
    score = (h[4] % np.uint64(10_000_000)).astype(np.float64) / 1000

    # note: "item <id> " then hex text, 20..60 characters in all. Assigning through a row-major
    # mask fills the masked cells in the order of the prefixes' concatenated bytes.
    prefix = pc.binary_join_element_wise("item ", pc.cast(pa.array(ids), pa.string()), " ", "")
    prefix_len = pc.binary_length(prefix).to_numpy().astype(np.int64)
    offsets = np.frombuffer(prefix.buffers()[1], dtype=np.int32, count=rows + 1, offset=prefix.offset * 4)
    prefix_bytes = np.frombuffer(prefix.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    width = 60
    chars = _hex_bytes([h[12], h[13], h[1], h[2]])[:, :width].copy()
    chars[np.arange(width)[None, :] < prefix_len[:, None]] = prefix_bytes
    total_len = 20 + (h[6] % np.uint64(41)).astype(np.int64)
    note = _ragged_strings(chars, total_len)

    label_index = pa.array((h[7] % np.uint64(250)).astype(np.int32), mask=h[7] % np.uint64(10) == 0)
    label = _LABELS.take(label_index)

    event_null = h[10] % np.uint64(25) == 0
    span_us = np.uint64(315_360_000_000_000)  # ten years
    ref_chars = _hex_bytes([h[1] ^ h[2], h[3] ^ h[5]])
    dash = np.full((rows, 1), ord("-"), dtype=np.uint8)
    ref = _fixed_strings(
        np.hstack(
            [
                ref_chars[:, 0:8],
                dash,
                ref_chars[:, 8:12],
                dash,
                ref_chars[:, 12:16],
                dash,
                ref_chars[:, 16:20],
                dash,
                ref_chars[:, 20:32],
            ]
        )
    )

    columns = [
        pa.array(ids),
        pa.array((h[1] % np.uint64(1_000_000)).astype(np.int32)),
        pa.array((h[2] % np.uint64(32_000)).astype(np.int16)),
        amount,
        pa.array(score, mask=score_null),
        pa.array(h[5] % np.uint64(3) != 0),
        note,
        label,
        pa.array(_DAY_2015 + (h[8] % np.uint64(3650)).astype(np.int32), pa.date32()),
        pa.array(_US_2015 + (h[9] % span_us).astype(np.int64), pa.timestamp("us")),
        pa.array(
            _US_2015 + (h[10] % span_us).astype(np.int64), pa.timestamp("us", tz="UTC"), mask=event_null
        ),
        ref,
        pa.array(_US_2024 + (h[11] % np.uint64(31_536_000_000_000)).astype(np.int64), pa.timestamp("us")),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def _manifest(rows: int, seed: int, file_rows: int, row_group_rows: int) -> dict:
    """What a folder must record to be reused as is."""
    return {
        "rows": rows,
        "seed": seed,
        "file_rows": file_rows,
        "row_group_rows": row_group_rows,
        "layout_version": LAYOUT_VERSION,
    }


def data_files(out: Path) -> list[Path]:
    """The visible parquet files of a generated folder, in order."""
    return sorted(p for p in out.glob("part-*.parquet"))


def is_complete(out: Path, rows: int, seed: int = 0, *, file_rows: int = FILE_ROWS) -> bool:
    """Whether `out` already holds exactly this generation (manifest and file row counts agree)."""
    manifest_path = out / MANIFEST
    if not manifest_path.exists():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        return False
    if {k: manifest.get(k) for k in ("rows", "seed", "file_rows", "layout_version")} != {
        "rows": rows,
        "seed": seed,
        "file_rows": file_rows,
        "layout_version": LAYOUT_VERSION,
    }:
        return False
    files = data_files(out)
    return [p.name for p in files] == manifest.get("files") and sum(
        pq.read_metadata(p).num_rows for p in files
    ) == rows


def _write_file(
    path: Path, first_id: int, rows: int, seed: int, row_group_rows: int, compression: str
) -> Path:
    """Write ids first_id .. first_id + rows - 1 to `path` (via a hidden name, renamed when complete)."""
    partial = path.with_name(f"_writing-{path.name}")
    with pq.ParquetWriter(partial, SCHEMA, compression=compression, write_statistics=True) as writer:
        written = 0
        while written < rows:
            n = min(row_group_rows, rows - written)
            # Built in slices, so temporaries stay small; the slices still make one row group.
            slices = [
                make_batch(first_id + written + at, min(_SLICE_ROWS, n - at), seed)
                for at in range(0, n, _SLICE_ROWS)
            ]
            writer.write_table(pa.Table.from_batches(slices, SCHEMA), row_group_size=n)
            del slices
            written += n
    partial.rename(path)
    return path


def generate(
    out: Path,
    rows: int,
    seed: int = 0,
    *,
    file_rows: int = FILE_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = "snappy",
    jobs: int = 1,
    log: bool = False,
) -> list[Path]:
    """Write `rows` rows into `out` (emptied first) as part-NNNNN.parquet files; returns them."""
    if rows < 1 or file_rows < 1 or row_group_rows < 1 or jobs < 1:
        raise ValueError("rows, file_rows, row_group_rows and jobs must be positive")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    began = time.perf_counter()
    plan = [
        (out / f"part-{index:05d}.parquet", 1 + first, min(file_rows, rows - first))
        for index, first in enumerate(range(0, rows, file_rows))
    ]
    files: list[Path] = []
    done = 0

    def finished(path: Path, count: int) -> None:
        """Note a completed file (and log progress)."""
        nonlocal done
        files.append(path)
        done += count
        if log:
            elapsed = time.perf_counter() - began
            print(f"  {done:>13,} / {rows:,} rows  {elapsed:7.1f} s  {path.name}", file=sys.stderr)

    if jobs == 1 or len(plan) == 1:
        for path, first_id, count in plan:
            finished(_write_file(path, first_id, count, seed, row_group_rows, compression), count)
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(plan))) as pool:
            futures = {
                pool.submit(_write_file, path, first_id, count, seed, row_group_rows, compression): count
                for path, first_id, count in plan
            }
            for future in as_completed(futures):
                finished(future.result(), futures[future])
    files.sort()
    manifest = _manifest(rows, seed, file_rows, row_group_rows) | {"files": [p.name for p in files]}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return files


def ensure(
    out: Path,
    rows: int,
    seed: int = 0,
    *,
    file_rows: int = FILE_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
    jobs: int = 1,
    log: bool = False,
) -> list[Path]:
    """The generated files at `out`, generating them unless the folder already matches."""
    if is_complete(out, rows, seed, file_rows=file_rows):
        return data_files(out)
    return generate(out, rows, seed, file_rows=file_rows, row_group_rows=row_group_rows, jobs=jobs, log=log)


def main(argv: list[str] | None = None) -> None:
    """Command line: generate (or reuse) a folder of bench parquet files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to fill (emptied first)")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file-rows", type=int, default=FILE_ROWS)
    parser.add_argument("--row-group-rows", type=int, default=ROW_GROUP_ROWS)
    parser.add_argument("--compression", default="snappy", choices=["snappy", "zstd", "none"])
    parser.add_argument("--jobs", type=int, default=1, help="files written in parallel processes")
    parser.add_argument("--force", action="store_true", help="regenerate even if the folder matches")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if not args.force and is_complete(args.out, args.rows, args.seed, file_rows=args.file_rows):
        print(f"{args.out} already holds {args.rows:,} rows (seed {args.seed}); not regenerating")
        return
    files = generate(
        args.out,
        args.rows,
        args.seed,
        file_rows=args.file_rows,
        row_group_rows=args.row_group_rows,
        compression=args.compression,
        jobs=args.jobs,
        log=True,
    )
    size = sum(p.stat().st_size for p in files)
    elapsed = time.perf_counter() - began
    print(
        f"{args.rows:,} rows in {len(files)} file(s), {size / 1e6:,.0f} MB ({size / args.rows:.0f} bytes/row), "
        f"{elapsed:.1f} s ({args.rows / elapsed:,.0f} rows/s)"
    )


if __name__ == "__main__":
    main()
