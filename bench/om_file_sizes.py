"""Open Mirroring file sizes: one table's full load at several `file_mb`, and the same rows with a row
marker on every row (a first keyed incremental into an empty zone), side by side.

    python bench/om_file_sizes.py                    # 10M rows, throwaway server
    python bench/om_file_sizes.py --rows 200000      # a quick check
    python bench/om_file_sizes.py --url URL          # an existing server

Each run is a `hygge go` subprocess measured by bench/run.py's launcher (wall, peak RSS); the zone's
data files are counted and checked for the marker column. Only hygge's side can be measured here:
what Fabric's replicator does with the files is not. Results: a table and
bench/results/<UTC stamp>-om-file-sizes.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import run as bench_run  # bench/run.py (this script's directory is on sys.path)
from copied import copied_source  # bench/copied.py

TABLE = "om_sizes"
CASES = [  # flow name, file_mb, run type (an incremental into an empty zone marks every row)
    ("full_64", 64, "--full-drop"),
    ("full_128", 128, "--full-drop"),
    ("full_256", 256, "--full-drop"),
    ("full_512", 512, "--full-drop"),
    ("marked_256", 256, "--incremental"),
]


def write_project(project: Path) -> None:
    (project / "hygge.yml").parent.mkdir(parents=True, exist_ok=True)
    (project / "hygge.yml").write_text(
        "name: om-sizes\nflows_dir: flows\nconnections:\n  src:\n    type: postgres\n    url: ${BENCH_PG_URL}\n"
    )
    for name, mb, _ in CASES:
        store = f"{{type: open_mirroring, path: '${{BENCH_OUT}}/{name}', folder_deletion_wait_seconds: 0, file_mb: {mb}}}"
        (project / "flows" / name).mkdir(parents=True, exist_ok=True)
        (project / "flows" / name / "flow.yml").write_text(
            f"home: {{type: sql, connection: src}}\nrun_type: incremental\nstore: {store}\n"
            f"watermark: {{primary_key: [id], watermark_column: updated_at}}\nentities: [{TABLE}]\n"
        )


def counter(folder: Path, facts: dict):
    def count(_child: bench_run.ChildRun) -> tuple[int, int]:
        files = sorted(folder.glob("0*.parquet"))
        facts.update(
            files=len(files), marker=bool(files) and "__rowMarker__" in pq.read_schema(files[0]).names
        )
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        return rows, sum(f.stat().st_size for f in files)

    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="PostgreSQL URL; omitted: start a throwaway server")
    parser.add_argument(
        "--rows", type=int, help=f"rows in the source table (default {bench_run.DEFAULT_ROWS:,})"
    )
    parser.add_argument("--table", default="bench_rows")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="hygge-om-sizes-"))
    results = []
    try:
        with copied_source(args, TABLE, out, write_project) as (bench, expected):
            for name, mb, flag in CASES:
                facts: dict = {}
                go = [*bench.hygge, "go", "--project", str(out / "project"), "--flow", name, flag]
                result = bench.measure(name, go, expected, counter(out / name / TABLE, facts), file_mb=mb)
                result.update(facts)
                results.append(result)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(bench_run.format_table(results))
    for r in results:
        print(f"{r['scenario']}: {r.get('files')} files, marker column {r.get('marker')}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    bench_run.RESULTS_DIR.mkdir(exist_ok=True)
    path = bench_run.RESULTS_DIR / f"{stamp}-om-file-sizes.json"
    path.write_text(
        json.dumps({"results": results, "environment": bench_run.environment_info()}, indent=2, default=str)
    )
    print(f"results: {path}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
