"""The setup two benchmarks share: a server with the generated table, a fresh copy of it that the
benchmark's project reads (dropped afterwards; the generated table stays), and the launcher."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import run as bench_run  # bench/run.py (this script's directory is on sys.path)


@contextlib.contextmanager
def copied_source(
    args: argparse.Namespace, copy: str, out: Path, write_project: Callable[[Path], None]
) -> Iterator[tuple[bench_run.Bench, int]]:
    """(launcher, rows in the copy) for a project written to `out`/project by `write_project`."""
    with bench_run.database(args.url, args.rows, args.table) as url:
        bench_run.copy_table(url, args.table, copy)
        try:
            write_project(out / "project")
            yield bench_run.Bench(url, copy, out, bench_run.hygge_command(None), args.timeout), (
                bench_run.source_info(url, copy)["rows"]
            )
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {copy}")
