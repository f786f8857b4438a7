"""The dlt comparison: land one PostgreSQL table with dlt, the way dlt's docs recommend.

    <bench/.venv-dlt>/bin/python bench/dlt_load.py --url URL --out DIR --format parquet|delta
        [--table bench_rows] [--incremental-column updated_at]

Runs in its own virtualenv (bench/.venv-dlt, built by bench/dlt_env.py from
bench/dlt-requirements.txt) because dlt is not a hygge dependency and its dependency tree must
not change the environment hygge is measured in.

What it does: dlt's ``sql_table`` resource with ``backend="connectorx"`` streaming Arrow batches
(``return_type="arrow_stream"``, ``chunk_size`` rows each; without it connectorx reads the whole
table into one Arrow table first), to the ``filesystem`` destination at ``file://DIR``, with
``loader_file_format="parquet"`` or ``table_format="delta"``. A full load uses
``write_disposition="replace"``; with ``--incremental-column`` the resource gets a
``dlt.sources.incremental`` cursor and appends (parquet) or merges on the primary key (delta).

Layout: the table lands in ``DIR/<dataset>/<table>/`` (parquet files named
``<load_id>.<file_id>.parquet``, or one Delta table); dlt's bookkeeping tables sit next to it as
``DIR/<dataset>/_dlt_*``, and dlt's own working folders (pipeline state, load packages, the
"global" dlt dir) live under ``DIR/.dlt`` so nothing is written to ``~/.dlt``. Telemetry is off.

Types: with ``reflection_level="full"`` (dlt's default) the data keeps connectorx's Arrow types,
as in bench/floor.py: int2/int4 -> int64, numeric(18,4) -> decimal128(38,10), uuid -> string,
timestamptz -> timestamp[us, UTC]; dlt only adds NOT NULL from the reflected table. With
``"minimal"`` naive timestamps come out as timestamp[us, UTC]. No ``_dlt_id``/``_dlt_load_id``
columns: dlt adds them to Arrow data only if configured to (``normalize.parquet_normalizer``).

Prints one JSON line: rows dlt loaded into the table (from the normalize step's row counts),
the table's path and columns (``_dlt_*`` ones listed separately), seconds spent after imports
and per dlt step (extract, normalize, load). Exits non-zero on any failure, with a one-line
summary as the last line of stderr. dlt logs only errors unless ``--log-level`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Set before dlt is imported: dlt reads its run context and config providers on import.
_DLT_ENV = {
    "RUNTIME__DLT_TELEMETRY": "false",
    # Delete a load package's files once they are loaded (by default dlt keeps every extracted
    # parquet file under the pipeline's working dir, doubling what a run leaves on disk).
    "LOAD__DELETE_COMPLETED_JOBS": "true",
}


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SystemExit(f"expected a plain identifier, got {name!r}")
    return name


def configure_environment(out: Path, log_level: str) -> Path:
    """Point every dlt folder under ``out/.dlt``, switch telemetry off and set the log level;
    return the pipelines dir. Only variables the caller did not set are changed."""
    work = out / ".dlt"
    defaults = {
        **_DLT_ENV,
        "RUNTIME__LOG_LEVEL": log_level,
        # dlt's "global" dir (default ~/.dlt): pipelines, telemetry id, caches.
        "DLT_DATA_DIR": str(work / "data"),
        # Where dlt looks for .dlt/config.toml and secrets.toml (default: the cwd): an empty
        # folder, so a stray config file cannot change what is benchmarked.
        "DLT_PROJECT_DIR": str(work / "project"),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return work / "pipelines"


def build_resource(args: argparse.Namespace) -> Any:
    import dlt
    from dlt.sources.sql_database import sql_table

    backend_kwargs: dict[str, Any] = {}
    if not args.no_stream:
        backend_kwargs = {"return_type": "arrow_stream", "batch_size": args.chunk_size}
    incremental = dlt.sources.incremental(args.incremental_column) if args.incremental_column else None
    if incremental is None:
        write_disposition = "replace"
    elif args.format == "delta":
        write_disposition = "merge"  # upsert on the reflected primary key
    else:
        write_disposition = "append"  # plain parquet files on a filesystem cannot merge
    return sql_table(
        credentials=args.url,
        table=args.table,
        schema=args.schema,
        backend="connectorx",
        chunk_size=args.chunk_size,
        reflection_level=args.reflection_level,
        backend_kwargs=backend_kwargs,
        incremental=incremental,
        write_disposition=write_disposition,
    )


def land(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    pipelines_dir = configure_environment(out, args.log_level)

    import dlt

    began = time.perf_counter()
    resource = build_resource(args)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{args.format}",
        destination=dlt.destinations.filesystem(bucket_url=out.as_uri()),
        dataset_name=args.dataset,
        pipelines_dir=str(pipelines_dir),
    )
    info = pipeline.run(
        resource,
        loader_file_format="parquet",
        table_format="delta" if args.format == "delta" else None,
    )
    info.raise_on_failed_jobs()
    seconds = time.perf_counter() - began

    table_name = pipeline.default_schema.naming.normalize_table_identifier(args.table)
    normalize_info = pipeline.last_trace.last_normalize_info
    row_counts = dict(normalize_info.row_counts) if normalize_info else {}
    columns = list(pipeline.default_schema.get_table_columns(table_name))
    steps = {
        step.step: round((step.finished_at - step.started_at).total_seconds(), 3)
        for step in pipeline.last_trace.steps
        if step.started_at and step.finished_at
    }
    table_dir = out / args.dataset / table_name
    return {
        "rows": row_counts.get(table_name, 0),
        "table": table_name,
        "format": args.format,
        "write_disposition": resource.write_disposition,
        "table_dir": str(table_dir),
        "columns": [c for c in columns if not c.startswith("_dlt")],
        "dlt_columns": [c for c in columns if c.startswith("_dlt")],
        "load_ids": list(info.loads_ids),
        "row_counts": row_counts,
        "inner_seconds": round(seconds, 3),
        "step_seconds": steps,
        "dlt_version": dlt.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="PostgreSQL URL (postgresql://...)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (bucket_url)")
    parser.add_argument("--format", choices=["parquet", "delta"], default="parquet")
    parser.add_argument("--table", default="bench_rows")
    parser.add_argument("--schema", default="public", help="source schema")
    parser.add_argument("--dataset", default="bench", help="dlt dataset: the folder under --out")
    parser.add_argument("--incremental-column", help="cursor column for an incremental load")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=500_000,
        help="rows per Arrow batch read from connectorx (bench/floor.py uses 500k too)",
    )
    parser.add_argument(
        "--reflection-level",
        choices=["minimal", "full", "full_with_precision"],
        default="full",
        help="how much of the source schema dlt reflects (see the module notes)",
    )
    parser.add_argument(
        "--no-stream",
        action="store_true",
        help="connectorx's default return_type='arrow': the whole table in memory at once",
    )
    # Only errors by default: dlt warns on every run here (column hints that differ between the
    # reflected schema and connectorx's Arrow types), and a caller that reports the first line
    # of stderr should see a failure's traceback, not a warning.
    parser.add_argument(
        "--log-level",
        default="ERROR",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="dlt's log level (RUNTIME__LOG_LEVEL)",
    )
    args = parser.parse_args(argv)
    for name in (args.table, args.schema, args.dataset, args.incremental_column):
        if name is not None:
            _ident(name)
    try:
        report = land(args)
    except Exception as exc:
        traceback.print_exc()
        # One summary line last (dlt wraps errors in long multi-line messages).
        message = str(exc).strip().splitlines()
        print(f"dlt_load failed: {type(exc).__name__}: {message[0] if message else ''}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
