"""The streaming floor: the least any connectorx-based tool can do to land the table.

    python bench/floor.py --url URL --out DIR [--format parquet|delta] [--table bench_rows]

connectorx ``arrow_stream`` (500k-row batches) straight into one snappy parquet file
(``pyarrow.parquet.ParquetWriter``) or into ``deltalake.write_deltalake(mode="overwrite")``.
No schema pinning, no casts, no journal. Prints one JSON line: rows written and seconds spent
after imports.
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
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--format", choices=["parquet", "delta"], default="parquet")
    parser.add_argument("--table", default="bench_rows")
    parser.add_argument("--batch-size", type=int, default=500_000)
    args = parser.parse_args(argv)

    began = time.perf_counter()
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


if __name__ == "__main__":
    main()
