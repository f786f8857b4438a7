"""The streaming floor: the least any connectorx-based tool can do to land the table.

    python bench/floor.py --url URL --out DIR [--format parquet|delta] [--table bench_rows]
    python bench/floor.py --parquet-in DIR --out DIR

connectorx ``arrow_stream`` (500k-row batches) straight into one snappy parquet file
(``pyarrow.parquet.ParquetWriter``) or into ``deltalake.write_deltalake(mode="overwrite")``; or,
with ``--parquet-in``, each input file's batches (pyarrow's threaded reader) straight into one
snappy parquet file. No schema pinning, no casts, no journal. Prints one JSON line: rows written
and seconds spent after imports.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import connectorx as cx
import pyarrow.parquet as pq


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--parquet-in", type=Path, help="a folder of parquet files to copy")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--format", choices=["parquet", "delta"], default="parquet")
    parser.add_argument("--table", default="bench_rows")
    parser.add_argument("--batch-size", type=int, default=500_000)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    if args.parquet_in:
        copy_parquet(args.parquet_in, args.out)
        return
    reader = cx.read_sql(
        args.url,
        f"SELECT * FROM {args.table}",
        return_type="arrow_stream",
        batch_size=args.batch_size,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows = 0
    if args.format == "parquet":
        with pq.ParquetWriter(
            args.out / f"{args.table}.parquet", reader.schema, compression="snappy"
        ) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    else:
        from deltalake import DeltaTable, write_deltalake

        write_deltalake(str(args.out), reader, mode="overwrite")
    seconds = time.perf_counter() - began
    if args.format == "delta":
        rows = DeltaTable(str(args.out)).count()
    print(json.dumps({"rows": rows, "inner_seconds": round(seconds, 3)}))


def copy_parquet(source: Path, out: Path) -> None:
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.glob("*.parquet") if not p.name.startswith(("_", ".")))
    schema = pq.ParquetFile(files[0]).schema_arrow
    rows = 0
    with pq.ParquetWriter(out / "copy.parquet", schema, compression="snappy") as writer:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1_000_000):
                writer.write_batch(batch)
                rows += batch.num_rows
    print(json.dumps({"rows": rows, "inner_seconds": round(time.perf_counter() - began, 3)}))


if __name__ == "__main__":
    main()
