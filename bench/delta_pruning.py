"""Delta file skipping: how many of a 10M-row hygge Delta table's files a predicate on the key makes
deltalake's and polars' readers open, from the bounds hygge writes (hygge/stores/delta_stats.py).

    python bench/delta_pruning.py                    # 10M rows, throwaway server
    python bench/delta_pruning.py --rows 200000      # a quick check
    python bench/delta_pruning.py --url URL          # an existing server

One full load (`hygge go`, measured by bench/run.py's launcher) into Delta with `file_mb` 64, then a
point lookup and a 1 % key range at 20 keys spread over the table, and a filter on a column without
bounds (a decimal), each through deltalake's pyarrow dataset (fragments kept by its filter) and
polars' scan_delta (sources in its plan), with their row counts checked. Target: the key predicates
open at most 10 % of the files (the worst of the 20 probes).
Results: a table and bench/results/<UTC stamp>-delta-pruning.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import run as bench_run  # bench/run.py (this script's directory is on sys.path)
from copied import copied_source  # bench/copied.py
from deltalake import DeltaTable

TABLE = "delta_pruning"
FILE_MB = 64
TARGET_SHARE = 0.10
_SOURCES = re.compile(r"SCAN \[[^\]]*?(?:, \.\.\. (\d+) other sources)?\]")


def write_project(project: Path) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "hygge.yml").write_text(
        "name: delta-pruning\nflows_dir: flows\nconnections:\n  src:\n    type: postgres\n    url: ${BENCH_PG_URL}\n"
    )
    (project / "flows" / "lake").mkdir(parents=True, exist_ok=True)
    (project / "flows" / "lake" / "flow.yml").write_text(
        f"home: {{type: sql, connection: src}}\nrun_type: full_drop\n"
        f"store: {{type: delta, path: '${{BENCH_OUT}}/lake', file_mb: {FILE_MB}}}\n"
        f"watermark: {{primary_key: [id], watermark_column: updated_at}}\nentities: [{TABLE}]\n"
    )


def polars_sources(lazy: pl.LazyFrame) -> int:
    """How many files polars' plan reads."""
    match = _SOURCES.search(lazy.explain())
    if match is None:
        return 0
    return 1 + int(match.group(1) or 0)


def _opened(dataset: ds.Dataset, path: str, arrow_filter: ds.Expression, polars_filter: pl.Expr) -> tuple:
    """Files each reader opens for a filter, the rows it returns, and its wall time."""
    started = time.perf_counter()
    kept = len(list(dataset.get_fragments(filter=arrow_filter)))
    got = dataset.to_table(filter=arrow_filter, columns=["id"]).num_rows
    arrow_s = time.perf_counter() - started
    lazy = pl.scan_delta(path).filter(polars_filter).select("id")
    started = time.perf_counter()
    polars_rows = lazy.collect().height
    return kept, polars_sources(lazy), got, polars_rows, arrow_s, time.perf_counter() - started


def probe(path: str, rows: int, points: int = 20) -> list[dict]:
    """A point lookup and a 1 % key range at `points` keys spread over the table (the worst and the
    mean of the files each reader opens), and a filter on a column without bounds."""
    table = DeltaTable(path)
    dataset = table.to_pyarrow_dataset()
    files = len(list(dataset.get_fragments()))
    width = max(rows // 100, 1)
    at = [1 + (rows - width) * (2 * i + 1) // (2 * points) for i in range(points)]
    cases = [
        ("id = key", [(ds.field("id") == k, pl.col("id") == k, 1) for k in at]),
        ("id in a 1 % range", [((ds.field("id") >= k) & (ds.field("id") < k + width),
                                pl.col("id").is_between(k, k + width, closed="left"), width) for k in at]),
        ("amount > 0 (no bounds)", [(ds.field("amount") > Decimal(0), pl.col("amount") > 0, None)]),
    ]  # fmt: skip
    out = []
    for name, filters in cases:
        seen = []
        for arrow_filter, polars_filter, expected in filters:
            kept, polars_kept, got, polars_rows, arrow_s, polars_s = _opened(dataset, path, arrow_filter, polars_filter)
            if expected is not None:
                assert got == expected and polars_rows == expected, (name, got, polars_rows, expected)
            else:
                assert got == polars_rows, (name, got, polars_rows)
            seen.append((kept, polars_kept, got, arrow_s, polars_s))
        out.append({
            "predicate": name, "files": files, "probes": len(seen),
            "deltalake_files": max(s[0] for s in seen), "polars_files": max(s[1] for s in seen),
            "deltalake_mean": round(sum(s[0] for s in seen) / len(seen), 2),
            "polars_mean": round(sum(s[1] for s in seen) / len(seen), 2),
            "rows": seen[0][2], "deltalake_s": round(max(s[3] for s in seen), 3),
            "polars_s": round(max(s[4] for s in seen), 3),
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="PostgreSQL URL; omitted: start a throwaway server")
    parser.add_argument("--rows", type=int, help=f"rows in the source table (default {bench_run.DEFAULT_ROWS:,})")
    parser.add_argument("--table", default="bench_rows")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="hygge-delta-pruning-"))
    try:
        with copied_source(args, TABLE, out, write_project) as (bench, expected):
            go = [*bench.hygge, "go", "--project", str(out / "project"), "--flow", "lake"]
            folder = out / "lake" / TABLE

            def count(_child: bench_run.ChildRun) -> tuple[int, int]:
                table = DeltaTable(str(folder))
                sizes = pa.table(table.get_add_actions(flatten=True)).column("size_bytes")
                return table.count(), int(pc.sum(sizes).as_py() or 0)

            landed = bench.measure("full load to Delta", go, expected, count, file_mb=FILE_MB)
            probes = probe(str(folder), expected)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(bench_run.format_table([landed]))
    met = True
    for p in probes:
        bounded = "no bounds" not in p["predicate"]
        share = max(p["deltalake_files"], p["polars_files"]) / p["files"]
        ok = share <= TARGET_SHARE if bounded else p["deltalake_files"] == p["files"]
        met &= ok
        print(
            f"{p['predicate']:24s} files {p['files']:3d}  over {p['probes']} probe(s): deltalake opens at most "
            f"{p['deltalake_files']:3d} (mean {p['deltalake_mean']:.1f}, {p['deltalake_s']:.2f} s)  polars at most "
            f"{p['polars_files']:3d} (mean {p['polars_mean']:.1f}, {p['polars_s']:.2f} s)  rows {p['rows']:,}  "
            f"{'ok' if ok else 'MISSED'}"
        )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    bench_run.RESULTS_DIR.mkdir(exist_ok=True)
    path = bench_run.RESULTS_DIR / f"{stamp}-delta-pruning.json"
    path.write_text(json.dumps(
        {"load": landed, "probes": probes, "environment": bench_run.environment_info()}, indent=2, default=str
    ))  # fmt: skip
    print(f"results: {path}")
    return 0 if met and landed["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
